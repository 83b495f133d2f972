"""Engine overhead per step: N no-op targets through the whole engine vs one raw insert + commit.

    python bench/engine_overhead.py [N]        # SQLite; and PostgreSQL when IRFLOW_BENCH_POSTGRES_URL is set

A bench-only action (``bench.noop``: plans no change, applies nothing, verifies true) fans out over N items at
the step's maximum concurrency. Per-step overhead = the run's wall time / N; it covers everything the engine
does per target (step row, plan/start/succeed transitions each with its audit event, the DBOS workflow and
step records, the queue). The baseline, measured in the same run on the same database with the same
durability: one plain row insert and commit. Prints the ratio (the issue's target: at most 3x) and the
commits per step (irflow's database and DBOS's system database together: each is a sync to disk).

SQLite runs twice: ``synchronous=full`` (irflow's default: every commit survives a power loss) and
``synchronous=normal`` (IRFLOW_SQLITE_SYNCHRONOUS=normal: commits survive a killed process, not a power loss);
each against a raw insert with the same setting, and the normal run also against the full raw insert.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy import text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from irflow.actions.base import Action, Plan, Result, StepContext, register  # noqa: E402


class NoOpParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item: str = ""


@register
class NoOp(Action):
    """Changes nothing: only the engine's own cost remains.

    Example::

        - id: noop
          action: bench.noop
          for_each: "{{ inputs.names }}"
    """

    name: ClassVar[str] = "bench.noop"
    Params = NoOpParams
    permissions: ClassVar[tuple[str, ...]] = ()
    target_param: ClassVar[str | None] = "item"

    def plan(self, ctx: StepContext) -> Plan:
        return Plan(action=self.name, target=ctx.target)

    def apply(self, ctx: StepContext) -> Result:
        return Result(changed=False)

    def verify(self, ctx: StepContext) -> bool:
        return True


PLAYBOOK = """name: bench-noop
version: 1
inputs:
  names: {type: 'list[string]'}
steps:
  - id: noop
    action: bench.noop
    for_each: '{{ inputs.names }}'
    concurrency: 64
    retry: {max_attempts: 1}
"""


COMMITS = [0]


def _count_commits() -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "commit")
    def _commit(_conn: Any) -> None:
        COMMITS[0] += 1


def raw_insert_seconds(database_url: str, rows: int, synchronous: str = "full") -> float:
    """Seconds per plain insert + commit of one small row (a table of its own, same database)."""
    from sqlalchemy import create_engine, event

    engine = create_engine(database_url)
    if engine.url.get_backend_name() == "sqlite":

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute(f"PRAGMA synchronous={synchronous.upper()}")

    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bench_raw (id INTEGER PRIMARY KEY, note VARCHAR(40))"))
        conn.execute(text("DELETE FROM bench_raw"))
    start = time.perf_counter()
    for index in range(rows):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO bench_raw (id, note) VALUES (:i, 'x')"), {"i": index})
    elapsed = time.perf_counter() - start
    engine.dispose()
    return elapsed / rows


def engine_seconds_per_step(
    database_url: str, workdir: Path, steps: int, synchronous: str = "full"
) -> Measured:
    from irflow.engine import runtime
    from irflow.engine.runs import submit_run
    from irflow.settings import Settings

    (workdir / "bench-noop.yaml").write_text(PLAYBOOK)
    settings = Settings(
        database_url=database_url,
        playbooks_dir=workdir,
        queue_polling_interval=0.05,
        sqlite_synchronous=synchronous,  # type: ignore[arg-type]
    )
    svc = runtime.launch(settings)
    try:
        items = ",".join(f"item-{index}" for index in range(steps))
        start, commits, cpu = time.perf_counter(), COMMITS[0], time.process_time()
        submitted = submit_run(svc, "bench-noop", {"names": items}, actor="bench", auto_approve=True)
        status: Any = submitted.handle.get_result()
        elapsed, commits, cpu = time.perf_counter() - start, COMMITS[0] - commits, time.process_time() - cpu
        if status != "succeeded":
            from irflow.engine.runs import run_view

            raise SystemExit(f"the bench run {status}: {run_view(svc, submitted.run_id)['error']}")
    finally:
        runtime.shutdown()
    return Measured(elapsed / steps, status, commits / steps, cpu / steps)


@dataclass(frozen=True)
class Measured:
    seconds: float  # wall time per step
    status: str
    commits: float  # per step, irflow's database and DBOS's together
    cpu_seconds: float  # CPU time of this process (every thread) per step: less sensitive to other load


def report(label: str, database_url: str, workdir: Path, steps: int, synchronous: str = "full") -> None:
    measured = engine_seconds_per_step(database_url, workdir, steps, synchronous)
    per_step, status = measured.seconds, measured.status
    per_insert = raw_insert_seconds(database_url, steps, synchronous)
    line = (
        f"{label}: {steps} no-op steps ({status}): {per_step * 1000:.2f} ms per step "
        f"(CPU {measured.cpu_seconds * 1000:.1f} ms), {measured.commits:.1f} commits per step; "
        f"raw insert+commit {per_insert * 1000:.3f} ms; "
        f"ratio {per_step / per_insert:.1f}x (target <= 3x)"
    )
    if synchronous == "normal":
        durable = raw_insert_seconds(database_url, steps, "full")
        line += f"; vs a synchronous=full raw insert ({durable * 1000:.3f} ms) {per_step / durable:.1f}x"
    print(line, flush=True)


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    _count_commits()
    for synchronous in ("full", "normal"):
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            url = f"sqlite:///{workdir / 'bench.db'}"
            report(f"sqlite synchronous={synchronous}", url, workdir, steps, synchronous)
    postgres = os.environ.get("IRFLOW_BENCH_POSTGRES_URL")
    if postgres:
        with tempfile.TemporaryDirectory() as tmp:
            report("postgresql", postgres, Path(tmp), steps)
    else:
        print("postgresql: skipped (set IRFLOW_BENCH_POSTGRES_URL to an empty database)")


if __name__ == "__main__":
    main()
