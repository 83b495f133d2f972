"""Typed views of the engine's records, shared by the services and the API's response schemas."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field, field_validator

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
    recipient: str = Field(default="", description="The regulator, when a jurisdiction has several.")
    due: date
    basis: str
    notes: str
    status: str
    sent_on: date | None = None
    outer_bound: date | None = Field(
        default=None, description="The later reading's date (e.g. a law-enforcement delay added back)."
    )
    outer_basis: str = ""
    hipaa_treatment: str | None = None

    @field_validator("outer_basis", mode="before")
    @classmethod
    def _no_outer_basis(cls, value: object) -> object:
        return "" if value is None else value  # stored as NULL when there is no later reading


class Facts(BaseModel):
    role: str
    discovered_at: datetime | None
    discovery_reason: str | None = None
    timezone: str | None = None
    affected_total: int | None
    affected_by_state: dict[str, int]
    breach_start: date | None
    breach_end: date | None
    law_enforcement_delay: dict[str, Any] | None
    ba_contract_days: int | None
    hipaa: bool | None = None
    ca_facility: bool | None = None
    ba_agent_discovered_on: date | None = None
    out_of_date_addresses: int | None = None
    urgent: bool | None = None
    deceased_with_next_of_kin: int | None = None
    discovered_on: date | None = Field(
        default=None, description="The discovery date in the incident's time zone (day 0 of every clock)."
    )


class NoticeSentView(BaseModel):
    id: str
    kind: str
    jurisdiction: str
    recipient: str
    sent_on: date
    method: str
    count: int
    evidence_id: str | None
    copy_sha256: str | None
    author: str
    recorded_at: datetime


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
    notices_sent: list[NoticeSentView] = Field(default_factory=list)


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int = Field(description="Items matching the filters, over all pages.")
    limit: int
    offset: int
