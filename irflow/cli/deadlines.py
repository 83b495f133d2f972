"""``irflow deadlines``: breach-notification obligations and due dates for given facts, without an incident.

Mounted by ``irflow.cli.main`` as ``app.add_typer(deadlines_app, name="deadlines")``; also runnable as
``python -m irflow.cli.deadlines compute ...``.
"""

from __future__ import annotations

import json
from datetime import date, datetime
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


def _discovery(value: str, tz: str) -> date:
    """``--discovered``: a date (day 0 itself) or a date and time, read in ``tz`` unless it has an offset."""
    from irflow.compliance.models import discovery_date, zone

    try:
        zone(tz)
    except ValueError as exc:
        fail(f"--tz: {exc}")
    text = value.strip()
    if "T" not in text and " " not in text:
        return _date("--discovered", text)  # type: ignore[return-value]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--discovered takes YYYY-MM-DD or YYYY-MM-DDTHH:MM[+HH:MM], got {value!r}")
    return discovery_date(moment, tz)


def _sent(values: list[str]) -> list[tuple[str, str, str, date]]:
    """``--sent KIND[:XX[:RECIPIENT]]=DATE``, parsed (checked by the clock's models)."""
    parsed = []
    for value in values:
        target, sep, raw = value.rpartition("=")
        if not sep or not target.strip() or not raw.strip():
            fail(f"--sent takes KIND[:JURISDICTION[:RECIPIENT]]=YYYY-MM-DD, got {value!r}")
        kind, _, rest = target.partition(":")
        jurisdiction, _, recipient = rest.partition(":")
        on = _date("--sent", raw)
        assert on is not None
        parsed.append((kind.strip(), (jurisdiction.strip() or "US"), recipient.strip(), on))
    return parsed


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
    from irflow.compliance import (
        IncidentFacts,
        LawEnforcementDelay,
        OralStatement,
        Role,
        WrittenStatement,
        compute_obligations,
    )
    from irflow.compliance.clock import resolve_sent

    zone_name = tz if tz is not None else load_settings().timezone
    discovered_on = _discovery(discovered, zone_name)
    if affected < 0:
        fail(f"--affected must not be negative, got {affected}")
    if ba_contract_days is not None and ba_contract_days < 0:
        fail(f"--ba-contract-days must not be negative, got {ba_contract_days}")
    written_on = _date("--le-written-on", le_written_on)
    written_until = _date("--le-written-until", le_written_until)
    oral_on = _date("--le-oral-on", le_oral_on)
    agent_on = _date("--ba-agent-discovered", ba_agent_discovered)
    if (written_on is None) != (written_until is None):
        fail("--le-written-on and --le-written-until go together: give both or neither")
    counts = _states(state or [])
    sent_notices = _sent(sent or [])

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
            hipaa=hipaa,
            ca_facility=ca_facility,
            ba_agent_discovered_on=agent_on,
            out_of_date_addresses=out_of_date_addresses,
            urgent=urgent,
            deceased_with_next_of_kin=deceased,
        )
        if sent_notices:
            facts = facts.model_copy(update={"sent": resolve_sent(compute_obligations(facts), sent_notices)})
            facts = IncidentFacts.model_validate(facts.model_dump())  # the sent dates checked with the rest
    except ValidationError as exc:
        fail(_problems(exc))
    except ValueError as exc:
        fail(str(exc))

    result = compute_obligations(facts)
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
