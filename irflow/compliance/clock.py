"""The compliance clock: obligations and due dates for the facts of a breach (45 CFR 164.404-412, states).

Pure functions. Dates are inputs; the system clock is never read. See docs/compliance.md for the readings
applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta

from irflow.compliance.models import (
    HIPAA_WINDOW_DAYS,
    ORAL_STATEMENT_MAX_DAYS,
    ComplianceResult,
    IncidentFacts,
    LawEnforcementDelay,
    Obligation,
    ObligationKind,
    Role,
    TollingPeriod,
)
from irflow.compliance.states import ClockStart, RegulatorTiming, StateLaw, load_state_laws

HHS_THRESHOLD = 500  # 164.408(b): "500 or more"
MEDIA_THRESHOLD = 500  # 164.406: "more than 500 residents of a State or jurisdiction"

_KIND_ORDER = {kind: index for index, kind in enumerate(ObligationKind)}
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


# --- law-enforcement delay (164.412) ------------------------------------------------------------------------


def tolling_periods(delay: LawEnforcementDelay | None) -> tuple[tuple[TollingPeriod, ...], list[str]]:
    """The periods during which the clock stands still, merged and sorted, and the warnings that explain them.

    Written statement: from the day it is given up to (not including) the date it names. Oral statement: from
    the day it is given for at most 30 days; a written statement given within those 30 days replaces the cap,
    and the delay then runs to the written statement's date.
    """
    if delay is None:
        return (), []
    periods: list[TollingPeriod] = []
    warnings: list[str] = []
    written, oral = delay.written, delay.oral
    if oral is not None:
        cap = oral.given_on + timedelta(days=ORAL_STATEMENT_MAX_DAYS)
        if written is not None and oral.given_on <= written.given_on <= cap:
            periods.append(TollingPeriod(start=oral.given_on, end=written.until, source="oral then written"))
            warnings.append(
                f"law-enforcement delay: oral statement on {oral.given_on} followed by a written statement "
                f"on {written.given_on} within 30 days; the clock stands still from {oral.given_on} until "
                f"{written.until} (45 CFR 164.412(a),(b))"
            )
            written = None
        else:
            periods.append(TollingPeriod(start=oral.given_on, end=cap, source="oral"))
            warnings.append(
                f"law-enforcement delay: oral statement on {oral.given_on} tolls at most 30 days, until "
                f"{cap}, unless a written statement follows within that time (45 CFR 164.412(b)); document "
                f"the statement and the official's identity"
            )
            if written is not None:
                when = "after" if written.given_on > cap else "before"
                warnings.append(
                    f"law-enforcement delay: the written statement of {written.given_on} came {when} the "
                    f"oral statement's 30 days; both are applied as separate delays"
                )
    if written is not None:
        periods.append(TollingPeriod(start=written.given_on, end=written.until, source="written"))
        warnings.append(
            f"law-enforcement delay: written statement on {written.given_on} tolls until {written.until} "
            f"(45 CFR 164.412(a))"
        )
    return _merge(periods), warnings


def _merge(periods: Iterable[TollingPeriod]) -> tuple[TollingPeriod, ...]:
    merged: list[TollingPeriod] = []
    for period in sorted((p for p in periods if p.end > p.start), key=lambda p: (p.start, p.end)):
        if merged and period.start <= merged[-1].end:
            last = merged[-1]
            merged[-1] = TollingPeriod(
                start=last.start, end=max(last.end, period.end), source=f"{last.source} + {period.source}"
            )
        else:
            merged.append(period)
    return tuple(merged)


def add_days_tolled(start: date, days: int, periods: Iterable[TollingPeriod]) -> date:
    """``start + days`` counting only days on which the clock runs (tolled days do not count).

    Each tolled day after ``start`` moves the deadline one day later, so a delay given on the discovery date
    itself starts the count at the date it ends. A period that begins after the (already moved) deadline has
    no effect.
    """
    due = start + timedelta(days=days)
    for period in _merge(periods):
        begin = max(period.start, start)
        if period.end > begin and begin <= due:
            due += period.end - begin
    return due


def add_business_days(start: date, days: int) -> date:
    """``days`` business days (Monday-Friday) after ``start``; public holidays are not excluded."""
    current, left = start, days
    while left > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            left -= 1
    return current


def annual_log_due(discovered_on: date) -> date:
    """164.408(c): 60 days after the end of the calendar year in which the breach was discovered."""
    return date(discovered_on.year, 12, 31) + timedelta(days=HIPAA_WINDOW_DAYS)


# --- the clock ----------------------------------------------------------------------------------------------


class _Builder:
    def __init__(self, facts: IncidentFacts, periods: tuple[TollingPeriod, ...]) -> None:
        self.facts = facts
        self.periods = periods
        self.obligations: list[Obligation] = []
        self.warnings: list[str] = []

    def due(self, days: int, *, tolled: bool = True) -> tuple[date, str]:
        """Due date ``days`` after discovery and a note on tolling (empty when tolling moved nothing)."""
        plain = self.facts.discovered_on + timedelta(days=days)
        if not tolled or not self.periods:
            return plain, ""
        moved = add_days_tolled(self.facts.discovered_on, days, self.periods)
        if moved == plain:
            return plain, ""
        shift = (moved - plain).days
        return (
            moved,
            f"Tolled {shift} days by law-enforcement delay (45 CFR 164.412); untolled due date {plain}.",
        )

    def add(self, kind: ObligationKind, jurisdiction: str, due: date, basis: str, *notes: str) -> None:
        text = " ".join(n.strip() for n in notes if n and n.strip())
        self.obligations.append(
            Obligation(kind=kind, jurisdiction=jurisdiction, due=due, basis=basis, notes=text)
        )


def compute_obligations(
    facts: IncidentFacts, state_laws: Mapping[str, StateLaw] | None = None
) -> ComplianceResult:
    """The notification obligations for ``facts``, sorted by due date, with warnings.

    ``state_laws`` defaults to the packaged table (:func:`irflow.compliance.states.load_state_laws`).
    """
    laws = load_state_laws() if state_laws is None else state_laws
    periods, tolling_warnings = tolling_periods(facts.law_enforcement_delay)
    builder = _Builder(facts, periods)
    builder.warnings.extend(tolling_warnings)

    if facts.affected_total == 0:
        builder.warnings.append(
            "no affected individuals: no notification obligations computed (re-run when the count is known)"
        )
    elif facts.role is Role.BUSINESS_ASSOCIATE:
        _business_associate(builder)
    else:
        _covered_entity(builder, laws)

    _check_late_statements(builder)
    obligations = sorted(
        builder.obligations, key=lambda o: (o.due, _KIND_ORDER[o.kind], o.jurisdiction, o.basis)
    )
    for ob in obligations:
        if ob.due.weekday() >= 5:
            builder.warnings.append(
                f"{ob.kind.value} ({ob.jurisdiction}) is due on a {_WEEKDAYS[ob.due.weekday()]}, {ob.due}: "
                f"the deadline does not roll forward; send by the business day before"
            )
    return ComplianceResult(obligations=tuple(obligations), warnings=tuple(builder.warnings), tolling=periods)


def _check_late_statements(builder: _Builder) -> None:
    if not builder.periods:
        return
    untolled = builder.facts.discovered_on + timedelta(days=HIPAA_WINDOW_DAYS)
    for period in builder.periods:
        if period.start > untolled:
            builder.warnings.append(
                f"law-enforcement delay starting {period.start} begins after the 60-day deadline "
                f"({untolled}) and does not extend it"
            )


def _business_associate(b: _Builder) -> None:
    facts = b.facts
    window = HIPAA_WINDOW_DAYS
    contract_note = ""
    if facts.ba_contract_days is not None:
        if facts.ba_contract_days < HIPAA_WINDOW_DAYS:
            window = facts.ba_contract_days
            contract_note = (
                f"The business associate agreement's {window}-day window is shorter than 60 days and applies."
            )
        else:
            b.warnings.append(
                f"business associate agreement window of {facts.ba_contract_days} days is not shorter than "
                f"60 days and is ignored: 45 CFR 164.410(b) caps the notice at 60 days"
            )
    due, toll_note = b.due(window)
    basis = (
        "45 CFR 164.410(b): business associate notice to the covered entity without unreasonable delay and "
        "no later than 60 calendar days after discovery"
    )
    if window < HIPAA_WINDOW_DAYS:
        basis += f" (business associate agreement: {window} days)"
    b.add(
        ObligationKind.BA_TO_CE,
        "US",
        due,
        basis,
        contract_note,
        "Include the identity of each affected individual and the facts the covered entity needs for its "
        "notices (164.410(c)).",
        toll_note,
    )
    b.warnings.append(
        "role business_associate: only the notice to the covered entity is computed; the individual, HHS, "
        "media and state notices are the covered entity's obligations (compute them with role "
        "covered_entity), unless the business associate agreement delegates them"
    )
    if facts.affected_by_state:
        b.warnings.append(
            "state counts given for a business associate are not used: state vendor-to-owner rules are not "
            "modelled; pass them to the covered entity"
        )


def _covered_entity(b: _Builder, laws: Mapping[str, StateLaw]) -> None:
    facts = b.facts
    if facts.ba_contract_days is not None:
        b.warnings.append("--ba-contract-days applies to role business_associate only and is ignored")

    individuals_due, toll_note = b.due(HIPAA_WINDOW_DAYS)
    b.add(
        ObligationKind.INDIVIDUALS,
        "US",
        individuals_due,
        "45 CFR 164.404(b): notice to each affected individual without unreasonable delay and no later than "
        "60 calendar days after discovery",
        f"{facts.affected_total} individuals; day 0 is the discovery date {facts.discovered_on}.",
        toll_note,
    )

    if facts.affected_total >= HHS_THRESHOLD:
        b.add(
            ObligationKind.HHS,
            "US",
            individuals_due,
            "45 CFR 164.408(b): notice to the Secretary of HHS contemporaneously with the individual notice "
            "(500 or more individuals)",
            "Submit through the HHS OCR breach portal at the same time as the individual notice.",
            toll_note,
        )
    else:
        b.add(
            ObligationKind.HHS_ANNUAL_LOG,
            "US",
            annual_log_due(facts.discovered_on),
            "45 CFR 164.408(c): breaches affecting fewer than 500 individuals, logged and submitted to HHS "
            "within 60 days after the end of the calendar year of discovery",
            f"Annual submission for breaches discovered in {facts.discovered_on.year}. Not tolled by "
            f"law-enforcement delay in this tool.",
        )

    for state, count in sorted(facts.affected_by_state.items()):
        if count > MEDIA_THRESHOLD:
            b.add(
                ObligationKind.MEDIA,
                state,
                individuals_due,
                "45 CFR 164.406: notice to prominent media outlets serving the State or jurisdiction (more "
                "than 500 residents affected) no later than 60 calendar days after discovery",
                f"{count} residents of {state}.",
                toll_note,
            )
    unassigned = facts.affected_total - sum(facts.affected_by_state.values())
    if unassigned > 0:
        b.warnings.append(
            f"{unassigned} affected individuals have no state: their state-law obligations are not computed"
            + (
                f", and if more than 500 of them live in one state or jurisdiction a media notice "
                f"(45 CFR 164.406) is due by {individuals_due}"
                if unassigned > MEDIA_THRESHOLD
                else ""
            )
        )

    for state, count in sorted(facts.affected_by_state.items()):
        if count <= 0:
            continue
        law = laws.get(state)
        if law is None:
            b.warnings.append(
                f"no state-law data for {state} ({count} residents): check its breach-notification statute "
                f"manually"
            )
            continue
        _state(b, law, count, individuals_due, toll_note)


def _state(b: _Builder, law: StateLaw, count: int, federal_due: date, federal_toll_note: str) -> None:
    clock_note = (
        "The state clock starts at determination of the breach; counted here from discovery (the earliest "
        "possible date)."
        if law.clock_starts is ClockStart.DETERMINATION
        else ""
    )
    if law.hipaa_deemed_compliant is True:
        hipaa_note = (
            "HIPAA: this statute exempts HIPAA-regulated entities or deems HIPAA-compliant notice compliant "
            "(see the citation); the state date is kept as the conservative deadline, confirm with counsel."
        )
    elif law.hipaa_deemed_compliant is False:
        hipaa_note = "HIPAA: compliant HIPAA notice does not by itself satisfy this statute."
    else:
        hipaa_note = (
            "HIPAA: whether HIPAA-compliant notice satisfies this statute is not verified; treat as separate."
        )

    if law.individual_window_days is None:
        residents_due, toll_note = federal_due, federal_toll_note
        window_text = "without unreasonable delay (no fixed window; the HIPAA 60-day outer limit is shown)"
    else:
        residents_due, toll_note = b.due(law.individual_window_days, tolled=law.le_delay_applies)
        window_text = f"within {law.individual_window_days} days after {law.clock_starts.value}"
    if b.periods and not law.le_delay_applies:
        toll_note = "This state does not defer to the law-enforcement delay: not tolled."
    b.add(
        ObligationKind.STATE_RESIDENTS,
        law.state,
        residents_due,
        f"{law.citation}: notice to affected {law.name} residents {window_text}",
        f"{count} residents.",
        clock_note,
        toll_note,
        hipaa_note,
        law.notes,
        f"Source: {law.source_url} (verified {law.verified}).",
    )

    regulator = law.regulator
    if regulator is None or count < regulator.min_residents:
        return
    threshold = (
        "any resident" if regulator.min_residents == 1 else f"{regulator.min_residents} or more residents"
    )
    reg_toll = ""
    match regulator.timing:
        case RegulatorTiming.DAYS_AFTER_START:
            assert regulator.days is not None
            due, reg_toll = b.due(regulator.days, tolled=law.le_delay_applies)
            when = f"within {regulator.days} days after {law.clock_starts.value}"
        case RegulatorTiming.BUSINESS_DAYS_AFTER_START:
            assert regulator.days is not None
            due = min(add_business_days(b.facts.discovered_on, regulator.days), residents_due)
            when = (
                f"within {regulator.days} business days after discovery, or by the resident notice if sooner "
                f"(public holidays not excluded; not tolled)"
            )
        case RegulatorTiming.WITH_INDIVIDUAL_NOTICE:
            due, reg_toll = residents_due, toll_note
            when = "no later than the resident notice"
        case RegulatorTiming.BEFORE_INDIVIDUAL_NOTICE:
            due, reg_toll = residents_due, toll_note
            when = "before the resident notice (the date shown is the latest possible)"
        case RegulatorTiming.DAYS_AFTER_INDIVIDUAL_NOTICE:
            assert regulator.days is not None
            due = residents_due + timedelta(days=regulator.days)
            reg_toll = toll_note
            when = f"within {regulator.days} days after the resident notice (assumed sent on its due date)"
        case RegulatorTiming.UNSPECIFIED:
            due, reg_toll = residents_due, toll_note
            when = "no separate deadline in the statute (shown with the resident notice)"
    b.add(
        ObligationKind.STATE_REGULATOR,
        law.state,
        due,
        f"{law.citation}: notice to the {law.name} {regulator.name} ({threshold}), {when}",
        f"{count} residents.",
        clock_note if regulator.timing is RegulatorTiming.DAYS_AFTER_START else "",
        reg_toll,
    )
