"""``irflow deadlines compute`` through typer's CliRunner, and once as ``python -m``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from irflow.cli.deadlines import deadlines_app

runner = CliRunner()


def run(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(deadlines_app, ["compute", *args])


def test_json_output_shape_and_dates() -> None:
    result = run(
        "--role", "ce", "--discovered", "2027-06-15", "--affected", "1200",
        "--state", "TX=600", "--state", "fl=100", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {"obligations", "warnings"}
    rows = {(o["kind"], o["jurisdiction"]): o for o in payload["obligations"]}
    assert rows[("individuals", "US")]["due"] == "2027-08-14"
    assert rows[("hhs", "US")]["due"] == "2027-08-14"
    assert rows[("media", "TX")]["due"] == "2027-08-14"
    assert ("media", "FL") not in rows
    assert rows[("state_residents", "FL")]["due"] == "2027-07-15"
    assert rows[("state_regulator", "TX")]["due"] == "2027-07-15"
    for ob in payload["obligations"]:
        assert {
            "kind",
            "jurisdiction",
            "due",
            "basis",
            "notes",
            "status",
            "outer_bound",
            "hipaa_treatment",
        } <= set(ob)
        assert isinstance(ob["notes"], str)
        assert ob["status"] in {"open", "not_required"}
    assert any("no state" in w for w in payload["warnings"])  # 500 unplaced


def test_annual_log_across_leap_day() -> None:
    result = run("--role", "ce", "--discovered", "2027-03-01", "--affected", "12", "--json")
    assert result.exit_code == 0, result.output
    rows = {o["kind"]: o for o in json.loads(result.stdout)["obligations"]}
    assert rows["hhs_annual_log"]["due"] == "2028-02-29"


def test_law_enforcement_options() -> None:
    result = run(
        "--role", "ce", "--discovered", "2026-03-02", "--affected", "5",
        "--le-oral-on", "2026-03-10", "--le-written-on", "2026-04-01", "--le-written-until", "2026-06-08",
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    rows = {o["kind"]: o for o in payload["obligations"]}
    # 164.412: the delay (2026-03-10 to 2026-06-08) is in force on day 60: due the day it ends; the reading
    # that adds the delayed days back is the outer bound
    assert rows["individuals"]["due"] == "2026-06-08"
    assert rows["individuals"]["outer_bound"] == "2026-07-30"
    assert any("followed within 30 days by a written statement" in w for w in payload["warnings"])


def test_business_associate_contract_window() -> None:
    result = run("--role", "ba", "--discovered", "2026-03-02", "--affected", "5", "--ba-contract-days", "10",
                 "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [(o["kind"], o["due"]) for o in payload["obligations"]] == [("ba_to_ce", "2026-03-12")]


def test_table_output() -> None:
    result = run("--role", "ce", "--discovered", "2026-03-04", "--affected", "600", "--state", "WA=600")
    assert result.exit_code == 0, result.output
    assert "individuals" in result.stdout and "state_regulator" in result.stdout
    assert "Sunday" in result.stdout  # 2026-05-03 weekend warning
    assert "Not legal advice" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--state", "ZZ=3"], "unknown state code"),
        (["--state", "TX"], "XX=N"),
        (["--state", "TX=abc"], "whole number"),
        (["--state", "TX=-1"], "must not be negative"),
        (["--state", "TX=3", "--state", "tx=4"], "given twice"),
        (["--state", "TX=30"], "more than the total"),
        (["--le-written-on", "2026-03-05", "--le-written-until", "2026-03-04"], "before it was given"),
        (["--le-written-on", "2026-03-05"], "go together"),
        (["--le-oral-on", "2026-02-01"], "before discovery"),
        (["--le-oral-on", "yesterday"], "YYYY-MM-DD"),
        (["--ba-contract-days", "-1"], "must not be negative"),
    ],
)
def test_bad_input_exits_2_with_a_message(args: list[str], message: str) -> None:
    result = run("--role", "ce", "--discovered", "2026-03-02", "--affected", "10", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["--role", "ce", "--discovered", "2026-02-30", "--affected", "1"],
        ["--role", "ce", "--discovered", "2026-03-02", "--affected", "-5"],
        ["--role", "xx", "--discovered", "2026-03-02", "--affected", "1"],
        ["--role", "ce", "--affected", "1"],
    ],
)
def test_bad_core_options_exit_2(args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_runs_as_a_module() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "irflow.cli.deadlines", "compute",
         "--role", "ce", "--discovered", "2026-06-15", "--affected", "3", "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["obligations"][0]["kind"] == "individuals"


def _rows(result) -> dict:  # type: ignore[no-untyped-def,type-arg]
    assert result.exit_code == 0, result.output
    return {
        (o["kind"], o["jurisdiction"], o["recipient"]): o for o in json.loads(result.stdout)["obligations"]
    }


@pytest.mark.parametrize(
    ("discovered", "tz", "individuals_due"),
    [
        ("2026-01-01T20:00", "America/New_York", "2026-03-02"),  # 20:00 Eastern is still 1 January
        ("2026-01-01T20:00-05:00", "UTC", "2026-03-03"),  # 01:00 UTC on 2 January
        ("2026-01-02T01:00+00:00", "America/New_York", "2026-03-02"),
        ("2026-01-01", "Asia/Tokyo", "2026-03-02"),  # a bare date is day 0 itself
    ],
)
def test_tz_decides_the_discovery_date(discovered: str, tz: str, individuals_due: str) -> None:
    rows = _rows(run("--role", "ce", "--discovered", discovered, "--tz", tz, "--affected", "5", "--json"))
    assert rows[("individuals", "US", "")]["due"] == individuals_due


def test_no_hipaa_drops_the_federal_notices() -> None:
    rows = _rows(run("--role", "ce", "--discovered", "2026-03-02", "--affected", "600", "--state", "TX=600",
                     "--no-hipaa", "--json"))  # fmt: skip
    assert {k[0] for k in rows} == {"state_residents", "state_regulator"}
    assert all(o["hipaa_treatment"] is None for o in rows.values())


def test_sent_meets_an_obligation_and_moves_hhs() -> None:
    rows = _rows(run("--role", "ce", "--discovered", "2026-03-02", "--affected", "600",
                     "--sent", "individuals=2026-03-20", "--json"))  # fmt: skip
    assert rows[("individuals", "US", "")]["status"] == "met"
    assert rows[("hhs", "US", "")]["due"] == "2026-03-20"  # 164.408(b): contemporaneously


def test_substitute_and_agent_options() -> None:
    rows = _rows(run("--role", "ce", "--discovered", "2026-03-02", "--affected", "600", "--json",
                     "--out-of-date-addresses", "10", "--ba-agent-discovered", "2026-02-20"))  # fmt: skip
    assert rows[("individuals", "US", "")]["due"] == "2026-04-21"  # 2026-02-20 + 60: the agent's knowledge
    assert "164.404(d)(2)(ii)" in rows[("substitute_notice", "US", "")]["basis"]


def test_ca_facility_adds_the_health_facility_notices() -> None:
    rows = _rows(
        run("--role", "ce", "--discovered", "2026-03-02", "--affected", "3", "--ca-facility", "--json")
    )
    assert any("1280.15" in o["basis"] for o in rows.values())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tz", "Mars/Olympus"], "unknown time zone"),
        (["--sent", "individuals"], "KIND[:JURISDICTION[:RECIPIENT]]=YYYY-MM-DD"),
        (["--sent", "postcard=2026-03-03"], "unknown kind"),
        (["--sent", "media:TX=2026-03-03"], "no media TX obligation"),
        (["--sent", "individuals=2026-03-01"], "before the breach was discovered"),
        (["--sent", "individuals=2026-03-05", "--sent", "individuals=2026-03-06"], "twice"),
        (["--out-of-date-addresses", "11"], "more than the 10 affected"),
        (["--ba-agent-discovered", "soon"], "YYYY-MM-DD"),
    ],
)
def test_bad_new_options_exit_2(args: list[str], message: str) -> None:
    result = run("--role", "ce", "--discovered", "2026-03-02", "--affected", "10", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
