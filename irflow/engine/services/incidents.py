"""Incidents: open one with a playbook run, list them, show one, change its facts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from sqlalchemy import func, select

from irflow.engine.incidents import (
    FactsUpdate,
    RiskAssessmentInput,
    incident_view,
    record_risk_assessment,
    update_facts,
)
from irflow.engine.playbook import PlaybookError, coerce_inputs, list_playbooks, load_playbook
from irflow.engine.runtime import Services
from irflow.engine.services.errors import Invalid, NotFound, Unavailable, messages
from irflow.engine.services.principals import Principal
from irflow.engine.services.views import DeadlineView, IncidentDetail, IncidentSummary, Page
from irflow.store.db import Database
from irflow.store.models import Incident

Severity = Literal["informational", "low", "medium", "high", "critical"]
IncidentStatus = Literal["open", "containing", "contained", "eradicated", "closed"]
PLAYBOOK_NAME = r"^[a-z0-9][a-z0-9._-]{0,119}$"
MAX_PARAMS = 50
MAX_LIST_ITEMS = 1000


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("give a time zone (e.g. 2026-03-01T09:00:00Z)")
    return value


ParamValue = (
    Annotated[str, StringConstraints(max_length=2000)]
    | int
    | bool
    | Annotated[list[Annotated[str, StringConstraints(max_length=2000)]], Field(max_length=MAX_LIST_ITEMS)]
)


class IncidentCreate(BaseModel):
    """Open an incident and start one playbook run for it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str = Field(min_length=1, max_length=300)
    severity: Severity
    playbook: str = Field(pattern=PLAYBOOK_NAME, description="A playbook name from GET /api/v1/playbooks.")
    params: dict[Annotated[str, StringConstraints(max_length=100)], ParamValue] = Field(
        default_factory=dict,
        max_length=MAX_PARAMS,
        description="The playbook's inputs; a list input takes a JSON list or a comma-separated string.",
    )
    discovered_at: Annotated[datetime, AfterValidator(_aware)] | None = Field(
        default=None, description="When the breach was discovered (HIPAA day 0), if already known."
    )
    dry_run: bool = Field(default=False, description="Plan every step; change nothing.")


class IncidentCreated(BaseModel):
    id: str
    run_id: str


class IncidentFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: IncidentStatus | None = None
    severity: Severity | None = None
    source: Literal["api", "sentinel", "cli"] | None = None
    detected_after: datetime | None = None
    detected_before: datetime | None = None
    q: str | None = Field(
        default=None, min_length=1, max_length=200, description="Title contains this text (case-insensitive)."
    )
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=1_000_000)


def require_engine(svc: Services) -> None:
    """Submitting a run needs the runs queue: a worker must have started on this database once (any process
    then submits through the DBOS client; a worker, here or elsewhere, executes)."""
    from irflow.engine import runtime

    if not (runtime.launched() or runtime.engine_ready(svc.settings)):
        raise Unavailable(
            "no worker has started on this database yet: start `irflow worker` or `irflow serve` with workers"
        )


def playbook_named(name: str, playbooks_dir):  # type: ignore[no-untyped-def]
    """Only playbooks of the configured directory, by name: never a path chosen by the caller."""
    for path in list_playbooks(playbooks_dir):
        if path.stem == name:
            return load_playbook(path)
    for path in list_playbooks(playbooks_dir):
        try:
            loaded = load_playbook(path)
        except PlaybookError:
            continue
        if loaded.spec.name == name:
            return loaded
    raise Invalid(f"no playbook named {name!r}: see GET /api/v1/playbooks")


