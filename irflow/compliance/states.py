"""US breach-notification jurisdictions, read from the packaged data file ``data/jurisdictions.yaml``.

:func:`load_jurisdictions` returns one validated :class:`Jurisdiction` per code (the 50 states, DC, PR, GU,
VI), read on first use (not at import) and cached; :func:`parse_jurisdictions` validates any other text of the
same shape (tests use it for synthetic rows). :func:`load_conditional_rules` returns the rules that apply only
when the organisation says so (a California licensed health facility, H&S Code § 1280.15).

Each row groups its fields, and every group carries its own ``citation``, ``source`` (what was read) and
``checked`` (``statute``: against the statute's text; ``secondary``: a law-firm chart, an AG page or similar):

* ``individual``: the resident-notice ``window`` (``days``, ``business_days``) or ``None`` for "without
  unreasonable delay", and ``clock_starts`` (discovery | determination);
* ``regulators``: the regulator ``notices`` (who, min_residents, timing, days, and ``outer_limit`` when the
  statute adds "or within N days after the clock start, whichever is sooner"); an empty list when the statute
  names none;
* ``law_enforcement``: whether a law-enforcement request may delay the notice (``permitted``), the statute's
  own window once the delay ends (``after_delay``; ``None`` when it says only "after the delay" or nothing)
  and ``tolls_regulator`` (only where the statute delays the regulator notice too);
* ``hipaa``: the treatment of HIPAA-regulated entities (:class:`HipaaTreatment`) and its
  ``surviving_duties``: the ``who`` of each regulator notice still owed by an entity deemed compliant.

Business days: :meth:`Jurisdiction.business_day_calendar` (the ``holidays`` library's calendar for the
row's ``holiday_calendar`` code, e.g. ``US-ME``) and :meth:`Jurisdiction.add_business_days`.

The jurisdictions file replaces the former 21-row ``data/state_laws.yaml`` (``StateLaw``, ``load_state_laws``,
``parse_state_laws``): every one of its rows was re-checked and moved into this shape.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import date, timedelta
from enum import StrEnum
from importlib import resources
from types import MappingProxyType
from typing import Self

import holidays
import yaml
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, field_validator, model_validator

from irflow.compliance.models import normalize_state

DATA_DIR_NAME = "data"
JURISDICTIONS_FILE = "jurisdictions.yaml"

# The jurisdictions the data file must cover: the 50 states, DC, Puerto Rico, Guam and the US Virgin Islands.
_REQUIRED = """
    AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH
    OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC PR GU VI
