"""Deadlines across incidents, the audit trail, and the catalog of playbooks and actions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from irflow.api.deps import Compliance, Context, Viewer
from irflow.api.errors import AUTH, responses
from irflow.engine.services import audit, catalog, deadlines
from irflow.engine.services.views import DeadlineView, Page

router = APIRouter()


@router.get(
    "/deadlines", tags=["deadlines"], summary="Obligations across incidents", responses=responses(*AUTH, 422)
)
def list_deadlines(
    caller: Compliance, ctx: Context, query: Annotated[deadlines.DeadlineFilter, Query()]
) -> Page[DeadlineView]:
    return deadlines.list_deadlines(ctx.services.db, query)


@router.get("/audit", tags=["audit"], summary="Audit events in chain order", responses=responses(*AUTH, 422))
def list_audit(caller: Viewer, ctx: Context, query: Annotated[audit.AuditFilter, Query()]) -> audit.AuditPage:
    return audit.list_events(ctx.services.db, query)


@router.get("/audit/verify", tags=["audit"], summary="Verify the hash chain", responses=responses(*AUTH))
def verify_audit(caller: Viewer, ctx: Context) -> audit.ChainVerification:
    return audit.verify_chain(ctx.services.db)


@router.get("/playbooks", tags=["catalog"], summary="Playbooks with their inputs", responses=responses(*AUTH))
def list_playbooks(caller: Viewer, ctx: Context) -> list[catalog.PlaybookView]:
    return catalog.playbooks(ctx.services.settings.playbooks_dir)


@router.get(
    "/actions", tags=["catalog"], summary="Actions with their parameter schemas", responses=responses(*AUTH)
)
def list_actions(caller: Viewer) -> list[catalog.ActionView]:
    return catalog.actions()