def create_incident(svc: Services, command: IncidentCreate, *, by: Principal) -> IncidentCreated:
    """Validate the playbook and its inputs first (nothing is written for bad input), then open the incident
    with its run and submit the run to the engine without waiting for it."""
    from irflow.engine.runs import submit_run

    try:
        loaded = playbook_named(command.playbook, svc.settings.playbooks_dir)
        coerce_inputs(loaded.spec, command.params)
    except PlaybookError as exc:
        raise Invalid(f"playbook {command.playbook!r} does not load: {exc.problems[0]}") from None
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    require_engine(svc)
    incident_id = svc.state.open_incident(
        title=command.title, severity=command.severity, source="api", actor=by.actor
    )
    if command.discovered_at is not None:
        update_facts(svc.db, incident_id, FactsUpdate(discovered_at=command.discovered_at), actor=by.actor)
    submitted = submit_run(
        svc,
        str(loaded.source),
        command.params,
        actor=by.actor,
        dry_run=command.dry_run,
        incident_id=incident_id,
        source="api",
    )
    return IncidentCreated(id=submitted.incident_id, run_id=submitted.run_id)


def list_incidents(db: Database, query: IncidentFilter) -> Page[IncidentSummary]:
    conditions = []
    if query.status:
        conditions.append(Incident.status == query.status)
    if query.severity:
        conditions.append(Incident.severity == query.severity)
    if query.source:
        conditions.append(Incident.source == query.source)
    if query.detected_after:
        conditions.append(Incident.detected_at >= query.detected_after)
    if query.detected_before:
        conditions.append(Incident.detected_at < query.detected_before)
    ordered = select(Incident).where(*conditions).order_by(Incident.created_at.desc(), Incident.id)
    with db.read() as session:
        if query.q:
            # Titles are stored sealed (they may hold PHI): no index can search them, so the search opens the
            # titles the other filters leave, in this process, and pages what matches.
            needle = query.q.casefold()
            matching = [i for i in session.execute(ordered).scalars() if needle in (i.title or "").casefold()]
            total = len(matching)
            page = matching[query.offset : query.offset + query.limit]
        else:
            counted = select(func.count()).select_from(Incident).where(*conditions)
            total = session.execute(counted).scalar_one()
            page = list(session.execute(ordered.limit(query.limit).offset(query.offset)).scalars())
        items = [
            IncidentSummary(
                id=i.id,
                title=i.title,
                severity=i.severity,
                status=i.status,
                source=i.source,
                detected_at=i.detected_at,
                runs=[r.id for r in i.runs],
            )
            for i in page
        ]
    return Page[IncidentSummary](items=items, total=total, limit=query.limit, offset=query.offset)


def show_incident(db: Database, incident_id: str) -> IncidentDetail:
    try:
        view = incident_view(db, incident_id)
    except LookupError:
        raise NotFound(f"no incident {incident_id}") from None
    return IncidentDetail.model_validate(view)


class FactsResult(BaseModel):
    changed: dict[str, dict[str, object]]
    deadline_changes: list[dict[str, object]]
    warnings: list[str]
    deadlines: list[DeadlineView]


def change_facts(db: Database, incident_id: str, command: FactsUpdate, *, by: Principal) -> FactsResult:
    if not command.model_fields_set:
        raise Invalid("give at least one fact to change")
    try:
        change = update_facts(db, incident_id, command, actor=by.actor)
    except LookupError:
        raise NotFound(f"no incident {incident_id}") from None
    except ValidationError as exc:  # facts that do not make a valid whole: nothing was written
        raise Invalid(messages(exc)) from None
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    return FactsResult(
        changed=change.changed,
        deadline_changes=change.deadline_changes,
        warnings=change.warnings,
        deadlines=[DeadlineView.model_validate(d) for d in change.deadlines],
    )


def assess_risk(
    db: Database, incident_id: str, command: RiskAssessmentInput, *, by: Principal
) -> FactsResult:
    """Record the 164.402(2) four-factor assessment; its outcome (an audited decision) switches duties."""
    try:
        change = record_risk_assessment(db, incident_id, command, author=by.actor)
    except LookupError:
        raise NotFound(f"no incident {incident_id}") from None
    except ValidationError as exc:
        raise Invalid(messages(exc)) from None
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    return FactsResult(
        changed={"risk_outcome": {"new": command.outcome}},
        deadline_changes=change.deadline_changes,
        warnings=change.warnings,
        deadlines=[DeadlineView.model_validate(d) for d in change.deadlines],
    )
