"""Incidents, their facts and their notices."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from irflow.api.deps import Compliance, Context, Responder, Viewer
from irflow.api.errors import AUTH, responses
from irflow.engine.incidents import FactsUpdate, ObligationSent, RiskAssessmentInput
from irflow.engine.services import deadlines, evidence, incidents
from irflow.engine.services.views import IncidentDetail, IncidentSummary, Page

router = APIRouter(tags=["incidents"])
IncidentId = Annotated[str, Path(min_length=1, max_length=36)]
BODY = (400, 413, 415, 422)
ZIP = "application/zip"


@router.post(
    "/incidents",
    status_code=201,
    summary="Open an incident and start a playbook run for it (not waiting for the run)",
    responses=responses(*AUTH, *BODY),
)
def create_incident(
    body: incidents.IncidentCreate, caller: Responder, ctx: Context
) -> incidents.IncidentCreated:
    return incidents.create_incident(ctx.services, body, by=caller)


@router.get("/incidents", summary="Incidents, newest first", responses=responses(*AUTH, 422))
def list_incidents(
    caller: Viewer, ctx: Context, query: Annotated[incidents.IncidentFilter, Query()]
) -> Page[IncidentSummary]:
    return incidents.list_incidents(ctx.services.db, query)


@router.get(
    "/incidents/{incident_id}",
    summary="One incident with its facts, runs and deadlines",
    responses=responses(*AUTH, 404, 422),
)
def show_incident(incident_id: IncidentId, caller: Viewer, ctx: Context) -> IncidentDetail:
    return incidents.show_incident(ctx.services.db, incident_id)


@router.patch(
    "/incidents/{incident_id}/facts",
    summary="Change facts (discovery, counts by state, role, law-enforcement delay); deadlines recomputed",
    responses=responses(*AUTH, *BODY, 404),
)
def change_facts(
    incident_id: IncidentId, body: FactsUpdate, caller: Compliance, ctx: Context
) -> incidents.FactsResult:
    return incidents.change_facts(ctx.services.db, incident_id, body, by=caller)


@router.post(
    "/incidents/{incident_id}/risk-assessment",
    summary="Record the 45 CFR 164.402(2) four-factor risk assessment; its outcome switches the notification "
    "obligations on (notify) or off (low_probability) and deadlines are recomputed",
    description="The latest assessment decides; each one is kept with its author and audited.",
    responses=responses(*AUTH, *BODY, 404),
)
def assess_risk(
    incident_id: IncidentId, body: RiskAssessmentInput, caller: Compliance, ctx: Context
) -> incidents.FactsResult:
    return incidents.assess_risk(ctx.services.db, incident_id, body, by=caller)


@router.get(
    "/incidents/{incident_id}/notices",
    summary="The incident's notification obligations and its notifications",
    responses=responses(*AUTH, 404, 422),
)
def list_notices(incident_id: IncidentId, caller: Compliance, ctx: Context) -> deadlines.IncidentNotices:
    return deadlines.incident_notices(ctx.services.db, incident_id)


@router.get(
    "/incidents/{incident_id}/notices/{notification_id}",
    summary="One notification or drafted notice, with its body",
    responses=responses(*AUTH, 404, 422),
)
def show_notice(
    incident_id: IncidentId,
    notification_id: Annotated[str, Path(min_length=1, max_length=36)],
    caller: Compliance,
    ctx: Context,
) -> deadlines.NotificationDetail:
    return deadlines.show_notification(ctx.services.db, notification_id, incident_id)


@router.get(
    "/notices/{notification_id}",
    summary="One notification or drafted notice, by its id alone",
    responses=responses(*AUTH, 404, 422),
)
def show_notice_by_id(
    notification_id: Annotated[str, Path(min_length=1, max_length=36)], caller: Compliance, ctx: Context
) -> deadlines.NotificationDetail:
    return deadlines.show_notification(ctx.services.db, notification_id)


@router.post(
    "/incidents/{incident_id}/notices/sent",
    summary="Record a notice as sent, naming its obligation by kind, jurisdiction and recipient",
    description=(
        "What `irflow incidents notice-sent` records; 404 when the incident has no such obligation, "
        "409 as for the route by obligation id."
    ),
    responses=responses(*AUTH, *BODY, 404, 409),
)
def notice_record(
    incident_id: IncidentId, body: deadlines.NoticeRecord, caller: Compliance, ctx: Context
) -> deadlines.NoticeRecordedView:
    return deadlines.record_notice(ctx.services.db, incident_id, body, by=caller)


@router.post(
    "/incidents/{incident_id}/notices/{obligation_id}/sent",
    summary="Record the notice of one obligation as sent: it becomes met or late, dependent deadlines move",
    description=(
        "409 when the incident's state forbids it: the obligation was already recorded as sent, the date is "
        "in the future or before discovery, or the count exceeds the affected individuals."
    ),
    responses=responses(*AUTH, *BODY, 404, 409),
)
def notice_sent(
    incident_id: IncidentId,
    obligation_id: Annotated[str, Path(min_length=1, max_length=36)],
    body: ObligationSent,
    caller: Compliance,
    ctx: Context,
) -> deadlines.NoticeRecordedView:
    return deadlines.record_notice_sent(ctx.services.db, incident_id, obligation_id, body, by=caller)


@router.get(
    "/incidents/{incident_id}/evidence",
    summary="The incident's evidence package (zip): records, audit segment with its chain proof, manifest",
    response_class=Response,
    responses={
        200: {
            "content": {ZIP: {"schema": {"type": "string", "format": "binary"}}},
            "description": "The package; `irflow audit verify-package FILE` checks it offline.",
        },
        **responses(*AUTH, 404, 422),
    },
)
def evidence_package(incident_id: IncidentId, caller: Compliance, ctx: Context) -> Response:
    package = evidence.evidence_package(ctx.services, incident_id)
    return Response(
        content=package.data,
        media_type=ZIP,
        headers={"Content-Disposition": f'attachment; filename="{package.file_name}"'},
    )
