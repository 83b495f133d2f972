"""Inputs and outputs of the compliance clock (pydantic models, no I/O)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The 50 states, DC and the inhabited territories. A code outside this set is an input error.
_JURISDICTIONS = """
    AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH
    OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC PR GU VI AS MP
"""
US_JURISDICTIONS: frozenset[str] = frozenset(_JURISDICTIONS.split())

HIPAA_WINDOW_DAYS = 60
ORAL_STATEMENT_MAX_DAYS = 30

NonNegativeInt = Annotated[int, Field(ge=0)]


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``America/New_York``); ValueError naming it if unknown."""
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as America/New_York)") from exc


def discovery_date(moment: datetime, zone_name: str) -> date:
    """The calendar date of ``moment`` in the organisation's time zone: HIPAA's day 0 (45 CFR 164.404(a)(2)).

    A naive ``moment`` is read as local time in that zone. 20:00 Eastern on 1 January is 1 January, not the
    2 January it is in UTC; counting from the UTC date could make every deadline a day late.
    """
    tz = zone(zone_name)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=tz).date()
    return moment.astimezone(tz).date()


class Role(StrEnum):
    COVERED_ENTITY = "covered_entity"
    BUSINESS_ASSOCIATE = "business_associate"


class ObligationKind(StrEnum):
    INDIVIDUALS = "individuals"
    HHS = "hhs"
    HHS_ANNUAL_LOG = "hhs_annual_log"
    MEDIA = "media"
    BA_TO_CE = "ba_to_ce"
    STATE_RESIDENTS = "state_residents"
    STATE_REGULATOR = "state_regulator"
    SUBSTITUTE_NOTICE = "substitute_notice"
    URGENT_NOTICE = "urgent_notice"


class ObligationStatus(StrEnum):
    OPEN = "open"
    MET = "met"
    LATE = "late"
    NOT_REQUIRED = "not_required"


def normalize_state(code: str) -> str:
    """Upper-case and check a two-letter US state/territory code; ValueError if unknown."""
    value = code.strip().upper()
    if value not in US_JURISDICTIONS:
        raise ValueError(f"unknown state code {code!r} (expected a two-letter US state or territory code)")
    return value


# Facts are dates of a breach response: a year outside these bounds is a typing error; accepted, it would
# make every later computation overflow (a statement "given on 9999-12-31" + 30 days) and block every facts
# update after it.
EARLIEST_FACT = date(1990, 1, 1)
LATEST_FACT = date(2199, 12, 31)


def plausible_date(value: date) -> date:
    if not EARLIEST_FACT <= value <= LATEST_FACT:
        raise ValueError(f"{value} is not a plausible date (expected {EARLIEST_FACT} to {LATEST_FACT})")
    return value


class WrittenStatement(BaseModel):
    """45 CFR 164.412(a): a written law-enforcement statement naming the date the delay ends."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    given_on: date
    until: date

    _plausible = field_validator("given_on", "until")(plausible_date)

    @model_validator(mode="after")
    def _until_not_before_given(self) -> Self:
        if self.until < self.given_on:
            raise ValueError(f"written statement ends ({self.until}) before it was given ({self.given_on})")
        return self


class OralStatement(BaseModel):
    """45 CFR 164.412(b): an oral statement tolls at most 30 days unless a written one follows in time."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    given_on: date

    _plausible = field_validator("given_on")(plausible_date)


