"""``irflow deadlines``: breach-notification obligations and due dates for given facts, without an incident.

Mounted by ``irflow.cli.main`` as ``app.add_typer(deadlines_app, name="deadlines")``; also runnable as
``python -m irflow.cli.deadlines compute ...``.
"""

from __future__ import annotations

import json
from datetime import date
from enum import StrEnum
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from irflow.cli.common import console, fail

deadlines_app = typer.Typer(
    help="Breach-notification obligations and due dates (HIPAA 45 CFR 164.404-414 and state laws).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class RoleOption(StrEnum):
    ce = "ce"
    ba = "ba"


_ROLES = {RoleOption.ce: "covered_entity", RoleOption.ba: "business_associate"}


@deadlines_app.callback()
def _deadlines() -> None:
    """Breach-notification obligations and due dates."""


def _date(option: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        fail(f"{option} takes a date YYYY-MM-DD, got {value!r}")


def _states(values: list[str]) -> dict[str, int]:
    from irflow.compliance.models import normalize_state

    counts: dict[str, int] = {}
    for value in values:
        code, sep, raw = value.partition("=")
        if not sep or not code.strip() or not raw.strip():
            fail(f"--state takes XX=N (a two-letter state code and a count), got {value!r}")
        try:
            state = normalize_state(code)
        except ValueError as exc:
            fail(f"--state {value}: {exc}")
        try:
            count = int(raw.strip())
        except ValueError:
            fail(f"--state {value}: the count must be a whole number, got {raw.strip()!r}")
        if count < 0:
            fail(f"--state {value}: the count must not be negative")
        if state in counts:
            fail(f"--state {state} given twice")
        counts[state] = count
    return counts


def _problems(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


@deadlines_app.command("compute")
def compute_command(
    role: Annotated[
        RoleOption, typer.Option("--role", help="ce (covered entity) or ba (business associate).")
    ],
    discovered: Annotated[str, typer.Option("--discovered", help="Discovery date YYYY-MM-DD (day 0).")],
    affected: Annotated[int, typer.Option("--affected", help="Affected individuals in total.")],
    state: Annotated[
        list[str] | None, typer.Option("--state", help="Affected residents of a state, XX=N (repeatable).")
    ] = None,
    le_written_on: Annotated[
        str | None, typer.Option("--le-written-on", help="Date a written law-enforcement delay was given.")
    ] = None,
    le_written_until: Annotated[
        str | None, typer.Option("--le-written-until", help="Date the written delay names as its end.")
    ] = None,
    le_oral_on: Annotated[
        str | None, typer.Option("--le-oral-on", help="Date an oral law-enforcement delay was given.")
    ] = None,
    ba_contract_days: Annotated[
        int | None,
        typer.Option("--ba-contract-days", help="Business associate agreement window in days (if under 60)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The obligations and due dates for these facts, without an incident."""
    from irflow.compliance import (
        IncidentFacts,
        LawEnforcementDelay,
        OralStatement,
        Role,
        WrittenStatement,
        compute_obligations,
    )

    discovered_on = _date("--discovered", discovered)
    assert discovered_on is not None
    if affected < 0:
        fail(f"--affected must not be negative, got {affected}")
    if ba_contract_days is not None and ba_contract_days < 0:
        fail(f"--ba-contract-days must not be negative, got {ba_contract_days}")
    written_on = _date("--le-written-on", le_written_on)
    written_until = _date("--le-written-until", le_written_until)
    oral_on = _date("--le-oral-on", le_oral_on)
    if (written_on is None) != (written_until is None):
        fail("--le-written-on and --le-written-until go together: give both or neither")
    counts = _states(state or [])

    try:
        delay = None
        if written_on is not None or oral_on is not None:
            delay = LawEnforcementDelay(
                written=(
                    WrittenStatement(given_on=written_on, until=written_until)
                    if written_on is not None and written_until is not None
                    else None
                ),
                oral=OralStatement(given_on=oral_on) if oral_on is not None else None,
            )
        facts = IncidentFacts(
            role=Role(_ROLES[role]),
            discovered_on=discovered_on,
            affected_total=affected,
            affected_by_state=counts,
            law_enforcement_delay=delay,
            ba_contract_days=ba_contract_days,
        )
    except ValidationError as exc:
        fail(_problems(exc))

    result = compute_obligations(facts)
    if as_json:
        typer.echo(json.dumps(result.as_json(), indent=2))
        return

    table = Table(title=f"Obligations ({_ROLES[role]}, discovered {discovered_on})", show_lines=True)
    for column in ("Due", "Kind", "Where", "Basis", "Notes"):
        table.add_column(column, overflow="fold")
    for ob in result.obligations:
        table.add_row(
            f"{ob.due.isoformat()}\n{ob.due.strftime('%a')}",
            ob.kind.value,
            ob.jurisdiction,
            ob.basis,
            ob.notes,
        )
    console.print(table)
    for warning in result.warnings:
        console.print(f"warning: {warning}", markup=False, soft_wrap=True)
    console.print("Not legal advice: verify every date with counsel (docs/compliance.md).", markup=False)


if __name__ == "__main__":
    deadlines_app()


@deadlines_app.command("remind")
def remind_command(
    today: Annotated[
        str | None, typer.Option("--today", help="The day to act as (YYYY-MM-DD); default: today, UTC.")
    ] = None,
    deliver: Annotated[
        bool, typer.Option("--deliver/--queue-only", help="Also deliver the outbox now.")
    ] = True,
) -> None:
    """Queue the reminders due today (T-30/14/7/3/1 and overdue), each exactly once, and deliver them."""
    from irflow import clock
    from irflow.cli.common import load_settings
    from irflow.engine.reminders import queue_due_reminders
    from irflow.engine.runtime import open_database
    from irflow.notify.config import channels_from_settings
    from irflow.notify.outbox import deliver_due
    from irflow.settings import recipients
    from irflow.store.db import SchemaOutOfDate

    settings = load_settings()
    addresses = recipients(settings.compliance_recipients)
    if not addresses:
        fail("IRFLOW_COMPLIANCE_RECIPIENTS is empty: set the addresses that receive deadline reminders")
    day = _date("--today", today) or clock.now().date()
    try:
        channels = channels_from_settings(settings) if deliver else {}
    except ValueError as exc:
        fail(str(exc))
    if deliver and "email" not in channels:
        fail(
            "delivering reminders needs the e-mail channel: set IRFLOW_SMTP_HOST and IRFLOW_SMTP_FROM "
            "(or use --queue-only)"
        )
    try:
        db = open_database(settings)
    except SchemaOutOfDate as exc:
        fail(str(exc))
    try:
        report = queue_due_reminders(db, today=day, recipients=addresses)
        console.print(
            f"{day}: {len(report.queued)} reminder(s) queued, {report.already_queued} already sent earlier, "
            f"{report.marked_overdue} deadline(s) now overdue",
            markup=False,
        )
        if deliver:
            delivered = deliver_due(db, channels)
            console.print(
                f"delivered {len(delivered.sent)}, retrying {len(delivered.retry_scheduled)}, "
                f"failed {len(delivered.failed)}",
                markup=False,
            )
            if delivered.failed:
                raise typer.Exit(1)
    finally:
        db.dispose()
