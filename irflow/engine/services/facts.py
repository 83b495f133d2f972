"""Incident facts as a person types them (dates as text, state counts as ``XX=N``) made into the engine's
commands, and the deadline clock for facts without an incident.

The rules live here, not in an entry point: how a discovery date or date-and-time is read, that a written
law-enforcement delay names both its date and its end (45 CFR 164.412(a)), that a state count is a known
code with a whole, non-negative number given once. Every refusal is :class:`Invalid` with a message naming
the option, never the value of a free-text field.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from irflow.compliance import (
    IncidentFacts,
    LawEnforcementDelay,
    OralStatement,
    Role,
    WrittenStatement,
    compute_obligations,
)
from irflow.compliance.clock import resolve_sent
from irflow.compliance.models import ComplianceResult, discovery_date, normalize_state, zone
from irflow.engine.incidents import ROLES, FactsUpdate
from irflow.engine.services.errors import Invalid
from irflow.engine.services.errors import messages as problems

LE_PAIRING = "--le-written-on and --le-written-until go together: give both or neither"


def parse_day(option: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise Invalid(f"{option} takes a date YYYY-MM-DD, got {value!r}") from None


def parse_state_counts(values: list[str], option: str = "--state") -> dict[str, int]:
    """``XX=N`` pairs: a known code (states, DC, territories), a whole count ≥ 0, each code once."""
    counts: dict[str, int] = {}
    for value in values:
        code, sep, raw = value.partition("=")
        if not sep or not code.strip() or not raw.strip():
            raise Invalid(f"{option} takes XX=N (a two-letter state code and a count), got {value!r}")
        try:
            state = normalize_state(code)
        except ValueError as exc:
            raise Invalid(f"{option} {value}: {exc}") from None
        try:
            count = int(raw.strip())
        except ValueError:
            raise Invalid(
                f"{option} {value}: the count must be a whole number, got {raw.strip()!r}"
            ) from None
        if count < 0:
            raise Invalid(f"{option} {value}: the count must not be negative")
        if state in counts:
            raise Invalid(f"{option} {state} given twice")
        counts[state] = count
    return counts


def check_law_enforcement_pairing(written_on: object, written_until: object) -> None:
    """A written delay statement names the date it was given and the date it ends (164.412(a))."""
    if (written_on is None) != (written_until is None):
        raise Invalid(LE_PAIRING)


class FactsOptions(BaseModel):
    """``irflow incidents facts``' options, as typed: what is None is left unchanged."""

    model_config = ConfigDict(extra="forbid")

    role: str | None = None
    discovered: str | None = None
    discovery_reason: str | None = None
    timezone: str | None = None
    affected: int | None = None
    states: list[str] = Field(default_factory=list)
    breach_start: str | None = None
    breach_end: str | None = None
    le_written_on: str | None = None
    le_written_until: str | None = None
    le_oral_on: str | None = None
    ba_contract_days: int | None = None
    ba_agent_discovered: str | None = None
    hipaa: bool | None = None
    ca_facility: bool | None = None
    out_of_date_addresses: int | None = None
    urgent: bool | None = None
    deceased_next_of_kin: int | None = None


def facts_update(options: FactsOptions) -> FactsUpdate:
    """The :class:`FactsUpdate` these options ask for; :class:`Invalid` naming the first bad option."""
    changes: dict[str, object] = {}
    if options.role is not None:
        if options.role not in ROLES:
            raise Invalid(f"--role takes ce or ba, got {options.role!r}")
        changes["role"] = ROLES[options.role]
    if options.discovered is not None:
        text = options.discovered.strip()
        if "T" in text:
            try:
                changes["discovered_at"] = datetime.fromisoformat(text)
            except ValueError:
                raise Invalid(
                    f"--discovered takes YYYY-MM-DD or YYYY-MM-DDTHH:MM[+HH:MM], got {options.discovered!r}"
                ) from None
        else:  # the start of that day in the incident's time zone
            changes["discovered_at"] = datetime.combine(parse_day("--discovered", text), time())  # type: ignore[arg-type]
    optional = {
        "discovery_reason": options.discovery_reason,
        "timezone": options.timezone,
        "affected_total": options.affected,
        "ba_contract_days": options.ba_contract_days,
        "hipaa": options.hipaa,
        "ca_facility": options.ca_facility,
        "out_of_date_addresses": options.out_of_date_addresses,
        "urgent": options.urgent,
        "deceased_with_next_of_kin": options.deceased_next_of_kin,
    }
    changes.update({name: value for name, value in optional.items() if value is not None})
    if options.states:
        changes["affected_by_state"] = parse_state_counts(options.states)
    for name, value in (
        ("breach_start", options.breach_start),
        ("breach_end", options.breach_end),
        ("ba_agent_discovered_on", options.ba_agent_discovered),
    ):
        if value is not None:
            changes[name] = parse_day(f"--{name.removesuffix('_on').replace('_', '-')}", value)
    check_law_enforcement_pairing(options.le_written_on, options.le_written_until)
    if options.le_written_on is not None or options.le_oral_on is not None:
        delay: dict[str, object] = {}
        if options.le_written_on is not None:
            delay["written"] = {"given_on": options.le_written_on, "until": options.le_written_until}
        if options.le_oral_on is not None:
            delay["oral"] = {"given_on": options.le_oral_on}
        changes["law_enforcement_delay"] = delay
    if not changes:
        raise Invalid("give at least one fact to change (see --help)")
    try:
        return FactsUpdate.model_validate(changes)
    except ValidationError as exc:
        raise Invalid(problems(exc)) from None


