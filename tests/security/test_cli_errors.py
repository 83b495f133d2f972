"""One error path: every CLI failure is one clear ``error:`` line and a non-zero exit, never a traceback
(``--debug`` shows it), and what the user typed is echoed redacted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile import irflow

from irflow.engine.state import StateStore
from irflow.store.db import Database, upgrade

pytestmark = pytest.mark.slow
SSN = "123-45-6789"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    url = f"sqlite:///{tmp_path / 'irflow.db'}"
    db = Database(url)
    upgrade(db.engine)
    incident = StateStore(db).open_incident(title="exposure", severity="high", source="cli", actor="cli:test")
    db.dispose()
    yield {"IRFLOW_DATABASE_URL": url, "INCIDENT": incident}


def _one_error_line(result, code: int | None = None) -> str:  # type: ignore[no-untyped-def]
    output = result.stdout + result.stderr
    assert "Traceback" not in output and 'File "' not in output, output
    assert result.returncode != 0, output
    if code is not None:
        assert result.returncode == code, output
    assert result.stderr.startswith("error: "), output
    return result.stderr


def test_unreachable_postgresql_hides_the_password(env: dict[str, str]) -> None:
    url = "postgresql+psycopg://irflow:Sup3r-s3cret-pw@127.0.0.1:1/irflow"
    message = _one_error_line(irflow("incidents", "list", env={**env, "IRFLOW_DATABASE_URL": url}), 1)
    assert "cannot use the database postgresql+psycopg://irflow:***@127.0.0.1:1/irflow" in message
    assert "Sup3r" not in message


def test_bad_log_level_is_a_configuration_error(env: dict[str, str]) -> None:
    message = _one_error_line(irflow("incidents", "list", env={**env, "IRFLOW_LOG_LEVEL": "LOUD"}), 2)
    assert "IRFLOW_LOG_LEVEL" in message and "DEBUG, INFO, WARNING, ERROR, CRITICAL" in message


def test_year_9999_is_an_error_and_debug_shows_the_traceback(env: dict[str, str]) -> None:
    command = ("deadlines", "compute", "--role", "ce", "--discovered", "9999-12-31", "--affected", "10")
    _one_error_line(irflow(*command, env=env))
    debug = irflow("--debug", *command, env=env)
    assert debug.returncode != 0
    assert "OverflowError" in debug.stderr and "error: " in debug.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("--affected", str(2**64)),
        ("--ba-contract-days", str(2**64)),
    ],
)
def test_facts_past_2_63_end_cleanly(env: dict[str, str], args: tuple[str, ...]) -> None:
    _one_error_line(irflow("incidents", "facts", env["INCIDENT"], *args, env=env))
    view = irflow("incidents", "show", env["INCIDENT"], "--json", env=env)
    assert view.returncode == 0, view.stderr  # nothing half-written blocks the next command


@pytest.mark.parametrize(
    "args",
    [
        ("incidents", "facts", "{incident}", "--role", SSN),
        ("incidents", "facts", "{incident}", "--affected", f"ssn {SSN}"),
        ("incidents", "show", f"patient-{SSN}"),
        ("run", "storage-sas-exfiltration", "--param", f"ssn={SSN}"),
        ("run", "storage-sas-exfiltration", "--param", f"ssn:{SSN}"),
        ("run", "storage-sas-exfiltration", "--param", "hunter2-Correct-Horse"),
        ("frobnicate", SSN),
    ],
)
def test_echoed_values_are_redacted(env: dict[str, str], args: tuple[str, ...]) -> None:
    command = [arg.format(incident=env["INCIDENT"]) for arg in args]
    message = _one_error_line(irflow(*command, env=env))
    assert SSN not in message and "hunter2" not in message, message


@pytest.mark.parametrize(
    "args",
    [
        ("--le-written-on", "yesterday-ish"),
        ("--le-written-on", "2026-03-01", "--le-written-until", "2026-02-30"),
        ("--le-written-on", "2026-03-01", "--le-written-until", "99999-01-01"),
        ("--le-written-on", "2026-03-01", "--le-written-until", "2026-02-01"),  # ends before it was given
        ("--le-oral-on", "9999-12-31"),
        ("--discovered", "9999-12-31"),
        ("--discovered", "2026-03-01T25:99"),
        ("--tz", "Mars/Olympus_Mons"),
        ("--state", "TX=many"),
        ("--role", "landlord"),
    ],
)
def test_garbage_facts_are_refused_and_block_nothing(env: dict[str, str], args: tuple[str, ...]) -> None:
    """Garbage law-enforcement dates used to be stored and then block every later facts update."""
    _one_error_line(irflow("incidents", "facts", env["INCIDENT"], *args, env=env))
    fixed = irflow(
        "incidents",
        "facts",
        env["INCIDENT"],
        "--discovered",
        "2026-03-01",
        "--affected",
        "12",
        "--json",
        env=env,
    )
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr  # the next update goes through
    view = irflow("incidents", "show", env["INCIDENT"], "--json", env=env)
    assert view.returncode == 0, view.stderr
