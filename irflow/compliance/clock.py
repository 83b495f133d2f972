"""The compliance clock: obligations and due dates for the facts of a breach (45 CFR 164.404-414, states).

Pure functions. Dates are inputs; the system clock is never read. Every due date is the earliest date safe
under every reading applied; a later reading is shown as ``outer_bound`` with its basis. Notices recorded as
sent give each obligation its status and move the deadlines that run from a send date. See
docs/compliance.md for the readings applied and what irflow does not decide.

Federal rule text: https://www.ecfr.gov/current/title-45/subtitle-A/subchapter-C/part-164/subpart-D
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta

import holidays

from irflow.compliance.delay import (
    STRICT_BASIS,
    TOLLING_BASIS,
    add_days_tolled,
    in_force_until,
    last_delay_end_before,
    tolling_periods,
    two_readings,
)
from irflow.compliance.models import (
    HIPAA_WINDOW_DAYS,
    US,
    ComplianceResult,
    IncidentFacts,
    Obligation,
    ObligationKind,
    ObligationStatus,
    Role,
    SentNotice,
    TollingPeriod,
    normalize_state,
)
from irflow.compliance.states import (
    ClockStart,
    Condition,
    ConditionalRule,
    HipaaTreatment,
    Jurisdiction,
    RegulatorNotice,
    RegulatorTiming,
    Window,
    load_conditional_rules,
    load_jurisdictions,
)
from irflow.compliance.states import add_business_days as _add_business_days

HHS_THRESHOLD = 500  # 164.408(b): "500 or more"; the portal's "Breach Affecting: 500 or More Individuals"
MEDIA_THRESHOLD = 500  # 164.406(a): "more than 500 residents of a State or jurisdiction"
SUBSTITUTE_WEB_THRESHOLD = 10  # 164.404(d)(2)(ii): "10 or more individuals"
SUBSTITUTE_DAYS = 90  # 164.404(d)(2)(ii)(A),(B): web posting or media, and a toll-free number, 90 days

_KIND_ORDER = {kind: index for index, kind in enumerate(ObligationKind)}
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_NO_HOLIDAYS = holidays.HolidayBase()

__all__ = [
    "HHS_THRESHOLD",
    "MEDIA_THRESHOLD",
    "add_business_days",
    "add_days_tolled",
    "annual_log_due",
    "compute_obligations",
    "tolling_periods",
]


def add_business_days(start: date, days: int, calendar: holidays.HolidayBase | None = None) -> date:
    """``days`` business days after ``start``: Monday-Friday, skipping the holidays of ``calendar`` if "
    "given."""
    return _add_business_days(start, days, _NO_HOLIDAYS if calendar is None else calendar)


def annual_log_due(discovered_on: date) -> date:
    """164.408(c): "not later than 60 days after the end of each calendar year" of discovery."""
    return date(discovered_on.year, 12, 31) + timedelta(days=HIPAA_WINDOW_DAYS)


