"""The ``irflow`` command line."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from irflow.cli.common import (
    EXIT_FAILED,
    EXIT_WAITING,
    cli_actor,
    console,
    engine,
    errors,
    fail,
    is_tty,
    load_settings,
    options,
    reader,
    run_cli,
)
from irflow.engine.services.errors import ServiceError
from irflow.engine.services.errors import messages as problems

app = typer.Typer(
    name="irflow",
    help="Incident-response orchestrator for PHI breaches on Azure.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
db_app = typer.Typer(help="Application database.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)
playbooks_app = typer.Typer(help="Playbooks.", no_args_is_help=True)
actions_app = typer.Typer(help="The action registry.", no_args_is_help=True)
runs_app = typer.Typer(help="Playbook runs (alone: the runs not yet ended).", invoke_without_command=True)
incidents_app = typer.Typer(help="Incidents.", no_args_is_help=True)
notices_app = typer.Typer(help="The outbox: notifications and drafted notices.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
app.add_typer(playbooks_app, name="playbooks")
app.add_typer(actions_app, name="actions")
app.add_typer(runs_app, name="runs")
app.add_typer(incidents_app, name="incidents")
app.add_typer(notices_app, name="notices")


def _mount_subcommands() -> None:
    from irflow.cli.deadlines import deadlines_app
    from irflow.cli.sim import sim_app
    from irflow.cli.tokens import tokens_app

    app.add_typer(sim_app, name="sim", help="The simulated Azure tenant.")
    app.add_typer(deadlines_app, name="deadlines", help="HIPAA and state breach-notification deadlines.")
    app.add_typer(tokens_app, name="tokens")


_mount_subcommands()


@app.callback()
def _setup(
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of unexpected errors.")] = False,
) -> None:
    from irflow.logs import configure_logging

    options.debug = debug
    settings = load_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)


def _parse_params(values: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep or not key.strip():
            fail("--param takes KEY=VALUE: an argument without '=' was given (not shown: it may be a secret)")
        if key.strip() in params:
            fail(f"--param {key.strip()} given twice (a list takes comma-separated values)")
        params[key.strip()] = raw
    return params


@app.command("run")
def run_command(
    playbook: Annotated[str, typer.Argument(help="Playbook name (in the playbooks directory) or file path.")],
    param: Annotated[
        list[str], typer.Option("--param", "-p", help="Input KEY=VALUE; lists comma-separated.")
    ] = [],  # noqa: B006
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan every step; change nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Approve gated steps without asking.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run as JSON.")] = False,
    incident: Annotated[str | None, typer.Option(help="Attach the run to this incident id.")] = None,
) -> None:
    """Run one playbook in the foreground against the configured cloud. Exit 0 only when the run succeeded.

    The run is submitted to the runs queue and followed live; this process executes it only when no
    worker (``irflow serve``, ``irflow worker``) serves the database."""
    from irflow.cli.runs import ForegroundWorker, follow, report
    from irflow.engine.playbook import PlaybookError
    from irflow.engine.runs import submit_run

    settings = load_settings()
    params = _parse_params(param)
    from irflow.cli.backend import remote

    api = remote()
    if api is not None:  # a remote irflow's workers run it; this follows it through the API
        try:
            code = _run_remote(
                api, playbook, params, dry_run=dry_run, yes=yes, as_json=as_json, incident=incident
            )
        finally:
            api.close()
        raise typer.Exit(code)
    with ForegroundWorker(settings) as worker:
        svc = worker.services
        try:
            submitted = submit_run(
                svc,
                playbook,
                params,
                actor=cli_actor(),
                dry_run=dry_run,
                auto_approve=yes,
                incident_id=incident,
            )
        except PlaybookError as exc:
            fail(str(exc))
        except (ValueError, LookupError) as exc:
            fail(str(exc))
        if not as_json:
            mode = "dry run" if dry_run else "run"
            served = "" if worker.local else f" (executed by worker {', '.join(worker.serving)})"
            console.print(
                f"{mode} {submitted.run_id} of {playbook} for incident {submitted.incident_id}{served}",
                markup=False,
                soft_wrap=True,
            )
        view = follow(svc, submitted.run_id, quiet=as_json, keeper=worker)
        while view["status"] == "awaiting_approval" and is_tty() and not as_json:
            _ask_for_approvals(svc, submitted.run_id)
            view = follow(svc, submitted.run_id, keeper=worker)
        code = report(view, as_json=as_json)
        if view["status"] == "awaiting_approval":
            errors.print(
                f"run {submitted.run_id} waits for approval: irflow runs approve {submitted.run_id} "
                f"(or reject); it is kept and resumes when decided",
                markup=False,
            )
        worker.finish()
    raise typer.Exit(code)


def _run_remote(
    api: Any,
    playbook: str,
    params: dict[str, str],
    *,
    dry_run: bool,
    yes: bool,
    as_json: bool,
    incident: str | None,
) -> int:
    from irflow.cli.remote_follow import follow_remote
    from irflow.cli.runs import report
    from irflow.engine.services.runs import RunStart

    if "/" in playbook or playbook.endswith((".yaml", ".yml")):
        fail(
            f"{playbook}: a remote irflow runs its own playbooks, by name (see GET /api/v1/playbooks), "
            "not a local file"
        )
    try:
        command = RunStart(
            playbook=playbook, params=params, dry_run=dry_run, auto_approve=yes, incident_id=incident
        )
    except ValidationError as exc:
        fail(problems(exc))
    try:
        started = api.start_run(command)
    except ServiceError as exc:
        fail(exc.message)
    if not as_json:
        mode = "dry run" if dry_run else "run"
        console.print(f"{mode} {started.id} of {playbook} for incident {started.incident_id}", markup=False)
    view = follow_remote(api, started.id, quiet=as_json)
    while view["status"] == "awaiting_approval" and is_tty() and not as_json:
        _ask_remote(api, view)
        view = follow_remote(api, started.id)
    code = report(view, as_json=as_json)
    if view["status"] == "awaiting_approval":
        errors.print(
            f"run {started.id} waits for approval: irflow runs approve {started.id} "
            f"(or reject); it is kept and resumes when decided",
            markup=False,
        )
    return code


def _ask_remote(api: Any, view: dict[str, Any]) -> None:
    """Each waiting playbook step's plans shown, then one decision for the step (all its targets), through
    the backend (local or remote)."""
    from irflow.cli.display import short_target
    from irflow.engine.services.runs import RunDecision

    waiting = [step for step in view["steps"] if step["state"] == "awaiting_approval"]
    for key in dict.fromkeys(step["step"] for step in waiting):
        for step in (s for s in waiting if s["step"] == key):
            console.print(
                f"\n[bold]{step['step']}[/] on {short_target(step['target'])} waits for approval. Plan:"
            )
            for change in (step["plan"] or {}).get("changes", []):
                console.print(
                    f"  {change['field']}: {change['before']!r} -> {change['after']!r}", markup=False
                )
        approved = typer.confirm("approve?", default=False)
        try:
            api.decide(view["id"], RunDecision(step_id=key), approved=approved)
        except ServiceError as exc:
            errors.print(f"{key}: {exc.message}", markup=False)


def _finish_own_workflows(svc) -> None:  # type: ignore[no-untyped-def]
    """Let the workflows this process executes (other runs' steps included) finish before it exits."""
    from irflow.engine.runs import wait_for_own_workflows

    left = wait_for_own_workflows(svc)
    if left:
        errors.print(
            f"{len(left)} workflow(s) executed here are still in flight; they resume when an engine with "
            f"executor id {svc.settings.executor_id!r} starts again (irflow runs resume)",
            markup=False,
        )


def _ask_for_approvals(svc, run_id: str) -> None:  # type: ignore[no-untyped-def]
    """Locally as remotely: the run's waiting gates, decided through the runs service."""
    from irflow.cli.backend import LocalBackend, cli_principal, plain

    api = LocalBackend(svc, cli_principal(cli_actor()))
    _ask_remote(api, plain(api.show_run(run_id)))


def _decide(run_id: str, step: str | None, comment: str, *, approved: bool, as_json: bool) -> None:
    from irflow.engine.services.runs import RunDecision

    try:
        command = RunDecision(step_id=step, comment=comment)
    except ValidationError as exc:
        fail(problems(exc))
    with _steering() as (api, svc):
        try:
            decided = api.decide(run_id, command, approved=approved)
        except ServiceError as exc:
            fail(exc.message)
        if not as_json:
            verb = "approved" if approved else "rejected"
            console.print(f"{verb} {len(decided.steps)} waiting step(s) of run {run_id}", markup=False)
        _wait_until_taken(api, run_id, set(decided.steps))
        code = _follow_and_report(api, svc, run_id, as_json=as_json)
    raise typer.Exit(code)


@contextmanager
def _steering() -> Iterator[tuple[Any, Any]]:
    """The backend for commands that steer a run, and the local engine's services (None when remote):
    locally, deciding or retrying needs the engine launched in this process; remotely, the server's."""
    from irflow.cli.backend import LocalBackend, cli_principal, remote

    api = remote()
    if api is not None:
        try:
            yield api, None
        finally:
            api.close()
        return
    with engine(load_settings()) as svc:
        yield LocalBackend(svc, cli_principal(cli_actor())), svc
        _finish_own_workflows(svc)


def _follow_and_report(api: Any, svc: Any, run_id: str, *, as_json: bool) -> int:
    from irflow.cli.runs import follow, report

    if svc is not None:
        return report(follow(svc, run_id, quiet=as_json), as_json=as_json)
    from irflow.cli.remote_follow import follow_remote

    return report(follow_remote(api, run_id, quiet=as_json), as_json=as_json)


def _wait_until_taken(api: Any, run_id: str, step_ids: set[str]) -> None:
    """The decision is delivered durably; wait (a bounded time) until the resumed workflow acts on it."""
    from irflow.cli.remote import wait_for

    def taken() -> bool:
        waiting = {s.id for s in api.show_run(run_id).steps if s.state == "awaiting_approval"}
        return not (step_ids & waiting)

    if not wait_for(taken, timeout_s=120, interval_s=0.1):
        fail(
            f"decision recorded; no worker has taken it yet: check `irflow runs show {run_id}` later",
            code=EXIT_WAITING,
        )


@runs_app.command("approve")
def runs_approve(
    run_id: str,
    step: Annotated[
        str | None, typer.Option(help="Only this playbook step (default: every gate waiting).")
    ] = None,
    comment: Annotated[str, typer.Option(help="Recorded in the audit trail.")] = "",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Approve gated steps of a run, then follow it to its end."""
    _decide(run_id, step, comment, approved=True, as_json=as_json)


@runs_app.command("reject")
def runs_reject(
    run_id: str,
    step: Annotated[
        str | None, typer.Option(help="Only this playbook step (default: every gate waiting).")
    ] = None,
    comment: Annotated[str, typer.Option(help="Recorded in the audit trail.")] = "",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Reject gated steps of a run (they are skipped), then follow it to its end."""
    _decide(run_id, step, comment, approved=False, as_json=as_json)


@runs_app.command("resume")
def runs_resume() -> None:
    """Resume every run left unfinished by a stopped process, wait for them; exit 1 unless all succeeded."""
    from irflow.engine.runs import wait_for_unfinished_runs

    settings = load_settings()
    with engine(settings, ephemeral=False) as svc:
        finished = wait_for_unfinished_runs(svc)
        _finish_own_workflows(svc)
        for run_id, status in finished:
            console.print(f"run {run_id}: {status}", markup=False)
        if not finished:
            console.print("no unfinished runs")
    if any(status != "succeeded" for _, status in finished):
        raise typer.Exit(EXIT_FAILED)


@runs_app.command("retry")
def runs_retry(
    run_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run as JSON.")] = False,
) -> None:
    """Run a failed run's failed steps again (succeeded ones are kept), audited; follow it to its end."""
    from irflow.cli.remote import wait_for

    with _steering() as (api, svc):
        try:
            api.retry(run_id)
        except ServiceError as exc:
            fail(exc.message)
        if not as_json:
            console.print(f"retrying run {run_id}", markup=False)
        # until the retry has put the run back to pending (so following it does not stop at once)
        wait_for(lambda: api.show_run(run_id).status != "failed", timeout_s=60, interval_s=0.05)
        code = _follow_and_report(api, svc, run_id, as_json=as_json)
    raise typer.Exit(code)


@runs_app.callback()
def runs_default(ctx: typer.Context) -> None:
    """Without a subcommand: the runs not yet ended."""
    if ctx.invoked_subcommand is None:
        runs_list(all_runs=False, as_json=False)


@runs_app.command("list")
def runs_list(
    all_runs: Annotated[bool, typer.Option("--all", help="Every run, not only the unfinished.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Runs not yet ended (pending, running, awaiting approval), newest first, with their workflow."""
    from rich.table import Table

    from irflow.cli.backend import backend, plain
    from irflow.engine.services.runs import RunFilter

    with backend(cli_actor()) as api:
        items = plain(api.list_runs(RunFilter(all=all_runs)))["items"]
    if as_json:
        console.print_json(json.dumps({"items": items, "total": len(items)}))
        return
    if not items:
        console.print("no runs" if all_runs else "no unfinished runs")
        return
    table = Table(title=f"{len(items)} {'runs' if all_runs else 'unfinished runs'}")
    for column in ("run", "status", "playbook", "incident", "created (UTC)", "by", "workflow"):
        table.add_column(column, overflow="fold")
    for item in items:
        workflow = item["workflow"]
        table.add_row(
            item["id"],
            item["status"] + (" (dry run)" if item["dry_run"] else ""),
            item["playbook"],
            item["incident_id"],
            item["created_at"][:19],
            item["actor"],
            "none" if workflow is None else f"{workflow['status']} on {workflow['executor_id']}",
        )
    console.print(table)
    if not all_runs:
        console.print("cancel one with: irflow runs cancel RUN_ID", markup=False)


@runs_app.command("cancel")
def runs_cancel(
    run_id: str,
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit trail).")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Cancel a run that has not ended: no further step starts; open steps become cancelled (audited)."""
    from irflow.cli.backend import backend
    from irflow.engine.services.runs import RunCancel

    try:
        command = RunCancel(comment=reason)
    except ValidationError as exc:
        fail(problems(exc))
    with backend(cli_actor()) as api:
        try:
            outcome = api.cancel(run_id, command)
        except ServiceError as exc:
            fail(exc.message)
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "run_id": outcome.run_id,
                    "from": outcome.previous_status,
                    "status": outcome.status,
                    "steps_cancelled": outcome.steps_cancelled,
                }
            )
        )
        return
    console.print(
        f"run {run_id} cancelled (was {outcome.previous_status}; "
        f"{outcome.steps_cancelled} open step(s) cancelled)",
        markup=False,
    )


@runs_app.command("show")
def runs_show(
    run_id: str, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
) -> None:
    """One run with its steps, plans and results."""
    from irflow.cli.backend import backend, plain
    from irflow.cli.display import steps_table

    with backend(cli_actor()) as api:
        try:
            view = plain(api.show_run(run_id))
        except ServiceError as exc:
            fail(exc.message)
    if as_json:
        console.print_json(json.dumps(view, default=str))
    else:
        console.print(steps_table(view))


_reader = reader  # commands that only read or write records: the database, no engine


@incidents_app.command("list")
def incidents_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Incidents, newest first."""
    from rich.table import Table

    from irflow.cli.backend import backend, plain

    with backend(cli_actor()) as api:
        try:
            items = [plain(item) for item in api.list_incidents()]
        except ServiceError as exc:
            fail(exc.message)
    if as_json:
        console.print_json(json.dumps({"items": items, "total": len(items)}))
        return
    table = Table(title=f"{len(items)} incidents")
    for column in ("id", "status", "severity", "source", "detected (UTC)", "title"):
        table.add_column(column)
    for item in items:
        table.add_row(
            item["id"],
            item["status"],
            item["severity"],
            item["source"],
            item["detected_at"][:19],
            item["title"][:60],
        )
    console.print(table)


# The incident as the CLI prints it (the deadlines are the incident's own: their incident id is implied).
INCIDENT_PRINTED = {"deadlines": {"__all__": {"incident_id"}}}


def _incident(api: Any, incident_id: str) -> dict[str, Any]:
    from irflow.cli.backend import plain

    try:
        view = plain(api.show_incident(incident_id), exclude=INCIDENT_PRINTED)
    except ServiceError as exc:
        fail(exc.message)
    for deadline in view["deadlines"]:  # printed as stored: null when there is no later reading
        deadline["outer_basis"] = deadline["outer_basis"] or None
    return view


@incidents_app.command("show")
def incidents_show(
    incident_id: str, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
) -> None:
    """One incident: its facts, runs and deadlines."""
    from irflow.cli.backend import backend

    with backend(cli_actor()) as api:
        view = _incident(api, incident_id)
    if as_json:
        console.print_json(json.dumps(view, default=str))
        return
    _print_incident(view)


def _print_incident(view: dict) -> None:  # type: ignore[type-arg]
    from rich.markup import escape
    from rich.table import Table

    console.print(
        f"[bold]{escape(view['title'])}[/] ({view['id']}) — {view['status']}, severity {view['severity']}"
    )
    for name, value in view["facts"].items():
        console.print(f"  {name}: {value}", markup=False)
    for run in view["runs"]:
        console.print(
            f"  run {run['id']} {run['playbook']} {run['status']}{' (dry run)' if run['dry_run'] else ''}",
            markup=False,
        )
    table = Table(title="deadlines")
    for column in ("due", "kind", "where", "status", "basis"):
        table.add_column(column, overflow="fold")
    for deadline in view["deadlines"]:
        due = deadline["due"] + (
            f"\nouter bound {deadline['outer_bound']}" if deadline["outer_bound"] else ""
        )
        status = deadline["status"] + (f"\nsent {deadline['sent_on']}" if deadline["sent_on"] else "")
        table.add_row(
            due,
            deadline["kind"],
            escape(" ".join(p for p in (deadline["jurisdiction"], deadline["recipient"]) if p)),
            status,
            escape(deadline["basis"]),
        )
    console.print(
        table
        if view["deadlines"]
        else "  no deadlines yet: set the discovery date and affected count with `irflow incidents facts`"
    )


@incidents_app.command("facts")
def incidents_facts(
    incident_id: str,
    role: Annotated[str | None, typer.Option(help="ce (covered entity) or ba (business associate).")] = None,
    discovered: Annotated[
        str | None,
        typer.Option(help="Discovery: YYYY-MM-DD (HIPAA day 0) or YYYY-MM-DDTHH:MM[+HH:MM] (read in --tz)."),
    ] = None,
    discovery_reason: Annotated[
        str | None, typer.Option(help="Why discovery is later than the first detection (required then).")
    ] = None,
    tz: Annotated[
        str | None, typer.Option("--tz", help="This incident's time zone (default: IRFLOW_TIMEZONE).")
    ] = None,
    affected: Annotated[int | None, typer.Option(help="Affected individuals in total.")] = None,
    state: Annotated[list[str] | None, typer.Option(help="Affected residents of a state, XX=N.")] = None,
    breach_start: Annotated[str | None, typer.Option(help="First day of the breach, YYYY-MM-DD.")] = None,
    breach_end: Annotated[str | None, typer.Option(help="Last day of the breach, YYYY-MM-DD.")] = None,
    le_written_on: Annotated[
        str | None, typer.Option(help="Written law-enforcement delay: given on.")
    ] = None,
    le_written_until: Annotated[
        str | None, typer.Option(help="Written law-enforcement delay: ends on.")
    ] = None,
    le_oral_on: Annotated[str | None, typer.Option(help="Oral law-enforcement delay: given on.")] = None,
    ba_contract_days: Annotated[int | None, typer.Option(help="BA agreement notice window, days.")] = None,
    ba_agent_discovered: Annotated[
        str | None, typer.Option(help="Date the business associate acting as agent discovered it.")
    ] = None,
    hipaa: Annotated[
        bool | None,
        typer.Option("--hipaa/--no-hipaa", help="PHI held by a HIPAA covered entity or business associate."),
    ] = None,
    ca_facility: Annotated[
        bool | None,
        typer.Option("--ca-facility/--no-ca-facility", help="A California licensed health facility."),
    ] = None,
    out_of_date_addresses: Annotated[
        int | None, typer.Option(help="Individuals without usable contact information.")
    ] = None,
    urgent: Annotated[
        bool | None, typer.Option("--urgent/--not-urgent", help="Deemed urgent (164.404(d)(3)).")
    ] = None,
    deceased_next_of_kin: Annotated[
        int | None, typer.Option(help="Deceased individuals whose next of kin is notified.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Change an incident's facts; every deadline is recomputed and the old and new dates are audited."""
    from irflow.cli.backend import backend
    from irflow.engine.services.facts import FactsOptions, facts_update

    try:
        update = facts_update(
            FactsOptions(
                role=role,
                discovered=discovered,
                discovery_reason=discovery_reason,
                timezone=tz,
                affected=affected,
                states=state or [],
                breach_start=breach_start,
                breach_end=breach_end,
                le_written_on=le_written_on,
                le_written_until=le_written_until,
                le_oral_on=le_oral_on,
                ba_contract_days=ba_contract_days,
                ba_agent_discovered=ba_agent_discovered,
                hipaa=hipaa,
                ca_facility=ca_facility,
                out_of_date_addresses=out_of_date_addresses,
                urgent=urgent,
                deceased_next_of_kin=deceased_next_of_kin,
            )
        )
    except ServiceError as exc:
        fail(exc.message)
    with backend(cli_actor()) as api:
        try:
            result = api.change_facts(incident_id, update)
        except ServiceError as exc:
            fail(exc.message)
        view = _incident(api, incident_id)
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "changed": result.changed,
                    "deadline_changes": result.deadline_changes,
                    "warnings": result.warnings,
                    "incident": view,
                },
                default=str,
            )
        )
        return
    _print_changes(result.deadline_changes)
    for warning in result.warnings:
        errors.print(f"warning: {warning}", markup=False)
    _print_incident(view)


