"""The packaged jurisdiction data: every US jurisdiction loads, validates, is cited, and is documented.

Each known-rule vector names the provision it pins; the generated section of docs/compliance.md must match the
data file (regenerate it with ``python -m irflow.compliance.docgen``).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from pydantic import ValidationError

from irflow.compliance import docgen
from irflow.compliance.states import (
    REQUIRED_JURISDICTIONS,
    Checked,
    ClockStart,
    Condition,
    HipaaTreatment,
    RegulatorTiming,
    Window,
    load_conditional_rules,
    load_jurisdiction_table,
    load_jurisdictions,
    parse_jurisdictions,
)

ROWS = load_jurisdictions()
T = RegulatorTiming
H = HipaaTreatment


def test_every_us_jurisdiction_has_exactly_one_row() -> None:
    assert len(REQUIRED_JURISDICTIONS) == 54
    assert set(ROWS) == REQUIRED_JURISDICTIONS
    assert len(load_jurisdiction_table().jurisdictions) == 54
    for code, row in ROWS.items():
        assert row.code == code


def test_loading_is_cached_and_read_only() -> None:
    assert load_jurisdictions() is load_jurisdictions()
    with pytest.raises(TypeError):
        load_jurisdictions()["XX"] = ROWS["TX"]  # type: ignore[index]


@pytest.mark.parametrize("code", sorted(REQUIRED_JURISDICTIONS))
def test_every_field_group_is_cited_with_its_source_and_check(code: str) -> None:
    row = ROWS[code]
    for group in (row.individual, row.regulators, row.law_enforcement, row.hipaa):
        assert group.citation.strip()
        assert group.source.scheme in {"http", "https"} and group.source.host
        assert isinstance(group.checked, Checked)
    assert row.verified >= date(2026, 11, 22)


@pytest.mark.parametrize("code", sorted(REQUIRED_JURISDICTIONS))
def test_every_business_day_calendar_resolves_in_the_holidays_library(code: str) -> None:
    row = ROWS[code]
    calendar = row.business_day_calendar()
    assert row.holiday_calendar == f"US-{code}"
    assert date(2027, 1, 1) in calendar  # New Year's Day is a public holiday everywhere in the table
    assert date(2027, 1, 4) not in calendar  # an ordinary Monday
    # 2027-01-01 is a Friday: one business day after Thursday 31 December 2026 is Monday 4 January 2027.
    assert row.add_business_days(date(2026, 12, 31), 1) == date(2027, 1, 4)


@pytest.mark.parametrize(
    ("code", "holiday", "start", "days", "due"),
    [
        # Vermont's preliminary notice (9 V.S.A. § 2435(b)) skips Town Meeting Day (Tue 3 March).
        ("VT", date(2026, 3, 3), date(2026, 3, 2), 1, date(2026, 3, 4)),
        # Maine's 7 business days after a delay (10 M.R.S. § 1348(3)) skip Patriots' Day (Mon 20 April).
        ("ME", date(2026, 4, 20), date(2026, 4, 17), 7, date(2026, 4, 29)),
        # Puerto Rico's calendar knows Three Kings Day (Tue 6 January).
        ("PR", date(2026, 1, 6), date(2026, 1, 5), 1, date(2026, 1, 7)),
        # Guam Discovery Day (Mon 2 March).
        ("GU", date(2026, 3, 2), date(2026, 2, 27), 1, date(2026, 3, 3)),
    ],
)
def test_business_days_skip_the_jurisdictions_own_holidays(
    code: str, holiday: date, start: date, days: int, due: date
) -> None:
    row = ROWS[code]
    assert holiday in row.business_day_calendar()
    assert row.add_business_days(start, days) == due


def _regulator(code: str, who: str):  # type: ignore[no-untyped-def]
    found = [n for n in ROWS[code].regulators.notices if n.who == who]
    assert len(found) == 1, (code, who, [n.who for n in ROWS[code].regulators.notices])
    return found[0]


@pytest.mark.parametrize(
    ("code", "treatment", "surviving"),
    [
        ("NM", H.EXEMPT, ()),  # N.M. Stat. § 57-12C-8
        ("OH", H.EXEMPT, ()),  # Ohio Rev. Code § 1349.19 (S.B. 126)
        ("TN", H.EXEMPT, ()),  # Tenn. Code § 47-18-2107
        ("AZ", H.EXEMPT, ()),  # A.R.S. § 18-552(N)
        ("WI", H.EXEMPT, ()),  # Wis. Stat. § 134.98
        ("WA", H.DEEMED_WITH_DUTIES, ("Attorney General",)),  # RCW 19.255.010 (HITECH-compliant PHI)
        ("OR", H.DEEMED_WITH_DUTIES, ("Attorney General",)),  # ORS 646A.604 (copy to the AG)
        ("DE", H.DEEMED_WITH_DUTIES, ()),  # 6 Del. C. § 12B-104(b): the whole chapter
        ("CT", H.DEEMED_WITH_DUTIES, ("Attorney General",)),  # Conn. Gen. Stat. § 36a-701b
        ("FL", H.DEEMED_WITH_DUTIES, ("Department of Legal Affairs",)),  # Fla. Stat. § 501.171(4)
        (
            "IL",
            H.DEEMED_WITH_DUTIES,
            ("Attorney General (copy of the HHS breach notice)",),
        ),  # 815 ILCS 530/50
        ("MD", H.DEEMED_WITH_DUTIES, ()),  # Md. Com. Law § 14-3507(d): the whole subtitle
        ("ND", H.DEEMED_WITH_DUTIES, ()),  # N.D. Cent. Code § 51-30-06: the whole chapter
        ("KS", H.DEEMED_WITH_DUTIES, ()),  # Kan. Stat. § 50-7a02(e)
        ("SD", H.DEEMED_WITH_DUTIES, ("Attorney General",)),  # SDCL § 22-40-26
        (
            "MA",
            H.DEEMED_WITH_DUTIES,
            (
                "Attorney General",
                "Director of the Office of Consumer Affairs and Business Regulation",
            ),
        ),  # M.G.L. c. 93H, § 5
        (
            "NY",
            H.DEEMED_WITH_DUTIES,
            (
                "Attorney General, Department of State and Division of State Police",
                "Attorney General (copy of the HHS breach notice)",
            ),
        ),  # GBL § 899-aa(2)(b), (9)
        ("IA", H.EXEMPT, ()),  # Iowa Code § 715C.2(7)
        ("LA", H.NOT_DEEMED, ()),  # La. R.S. 51:3076 covers financial institutions only
        ("CA", H.NOT_DEEMED, ()),  # Cal. Civ. Code § 1798.82(e): notice content only
        ("TX", H.NOT_VERIFIED, ()),
    ],
)
def test_hipaa_treatments(code: str, treatment: HipaaTreatment, surviving: tuple[str, ...]) -> None:
    row = ROWS[code]
    assert row.hipaa.treatment is treatment
    assert row.hipaa.surviving_duties == surviving
    owed = {n.who for n in row.notices_surviving_hipaa()}
    if treatment is H.EXEMPT:
        assert owed == set()
    elif treatment is H.DEEMED_WITH_DUTIES:
        assert owed == set(surviving)
    else:
        assert owed == {n.who for n in row.regulators.notices}


def test_every_hipaa_treatment_kind_occurs_and_unverified_is_never_silently_deemed() -> None:
    kinds = {row.hipaa.treatment for row in ROWS.values()}
    assert kinds == set(HipaaTreatment)
    for row in ROWS.values():
        if row.hipaa.treatment is H.NOT_VERIFIED:
            assert row.notices_surviving_hipaa() == row.regulators.notices


@pytest.mark.parametrize(
    ("code", "who", "timing", "days", "min_residents"),
    [
        (
            "CA",
            "Attorney General (sample copy of the notice)",
            T.DAYS_AFTER_INDIVIDUAL_NOTICE,
            15,
            501,
        ),  # § 1798.82(f)
        ("PR", "Department of Consumer Affairs (DACO)", T.DAYS_AFTER_START, 10, 1),  # 10 L.P.R.A. § 4052
        (
            "IL",
            "Attorney General (copy of the HHS breach notice)",
            T.BUSINESS_DAYS_AFTER_HHS_NOTICE,
            5,
            1,
        ),  # 530/50
        (
            "NY",
            "Attorney General (copy of the HHS breach notice)",
            T.BUSINESS_DAYS_AFTER_HHS_NOTICE,
            5,
            1,
        ),  # 899-aa(9)
        (
            "LA",
            "Attorney General (Consumer Protection Section)",
            T.DAYS_AFTER_INDIVIDUAL_NOTICE,
            10,
            1,
        ),  # 16 LAC III 701
        (
            "MD",
            "Office of the Attorney General",
            T.BEFORE_INDIVIDUAL_NOTICE,
            None,
            1,
        ),  # Com. Law § 14-3504(h)
        (
            "NJ",
            "Division of State Police (Department of Law and Public Safety)",
            T.BEFORE_INDIVIDUAL_NOTICE,
            None,
            1,
        ),
        ("TX", "Attorney General", T.DAYS_AFTER_START, 30, 250),  # Bus. & Com. Code § 521.053(i), S.B. 768
        ("WA", "Attorney General", T.DAYS_AFTER_START, 30, 501),  # RCW 19.255.010: "more than 500"
        ("CO", "Attorney General", T.DAYS_AFTER_START, 30, 500),  # C.R.S. § 6-1-716: "500 or more"
        (
            "IA",
            "Director of the Consumer Protection Division of the Attorney General",
            T.BUSINESS_DAYS_AFTER_INDIVIDUAL_NOTICE,
            5,
            501,
        ),  # Iowa Code § 715C.2(8)
        ("DC", "Office of the Attorney General", T.WITH_INDIVIDUAL_NOTICE, None, 50),  # D.C. Code § 28-3852
        ("SD", "Attorney General", T.DAYS_AFTER_START, 60, 251),  # SDCL § 22-40-20
    ],
)
def test_regulator_notices(
    code: str, who: str, timing: RegulatorTiming, days: int | None, min_residents: int
) -> None:
    notice = _regulator(code, who)
    assert (notice.timing, notice.days, notice.min_residents) == (timing, days, min_residents)


def test_whichever_is_sooner_limits() -> None:
    # 9 V.S.A. § 2435(b): 14 business days after discovery or the consumer notice, whichever is sooner.
    vt = _regulator(
        "VT",
        "Attorney General (or the Department of Financial Regulation for its licensees), preliminary notice",
    )
    assert vt.timing is T.WITH_INDIVIDUAL_NOTICE and vt.outer_limit == Window(days=14, business_days=True)
    # Ark. Code § 4-110-105: with the resident notice or 45 days after determination, whichever is first.
    assert _regulator("AR", "Attorney General").outer_limit == Window(days=45)
    # 24 O.S. § 163 (S.B. 626): the earlier reading (60 days from discovery) bounds "60 days after residents".
    ok = _regulator("OK", "Attorney General")
    assert (ok.timing, ok.days, ok.outer_limit) == (T.DAYS_AFTER_INDIVIDUAL_NOTICE, 60, Window(days=60))


@pytest.mark.parametrize(
    ("code", "after_delay", "tolls_regulator"),
    [
        ("ME", Window(days=7, business_days=True), False),  # 10 M.R.S. § 1348(3)
        ("MD", Window(days=7), False),  # Com. Law § 14-3504(d)
        ("FL", None, False),  # Fla. Stat. § 501.171(4)(b): only the notice to individuals is delayed
        ("PR", None, False),  # 10 L.P.R.A. § 4052: the 10-day Department notice is "non-extendable"
        ("VT", None, False),  # 9 V.S.A. § 2435(b): the delay is written for the consumer notice
        ("DE", None, False),  # 6 Del. C. § 12B-102(c)(2): "after" the delay, no window
    ],
)
def test_after_a_law_enforcement_delay(code: str, after_delay: Window | None, tolls_regulator: bool) -> None:
    le = ROWS[code].law_enforcement
    assert le.permitted
    assert le.after_delay == after_delay
    assert le.tolls_regulator is tolls_regulator


def test_no_row_delays_a_regulator_notice_without_saying_so_in_its_note() -> None:
    for row in ROWS.values():
        if row.law_enforcement.tolls_regulator:
            assert row.law_enforcement.note, row.code


@pytest.mark.parametrize(
    ("days", "codes"),
    [
        (30, {"CA", "CO", "FL", "ME", "NY", "WA"}),  # the 30-day states (CA from 2026-01-01, S.B. 446)
        (45, {"AL", "AZ", "IN", "MD", "NM", "OH", "OR", "RI", "TN", "VT", "WI"}),
        (60, {"CT", "DE", "LA", "SD", "TX"}),
    ],
)
def test_fixed_resident_windows(days: int, codes: set[str]) -> None:
    found = {code for code, row in ROWS.items() if row.individual.window == Window(days=days)}
    assert found == codes


def test_rows_without_a_window_say_without_unreasonable_delay_by_having_none() -> None:
    for row in ROWS.values():
        if row.individual.window is None:
            assert isinstance(row.individual.clock_starts, ClockStart)
    assert ROWS["AK"].individual.window is None  # Alaska Stat. § 45.48.010(b)
    assert ROWS["PR"].individual.window is None  # 10 L.P.R.A. § 4052: "as expeditiously as possible"


def test_california_health_facility_rule_is_conditional() -> None:
    rule = load_conditional_rules()["ca_health_facility"]  # Cal. Health & Safety Code § 1280.15(b)
    assert rule.jurisdiction == "CA"
    assert rule.applies_when is Condition.CA_LICENSED_HEALTH_FACILITY
    assert rule.window == Window(days=15, business_days=True)
    assert rule.after_delay == Window(days=15, business_days=True)
    assert len(rule.recipients) == 2
    # Cesar Chavez Day (Tue 31 March 2026) is a California holiday: 15 business days from Mon 16 March.
    assert date(2026, 3, 31) in rule.business_day_calendar()
    assert rule.add_business_days(date(2026, 3, 16), 15) == date(2026, 4, 7)


# --- the generated documentation -----------------------------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "compliance.md"


def test_the_documented_jurisdiction_section_matches_the_data() -> None:
    document = DOC.read_text(encoding="utf-8")
    expected = docgen.replace_section(document, docgen.render_section(load_jurisdiction_table()))
    assert document == expected, "run: python -m irflow.compliance.docgen"
    section = document.split(docgen.BEGIN_MARKER)[1].split(docgen.END_MARKER)[0]
    for code, row in ROWS.items():
        assert f"| {code} | {row.name} |" in section
        assert str(row.individual.source) in section


def test_docgen_check_reports_a_stale_section_and_rewrites_it(tmp_path: Path) -> None:
    doc = tmp_path / "compliance.md"
    doc.write_text(
        f"# Title\n\n{docgen.BEGIN_MARKER}\nold\n{docgen.END_MARKER}\n\nAfter.\n", encoding="utf-8"
    )
    assert docgen.main(["--doc", str(doc), "--check"]) == 1
    assert "old" in doc.read_text(encoding="utf-8")
    assert docgen.main(["--doc", str(doc)]) == 0
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# Title\n\n") and text.endswith(f"{docgen.END_MARKER}\n\nAfter.\n")
    assert "| WY | Wyoming |" in text
    assert docgen.main(["--doc", str(doc), "--check"]) == 0


@pytest.mark.parametrize(
    "text",
    [
        "no markers at all",
        f"{docgen.END_MARKER}\n{docgen.BEGIN_MARKER}",
        f"{docgen.BEGIN_MARKER}\n{docgen.END_MARKER}\n{docgen.BEGIN_MARKER}\n{docgen.END_MARKER}",
    ],
)
def test_docgen_refuses_documents_without_one_ordered_marker_pair(text: str, tmp_path: Path) -> None:
    with pytest.raises(docgen.MarkerError):
        docgen.replace_section(text, "x\n")
    doc = tmp_path / "doc.md"
    doc.write_text(text, encoding="utf-8")
    assert docgen.main(["--doc", str(doc)]) == 2
    assert doc.read_text(encoding="utf-8") == text


# --- the row model on synthetic rows ----------------------------------------------------------------------

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


@pytest.mark.parametrize(
    "text",
    [
        # A key given twice would silently keep the last value in plain YAML.
        JURISDICTION_ROW.replace(
            "      checked: statute\n", "      checked: statute\n      checked: secondary\n", 1
        ),
        JURISDICTION_ROW + "jurisdictions: []\n",
        "jurisdictions: [\n",
        "",
    ],
)
def test_unreadable_or_ambiguous_files_are_rejected(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_jurisdictions(text)


@pytest.mark.parametrize(
    ("code", "start", "expected"),
    [
        # Tex. Gov't Code § 662.003(b): Good Friday is optional, offices stay open → a business day.
        ("US-TX", date(2026, 4, 2), date(2026, 4, 3)),
        # Texas Independence Day (§ 662.003(a)) closes offices: Monday 2 March 2026 is skipped.
        ("US-TX", date(2026, 2, 27), date(2026, 3, 3)),
        # Susan B. Anthony Day is commemorative in California (not a Gov't Code § 6700 holiday): Tuesday
        # 15 February 2028 counts, so the date is never later than the law allows.
        ("US-CA", date(2028, 2, 14), date(2028, 2, 15)),
        # Cesar Chavez Day is a California state holiday (§ 6700): Tuesday 31 March 2026 is skipped.
        ("US-CA", date(2026, 3, 30), date(2026, 4, 1)),
    ],
)
def test_business_days_skip_only_days_offices_close(code: str, start: date, expected: date) -> None:
    from irflow.compliance.states import _cached_calendar, add_business_days

    assert add_business_days(start, 1, _cached_calendar(code)) == expected
