"""A Sentinel intake that dies at a chosen point, as its own process (test_sentinel_crash_window.py).

    python tests/api/sentinel_intake_crash.py DATABASE_URL PLAYBOOKS_DIR DELIVERY_FILE CRASH_POINT

``before_commit``: SIGKILL once the run is added to the claim's unit of work, before it commits.
``after_commit``: SIGKILL once the claim with its run has committed, before the run's workflow starts.
No engine (DBOS) runs here: the process dies before it would need one.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from irflow.engine import sentinel  # noqa: E402
from irflow.engine.runtime import Services, open_database  # noqa: E402
from irflow.engine.sentinel_payload import parse_delivery  # noqa: E402
from irflow.engine.state import StateStore  # noqa: E402
from irflow.settings import Settings  # noqa: E402


def _die(*_: Any, **__: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    database_url, playbooks, delivery_file, crash_at = sys.argv[1:]
    settings = Settings(database_url=database_url, playbooks_dir=Path(playbooks))
    db = open_database(settings)
    state = StateStore(db)
    if crash_at == "before_commit":
        record = state.new_run

        def new_run_then_die(*args: Any, **kwargs: Any) -> str:
            record(*args, **kwargs)
            _die()
            raise AssertionError("unreachable")

        state.new_run = new_run_then_die  # type: ignore[method-assign]
    elif crash_at == "after_commit":
        sentinel.start_recorded_run = _die  # type: ignore[assignment]
    else:
        raise SystemExit(f"unknown crash point {crash_at}")
    svc = Services(settings=settings, db=db, state=state)
    sentinel.receive(svc, parse_delivery(Path(delivery_file).read_bytes()), actor="sentinel:crash")
    raise SystemExit("the intake finished: it should have died first")


if __name__ == "__main__":
    main()
