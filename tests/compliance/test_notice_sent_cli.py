"""``irflow incidents facts`` and ``irflow incidents notice-sent`` against a real database (CliRunner)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from irflow.cli.main import app
from irflow.engine.state import StateStore
from irflow.settings import reset_settings_cache
from irflow.store.db import Database

runner = CliRunner()


@pytest.fixture(autouse=True)
def _logs_back_to_stderr():  # type: ignore[no-untyped-def]
    """The CLI points logging at the runner's captured stderr, closed after each invocation: point it back."""
    yield
    from irflow.logs import configure_logging

    configure_logging(level="INFO", fmt="json")


@pytest.fixture
def incident(database: Database, database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("IRFLOW_DATABASE_URL", database_url)
    reset_settings_cache()
    return StateStore(database).open_incident(
        title="PHI export exposed", severity="high", source="cli", actor="cli:ic"
    )


def irflow(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args))


def _deadlines(result) -> dict:  # type: ignore[no-untyped-def,type-arg]
    assert result.exit_code == 0, result.output
    return {(d["kind"], d["jurisdiction"]): d for d in json.loads(result.stdout)["incident"]["deadlines"]}


def test_notice_sent_meets_the_obligation_and_moves_hhs(incident: str, tmp_path: Path) -> None:
    facts = irflow("incidents", "facts", incident, "--discovered", "2026-03-02T21:30",
                   "--tz", "America/Chicago", "--affected", "800", "--json")  # fmt: skip
    assert _deadlines(facts)[("hhs", "US")]["due"] == "2026-05-01"
    copy = tmp_path / "individual-notice.pdf"
    copy.write_bytes(b"the letter as mailed")
    sent = irflow("incidents", "notice-sent", incident, "individuals", "--on", "2026-03-25", "--json",
                  "--method", "first_class_mail", "--count", "800", "--copy", str(copy))  # fmt: skip
    rows = _deadlines(sent)
    assert rows[("individuals", "US")]["status"] == "met"
    assert rows[("hhs", "US")]["due"] == "2026-03-25"  # 164.408(b): with the individual notice
    digest = hashlib.sha256(copy.read_bytes()).hexdigest()
    assert json.loads(sent.stdout)["notice"]["copy_sha256"] == digest
    human = irflow("incidents", "notice-sent", incident, "hhs", "--on", "2026-03-25", "--method",
                   "hhs_portal", "--count", "1")  # fmt: skip
    assert human.exit_code == 0, human.output
    assert "recorded hhs US as sent on 2026-03-25" in human.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["individuals", "--on", "2026-13-01", "--method", "email", "--count", "1"], "YYYY-MM-DD"),
        (["individuals", "--on", "2026-03-20", "--method", "pigeon", "--count", "1"], "method"),
        (["individuals", "--on", "2026-03-20", "--method", "email", "--count", "0"], "greater than or equal"),
        (["postcard", "--on", "2026-03-20", "--method", "email", "--count", "1"], "kind"),
        (["media", "--jurisdiction", "TX", "--on", "2026-03-20", "--method", "media", "--count", "1"],
         "no media TX obligation"),
        (["individuals", "--on", "2026-03-20", "--method", "email", "--count", "1",
          "--copy", "/nonexistent/x"], "--copy"),
    ],
)  # fmt: skip
def test_bad_notice_sent_exits_2(incident: str, args: list[str], message: str) -> None:
    assert (
        irflow("incidents", "facts", incident, "--discovered", "2026-03-02", "--affected", "10").exit_code
        == 0
    )
    result = irflow("incidents", "notice-sent", incident, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_facts_refuses_a_late_discovery_without_reason(incident: str) -> None:
    result = irflow("incidents", "facts", incident, "--discovered", "2099-01-01", "--affected", "3")
    assert result.exit_code == 2
    assert "later than the first detection" in result.output
    ok = irflow("incidents", "facts", incident, "--discovered", "2099-01-01", "--affected", "3",
                "--discovery-reason", "reported by the vendor", "--json")  # fmt: skip
    assert ok.exit_code == 0, ok.output