"""
REQUIRED_JURISDICTIONS: frozenset[str] = frozenset(_REQUIRED.split())


class ClockStart(StrEnum):
    DISCOVERY = "discovery"
    DETERMINATION = "determination"


class RegulatorTiming(StrEnum):
    DAYS_AFTER_START = "days_after_start"
    BUSINESS_DAYS_AFTER_START = "business_days_after_start"
    WITH_INDIVIDUAL_NOTICE = "with_individual_notice"
    BEFORE_INDIVIDUAL_NOTICE = "before_individual_notice"
    DAYS_AFTER_INDIVIDUAL_NOTICE = "days_after_individual_notice"
    BUSINESS_DAYS_AFTER_INDIVIDUAL_NOTICE = "business_days_after_individual_notice"
    BUSINESS_DAYS_AFTER_HHS_NOTICE = "business_days_after_hhs_notice"
    UNSPECIFIED = "unspecified"


_TIMINGS_WITH_DAYS = {
    RegulatorTiming.DAYS_AFTER_START,
    RegulatorTiming.BUSINESS_DAYS_AFTER_START,
    RegulatorTiming.DAYS_AFTER_INDIVIDUAL_NOTICE,
    RegulatorTiming.BUSINESS_DAYS_AFTER_INDIVIDUAL_NOTICE,
    RegulatorTiming.BUSINESS_DAYS_AFTER_HHS_NOTICE,
}


class Checked(StrEnum):
    STATUTE = "statute"
    SECONDARY = "secondary"


class HipaaTreatment(StrEnum):
    EXEMPT = "exempt"
    DEEMED_WITH_DUTIES = "deemed_with_duties"
    NOT_DEEMED = "not_deemed"
    NOT_VERIFIED = "not_verified"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Sourced(_Frozen):
    """Provenance of one field group."""

    citation: str = Field(min_length=1)
    source: HttpUrl
    checked: Checked
    note: str = ""


class Window(_Frozen):
    """A fixed number of calendar days, or of business days when ``business_days``."""

    days: int = Field(ge=1, le=365)
    business_days: bool = False

    def describe(self) -> str:
        return f"{self.days} {'business days' if self.business_days else 'days'}"


class IndividualNotice(_Sourced):
    window: Window | None
    clock_starts: ClockStart


class RegulatorNotice(_Frozen):
    who: str = Field(min_length=1)
    # "more than 500" is stored as 501, "500 or more" as 500, "any resident" as 1.
    min_residents: int = Field(ge=1)
    timing: RegulatorTiming
    days: int | None = Field(default=None, ge=1, le=365)
    # "... or within N days after the clock start, whichever is sooner": a second bound on the same notice.
    outer_limit: Window | None = None
    note: str = ""

    @model_validator(mode="after")
    def _days_match_timing(self) -> Self:
        if self.timing in _TIMINGS_WITH_DAYS and self.days is None:
            raise ValueError(f"regulator timing {self.timing.value} needs days")
        if self.timing not in _TIMINGS_WITH_DAYS and self.days is not None:
            raise ValueError(f"regulator timing {self.timing.value} takes no days")
        return self

    @property
    def business_days(self) -> bool:
        return self.timing in (
            RegulatorTiming.BUSINESS_DAYS_AFTER_START,
            RegulatorTiming.BUSINESS_DAYS_AFTER_INDIVIDUAL_NOTICE,
            RegulatorTiming.BUSINESS_DAYS_AFTER_HHS_NOTICE,
        )


class Regulators(_Sourced):
    notices: tuple[RegulatorNotice, ...] = ()

    @model_validator(mode="after")
    def _unique_recipients(self) -> Self:
        names = [n.who for n in self.notices]
        if len(names) != len(set(names)):
            raise ValueError(f"regulator listed twice: {names}")
        return self


class LawEnforcement(_Sourced):
    permitted: bool
    after_delay: Window | None = None
    tolls_regulator: bool = False

    @model_validator(mode="after")
    def _nothing_without_delay(self) -> Self:
        if not self.permitted and (self.after_delay is not None or self.tolls_regulator):
            raise ValueError("after_delay/tolls_regulator need a permitted law-enforcement delay")
        return self


class Hipaa(_Sourced):
    treatment: HipaaTreatment
    surviving_duties: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _duties_fit_treatment(self) -> Self:
        if self.surviving_duties and self.treatment is not HipaaTreatment.DEEMED_WITH_DUTIES:
            raise ValueError(f"surviving_duties only go with deemed_with_duties, not {self.treatment.value}")
        return self


def _holiday_calendar(code: str) -> holidays.HolidayBase:
    country, _, subdiv = code.partition("-")
    return holidays.country_holidays(country, subdiv=subdiv or None)


def _check_holiday_calendar(code: str) -> str:
    try:
        _holiday_calendar(code)
    except (NotImplementedError, KeyError, ValueError) as exc:
        raise ValueError(f"holiday calendar {code!r} is not known to the holidays library") from exc
    return code


# Days the holidays library lists for a jurisdiction on which its offices need not close. Counting them as
# business days can only make a due date earlier, never later than the law allows.
# - Texas: optional holidays, Tex. Gov't Code § 662.003(b) (a state employee may take one instead of another
#   day; offices stay open).
# - California: Susan B. Anthony Day is a commemorative day, not a holiday of Cal. Gov't Code § 6700; Diwali's
#   status as a day state offices close was not verified (the stricter choice: a business day).
NOT_OFFICE_CLOSING: dict[tuple[str, str | None], frozenset[str]] = {
    ("US", "TX"): frozenset({"Cesar Chavez Day", "Good Friday", "Rosh Hashanah", "Yom Kippur"}),
    ("US", "CA"): frozenset({"Susan B. Anthony Day", "Diwali"}),
}


def _office_closed(day: date, calendar: holidays.HolidayBase) -> bool:
    names = calendar.get_list(day)
    where = (getattr(calendar, "country", None), getattr(calendar, "subdiv", None))
    skip = NOT_OFFICE_CLOSING.get(where, frozenset())  # type: ignore[arg-type]
    return any(name not in skip for name in names)


def add_business_days(start: date, days: int, calendar: holidays.HolidayBase) -> date:
    """``days`` business days after ``start``: Monday-Friday and not a holiday of ``calendar`` on which
    offices close (see :data:`NOT_OFFICE_CLOSING`)."""
    current, left = start, days
    while left > 0:
        current += timedelta(days=1)
        if current.weekday() < 5 and not _office_closed(current, calendar):
            left -= 1
    return current


class Jurisdiction(_Frozen):
    code: str
    name: str = Field(min_length=1)
    individual: IndividualNotice
    regulators: Regulators
    law_enforcement: LawEnforcement
    hipaa: Hipaa
    # "US-XX": holidays.country_holidays("US", subdiv="XX") (federal and that jurisdiction's public holidays).
    holiday_calendar: str = Field(pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
    verified: date
    notes: str = ""

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        if value != value.strip().upper():
            raise ValueError(f"jurisdiction code {value!r} must be upper-case")
        return normalize_state(value)

    @field_validator("holiday_calendar")
    @classmethod
    def _calendar(cls, value: str) -> str:
        return _check_holiday_calendar(value)

    @model_validator(mode="after")
    def _surviving_duties_are_regulators(self) -> Self:
        known = {n.who for n in self.regulators.notices}
        unknown = [d for d in self.hipaa.surviving_duties if d not in known]
        if unknown:
            raise ValueError(f"{self.code}: surviving duties {unknown} name no regulator notice of the row")
        return self

    def business_day_calendar(self) -> holidays.HolidayBase:
        """The public-holiday calendar that business days of this jurisdiction skip."""
        return _cached_calendar(self.holiday_calendar)

    def add_business_days(self, start: date, days: int) -> date:
        return add_business_days(start, days, self.business_day_calendar())

    def notices_surviving_hipaa(self) -> tuple[RegulatorNotice, ...]:
        """The regulator notices still owed by a HIPAA-regulated entity under this row's treatment."""
        match self.hipaa.treatment:
            case HipaaTreatment.EXEMPT:
                return ()
            case HipaaTreatment.DEEMED_WITH_DUTIES:
                return tuple(n for n in self.regulators.notices if n.who in self.hipaa.surviving_duties)
            case _:
                return self.regulators.notices