# --- the clock without an incident (``irflow deadlines compute``) ------------------------------------------


class ClockQuestion(BaseModel):
    """Facts for the deadline clock, as typed; ``timezone`` reads a ``discovered`` date and time."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["ce", "ba"]
    discovered: str
    timezone: str
    affected: int
    states: list[str] = Field(default_factory=list)
    le_written_on: str | None = None
    le_written_until: str | None = None
    le_oral_on: str | None = None
    ba_contract_days: int | None = None
    ba_agent_discovered: str | None = None
    hipaa: bool = True
    ca_facility: bool = False
    out_of_date_addresses: int | None = None
    urgent: bool = False
    deceased_with_next_of_kin: int = 0
    sent: list[str] = Field(
        default_factory=list, description="Notices already sent: KIND[:JURISDICTION[:RECIPIENT]]=DATE."
    )


class ClockAnswer(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    facts: IncidentFacts
    result: ComplianceResult


def discovery_day(value: str, tz: str) -> date:
    """A date (day 0 itself) or a date and time, read in *tz* unless it carries an offset."""
    try:
        zone(tz)
    except ValueError as exc:
        raise Invalid(f"--tz: {exc}") from None
    text = value.strip()
    if "T" not in text and " " not in text:
        return parse_day("--discovered", text)  # type: ignore[return-value]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(f"--discovered takes YYYY-MM-DD or YYYY-MM-DDTHH:MM[+HH:MM], got {value!r}") from None
    return discovery_date(moment, tz)


def _sent(values: list[str]) -> list[tuple[str, str, str, date]]:
    parsed = []
    for value in values:
        target, sep, raw = value.rpartition("=")
        if not sep or not target.strip() or not raw.strip():
            raise Invalid(f"--sent takes KIND[:JURISDICTION[:RECIPIENT]]=YYYY-MM-DD, got {value!r}")
        kind, _, rest = target.partition(":")
        jurisdiction, _, recipient = rest.partition(":")
        on = parse_day("--sent", raw)
        assert on is not None
        parsed.append((kind.strip(), (jurisdiction.strip() or "US"), recipient.strip(), on))
    return parsed


def compute_deadlines(question: ClockQuestion) -> ClockAnswer:
    """The obligations and due dates for these facts (nothing is stored)."""
    discovered_on = discovery_day(question.discovered, question.timezone)
    if question.affected < 0:
        raise Invalid(f"--affected must not be negative, got {question.affected}")
    if question.ba_contract_days is not None and question.ba_contract_days < 0:
        raise Invalid(f"--ba-contract-days must not be negative, got {question.ba_contract_days}")
    written_on = parse_day("--le-written-on", question.le_written_on)
    written_until = parse_day("--le-written-until", question.le_written_until)
    oral_on = parse_day("--le-oral-on", question.le_oral_on)
    agent_on = parse_day("--ba-agent-discovered", question.ba_agent_discovered)
    check_law_enforcement_pairing(written_on, written_until)
    counts = parse_state_counts(question.states)
    sent_notices = _sent(question.sent)
    try:
        delay = None
        if written_on is not None or oral_on is not None:
            delay = LawEnforcementDelay(
                written=(
                    WrittenStatement(given_on=written_on, until=written_until)
                    if written_on is not None and written_until is not None
                    else None
                ),
                oral=OralStatement(given_on=oral_on) if oral_on is not None else None,
            )
        facts = IncidentFacts(
            role=Role(ROLES[question.role]),
            discovered_on=discovered_on,
            affected_total=question.affected,
            affected_by_state=counts,
            law_enforcement_delay=delay,
            ba_contract_days=question.ba_contract_days,
            hipaa=question.hipaa,
            ca_facility=question.ca_facility,
            ba_agent_discovered_on=agent_on,
            out_of_date_addresses=question.out_of_date_addresses,
            urgent=question.urgent,
            deceased_with_next_of_kin=question.deceased_with_next_of_kin,
        )
        if sent_notices:
            facts = facts.model_copy(update={"sent": resolve_sent(compute_obligations(facts), sent_notices)})
            facts = IncidentFacts.model_validate(facts.model_dump())  # the sent dates checked with the rest
    except ValidationError as exc:
        raise Invalid(problems(exc)) from None
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    return ClockAnswer(facts=facts, result=compute_obligations(facts))
