"""SQLAlchemy models: incidents, runs, steps and the audit chain.

Schema changes go through Alembic (``irflow/store/migrations``); ``tests/store`` checks the two agree.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from irflow.store.sealed import SealedJSON, SealedText
from irflow.store.types import JSONDocument, UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Incident(Base):
    __tablename__ = "incidents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # Free text typed by people or taken from an alert (it may name a patient): sealed at rest.
    title: Mapped[str] = mapped_column(SealedText)
    severity: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    external_ref: Mapped[str | None] = mapped_column(String(600), unique=True)
    status: Mapped[str] = mapped_column(String(24))
    role: Mapped[str] = mapped_column(String(24), default="covered_entity")
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime())
    discovered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    affected_total: Mapped[int | None] = mapped_column(Integer)
    affected_by_state: Mapped[dict[str, int]] = mapped_column(JSONDocument, default=dict)
    breach_start: Mapped[date | None] = mapped_column(Date)
    breach_end: Mapped[date | None] = mapped_column(Date)
    law_enforcement_delay: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    ba_contract_days: Mapped[int | None] = mapped_column(Integer)
    # Compliance clock v2 (migration 0006): the time zone that decides the discovery date (None: the
    # organisation's setting), why discovery is later than the first detection, and the facts below.
    timezone: Mapped[str | None] = mapped_column(String(64))
    discovery_reason: Mapped[str | None] = mapped_column(SealedText)
    hipaa: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    ca_facility: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    ba_agent_discovered_on: Mapped[date | None] = mapped_column(Date)
    out_of_date_addresses: Mapped[int | None] = mapped_column(Integer)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    deceased_with_next_of_kin: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The latest risk-assessment outcome: None (not assessed: a breach is presumed), notify, low_probability.
    risk_outcome: Mapped[str | None] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    runs: Mapped[list[Run]] = relationship(back_populates="incident", order_by="Run.created_at")
    deadlines: Mapped[list[Deadline]] = relationship(
        back_populates="incident", order_by="[Deadline.due, Deadline.kind, Deadline.jurisdiction]"
    )


class Deadline(Base):
    """One notification obligation of an incident, recomputed whenever the incident's facts change."""

    __tablename__ = "deadlines"
    __table_args__ = (
        UniqueConstraint(
            "incident_id",
            "kind",
            "jurisdiction",
            "recipient",
            name="uq_deadlines_incident_kind_jurisdiction_recipient",
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    jurisdiction: Mapped[str] = mapped_column(String(2))
    due: Mapped[date] = mapped_column(Date, index=True)
    basis: Mapped[str] = mapped_column(Text)
    notes: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Which regulator, when a jurisdiction has more than one ("" otherwise).
    recipient: Mapped[str] = mapped_column(String(120), default="", server_default="")
    status_reason: Mapped[str | None] = mapped_column(Text)
    sent_on: Mapped[date | None] = mapped_column(Date)
    outer_bound: Mapped[date | None] = mapped_column(Date)
    outer_basis: Mapped[str | None] = mapped_column(Text)
    hipaa_treatment: Mapped[str | None] = mapped_column(String(24))

    incident: Mapped[Incident] = relationship(back_populates="deadlines")


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id"), index=True)
    playbook_name: Mapped[str] = mapped_column(String(120))
    playbook_version: Mapped[int] = mapped_column(Integer)
    playbook_hash: Mapped[str] = mapped_column(String(64))
    playbook_content: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    auto_approve: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(SealedText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    incident: Mapped[Incident] = relationship(back_populates="runs")
    steps: Mapped[list[Step]] = relationship(
        back_populates="run", order_by="[Step.position, Step.item_index]"
    )


class Step(Base):
    """One execution of a playbook step on one target (``item_index`` is -1 without ``for_each``)."""

    __tablename__ = "steps"
    __table_args__ = (UniqueConstraint("run_id", "step_key", "item_index", name="uq_steps_run_key_item"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    step_key: Mapped[str] = mapped_column(String(120))
    position: Mapped[int] = mapped_column(Integer)
    item_index: Mapped[int] = mapped_column(Integer, default=-1)
    target: Mapped[str | None] = mapped_column(String(600))
    action: Mapped[str] = mapped_column(String(120))
    params: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    requires_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    workflow_id: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(24))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=1)
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    error: Mapped[str | None] = mapped_column(SealedText)
    # An approver's or rejecter's comment (free text): sealed here, only its fingerprint in the audit trail.
    decision_comment: Mapped[str | None] = mapped_column(SealedText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    run: Mapped[Run] = relationship(back_populates="steps")


class RiskAssessment(Base):
    """The four-factor assessment of 45 CFR 164.402(2), with its author. The latest one decides."""

    __tablename__ = "risk_assessments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id"), index=True)
    # The four factors are free text that must say what was exposed and to whom: sealed at rest.
    nature_and_extent: Mapped[str] = mapped_column(SealedText)
    unauthorized_person: Mapped[str] = mapped_column(SealedText)
    acquired_or_viewed: Mapped[str] = mapped_column(SealedText)
    mitigation: Mapped[str] = mapped_column(SealedText)
    outcome: Mapped[str] = mapped_column(String(24))
    author: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Notification(Base):
    """The outbox: a notification is stored first, then delivered with retries; each outcome is audited.

    ``recipient`` is needed to deliver and is never logged or audited (``recipient_fingerprint`` is).
    """

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_status_next", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    incident_id: Mapped[str | None] = mapped_column(ForeignKey("incidents.id"), index=True)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    channel: Mapped[str] = mapped_column(String(24))
    template: Mapped[str] = mapped_column(String(80))
    recipient: Mapped[str] = mapped_column(SealedText)  # needed to deliver: sealed at rest
    recipient_fingerprint: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(SealedText)
    body: Mapped[str] = mapped_column(SealedText)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(SealedText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditEvent(Base):
    """One link of the hash chain. Rows are only ever inserted; ``irflow audit verify`` proves it."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_incident_seq", "incident_id", "seq"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(200))
    incident_id: Mapped[str | None] = mapped_column(String(36))
    type: Mapped[str] = mapped_column(String(80))
    payload: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """The single row naming the chain's last event; appends lock it, so they are serialized everywhere."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class Evidence(Base):
    """One piece of forensic evidence: what was captured, from where, where the bytes are and their SHA-256.

    ``source`` never holds a query string (no SAS). ``content`` keeps JSON evidence (resource state, log
    exports) in the database; copied blobs live in an immutable evidence container (``location``). Each row
    is written with an ``evidence.captured`` audit event in the same transaction: the chain of custody.
    """

    __tablename__ = "evidence"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    # Where it came from and where it is kept name blobs, whose names may hold PHI: sealed at rest, and the
    # audit trail holds their fingerprints. A log export's content holds identities from Azure logs.
    source: Mapped[str] = mapped_column(SealedText)
    location: Mapped[str] = mapped_column(SealedText)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    content: Mapped[str | None] = mapped_column(SealedText)
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime())
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", SealedJSON, default=dict)


class NoticeSent(Base):
    """A notice recorded as sent (45 CFR 164.414(b): the burden of proof): one per obligation, audited.

    ``evidence_id`` points at the copy kept as evidence (its SHA-256); no recipient names are stored.
    """

    __tablename__ = "notices_sent"
    __table_args__ = (
        UniqueConstraint(
            "incident_id", "kind", "jurisdiction", "recipient", name="uq_notices_sent_obligation"
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    jurisdiction: Mapped[str] = mapped_column(String(2))
    recipient: Mapped[str] = mapped_column(String(120))
    sent_on: Mapped[date] = mapped_column(Date)
    method: Mapped[str] = mapped_column(String(120))
    recipients_count: Mapped[int] = mapped_column(Integer)
    evidence_id: Mapped[str | None] = mapped_column(ForeignKey("evidence.id"))
    author: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class InstallationSecret(Base):
    """Secrets irflow generates for itself on first use, when none is configured (see docs/data-retention.md):
    today the HMAC key of recipient and secret fingerprints. One row per name; never logged or exported."""

    __tablename__ = "installation_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiToken(Base):
    """A bearer token of the HTTP API. Only the SHA-256 of the token is kept; the token is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(16))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Replica(Base):
    """One irflow process that executes workflows (a DBOS executor), with its heartbeat.

    A replica silent past the lease (``IRFLOW_REPLICA_LEASE``) or stopped is taken over: one live replica,
    elected with a PostgreSQL advisory lock, recovers its pending workflows and records when and by whom.
    """

    __tablename__ = "replicas"

    executor_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # serve | worker | run (a foreground run's own worker)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(40))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime())
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    recovered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    recovered_by: Mapped[str | None] = mapped_column(String(100))
