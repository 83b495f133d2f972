"""State breach-notification laws, read from the packaged data file ``data/state_laws.yaml``.

The file is read and validated on first use (not at import) and cached; :func:`parse_state_laws` validates any
other text of the same shape (tests use it for synthetic rows).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from importlib import resources
from types import MappingProxyType
from typing import Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

from irflow.compliance.models import normalize_state

DATA_FILE = "state_laws.yaml"


class ClockStart(StrEnum):
    DISCOVERY = "discovery"
    DETERMINATION = "determination"


class RegulatorTiming(StrEnum):
    DAYS_AFTER_START = "days_after_start"
    BUSINESS_DAYS_AFTER_START = "business_days_after_start"
    WITH_INDIVIDUAL_NOTICE = "with_individual_notice"
    BEFORE_INDIVIDUAL_NOTICE = "before_individual_notice"
    DAYS_AFTER_INDIVIDUAL_NOTICE = "days_after_individual_notice"
    UNSPECIFIED = "unspecified"


_TIMINGS_WITH_DAYS = {
    RegulatorTiming.DAYS_AFTER_START,
    RegulatorTiming.BUSINESS_DAYS_AFTER_START,
    RegulatorTiming.DAYS_AFTER_INDIVIDUAL_NOTICE,
}


class Regulator(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    min_residents: int = Field(ge=1)
    timing: RegulatorTiming
    days: int | None = Field(default=None, ge=0, le=365)

    @model_validator(mode="after")
    def _days_match_timing(self) -> Self:
        if self.timing in _TIMINGS_WITH_DAYS and self.days is None:
            raise ValueError(f"regulator timing {self.timing.value} needs days")
        if self.timing not in _TIMINGS_WITH_DAYS and self.days is not None:
            raise ValueError(f"regulator timing {self.timing.value} takes no days")
        return self


class StateLaw(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    state: str
    name: str = Field(min_length=1)
    citation: str = Field(min_length=1)
    individual_window_days: int | None = Field(ge=1, le=365)
    clock_starts: ClockStart
    le_delay_applies: bool
    regulator: Regulator | None
    hipaa_deemed_compliant: bool | None
    source_url: HttpUrl
    verified: date
    notes: str = ""

    @field_validator("state")
    @classmethod
    def _state_code(cls, value: str) -> str:
        if value != value.strip().upper():
            raise ValueError(f"state code {value!r} must be upper-case")
        return normalize_state(value)


class StateLawTable(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    states: tuple[StateLaw, ...]

    @model_validator(mode="after")
    def _unique(self) -> Self:
        seen: set[str] = set()
        for row in self.states:
            if row.state in seen:
                raise ValueError(f"state {row.state} listed twice")
            seen.add(row.state)
        return self

    def by_state(self) -> dict[str, StateLaw]:
        return {row.state: row for row in self.states}


def parse_state_laws(text: str) -> Mapping[str, StateLaw]:
    """Validate YAML text of the data file's shape; returns the rows keyed by state code (read-only)."""
    raw = yaml.safe_load(text)
    return MappingProxyType(StateLawTable.model_validate(raw).by_state())


@functools.cache
def load_state_laws() -> Mapping[str, StateLaw]:
    """The packaged state table, validated on first call and cached."""
    text = resources.files("irflow.compliance").joinpath("data", DATA_FILE).read_text(encoding="utf-8")
    return parse_state_laws(text)
