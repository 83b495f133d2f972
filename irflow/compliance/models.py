"""Inputs and outputs of the compliance clock (pydantic models, no I/O)."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Self

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


def normalize_state(code: str) -> str:
    """Upper-case and check a two-letter US state/territory code; ValueError if unknown."""
    value = code.strip().upper()
    if value not in US_JURISDICTIONS:
        raise ValueError(f"unknown state code {code!r} (expected a two-letter US state or territory code)")
    return value


class WrittenStatement(BaseModel):
    """45 CFR 164.412(a): a written law-enforcement statement naming the date the delay ends."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    given_on: date
    until: date

    @model_validator(mode="after")
    def _until_not_before_given(self) -> Self:
        if self.until < self.given_on:
            raise ValueError(f"written statement ends ({self.until}) before it was given ({self.given_on})")
        return self


class OralStatement(BaseModel):
    """45 CFR 164.412(b): an oral statement tolls at most 30 days unless a written one follows in time."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    given_on: date


class LawEnforcementDelay(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    written: WrittenStatement | None = None
    oral: OralStatement | None = None


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
                if statement is not None and statement.given_on < self.discovered_on:
                    raise ValueError(
                        f"{label} law-enforcement statement ({statement.given_on}) is before discovery "
                        f"({self.discovered_on})"
                    )
        return self


class Obligation(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: ObligationKind
    jurisdiction: str
    due: date
    basis: str
    notes: str = ""

    def as_json(self) -> dict[str, str]:
        return {
            "kind": self.kind.value,
            "jurisdiction": self.jurisdiction,
            "due": self.due.isoformat(),
            "basis": self.basis,
            "notes": self.notes,
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