class _Builder:
    def __init__(self, facts: IncidentFacts, periods: tuple[TollingPeriod, ...]) -> None:
        self.facts = facts
        self.day_zero = facts.day_zero
        self.periods = periods
        self.obligations: list[Obligation] = []
        self.warnings: list[str] = []

    def add(
        self,
        kind: ObligationKind,
        jurisdiction: str,
        due: date,
        basis: str,
        *notes: str,
        recipient: str = "",
        outer_bound: date | None = None,
        outer_basis: str = "",
        hipaa_treatment: str | None = None,
        not_required: str = "",
    ) -> Obligation:
        text = [n.strip() for n in notes if n and n.strip()]
        sent_on = self.facts.sent_on(kind, jurisdiction, recipient)
        if not_required:
            status = ObligationStatus.NOT_REQUIRED
            text.insert(0, f"Not required: {not_required}")
        elif sent_on is None:
            status = ObligationStatus.OPEN
        elif sent_on <= due:
            status = ObligationStatus.MET
            text.append(f"Sent on {sent_on}.")
        else:
            status = ObligationStatus.LATE
            within = (
                f", within the outer bound {outer_bound} ({outer_basis})"
                if outer_bound is not None and sent_on <= outer_bound
                else ""
            )
            text.append(f"Sent on {sent_on}, {(sent_on - due).days} days after the due date{within}.")
        obligation = Obligation(
            kind=kind,
            jurisdiction=jurisdiction,
            recipient=recipient,
            due=due,
            basis=basis,
            notes=" ".join(text),
            status=status,
            sent_on=sent_on,
            outer_bound=outer_bound if outer_bound is not None and outer_bound > due else None,
            outer_basis=outer_basis if outer_bound is not None and outer_bound > due else "",
            hipaa_treatment=hipaa_treatment,
        )
        self.obligations.append(obligation)
        return obligation

    def sent_or_due(self, obligation: Obligation | None) -> tuple[date, str] | None:
        """The date a dependent deadline counts from: the recorded send date, or the due date until then."""
        if obligation is None:
            return None
        if obligation.sent_on is not None:
            return obligation.sent_on, f"counted from its recorded send date {obligation.sent_on}"
        return obligation.due, (
            f"counted from its due date {obligation.due} until its send date is recorded (then recomputed)"
        )


def compute_obligations(
    facts: IncidentFacts,
    jurisdictions: Mapping[str, Jurisdiction] | None = None,
    conditional_rules: Mapping[str, ConditionalRule] | None = None,
) -> ComplianceResult:
    """The notification obligations for ``facts``, sorted by due date, with warnings.

    ``jurisdictions`` and ``conditional_rules`` default to the packaged data (``load_jurisdictions``,
    ``load_conditional_rules`` of :mod:`irflow.compliance.states`).
    """
    periods, delay_warnings = tolling_periods(facts.law_enforcement_delay)
    b = _Builder(facts, periods)
    b.warnings.extend(delay_warnings)
    _imputation(b)

    if facts.affected_total == 0:
        b.warnings.append(
            "no affected individuals: no notification obligations computed (re-run when the count is known)"
        )
    elif facts.role is Role.BUSINESS_ASSOCIATE:
        _business_associate(b)
    else:
        federal = _covered_entity(b) if facts.hipaa else {}
        if not facts.hipaa:
            b.warnings.append(
                "--no-hipaa: the data is not PHI held by a HIPAA covered entity or business associate, so no "
                "HIPAA notice is computed and every state law applies in full"
            )
        if facts.affected_by_state:
            _states(b, load_jurisdictions() if jurisdictions is None else jurisdictions, federal)
        if facts.ca_facility:
            rules = load_conditional_rules() if conditional_rules is None else conditional_rules
            _conditional(b, rules, Condition.CA_LICENSED_HEALTH_FACILITY)

    _unmatched_sent(b)
    obligations = sorted(
        b.obligations, key=lambda o: (o.due, _KIND_ORDER[o.kind], o.jurisdiction, o.recipient)
    )
    for ob in obligations:
        if ob.status is ObligationStatus.OPEN and ob.due.weekday() >= 5:
            b.warnings.append(
                f"{ob.kind.value} ({ob.jurisdiction}) is due on a {_WEEKDAYS[ob.due.weekday()]}, {ob.due}: "
                f"the deadline does not roll forward; send by the business day before"
            )
    return ComplianceResult(obligations=tuple(obligations), warnings=tuple(b.warnings), tolling=periods)


def _imputation(b: _Builder) -> None:
    agent = b.facts.ba_agent_discovered_on
    if agent is None:
        return
    if b.facts.role is Role.BUSINESS_ASSOCIATE:
        b.warnings.append(
            "--ba-agent-discovered applies to a covered entity (its agent's knowledge is imputed to it) and "
            "is "
            "ignored for role business_associate"
        )
    elif agent >= b.facts.discovered_on:
        b.warnings.append(
            f"the business associate (agent) discovered the breach on {agent}, not before the covered entity "
            f"({b.facts.discovered_on}): the covered entity's own discovery date is day 0"
        )


