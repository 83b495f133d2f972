"""Typed views of the engine's records, shared by the services and the API's response schemas."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")
RunStatus = Literal["pending", "running", "awaiting_approval", "succeeded", "failed", "cancelled"]


class StepView(BaseModel):
    id: str
    step: str = Field(description="The playbook step id.")
    item: int = Field(description="Index of the for_each target, -1 without for_each.")
    action: str
    target: str | None
    state: str
    attempts: int
    plan: dict[str, Any] | None
    result: dict[str, Any] | None
    error: str | None


class RunView(BaseModel):
    id: str
    incident_id: str
    playbook: str
    version: int
    playbook_sha256: str
    status: RunStatus
    dry_run: bool
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    steps: list[StepView]


class RunSummary(BaseModel):
    id: str
    playbook: str
    status: RunStatus
    dry_run: bool


class DeadlineView(BaseModel):
    id: str | None = Field(default=None, description="The obligation id (notices are recorded against it).")
    incident_id: str | None = None
    kind: str
    jurisdiction: str
    due: date
    basis: str
    notes: str
    status: str


class Facts(BaseModel):
    role: str
    discovered_at: datetime | None
    affected_total: int | None
    affected_by_state: dict[str, int]
    breach_start: date | None
    breach_end: date | None
    law_enforcement_delay: dict[str, Any] | None
    ba_contract_days: int | None


class IncidentSummary(BaseModel):
    id: str
    title: str
    severity: str
    status: str
    source: str
    detected_at: datetime
    runs: list[str]


class IncidentDetail(BaseModel):
    id: str
    title: str
    severity: str
    source: str
    status: str
    detected_at: datetime
    facts: Facts
    risk_outcome: str | None
    runs: list[RunSummary]
    deadlines: list[DeadlineView]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int = Field(description="Items matching the filters, over all pages.")
    limit: int
    offset: int