def _print_changes(changes: list[dict]) -> None:  # type: ignore[type-arg]
    for change in changes:
        where = " ".join(
            p for p in (change["kind"], change["jurisdiction"], change.get("recipient", "")) if p
        )
        status = f" ({change['old_status']} -> {change['new_status']})" if "new_status" in change else ""
        console.print(
            f"  {where}: {change['old_due'] or '—'} -> {change['new_due'] or 'withdrawn'}{status}",
            markup=False,
        )


@incidents_app.command("notice-sent")
def incidents_notice_sent(
    incident_id: str,
    kind: Annotated[str, typer.Argument(help="The obligation's kind: individuals, hhs, state_regulator...")],
    on: Annotated[str, typer.Option("--on", help="The day it was sent, YYYY-MM-DD.")],
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="first_class_mail, email, telephone, web_posting, media, hhs_portal, regulator_portal, fax, "
            "other.",
        ),
    ],
    count: Annotated[int, typer.Option("--count", help="How many recipients it went to.")],
    jurisdiction: Annotated[
        str, typer.Option("--jurisdiction", help="US (default) or a two-letter state code.")
    ] = "US",
    recipient: Annotated[
        str, typer.Option("--recipient", help="The regulator, when the state names several (a prefix).")
    ] = "",
    copy: Annotated[
        Path | None, typer.Option("--copy", help="A copy of the notice as sent: kept as evidence (SHA-256).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Record a notice as sent (audited): its obligation is met or late, dependent deadlines move, reminders
    stop."""
    from irflow.cli.backend import backend, plain
    from irflow.cli.deadlines import _date
    from irflow.engine.incidents import NoticeCopy
    from irflow.engine.services.deadlines import NoticeRecord

    sent_on = _date("--on", on)
    try:
        notice = NoticeRecord(
            kind=kind.strip().lower(),  # type: ignore[arg-type]
            jurisdiction=jurisdiction,
            recipient=recipient,
            sent_on=sent_on,  # type: ignore[arg-type]
            method=method.strip().lower(),  # type: ignore[arg-type]
            count=count,
        )
    except ValidationError as exc:
        fail(problems(exc))
    if copy is not None:  # only its SHA-256 and size leave this machine
        try:
            notice_copy = NoticeCopy.read(copy)
        except OSError as exc:
            fail(f"--copy {copy}: {exc.strerror or exc}")
        notice = notice.model_copy(update={"copy_sha256": notice_copy.sha256, "copy_size": notice_copy.size})
    with backend(cli_actor()) as api:
        try:
            recorded = api.record_notice(incident_id, notice)
        except ServiceError as exc:
            fail(exc.message)
        view = _incident(api, incident_id)
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "notice": plain(recorded.notice),
                    "deadline_changes": recorded.deadline_changes,
                    "warnings": recorded.warnings,
                    "incident": view,
                },
                default=str,
            )
        )
        return
    sha = recorded.notice.copy_sha256
    console.print(
        f"recorded {kind} {notice.jurisdiction} as sent on {notice.sent_on} by {notice.method} to "
        f"{notice.count}" + (f"; copy SHA-256 {sha}" if sha else ""),
        markup=False,
    )
    _print_changes(recorded.deadline_changes)
    _print_incident(view)


@incidents_app.command("assess")
def incidents_assess(
    incident_id: str,
    outcome: Annotated[str, typer.Option(help="notify, or low_probability (of compromise).")],
    nature: Annotated[str, typer.Option(help="Factor 1: nature and extent of the PHI involved.")],
    recipient: Annotated[
        str, typer.Option(help="Factor 2: the unauthorized person who used or received it.")
    ],
    acquired: Annotated[str, typer.Option(help="Factor 3: whether the PHI was actually acquired or viewed.")],
    mitigation: Annotated[str, typer.Option(help="Factor 4: the extent to which the risk was mitigated.")],
) -> None:
    """Record the 164.402(2) risk assessment; its outcome switches the notification obligations on or off."""
    from irflow.cli.backend import backend
    from irflow.engine.incidents import RiskAssessmentInput

    try:
        assessment = RiskAssessmentInput(
            nature_and_extent=nature,
            unauthorized_person=recipient,
            acquired_or_viewed=acquired,
            mitigation=mitigation,
            outcome=outcome,
        )
    except ValidationError as exc:
        fail(problems(exc))
    with backend(cli_actor()) as api:
        try:
            result = api.assess_risk(incident_id, assessment)
        except ServiceError as exc:
            fail(exc.message)
        view = _incident(api, incident_id)
    _print_changes(result.deadline_changes)
    for warning in result.warnings:
        errors.print(f"warning: {warning}", markup=False)
    _print_incident(view)


# A notification as `notices list` prints it.
NOTICE_LISTED = ("id", "status", "channel", "template", "recipient", "subject", "attempts", "created_at")


@notices_app.command("list")
def notices_list(
    incident_id: str, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
) -> None:
    """An incident's notifications and drafts (recipients shown only as fingerprints)."""
    from irflow.cli.backend import backend, plain

    with backend(cli_actor()) as api:
        try:
            notices = api.notices(incident_id)
        except ServiceError as exc:
            fail(exc.message)
    rows = [plain(n, include=set(NOTICE_LISTED)) for n in notices.notifications]
    if as_json:
        console.print_json(json.dumps({"items": rows, "total": len(rows)}))
        return
    for row in rows:
        console.print(
            f"{row['id']}  {row['status']:<8} {row['channel']:<7} {row['template']:<20} {row['subject']}",
            markup=False,
        )
    if not rows:
        console.print("no notifications for this incident")


@notices_app.command("show")
def notices_show(notification_id: str) -> None:
    """The subject and body of one notification or draft, for review."""
    from irflow.cli.backend import backend

    with backend(cli_actor()) as api:
        try:
            notification = api.notification(notification_id)
        except ServiceError as exc:
            fail(exc.message)
    console.print(f"Subject: {notification.subject}\n", markup=False)
    console.print(notification.body, markup=False)


@notices_app.command("deliver")
def notices_deliver() -> None:
    """One delivery pass of the outbox over the configured channels; exit 1 when one failed for good."""
    from irflow.engine.services.outbox import deliver_outbox

    with _reader() as svc:
        try:
            report = deliver_outbox(svc.db, svc.settings)
        except ServiceError as exc:
            fail(exc.message)
    console.print(
        f"delivered {report.sent}, retrying {report.retry_scheduled}, failed {report.failed}, "
        f"waiting for an unconfigured channel {report.unroutable}",
        markup=False,
    )
    if report.failed:
        raise typer.Exit(EXIT_FAILED)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending schema migration to IRFLOW_DATABASE_URL."""
    from irflow.store.db import Database, current_revision, head_revision, upgrade

    settings = load_settings()
    db = Database(settings.database_url)
    before = current_revision(db.engine)
    upgrade(db.engine)
    console.print(f"database {db.describe()}: {before or 'empty'} -> {head_revision()}", markup=False)
    db.dispose()


def _anchor_store(svc) -> object | None:  # type: ignore[no-untyped-def]
    from irflow.azure.clients import ConfigurationError
    from irflow.engine.anchor import AnchorConfig, AnchorStore

    config = AnchorConfig.from_settings(svc.settings)
    if config is None:
        return None
    try:
        return AnchorStore(svc.clients, config)
    except ConfigurationError as exc:
        fail(f"invalid configuration: {exc}")


@audit_app.command("verify")
def audit_verify(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Verify the hash chain, and compare it with every anchor when IRFLOW_ANCHOR_ACCOUNT_ID is set.
    Exit 1 naming the first bad event (or the first event that differs from its anchor)."""
    from irflow.engine.anchor import AnchorError, verify_with_anchors

    with _reader() as svc:
        store = _anchor_store(svc)
        try:
            report = verify_with_anchors(svc.db, store)  # type: ignore[arg-type]
        except AnchorError as exc:
            fail(f"could not read the audit anchors: {exc}", EXIT_FAILED)
    chain = report.chain
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "ok": report.ok,
                    "events": chain.events,
                    "head_seq": chain.head_seq,
                    "first_bad_seq": chain.first_bad_seq if not chain.ok else report.first_bad_seq,
                    "reason": chain.reason if not chain.ok else ("; ".join(report.problems) or None),
                    "anchors": None
                    if store is None
                    else {"checked": report.anchors, "last_anchored_seq": report.last_anchor_seq},
                }
            )
        )
    else:
        console.print(chain.describe(), markup=False)
        if store is None:
            console.print("anchors: not configured (IRFLOW_ANCHOR_ACCOUNT_ID)", markup=False)
        else:
            for line in report.describe()[1:]:
                console.print(line, markup=False)
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


