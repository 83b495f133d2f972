"""The packaged state table: it loads, validates, and every row's window is applied."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pydantic import ValidationError

from irflow.compliance import (
    IncidentFacts,
    LawEnforcementDelay,
    ObligationKind,
    OralStatement,
    Role,
    compute_obligations,
    load_state_laws,
    parse_state_laws,
)
from irflow.compliance.clock import add_business_days
from irflow.compliance.states import HipaaTreatment, RegulatorTiming, Window, parse_jurisdictions

LAWS = load_state_laws()
DISCOVERED = date(2026, 3, 2)
K = ObligationKind


def compute(state: str, count: int, **extra: object):  # type: ignore[no-untyped-def]
    facts = IncidentFacts(
        role=Role.COVERED_ENTITY,
        discovered_on=DISCOVERED,
        affected_total=count,
        affected_by_state={state: count},
        **extra,  # type: ignore[arg-type]
    )
    return compute_obligations(facts)


def only(result, kind: ObligationKind, state: str):  # type: ignore[no-untyped-def]
    found = [o for o in result.obligations if o.kind is kind and o.jurisdiction == state]
    assert len(found) <= 1
    return found[0] if found else None


def test_table_has_at_least_15_states_with_sources() -> None:
    assert len(LAWS) >= 15
    for code, row in LAWS.items():
        assert code == row.state
        assert row.citation and str(row.source_url).startswith("http")


def test_short_window_states_are_present() -> None:
    windows = {code: row.individual_window_days for code, row in LAWS.items()}
    for code in ("CO", "FL", "WA", "ME", "NY"):
        assert windows[code] == 30, code
    for code in ("VT", "TN", "OH", "WI", "AL", "NM", "RI", "IN", "AZ", "OR", "MD"):
        assert windows[code] == 45, code
    for code in ("TX", "CT", "DE", "LA", "SD"):
        assert windows[code] == 60, code


def test_loading_is_cached() -> None:
    assert load_state_laws() is load_state_laws()
    with pytest.raises(TypeError):
        load_state_laws()["XX"] = LAWS["TX"]  # type: ignore[index]


@pytest.mark.parametrize("code", sorted(LAWS))
def test_every_row_window_is_applied(code: str) -> None:
    row = LAWS[code]
    result = compute(code, 5000)
    residents = only(result, K.STATE_RESIDENTS, code)
    assert residents is not None
    assert row.individual_window_days is not None
    assert residents.due == DISCOVERED + timedelta(days=row.individual_window_days)
    assert row.citation in residents.basis
    regulator = only(result, K.STATE_REGULATOR, code)
    if row.regulator is None:
        assert regulator is None
        return
    assert regulator is not None
    days = row.regulator.days
    expected = {
        RegulatorTiming.DAYS_AFTER_START: lambda: DISCOVERED + timedelta(days=days or 0),
        RegulatorTiming.BUSINESS_DAYS_AFTER_START: lambda: min(
            add_business_days(DISCOVERED, days or 0), residents.due
        ),
        RegulatorTiming.WITH_INDIVIDUAL_NOTICE: lambda: residents.due,
        RegulatorTiming.BEFORE_INDIVIDUAL_NOTICE: lambda: residents.due,
        RegulatorTiming.DAYS_AFTER_INDIVIDUAL_NOTICE: lambda: residents.due + timedelta(days=days or 0),
        RegulatorTiming.UNSPECIFIED: lambda: residents.due,
    }[row.regulator.timing]()
    assert regulator.due == expected


@pytest.mark.parametrize("code", sorted(code for code, row in LAWS.items() if row.regulator is not None))
def test_regulator_threshold_boundary(code: str) -> None:
    threshold = LAWS[code].regulator.min_residents  # type: ignore[union-attr]
    assert only(compute(code, threshold), K.STATE_REGULATOR, code) is not None
    if threshold > 1:
        assert only(compute(code, threshold - 1), K.STATE_REGULATOR, code) is None


def test_known_examples() -> None:
    tx = compute("TX", 250)
    assert only(tx, K.STATE_RESIDENTS, "TX").due == date(2026, 5, 1)
    assert only(tx, K.STATE_REGULATOR, "TX").due == date(2026, 4, 1)
    assert only(compute("TX", 249), K.STATE_REGULATOR, "TX") is None
    vt = compute("VT", 3)
    assert only(vt, K.STATE_REGULATOR, "VT").due == date(2026, 3, 20)  # 14 business days
    assert only(vt, K.STATE_RESIDENTS, "VT").due == date(2026, 4, 16)
    la = compute("LA", 3)
    assert only(la, K.STATE_REGULATOR, "LA").due == date(2026, 5, 11)  # 60 days + 10
    wa = compute("WA", 500)
    assert only(wa, K.STATE_REGULATOR, "WA") is None  # "more than 500"
    assert only(compute("WA", 501), K.STATE_REGULATOR, "WA").due == date(2026, 4, 1)


def test_hipaa_deemed_rows_are_still_listed_and_marked() -> None:
    deemed = [code for code, row in LAWS.items() if row.hipaa_deemed_compliant]
    assert deemed
    for code in deemed:
        residents = only(compute(code, 10), K.STATE_RESIDENTS, code)
        assert residents is not None and "deems HIPAA-compliant notice compliant" in residents.notes


def test_state_dates_are_tolled_when_the_state_defers_to_law_enforcement() -> None:
    delay = LawEnforcementDelay(oral=OralStatement(given_on=DISCOVERED))
    result = compute("FL", 600, law_enforcement_delay=delay)
    assert only(result, K.STATE_RESIDENTS, "FL").due == DISCOVERED + timedelta(days=60)
    assert only(result, K.STATE_REGULATOR, "FL").due == DISCOVERED + timedelta(days=60)


SYNTHETIC = """
states:
  - state: ZZ
