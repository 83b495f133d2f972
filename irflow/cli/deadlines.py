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
    from irflow.engine.services.errors import ServiceError
    from irflow.engine.services.facts import parse_day

    try:
        return parse_day(option, value)
    except ServiceError as exc:
        fail(exc.message)


@deadlines_app.command("compute")
def compute_command(
    role: Annotated[
        RoleOption, typer.Option("--role", help="ce (covered entity) or ba (business associate).")
    ],
    discovered: Annotated[
        str,
        typer.Option(
            "--discovered",
            help="Discovery date YYYY-MM-DD (day 0), or date and time YYYY-MM-DDTHH:MM read in --tz.",
        ),
    ],
    affected: Annotated[int, typer.Option("--affected", help="Affected individuals in total.")],
    tz: Annotated[
        str | None,
        typer.Option("--tz", help="Time zone of --discovered (default: IRFLOW_TIMEZONE, America/New_York)."),
    ] = None,
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
    ba_agent_discovered: Annotated[
        str | None,
        typer.Option(
            "--ba-agent-discovered",
            help="Date a business associate acting as the covered entity's agent discovered the breach.",
        ),
    ] = None,
    hipaa: Annotated[
        bool,
        typer.Option(
            "--hipaa/--no-hipaa",
            help="The data is PHI held by a HIPAA covered entity or business associate (default).",
        ),
    ] = True,
    ca_facility: Annotated[
        bool,
        typer.Option("--ca-facility", help="A California licensed health facility (H&S Code 1280.15)."),
    ] = False,
    out_of_date_addresses: Annotated[
        int | None,
        typer.Option("--out-of-date-addresses", help="Individuals without usable contact information."),
    ] = None,
    urgent: Annotated[
        bool, typer.Option("--urgent", help="The covered entity deems the case urgent (164.404(d)(3)).")
    ] = False,
    deceased: Annotated[
        int,
        typer.Option("--deceased-next-of-kin", help="Deceased individuals whose next of kin is notified."),
    ] = 0,
    sent: Annotated[
        list[str] | None,
        typer.Option(
            "--sent", help="A notice already sent, KIND[:JURISDICTION[:RECIPIENT]]=DATE (repeatable)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The obligations and due dates for these facts, without an incident."""
    from irflow.cli.common import load_settings
    from irflow.engine.services.errors import ServiceError
    from irflow.engine.services.facts import ClockQuestion, compute_deadlines

    question = ClockQuestion(
        role=role.value,
        discovered=discovered,
        timezone=tz if tz is not None else load_settings().timezone,
        affected=affected,
        states=state or [],
        le_written_on=le_written_on,
        le_written_until=le_written_until,
        le_oral_on=le_oral_on,
        ba_contract_days=ba_contract_days,
        ba_agent_discovered=ba_agent_discovered,
        hipaa=hipaa,
        ca_facility=ca_facility,
        out_of_date_addresses=out_of_date_addresses,
        urgent=urgent,
        deceased_with_next_of_kin=deceased,
        sent=sent or [],
    )
    try:
        answer = compute_deadlines(question)
    except ServiceError as exc:
        fail(exc.message)
    facts, result = answer.facts, answer.result
    if as_json:
        typer.echo(json.dumps(result.as_json(), indent=2))
        return

    title = f"Obligations ({_ROLES[role]}, day 0 {facts.day_zero}, {'HIPAA' if hipaa else 'no HIPAA'})"
    table = Table(title=title, show_lines=True)
    for column in ("Due", "Status", "Kind", "Where", "Basis", "Notes"):
        table.add_column(column, overflow="fold")
    for ob in result.obligations:
        due = f"{ob.due.isoformat()}\n{ob.due.strftime('%a')}"
        if ob.outer_bound is not None:
            due += f"\nouter bound {ob.outer_bound.isoformat()}"
        where = ob.jurisdiction + (f"\n{ob.recipient}" if ob.recipient else "")
        status = ob.status.value + (f"\nHIPAA: {ob.hipaa_treatment}" if ob.hipaa_treatment else "")
        table.add_row(due, status, ob.kind.value, where, ob.basis, ob.notes)
    console.print(table)
    for warning in result.warnings:
        console.print(f"warning: {warning}", markup=False, soft_wrap=True)
    console.print(
        'Not legal advice: irflow does not decide what "without unreasonable delay" requires; verify every '
        "date with counsel (docs/compliance.md).",
        markup=False,
    )


if __name__ == "__main__":
    deadlines_app()


@deadlines_app.command("remind")
def remind_command(
    today: Annotated[
        str | None,
        typer.Option("--today", help="The day to act as (YYYY-MM-DD); default: today in IRFLOW_TIMEZONE."),
    ] = None,
    deliver: Annotated[
        bool, typer.Option("--deliver/--queue-only", help="Also deliver the outbox now.")
    ] = True,
) -> None:
    """Queue the reminders due today (T-30/14/7/3/1 and overdue), each exactly once, and deliver them."""
    from irflow.cli.common import load_settings
    from irflow.engine.runtime import open_database
    from irflow.engine.services.errors import ServiceError
    from irflow.engine.services.outbox import queue_reminders
    from irflow.store.db import SchemaOutOfDate

    settings = load_settings()
    day = _date("--today", today)
    try:
        db = open_database(settings)
    except SchemaOutOfDate as exc:
        fail(str(exc))
    try:
        try:
            report = queue_reminders(db, settings, day=day, deliver=deliver)
        except ServiceError as exc:
            fail(exc.message)
        console.print(
            f"{report.day}: {report.queued} reminder(s) queued, {report.already_queued} already sent "
            f"earlier, {report.marked_overdue} deadline(s) now overdue",
            markup=False,
        )
        if report.delivery is not None:
            delivered = report.delivery
            console.print(
                f"delivered {delivered.sent}, retrying {delivered.retry_scheduled}, "
                f"failed {delivered.failed}",
                markup=False,
            )
            if delivered.failed:
                raise typer.Exit(1)
    finally:
        db.dispose()


@deadlines_app.command("list")
def list_command(
    due_before: Annotated[
        str | None, typer.Option("--due-before", help="Only obligations due before this date (YYYY-MM-DD).")
    ] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="open, met, overdue, tolled, late or not_required.")
    ] = None,
    incident: Annotated[str | None, typer.Option("--incident", help="Only this incident's.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Obligations across incidents, soonest first (through the API when IRFLOW_URL is set)."""
    from pydantic import ValidationError

    from irflow.cli.backend import backend, plain
    from irflow.cli.common import cli_actor
    from irflow.engine.services.deadlines import DeadlineFilter
    from irflow.engine.services.errors import ServiceError, messages

    try:
        query = DeadlineFilter(
            due_before=_date("--due-before", due_before), status=status, incident_id=incident, limit=500
        )
    except ValidationError as exc:
        fail(messages(exc).replace("due_before", "--due-before").replace("incident_id", "--incident"))
    items: list[dict[str, object]] = []
    with backend(cli_actor()) as api:
        try:
            while True:
                page = api.list_deadlines(query.model_copy(update={"offset": len(items)}))
                items.extend(plain(d) for d in page.items)
                if not page.items or len(items) >= page.total:
                    break
        except ServiceError as exc:
            fail(exc.message)
    if as_json:
        typer.echo(json.dumps({"items": items, "total": len(items)}, indent=2))
        return
    table = Table(title=f"{len(items)} obligations", show_lines=False)
    for column in ("Due", "Status", "Kind", "Where", "Incident"):
        table.add_column(column, overflow="fold")
    for d in items:
        where = " ".join(str(p) for p in (d["jurisdiction"], d["recipient"]) if p)
        table.add_row(str(d["due"]), str(d["status"]), str(d["kind"]), where, str(d["incident_id"]))
    console.print(table)