@audit_app.command("anchor")
def audit_anchor(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Anchor the chain head now: a blob under a locked immutability policy in the evidence account
    (IRFLOW_ANCHOR_ACCOUNT_ID, IRFLOW_ANCHOR_CONTAINER), recorded as an audit.anchored event."""
    from irflow.engine.anchor import AnchorError, anchor_chain

    with _reader() as svc:
        store = _anchor_store(svc)
        if store is None:
            fail(
                "no anchor account: set IRFLOW_ANCHOR_ACCOUNT_ID to the ARM id of the evidence storage "
                "account"
            )
        try:
            result = anchor_chain(svc.db, store, actor=cli_actor())  # type: ignore[arg-type]
        except AnchorError as exc:
            fail(str(exc), EXIT_FAILED)
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "seq": result.anchor.seq,
                    "hash": result.anchor.hash,
                    "blob": result.blob,
                    "created": result.created,
                }
            )
        )
    else:
        verb = "anchored" if result.created else "already anchored"
        console.print(
            f"{verb}: event #{result.anchor.seq} {result.anchor.hash[:16]}… in {result.blob}", markup=False
        )


@audit_app.command("export")
def audit_export(
    incident_id: Annotated[str, typer.Argument(help="The incident id.")],
    out: Annotated[Path, typer.Option("--out", help="The zip file to write.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Write the incident's evidence package (report, timeline, audit events with their chain proof,
    forensic manifest, playbooks, HHS report data); re-check it with `irflow audit verify-package`."""
    from irflow.engine.anchor import AnchorError
    from irflow.engine.export import write_evidence_package

    if out.suffix.lower() != ".zip":
        fail(f"--out must name a .zip file, got {out}")
    if not out.parent.is_dir():
        fail(f"--out: no such directory: {out.parent}")
    with _reader() as svc:
        try:
            summary = write_evidence_package(svc.db, incident_id, out, anchors=_anchor_store(svc))  # type: ignore[arg-type]
        except LookupError as exc:
            fail(str(exc))
        except AnchorError as exc:
            fail(f"could not read the audit anchors: {exc}", EXIT_FAILED)
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "path": str(summary.path),
                    "sha256": summary.sha256,
                    "size": summary.size,
                    "events": summary.events,
                    "first_seq": summary.first_seq,
                    "last_seq": summary.last_seq,
                    "anchored": summary.anchored,
                }
            )
        )
    else:
        console.print(
            f"evidence package: {summary.path} ({summary.size} bytes, sha256 {summary.sha256}); "
            f"{summary.events} audit events, chain #{summary.first_seq}..#{summary.last_seq}, "
            f"{'anchored' if summary.anchored else 'not anchored yet'}",
            markup=False,
        )
        console.print(f"re-verify offline: irflow audit verify-package {summary.path}", markup=False)