@functools.cache
def _cached_calendar(code: str) -> holidays.HolidayBase:
    return _holiday_calendar(code)


class Condition(StrEnum):
    """Facts about the organisation that switch a conditional rule on."""

    CA_LICENSED_HEALTH_FACILITY = "ca_licensed_health_facility"


class ConditionalRule(_Sourced):
    """A notice owed only when the organisation meets ``applies_when`` (e.g. Cal. H&S Code § 1280.15)."""

    key: str = Field(pattern=r"^[a-z0-9_]+$")
    jurisdiction: str
    applies_when: Condition
    recipients: tuple[str, ...] = Field(min_length=1)
    window: Window
    clock_starts: ClockStart
    after_delay: Window | None = None
    holiday_calendar: str = Field(pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
    verified: date

    @field_validator("jurisdiction")
    @classmethod
    def _code(cls, value: str) -> str:
        return normalize_state(value)

    @field_validator("holiday_calendar")
    @classmethod
    def _calendar(cls, value: str) -> str:
        return _check_holiday_calendar(value)

    def business_day_calendar(self) -> holidays.HolidayBase:
        return _cached_calendar(self.holiday_calendar)

    def add_business_days(self, start: date, days: int) -> date:
        return add_business_days(start, days, self.business_day_calendar())


class JurisdictionTable(_Frozen):
    jurisdictions: tuple[Jurisdiction, ...]
    conditional_rules: tuple[ConditionalRule, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> Self:
        seen: set[str] = set()
        for row in self.jurisdictions:
            if row.code in seen:
                raise ValueError(f"jurisdiction {row.code} listed twice")
            seen.add(row.code)
        keys = [r.key for r in self.conditional_rules]
        if len(keys) != len(set(keys)):
            raise ValueError(f"conditional rule listed twice: {keys}")
        return self


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice in one mapping (plain YAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str) -> object:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        # Surfaced as a pydantic ValidationError like every other shape problem of the file.
        raise ValidationError.from_exception_data(
            "JurisdictionTable",
            [{"type": "value_error", "loc": (), "input": text[:80], "ctx": {"error": exc}}],
        ) from exc


def parse_jurisdiction_table(text: str) -> JurisdictionTable:
    """Validate YAML text of the jurisdictions file's shape (pydantic ValidationError if it does not fit)."""
    return JurisdictionTable.model_validate(_load_yaml(text))


def parse_jurisdictions(text: str) -> Mapping[str, Jurisdiction]:
    """The rows of YAML text of the jurisdictions file's shape, keyed by code (read-only)."""
    table = parse_jurisdiction_table(text)
    return MappingProxyType({row.code: row for row in table.jurisdictions})


@functools.cache
def load_jurisdiction_table() -> JurisdictionTable:
    """The packaged jurisdictions file, validated on first call and cached."""
    path = resources.files("irflow.compliance").joinpath(DATA_DIR_NAME, JURISDICTIONS_FILE)
    return parse_jurisdiction_table(path.read_text(encoding="utf-8"))


@functools.cache
def load_jurisdictions() -> Mapping[str, Jurisdiction]:
    """Every packaged jurisdiction row keyed by its two-letter code (read-only, cached)."""
    return MappingProxyType({row.code: row for row in load_jurisdiction_table().jurisdictions})


@functools.cache
def load_conditional_rules() -> Mapping[str, ConditionalRule]:
    """The packaged conditional rules keyed by ``key`` (e.g. ``ca_health_facility``), read-only, cached."""
    return MappingProxyType({rule.key: rule for rule in load_jurisdiction_table().conditional_rules})