def _day_zero_note(b: _Builder) -> str:
    if b.day_zero != b.facts.discovered_on:
        return (
            f"Day 0 is {b.day_zero}, when the business associate acting as the covered entity's agent "
            "discovered "
            f"the breach: its knowledge is imputed to the covered entity (45 CFR 164.404(a)(2)); the covered "
            f"entity's own discovery was {b.facts.discovered_on}."
        )
    return f"Day 0 is the discovery date {b.day_zero}."


def _federal(b: _Builder, kind: ObligationKind, jurisdiction: str, days: int, basis: str, *notes: str):  # type: ignore[no-untyped-def]
    plain = b.day_zero + timedelta(days=days)
    readings = two_readings(b.day_zero, plain, b.periods)
    return b.add(
        kind,
        jurisdiction,
        readings.due,
        basis,
        *notes,
        readings.note,
        outer_bound=readings.outer_bound,
        outer_basis=TOLLING_BASIS if readings.outer_bound else "",
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
    if not facts.hipaa:
        b.warnings.append(
            "--no-hipaa with role business_associate: no HIPAA notice to a covered entity is computed; state "
            "vendor-to-owner rules are not modelled"
        )
        return
    basis = (
        "45 CFR 164.410(b): business associate notice to the covered entity without unreasonable delay and "
        "no later than 60 calendar days after discovery"
    )
    if window < HIPAA_WINDOW_DAYS:
        basis += f" (business associate agreement: {window} days)"
    _federal(
        b,
        ObligationKind.BA_TO_CE,
        US,
        window,
        basis,
        contract_note,
        "Include the identity of each affected individual and the facts the covered entity needs for its "
        "notices (164.410(c)).",
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


def _covered_entity(b: _Builder) -> dict[ObligationKind, Obligation]:
    """The federal notices of a covered entity; returns them by kind for the deadlines that depend on them."""
    facts = b.facts
    if facts.ba_contract_days is not None:
        b.warnings.append("--ba-contract-days applies to role business_associate only and is ignored")
    out: dict[ObligationKind, Obligation] = {}
    kin = (
        f"{facts.deceased_with_next_of_kin} deceased: notify the next of kin or personal representative by "
        f"first-class mail (164.404(d)(1)(ii))."
        if facts.deceased_with_next_of_kin
        else ""
    )
    individuals = _federal(
        b,
        ObligationKind.INDIVIDUALS,
        US,
        HIPAA_WINDOW_DAYS,
        "45 CFR 164.404(b): notice to each affected individual without unreasonable delay and no later than "
        "60 calendar days after discovery",
        f"{facts.affected_total} individuals.",
        _day_zero_note(b),
        kin,
    )
    out[ObligationKind.INDIVIDUALS] = individuals

    if facts.affected_total >= HHS_THRESHOLD:
        # 164.408(b): "contemporaneously with" the individual notice: never later than the day it went.
        due, outer = individuals.due, individuals.outer_bound
        note = "Submit through the HHS OCR breach portal at the same time as the individual notice."
        if individuals.sent_on is not None and individuals.sent_on < due:
            due, outer = individuals.sent_on, None
            note += f" The individual notice went on {individuals.sent_on}: this one is due with it."
        out[ObligationKind.HHS] = b.add(
            ObligationKind.HHS,
            US,
            due,
            "45 CFR 164.408(b): notice to the Secretary of HHS contemporaneously with the individual notice "
            "(500 or more individuals)",
            note,
            outer_bound=outer,
            outer_basis=TOLLING_BASIS if outer else "",
        )
    else:
        out[ObligationKind.HHS_ANNUAL_LOG] = _annual_log(b)

    for state, count in sorted(facts.affected_by_state.items()):
        if count > MEDIA_THRESHOLD:
            _federal(
                b,
                ObligationKind.MEDIA,
                state,
                HIPAA_WINDOW_DAYS,
                "45 CFR 164.406: notice to prominent media outlets serving the State or jurisdiction (more "
                "than 500 residents affected) no later than 60 calendar days after discovery",
                f"{count} residents of {state}.",
            )
    unassigned = facts.affected_total - sum(facts.affected_by_state.values())
    if unassigned > 0:
        b.warnings.append(
            f"{unassigned} affected individuals have no state: their state-law obligations are not computed"
            + (
                f", and if more than 500 of them live in one state or jurisdiction a media notice "
                f"(45 CFR 164.406) is due by {individuals.due}"
                if unassigned > MEDIA_THRESHOLD
                else ""
            )
        )
    _substitute(b, individuals)
    if facts.urgent:
        b.add(
            ObligationKind.URGENT_NOTICE,
            US,
            individuals.due,
            "45 CFR 164.404(d)(3): in a case the covered entity deems urgent because of possible imminent "
            "misuse "
            "of unsecured PHI, it may also inform individuals by telephone or other means, in addition to "
            "the "
            "written notice",
            "Tracked because the incident is marked urgent: call as soon as possible; the date shown is the "
            "written notice's outer limit, not a grace period. It does not replace the written notice.",
            outer_bound=individuals.outer_bound,
            outer_basis=individuals.outer_basis,
        )
    return out


def _annual_log(b: _Builder) -> Obligation:
    due = annual_log_due(b.day_zero)
    note = f"Annual submission for breaches discovered in {b.day_zero.year}."
    outer = None
    end = in_force_until(due, b.periods)
    if end is not None:
        outer = end
        note += (
            f" The law-enforcement delay is in force on {due}: 164.412 may allow the submission to wait "
            "until "
            f"{end}; the due date is not moved."
        )
        b.warnings.append(
            f"the annual HHS log (45 CFR 164.408(c)) is due on {due}, inside the law-enforcement delay that "
            f"ends {end}: irflow keeps {due} as the due date"
        )
    return b.add(
        ObligationKind.HHS_ANNUAL_LOG,
        US,
        due,
        "45 CFR 164.408(c): breaches affecting fewer than 500 individuals, logged and submitted to HHS "
        "not later than 60 days after the end of the calendar year of discovery",
        note,
        outer_bound=outer,
        outer_basis=STRICT_BASIS.replace(": due the day it ends", ": may wait until it ends")
        if outer
        else "",
    )


def _substitute(b: _Builder, individuals: Obligation) -> None:
    missing = b.facts.out_of_date_addresses
    if not missing:
        return
    kin = (
        "Not owed for next of kin or personal representatives whose contact information is out of date "
        "(164.404(d)(2))."
    )
    if missing < SUBSTITUTE_WEB_THRESHOLD:
        basis = (
            "45 CFR 164.404(d)(2)(i): fewer than 10 individuals with insufficient or out-of-date contact "
            "information: substitute notice by an alternative form of written notice, telephone, or other "
            "means"
        )
        notes = f"{missing} individuals without usable contact information."
    else:
        start = individuals.sent_on or individuals.due
        basis = (
            "45 CFR 164.404(d)(2)(ii): 10 or more individuals with insufficient or out-of-date contact "
            "information: a conspicuous posting for 90 days on the home page of the web site, or conspicuous "
            "notice in major print or broadcast media where they likely reside, and a toll-free number "
            "active "
            "for at least 90 days"
        )
        notes = (
            f"{missing} individuals without usable contact information. Keep the posting (or media notice) "
            "and "
            f"the toll-free number up for at least {SUBSTITUTE_DAYS} days: if posted on {start}, until "
            f"{start + timedelta(days=SUBSTITUTE_DAYS)} or later."
        )
    b.add(
        ObligationKind.SUBSTITUTE_NOTICE,
        US,
        individuals.due,
        basis,
        notes,
        kin,
        outer_bound=individuals.outer_bound,
        outer_basis=individuals.outer_basis,
    )


# --- states -------------------------------------------------------------------------------------------------


def _treatment(b: _Builder, row: Jurisdiction) -> HipaaTreatment | None:
    return row.hipaa.treatment if b.facts.hipaa else None


def _states(b: _Builder, rows: Mapping[str, Jurisdiction], federal: dict[ObligationKind, Obligation]) -> None:
    for state, count in sorted(b.facts.affected_by_state.items()):
        if count <= 0:
            continue
        row = rows.get(state)
        if row is None:
            b.warnings.append(
                f"no breach-notification data for {state} ({count} residents): check its statute manually"
            )
            continue
        residents = _residents(b, row, count, federal.get(ObligationKind.INDIVIDUALS))
        for notice in row.regulators.notices:
            if count >= notice.min_residents:
                _regulator(b, row, notice, count, residents, federal)


def _window_due(row: Jurisdiction, start: date, window: Window) -> date:
    if window.business_days:
        return row.add_business_days(start, window.days)
    return start + timedelta(days=window.days)


def _sources(row: Jurisdiction, *groups) -> str:  # type: ignore[no-untyped-def]
    return " ".join(
        f"Source: {g.source} (checked: {g.checked.value}, verified {row.verified})." for g in groups
    )


def _delayed(
    b: _Builder, row: Jurisdiction, plain: date, *, tolled_by_statute: bool
) -> tuple[date, date | None, str, str]:
    """A state deadline under a law-enforcement delay: due, outer bound, its basis, and a note."""
    le = row.law_enforcement
    if not b.periods:
        return plain, None, "", ""
    if not le.permitted or not tolled_by_statute:
        what = "does not provide for" if not le.permitted else "does not delay this notice for"
        return plain, None, "", f"The statute {what} a law-enforcement delay: not moved ({le.citation})."
    if le.after_delay is not None:
        end = in_force_until(plain, b.periods)
        if end is not None:
            due = _window_due(row, end, le.after_delay)
            return (
                due,
                None,
                "",
                (
                    f"After a law-enforcement delay the statute allows {le.after_delay.describe()} from its "
                    "end "
                    f"({end}): due {due} ({le.citation})."
                ),
            )
        ended = last_delay_end_before(plain, b.periods)
        if ended is not None:
            post = _window_due(row, ended, le.after_delay)
            if post >= plain:
                return plain, None, "", ""
            return (
                post,
                plain,
                f"{le.citation} read as applying its post-delay window only to a notice delayed past the "
                f"statute's own window",
                f"The law-enforcement delay ended on {ended}, before this deadline; the statute's "
                f"{le.after_delay.describe()} after a delay end sooner: due {post} ({le.citation}).",
            )
        return plain, None, "", ""
    readings = two_readings(b.day_zero, plain, b.periods)
    return (
        readings.due,
        readings.outer_bound,
        TOLLING_BASIS.replace("45 CFR 164.412", f"{le.citation} (law-enforcement delay)")
        if readings.outer_bound
        else "",
        readings.note,
    )


def _residents(b: _Builder, row: Jurisdiction, count: int, individuals: Obligation | None) -> Obligation:
    ind = row.individual
    treatment = _treatment(b, row)
    clock_note = (
        "The state clock starts at determination of the breach; counted here from discovery (the earliest "
        "possible date)."
        if ind.clock_starts is ClockStart.DETERMINATION
        else ""
    )
    outer: date | None = None
    outer_basis = ""
    if ind.window is None:
        if individuals is not None:
            due, delay_note = individuals.due, ""
            window_text = (
                "without unreasonable delay (no fixed window; the HIPAA 60-day outer limit is shown)"
            )
        else:
            due = b.day_zero + timedelta(days=HIPAA_WINDOW_DAYS)
            delay_note = ""
            window_text = (
                "without unreasonable delay (no fixed window; the date shown is a planning date 60 days "
                "after "
                "discovery, not a deadline of the statute: it may require notice sooner)"
            )
    else:
        plain = _window_due(row, b.day_zero, ind.window)
        due, outer, outer_basis, delay_note = _delayed(b, row, plain, tolled_by_statute=True)
        window_text = f"within {ind.window.describe()} after {ind.clock_starts.value}"
        if ind.window.business_days:
            window_text += f" (business days skip weekends and {row.holiday_calendar} holidays)"
    not_required = ""
    hipaa_note = ""
    match treatment:
        case HipaaTreatment.EXEMPT:
            not_required = f"the statute exempts HIPAA-regulated entities ({row.hipaa.citation})."
        case HipaaTreatment.DEEMED_WITH_DUTIES:
            not_required = (
                "an entity that notifies under HIPAA (45 CFR 164.404) is deemed compliant "
                f"({row.hipaa.citation}); "
                f"the HIPAA individual notice must go out."
            )
        case HipaaTreatment.NOT_DEEMED:
            hipaa_note = "HIPAA: a HIPAA-compliant notice does not by itself satisfy this statute."
        case HipaaTreatment.NOT_VERIFIED:
            hipaa_note = (
                "HIPAA: whether HIPAA-compliant notice satisfies this statute was not verified; treated as "
                "not deemed (the notice is owed)."
            )
    return b.add(
        ObligationKind.STATE_RESIDENTS,
        row.code,
        due,
        f"{ind.citation}: notice to affected {row.name} residents {window_text}",
        f"{count} residents.",
        clock_note,
        delay_note,
        hipaa_note,
        row.hipaa.note if treatment is not None else "",
        ind.note,
        row.notes,
        _sources(row, ind),
        outer_bound=outer,
        outer_basis=outer_basis,
        hipaa_treatment=treatment.value if treatment is not None else None,
        not_required=not_required,
    )


def _regulator(
    b: _Builder,
    row: Jurisdiction,
    notice: RegulatorNotice,
    count: int,
    residents: Obligation,
    federal: dict[ObligationKind, Obligation],
) -> None:
    treatment = _treatment(b, row)
    regs = row.regulators
    threshold = "any resident" if notice.min_residents == 1 else f"{notice.min_residents} or more residents"
    # The notice to residents actually given: under a deemed-compliant treatment, the HIPAA individual notice.
    given = residents
    if residents.status is ObligationStatus.NOT_REQUIRED and ObligationKind.INDIVIDUALS in federal:
        given = federal[ObligationKind.INDIVIDUALS]
    outer: date | None = None
    outer_basis = ""
    notes: list[str] = []
    match notice.timing:
        case RegulatorTiming.DAYS_AFTER_START | RegulatorTiming.BUSINESS_DAYS_AFTER_START:
            assert notice.days is not None
            plain = _window_due(row, b.day_zero, Window(days=notice.days, business_days=notice.business_days))
            due, outer, outer_basis, delay_note = _delayed(
                b, row, plain, tolled_by_statute=row.law_enforcement.tolls_regulator
            )
            unit = "business days" if notice.business_days else "days"
            when = f"within {notice.days} {unit} after {row.individual.clock_starts.value}"
            notes.append(delay_note)
        case RegulatorTiming.WITH_INDIVIDUAL_NOTICE | RegulatorTiming.UNSPECIFIED:
            anchor = b.sent_or_due(given)
            assert anchor is not None
            due, how = anchor
            outer, outer_basis = (
                (given.outer_bound, given.outer_basis) if given.sent_on is None else (None, "")
            )
            when = (
                "no later than the notice to residents"
                if notice.timing is RegulatorTiming.WITH_INDIVIDUAL_NOTICE
                else "no separate deadline in the statute (shown with the notice to residents)"
            )
            notes.append(f"The notice to residents is {how}.")
        case RegulatorTiming.BEFORE_INDIVIDUAL_NOTICE:
            anchor = b.sent_or_due(given)
            assert anchor is not None
            due, how = anchor
            outer, outer_basis = (
                (given.outer_bound, given.outer_basis) if given.sent_on is None else (None, "")
            )
            when = "before the notice to residents"
            notes.append(f"Send it before the notice to residents goes out; that notice is {how}.")
        case (
            RegulatorTiming.DAYS_AFTER_INDIVIDUAL_NOTICE
            | RegulatorTiming.BUSINESS_DAYS_AFTER_INDIVIDUAL_NOTICE
        ):
            assert notice.days is not None
            anchor = b.sent_or_due(given)
            assert anchor is not None
            due = _window_due(row, anchor[0], Window(days=notice.days, business_days=notice.business_days))
            unit = "business days" if notice.business_days else "days"
            when = f"within {notice.days} {unit} after the notice to residents"
            notes.append(f"The notice to residents is {anchor[1]}.")
        case RegulatorTiming.BUSINESS_DAYS_AFTER_HHS_NOTICE:
            assert notice.days is not None
            hhs = federal.get(ObligationKind.HHS) or federal.get(ObligationKind.HHS_ANNUAL_LOG)
            anchor = b.sent_or_due(hhs)
            if anchor is None:
                b.warnings.append(
                    f"{row.code} {notice.who}: due {notice.days} business days after notifying HHS, but no "
                    "HHS "
                    f"notice is computed (--no-hipaa): not computed; check {regs.citation}"
                )
                return
            due = row.add_business_days(anchor[0], notice.days)
            when = f"within {notice.days} business days after notifying the Secretary of HHS"
            notes.append(f"The HHS notice is {anchor[1]}.")
    if notice.outer_limit is not None:
        # "... or within N days after the clock start, whichever is sooner".
        limit = _window_due(row, b.day_zero, notice.outer_limit)
        when += (
            f", and no later than {notice.outer_limit.describe()} after {row.individual.clock_starts.value}"
        )
        if limit < due:
            due, outer, outer_basis = limit, None, ""
            notes.append(f"The statute's limit of {notice.outer_limit.describe()} is sooner: due {limit}.")
    not_required = ""
    if treatment is HipaaTreatment.EXEMPT:
        not_required = f"the statute exempts HIPAA-regulated entities ({row.hipaa.citation})."
    elif treatment is HipaaTreatment.DEEMED_WITH_DUTIES and notice.who not in row.hipaa.surviving_duties:
        not_required = (
            f"deemed compliant by the HIPAA notice ({row.hipaa.citation}); this duty does not survive."
        )
    elif treatment is HipaaTreatment.DEEMED_WITH_DUTIES:
        notes.append(f"Owed even when deemed compliant under HIPAA ({row.hipaa.citation}).")
    b.add(
        ObligationKind.STATE_REGULATOR,
        row.code,
        due,
        f"{regs.citation}: notice to the {row.name} {notice.who} ({threshold}), {when}",
        f"{count} residents.",
        *notes,
        notice.note,
        regs.note,
        _sources(row, regs),
        recipient=notice.who if len(regs.notices) > 1 else "",
        outer_bound=outer,
        outer_basis=outer_basis,
        hipaa_treatment=treatment.value if treatment is not None else None,
        not_required=not_required,
    )


def _conditional(b: _Builder, rules: Mapping[str, ConditionalRule], condition: Condition) -> None:
    matching = [r for r in rules.values() if r.applies_when is condition]
    if not matching:
        b.warnings.append(f"no rule data for {condition.value}: check the statute manually")
    for rule in matching:
        due, outer, outer_basis, note = _rule_dates(b, rule)
        for who in rule.recipients:
            kind = (
                ObligationKind.STATE_RESIDENTS if "patient" in who.lower() else ObligationKind.STATE_REGULATOR
            )
            b.add(
                kind,
                rule.jurisdiction,
                due,
                f"{rule.citation}: notice to the {who} within {rule.window.describe()} after "
                f"{rule.clock_starts.value}",
                note,
                rule.note,
                f"Source: {rule.source} (checked: {rule.checked.value}, verified {rule.verified}).",
                recipient=rule.key + ":" + who,
                outer_bound=outer,
                outer_basis=outer_basis,
            )


def _rule_dates(b: _Builder, rule: ConditionalRule) -> tuple[date, date | None, str, str]:
    """A conditional rule's due date under a law-enforcement delay: due, outer bound, its basis, a note."""

    def window_from(start: date, window: Window) -> date:
        if window.business_days:
            return rule.add_business_days(start, window.days)
        return start + timedelta(days=window.days)

    plain = window_from(b.day_zero, rule.window)
    after = rule.after_delay
    if not b.periods:
        return plain, None, "", ""
    if after is None:
        return plain, None, "", "The rule has no law-enforcement delay provision in the data: not moved."
    end = in_force_until(plain, b.periods)
    if end is not None:
        due = window_from(end, after)
        return (
            due,
            None,
            "",
            f"After the law-enforcement delay (ends {end}): {after.describe()} from its end.",
        )
    ended = last_delay_end_before(plain, b.periods)
    post = window_from(ended, after) if ended is not None else plain
    if post >= plain:
        return plain, None, "", ""
    return (
        post,
        plain,
        f"{rule.citation} read as applying its post-delay window only to a report delayed past its window",
        f"The law-enforcement delay ended on {ended}, before this deadline; {after.describe()} after it end "
        f"sooner: due {post}.",
    )


def _unmatched_sent(b: _Builder) -> None:
    keys = {o.key for o in b.obligations}
    for notice in b.facts.sent:
        if notice.key not in keys:
            b.warnings.append(
                f"a notice recorded as sent ({notice.kind.value} {notice.jurisdiction}"
                f"{' ' + notice.recipient if notice.recipient else ''}, {notice.on}) matches no obligation "
                f"computed for these facts"
            )


# --- notices recorded as sent -----------------------------------------------------------------------------


def pick_recipient(recipients: list[str], text: str, label: str) -> str:
    """The one recipient ``text`` names among an obligation's ``recipients`` (case-insensitive prefix; empty
    text when there is only one). ValueError naming the choices otherwise."""
    wanted = text.strip().lower()
    matches = [r for r in recipients if r.lower() == wanted] or [
        r for r in recipients if r.lower().startswith(wanted)
    ]
    if len(matches) == 1:
        return matches[0]
    if not recipients:
        raise ValueError(f"no {label} obligation for these facts")
    choices = "; ".join(repr(r) for r in sorted(recipients))
    if not matches:
        raise ValueError(f"{label}: no recipient {text!r}; name one of {choices}")
    raise ValueError(f"{label} has several recipients: name one of {choices}")


def resolve_sent(
    result: ComplianceResult, notices: list[tuple[str, str, str, date]]
) -> tuple[SentNotice, ...]:
    """``(kind, jurisdiction, recipient text, date)`` as typed on a command line, matched to the obligations
    of ``result``. ValueError when one names no obligation or is ambiguous."""
    resolved = []
    for kind_text, jurisdiction_text, recipient_text, on in notices:
        try:
            kind = ObligationKind(kind_text.strip().lower())
        except ValueError:
            kinds = ", ".join(k.value for k in ObligationKind)
            raise ValueError(f"--sent: unknown kind {kind_text!r} (one of {kinds})") from None
        jurisdiction = US if jurisdiction_text.strip().upper() == US else normalize_state(jurisdiction_text)
        label = f"{kind.value} {jurisdiction}"
        recipients = [
            o.recipient for o in result.obligations if (o.kind, o.jurisdiction) == (kind, jurisdiction)
        ]
        recipient = pick_recipient(recipients, recipient_text, label)
        resolved.append(SentNotice(kind=kind, jurisdiction=jurisdiction, recipient=recipient, on=on))
    return tuple(resolved)