class LawEnforcementDelay(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    written: WrittenStatement | None = None
    oral: OralStatement | None = None


US = "US"


class SentNotice(BaseModel):
    """A notice recorded as sent: the obligation it meets (kind, jurisdiction, recipient) and its day."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ObligationKind
    jurisdiction: str = US
    recipient: str = ""
    on: date

    @field_validator("jurisdiction", mode="before")
    @classmethod
    def _jurisdiction(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().upper() != US:
            return normalize_state(value)
        return value.strip().upper() if isinstance(value, str) else value

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind.value, self.jurisdiction, self.recipient)


class IncidentFacts(BaseModel):
    """What the clock needs to know. Every date is an input: nothing here reads the system clock."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    discovered_on: date
    breach_start: date | None = None
    breach_end: date | None = None
    affected_total: NonNegativeInt
    affected_by_state: dict[str, NonNegativeInt] = Field(default_factory=dict)
    law_enforcement_delay: LawEnforcementDelay | None = None
    ba_contract_days: NonNegativeInt | None = None
    # The data is PHI held by a HIPAA covered entity or business associate (decides each state's HIPAA
    # treatment, and whether the federal notices apply at all).
    hipaa: bool = True
    # A California clinic, health facility, home health agency or hospice (Cal. Health & Safety Code 1280.15).
    ca_facility: bool = False
    # 164.404(a)(2): a business associate acting as the covered entity's agent discovered the breach on this
    # date; the covered entity is deemed to know it from then.
    ba_agent_discovered_on: date | None = None
    # 164.404(d)(2): individuals whose contact information is insufficient or out of date.
    out_of_date_addresses: NonNegativeInt | None = None
    # 164.404(d)(3): the covered entity deems the case urgent (possible imminent misuse).
    urgent: bool = False
    # 164.404(d)(1)(ii): deceased individuals whose next of kin or personal representative is notified.
    deceased_with_next_of_kin: NonNegativeInt = 0
    sent: tuple[SentNotice, ...] = ()

    @field_validator("affected_by_state", mode="before")
    @classmethod
    def _normalize_states(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        result: dict[str, object] = {}
        for key, count in value.items():
            if not isinstance(key, str):
                raise ValueError(f"state code must be a string, got {key!r}")
            code = normalize_state(key)
            if code in result:
                raise ValueError(f"state {code} given twice")
            result[code] = count
        return result

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        by_state = sum(self.affected_by_state.values())
        if by_state > self.affected_total:
            raise ValueError(
                f"affected residents by state sum to {by_state}, more than the total of {self.affected_total}"
            )
        if self.breach_start and self.breach_end and self.breach_end < self.breach_start:
            raise ValueError(f"breach end ({self.breach_end}) is before breach start ({self.breach_start})")
        if self.breach_start and self.breach_start > self.discovered_on:
            raise ValueError(f"breach start ({self.breach_start}) is after discovery ({self.discovered_on})")
        delay = self.law_enforcement_delay
        if delay is not None:
            for label, statement in (("written", delay.written), ("oral", delay.oral)):
                if statement is not None and statement.given_on < self.day_zero:
                    raise ValueError(
                        f"{label} law-enforcement statement ({statement.given_on}) is before discovery "
                        f"({self.day_zero})"
                    )
        seen: set[tuple[str, str, str]] = set()
        for notice in self.sent:
            if notice.key in seen:
                raise ValueError(f"notice {notice.kind.value} {notice.jurisdiction} recorded as sent twice")
            seen.add(notice.key)
            if notice.on < self.day_zero:
                raise ValueError(
                    f"notice {notice.kind.value} {notice.jurisdiction} sent on {notice.on}, before the "
                    f"breach was discovered ({self.day_zero})"
                )
        if self.out_of_date_addresses is not None and self.out_of_date_addresses > self.affected_total:
            raise ValueError(
                f"{self.out_of_date_addresses} out-of-date addresses is more than the "
                f"{self.affected_total} affected individuals"
            )
        if self.deceased_with_next_of_kin > self.affected_total:
            raise ValueError(
                f"{self.deceased_with_next_of_kin} deceased individuals is more than the "
                f"{self.affected_total} affected individuals"
            )
        return self

    @property
    def day_zero(self) -> date:
        """The covered entity's discovery date: its own, or its agent's if earlier (164.404(a)(2))."""
        agent = self.ba_agent_discovered_on
        if self.role is Role.COVERED_ENTITY and agent is not None and agent < self.discovered_on:
            return agent
        return self.discovered_on

    def sent_on(self, kind: ObligationKind, jurisdiction: str = US, recipient: str = "") -> date | None:
        for notice in self.sent:
            if notice.key == (kind.value, jurisdiction, recipient):
                return notice.on
        return None


class Obligation(BaseModel):
    """One notice owed. ``due`` is the earliest date safe under every reading of the rules applied;
    ``outer_bound`` is the later date another reading allows (with ``outer_basis``), never the due date."""

    model_config = ConfigDict(frozen=True)

    kind: ObligationKind
    jurisdiction: str
    due: date
    basis: str
    notes: str = ""
    recipient: str = ""
    status: ObligationStatus = ObligationStatus.OPEN
    sent_on: date | None = None
    outer_bound: date | None = None
    outer_basis: str = ""
    hipaa_treatment: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind.value, self.jurisdiction, self.recipient)

    def as_json(self) -> dict[str, str | None]:
        return {
            "kind": self.kind.value,
            "jurisdiction": self.jurisdiction,
            "recipient": self.recipient,
            "due": self.due.isoformat(),
            "basis": self.basis,
            "notes": self.notes,
            "status": self.status.value,
            "sent_on": self.sent_on.isoformat() if self.sent_on else None,
            "outer_bound": self.outer_bound.isoformat() if self.outer_bound else None,
            "outer_basis": self.outer_basis,
            "hipaa_treatment": self.hipaa_treatment,
        }


class TollingPeriod(BaseModel):
    """Days on which the clock stands still: ``start`` inclusive to ``end`` exclusive."""

    model_config = ConfigDict(frozen=True)

    start: date
    end: date
    source: str

    @property
    def days(self) -> int:
        return (self.end - self.start).days


class ComplianceResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    obligations: tuple[Obligation, ...]
    warnings: tuple[str, ...]
    tolling: tuple[TollingPeriod, ...] = ()

    def as_json(self) -> dict[str, list]:
        return {
            "obligations": [o.as_json() for o in self.obligations],
            "warnings": list(self.warnings),
        }
