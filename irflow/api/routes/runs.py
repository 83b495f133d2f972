"""Runs and the decisions taken on them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query

from irflow.api.deps import Approver, Context, Responder, Viewer
from irflow.api.errors import AUTH, responses
from irflow.engine.services import runs
from irflow.engine.services.views import RunView

router = APIRouter(tags=["runs"])
RunId = Annotated[str, Path(min_length=1, max_length=36)]
Decision = Annotated[runs.RunDecision, Body(default_factory=runs.RunDecision)]
Cancel = Annotated[runs.RunCancel, Body(default_factory=runs.RunCancel)]
ACTION = responses(*AUTH, 400, 404, 409, 413, 415, 422)


@router.get(
    "/runs", summary="Runs not yet ended (or every run), newest first", responses=responses(*AUTH, 422)
)
def list_runs(caller: Viewer, ctx: Context, query: Annotated[runs.RunFilter, Query()]) -> runs.RunList:
    return runs.list_runs(ctx.services, query)


@router.post(
    "/runs",
    status_code=201,
    summary="Start a playbook run on a new incident or an existing one (not waiting for it)",
    description="403 also when `auto_approve` is asked without the approver role.",
    responses=responses(*AUTH, 400, 404, 413, 415, 422),
)
def start_run(body: runs.RunStart, caller: Responder, ctx: Context) -> runs.RunStarted:
    return runs.start_run(ctx.services, body, by=caller)


@router.get(
    "/runs/{run_id}",
    summary="One run with its steps, plans and results",
    responses=responses(*AUTH, 404, 422),
)
def show_run(run_id: RunId, caller: Viewer, ctx: Context) -> RunView:
    return runs.show_run(ctx.services, run_id)


@router.post("/runs/{run_id}/approve", summary="Approve gated steps", responses=ACTION)
def approve(run_id: RunId, caller: Approver, ctx: Context, body: Decision) -> runs.Decided:
    return runs.decide(ctx.services, run_id, body, approved=True, by=caller)


@router.post("/runs/{run_id}/reject", summary="Reject gated steps (they are skipped)", responses=ACTION)
def reject(run_id: RunId, caller: Approver, ctx: Context, body: Decision) -> runs.Decided:
    return runs.decide(ctx.services, run_id, body, approved=False, by=caller)


@router.post(
    "/runs/{run_id}/cancel",
    summary="Stop a run that has not ended: no further step starts, open steps become cancelled",
    responses=ACTION,
)
def cancel(run_id: RunId, caller: Responder, ctx: Context, body: Cancel) -> runs.Cancelled:
    return runs.cancel(ctx.services, run_id, body, by=caller)


@router.post(
    "/runs/{run_id}/retry",
    status_code=202,
    summary="Re-run a failed run's failed steps (succeeded ones are reused); follow it with GET /runs/{id}",
    responses=responses(*AUTH, 404, 409, 422),
)
def retry(run_id: RunId, caller: Responder, ctx: Context) -> runs.RetryStarted:
    return runs.retry(ctx.services, run_id, by=caller)