"""

ROW = """
states:
  - state: KS
    name: Kansas
    citation: Kan. Stat. Ann. § 50-7a02 (synthetic test row)
    individual_window_days: {window}
    clock_starts: discovery
    le_delay_applies: {le}
    regulator: null
    hipaa_deemed_compliant: false
    source_url: https://example.org/ks
    verified: "2026-01-01"
    notes: synthetic
"""


def test_synthetic_rows_without_window_or_tolling() -> None:
    laws = parse_state_laws(ROW.format(window="null", le="false"))
    delay = LawEnforcementDelay(oral=OralStatement(given_on=DISCOVERED))
    facts = IncidentFacts(
        role=Role.COVERED_ENTITY,
        discovered_on=DISCOVERED,
        affected_total=10,
        affected_by_state={"KS": 10},
        law_enforcement_delay=delay,
    )
    result = compute_obligations(facts, laws)
    residents = only(result, K.STATE_RESIDENTS, "KS")
    individuals = only(result, K.INDIVIDUALS, "US")
    assert residents.due == individuals.due  # "without unreasonable delay": the HIPAA outer limit is shown
    assert "without unreasonable delay" in residents.basis

    laws = parse_state_laws(ROW.format(window="20", le="false"))
    residents = only(compute_obligations(facts, laws), K.STATE_RESIDENTS, "KS")
    assert residents.due == DISCOVERED + timedelta(days=20)
    assert "not tolled" in residents.notes


@pytest.mark.parametrize(
    "text",
    [
        SYNTHETIC,
        ROW.format(window="0", le="true"),
        ROW.format(window="20", le="maybe"),
        ROW.format(window="20", le="true").replace("state: KS", "state: ks"),
        ROW.format(window="20", le="true") + ROW.format(window="20", le="true").replace("states:\n", ""),
        ROW.format(window="20", le="true").replace(
            "regulator: null", "regulator: {name: AG, min_residents: 1, timing: days_after_start, days: null}"
        ),
        ROW.format(window="20", le="true").replace("notes: synthetic", "notes: x\n    extra: 1"),
    ],
)
def test_bad_rows_are_rejected(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_state_laws(text)


# --- the jurisdiction rows (irflow.compliance.states.Jurisdiction) ---------------------------------------

JURISDICTION_ROW = """
jurisdictions:
  - code: ME
    name: Maine
    individual:
      window: {days: 30}
      clock_starts: determination
      citation: Me. Rev. Stat. tit. 10, § 1348(1) (synthetic test row)
      source: https://example.org/me
      checked: statute
    regulators:
      notices:
        - {who: Attorney General, min_residents: 1, timing: unspecified}
      citation: § 1348(5)
      source: https://example.org/me
      checked: statute
    law_enforcement:
      permitted: true
      after_delay: {days: 7, business_days: true}
      citation: § 1348(3)
      source: https://example.org/me
      checked: statute
    hipaa:
      treatment: deemed_with_duties
      surviving_duties: [Attorney General]
      citation: synthetic
      source: https://example.org/me
      checked: secondary
    holiday_calendar: US-ME
    verified: "2026-12-01"
"""


def test_a_synthetic_jurisdiction_row_loads_with_its_calendar() -> None:
    row = parse_jurisdictions(JURISDICTION_ROW)["ME"]
    assert row.individual.window == Window(days=30)
    assert row.law_enforcement.after_delay == Window(days=7, business_days=True)
    assert row.hipaa.treatment is HipaaTreatment.DEEMED_WITH_DUTIES
    assert [n.who for n in row.notices_surviving_hipaa()] == ["Attorney General"]
    # Patriots' Day (third Monday of April) is a Maine holiday: 2026-04-20.
    assert date(2026, 4, 20) in row.business_day_calendar()
    assert row.add_business_days(date(2026, 4, 16), 2) == date(
        2026, 4, 21
    )  # Fri 17, (Mon 20 skipped), Tue 21


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("code: ME", "code: me"),
        ("code: ME", "code: XX"),
        ("window: {days: 30}", "window: {days: 0}"),
        ("window: {days: 30}", "window: {days: 30, business: true}"),
        ("checked: statute", "checked: maybe"),
        (
            "      source: https://example.org/me\n      checked: statute\n    regulators",
            "      checked: statute\n    regulators",
        ),
        ("timing: unspecified}", "timing: days_after_start}"),
        ("timing: unspecified}", "timing: business_days_after_hhs_notice}"),
        ("timing: unspecified}", "timing: unspecified, days: 5}"),
        ("surviving_duties: [Attorney General]", "surviving_duties: [Governor]"),
        ("treatment: deemed_with_duties", "treatment: exempt"),
        ("treatment: deemed_with_duties", "treatment: deemed"),
        ("holiday_calendar: US-ME", "holiday_calendar: US-ZZ"),
        ("holiday_calendar: US-ME", "holiday_calendar: XX-ME"),
        ("permitted: true", "permitted: false"),
        ('verified: "2026-12-01"', 'verified: "2026-13-01"'),
        ("    verified:", "    extra: 1\n    verified:"),
    ],
)
def test_bad_jurisdiction_rows_are_rejected(old: str, new: str) -> None:
    assert old in JURISDICTION_ROW
    with pytest.raises(ValidationError):
        parse_jurisdictions(JURISDICTION_ROW.replace(old, new, 1))


def test_a_jurisdiction_listed_twice_is_rejected() -> None:
    body = JURISDICTION_ROW.split("jurisdictions:\n", 1)[1]
    with pytest.raises(ValidationError):
        parse_jurisdictions(JURISDICTION_ROW + body)