@audit_app.command("verify-package")
def audit_verify_package(
    package: Annotated[Path, typer.Argument(help="An evidence package (.zip).")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Re-check every hash of an evidence package, offline (no database). Exit 1 naming each problem."""
    from irflow.audit.package import PackageError, verify_package

    if not package.is_file():
        fail(f"no such file: {package}")
    try:
        report = verify_package(package)
    except PackageError as exc:
        fail(f"{package}: {exc}")
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "ok": report.ok,
                    "checks": report.checks,
                    "incident_id": report.incident_id,
                    "first_seq": report.first_seq,
                    "last_seq": report.last_seq,
                    "anchored": report.anchored,
                    "problems": report.problems,
                }
            )
        )
    else:
        for line in report.describe():
            console.print(line, markup=False)
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


@playbooks_app.command("list")
def playbooks_list() -> None:
    """The playbooks found in the playbooks directory."""
    from irflow.engine.playbook import PlaybookError, list_playbooks, load_playbook

    settings = load_settings()
    for path in list_playbooks(settings.playbooks_dir):
        try:
            spec = load_playbook(path).spec
            console.print(f"{spec.name:<32} v{spec.version:<4} {spec.description}", markup=False)
        except PlaybookError as exc:
            console.print(f"{path.stem:<32} INVALID: {exc.problems[0]}", markup=False)


@playbooks_app.command("validate")
def playbooks_validate(paths: Annotated[list[Path] | None, typer.Argument()] = None) -> None:
    """Validate playbooks against the schema and the action registry (exit 1 with file:line messages)."""
    from irflow.cli.common import errors
    from irflow.engine.playbook import PlaybookError, list_playbooks, load_playbook

    settings = load_settings()
    targets = paths or list_playbooks(settings.playbooks_dir)
    bad = 0
    for path in targets:
        try:
            spec = load_playbook(path).spec
            console.print(f"ok {path} ({spec.name} v{spec.version}, {len(spec.steps)} steps)", markup=False)
        except PlaybookError as exc:
            bad += 1
            for problem in exc.problems:
                errors.print(problem, markup=False, soft_wrap=True)
    if bad:
        raise typer.Exit(EXIT_FAILED)


@actions_app.command("list")
def actions_list() -> None:
    """The registered actions with their parameters and Azure permissions."""
    from irflow.actions.base import all_actions

    for name, action in all_actions().items():
        console.print(f"[bold]{name}[/] — {action.summary()}")
        for field_name, field in action.Params.model_fields.items():
            required = "required" if field.is_required() else f"default {field.default!r}"
            console.print(f"    {field_name}: {field.description or ''} ({required})", markup=False)
        console.print(f"    permissions: {', '.join(action.permissions)}", markup=False)


@actions_app.command("permissions")
def actions_permissions(
    fmt: Annotated[str, typer.Option("--format", help="table, json, azure-role or entra-role.")] = "table",
    scope: Annotated[
        list[str], typer.Option(help="Assignable scope of the azure-role definition (repeatable).")
    ] = [],  # noqa: B006
) -> None:
    """The Azure RBAC permissions each action needs; `--format azure-role` prints a custom role definition."""
    from irflow.actions.base import azure_role_definition, entra_role_definition, required_permissions
    from irflow.domain.resource_id import validate_scope

    if fmt == "azure-role":
        if not scope:
            fail(
                "--format azure-role needs --scope /subscriptions/<id> (or a resource group) to assign it at"
            )
        try:
            scopes = [validate_scope(s) for s in scope]
        except ValueError as exc:
            fail(str(exc))
        console.print_json(json.dumps(azure_role_definition(scopes)))
        return
    if fmt == "entra-role":
        console.print_json(json.dumps(entra_role_definition()))
        return
    needed = required_permissions()
    if fmt == "json":
        console.print_json(json.dumps(needed))
        return
    if fmt != "table":
        fail(f"--format must be table, json, azure-role or entra-role, not {fmt!r}")
    from rich.table import Table

    table = Table(title=f"{len(needed)} Azure permissions")
    table.add_column("permission", no_wrap=True, min_width=max(map(len, needed), default=10))
    table.add_column("needed by", overflow="fold")
    for permission, names in needed.items():
        table.add_row(permission, ", ".join(names))
    console.print(table)


@app.command("doctor")
def doctor_command(
    scope: Annotated[
        str | None,
        typer.Option(help="Check irflow's permissions here: /subscriptions/<id>[/resourceGroups/<rg>]."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable report.")] = False,
) -> None:
    """Check the live Azure configuration, read-only: credential, endpoints, irflow's object id and origin,
    and the permissions present at --scope. Exit 1 when something is missing or failing."""
    from irflow import doctor
    from irflow.cli.doctor import print_doctor

    settings = load_settings()
    try:
        report = doctor.run(settings, scope)
    except ValueError as exc:
        fail(str(exc))
    if as_json:
        console.print_json(json.dumps(report.to_dict()))
    else:
        print_doctor(report)
    raise typer.Exit(0 if report.ok else EXIT_FAILED)


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[
        bool, typer.Option("--workers/--no-workers", help="Run the engine worker here.")
    ] = True,
) -> None:
    """HTTP service (health, readiness, metrics) and the engine worker that runs and resumes playbooks."""
    import uvicorn

    from irflow.api.app import create_app
    from irflow.api.entra import EntraValidator

    settings = load_settings()
    try:
        entra = EntraValidator.from_settings(settings)
    except ValueError as exc:
        fail(f"invalid Entra ID configuration: {exc}")
    with engine(settings, kind="serve") if workers else _reader() as svc:
        uvicorn.run(create_app(svc, entra=entra, worker=workers), host=host, port=port, log_config=None)


@app.command("worker")
def worker_command() -> None:
    """A worker without HTTP: executes queued runs and their fan-out, takes over silent replicas (on
    PostgreSQL), and runs the scheduled work (outbox delivery, deadline reminders). Stops on SIGTERM/SIGINT.
    """
    import signal

    settings = load_settings()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with engine(settings, kind="worker") as svc:
        errors.print(
            f"worker {svc.settings.executor_id} executing runs on {svc.db.describe()} "
            f"(lease {svc.settings.replica_lease:g} s); stop with Ctrl-C or SIGTERM",
            markup=False,
        )
        stop.wait()
        errors.print(
            "worker stopping: runs in flight resume on a live replica or at the next start", markup=False
        )


@app.command("demo")
def demo_command(
    scenario: Annotated[str, typer.Option(help="Scenario file or packaged scenario name.")] = "demo",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary.")] = False,
    workdir: Annotated[Path, typer.Option(help="Where the demo's database is written.")] = Path(
        "irflow-demo"
    ),
) -> None:
    """A complete breach drill on the embedded simulated tenant and a new SQLite database."""
    from irflow.cli.demo import run_demo

    raise typer.Exit(run_demo(scenario=scenario, as_json=as_json, workdir=workdir))


def main() -> None:
    try:
        code = run_cli(app)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    if _parked_workflow_threads():
        # A workflow waiting on a durable event (an approval) still holds a DBOS worker thread. Its state is
        # in the database and it resumes at the next launch, so the process ends without joining the thread.
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    sys.exit(code)


def _parked_workflow_threads() -> bool:
    main_thread = threading.main_thread()
    return any(t.is_alive() and not t.daemon and t is not main_thread for t in threading.enumerate())


if __name__ == "__main__":
    main()
