"""Unit tests of the federal rules (45 CFR 164.404-164.412) as the clock applies them."""

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
    WrittenStatement,
    add_business_days,
    add_days_tolled,
    annual_log_due,
    compute_obligations,
)

K = ObligationKind


def facts(**overrides: object) -> IncidentFacts:
    base: dict[str, object] = {
        "role": Role.COVERED_ENTITY,
        "discovered_on": date(2026, 3, 2),
        "affected_total": 10,
    }
    base.update(overrides)
    return IncidentFacts.model_validate(base)


def by_kind(result, kind: ObligationKind, jurisdiction: str = "US"):  # type: ignore[no-untyped-def]
    matches = [o for o in result.obligations if o.kind is kind and o.jurisdiction == jurisdiction]
    assert len(matches) == 1, result.obligations
    return matches[0]


def kinds(result) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return {(o.kind.value, o.jurisdiction) for o in result.obligations}


# --- individuals and HHS ---------------------------------------------------------------------------------


def test_individuals_due_60_days_after_discovery_day_zero() -> None:
    result = compute_obligations(facts())
    assert by_kind(result, K.INDIVIDUALS).due == date(2026, 5, 1)
    assert "164.404" in by_kind(result, K.INDIVIDUALS).basis


@pytest.mark.parametrize(
    ("total", "expected"),
    [(499, K.HHS_ANNUAL_LOG), (500, K.HHS), (501, K.HHS)],
)
def test_hhs_threshold_is_500_or_more(total: int, expected: ObligationKind) -> None:
    result = compute_obligations(facts(affected_total=total))
    hhs = [o for o in result.obligations if o.kind in (K.HHS, K.HHS_ANNUAL_LOG)]
    assert [o.kind for o in hhs] == [expected]
    if expected is K.HHS:
        assert hhs[0].due == by_kind(result, K.INDIVIDUALS).due


@pytest.mark.parametrize(
    ("discovered", "due"),
    [
        (date(2027, 6, 15), date(2028, 2, 29)),  # 60 days after 2027-12-31 lands on the leap day
        (date(2026, 6, 15), date(2027, 3, 1)),  # no leap day in 2027
        (date(2024, 2, 29), date(2025, 3, 1)),  # discovered on a leap day
        (date(2027, 12, 31), date(2028, 2, 29)),  # discovered on the last day of the year
        (date(2028, 1, 1), date(2029, 3, 1)),  # discovered on the first day: next year's log
        (date(2031, 3, 3), date(2032, 2, 29)),
    ],
)
def test_annual_log_due_60_days_after_year_end(discovered: date, due: date) -> None:
    assert annual_log_due(discovered) == due
    result = compute_obligations(facts(discovered_on=discovered, affected_total=3))
    assert by_kind(result, K.HHS_ANNUAL_LOG).due == due


def test_discovery_on_december_31_crosses_the_year() -> None:
    result = compute_obligations(facts(discovered_on=date(2026, 12, 31), affected_total=600))
    assert by_kind(result, K.INDIVIDUALS).due == date(2027, 3, 1)


def test_discovery_in_a_leap_year_counts_february_29() -> None:
    result = compute_obligations(facts(discovered_on=date(2028, 1, 15), affected_total=600))
    assert by_kind(result, K.INDIVIDUALS).due == date(2028, 3, 15)  # 2027 would give 2027-03-16
    result = compute_obligations(facts(discovered_on=date(2027, 1, 15), affected_total=600))
    assert by_kind(result, K.INDIVIDUALS).due == date(2027, 3, 16)


# --- media -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("in_state", "media"), [(499, False), (500, False), (501, True)])
def test_media_needs_more_than_500_in_one_state(in_state: int, media: bool) -> None:
    result = compute_obligations(facts(affected_total=2000, affected_by_state={"KS": in_state}), {})
    assert (("media", "KS") in kinds(result)) is media
    if media:
        assert by_kind(result, K.MEDIA, "KS").due == by_kind(result, K.INDIVIDUALS).due


def test_media_is_per_state_not_total() -> None:
    result = compute_obligations(facts(affected_total=900, affected_by_state={"KS": 450, "MO": 450}), {})
    assert not any(o.kind is K.MEDIA for o in result.obligations)
    assert not any("have no state" in w for w in result.warnings)  # all 900 are placed


def test_unplaced_individuals_over_500_warn_about_media() -> None:
    result = compute_obligations(facts(affected_total=900))
    assert any("media notice" in w and "164.406" in w for w in result.warnings)


# --- law-enforcement delay ---------------------------------------------------------------------------------


def test_written_statement_tolls_until_its_date() -> None:
    delay = LawEnforcementDelay(written=WrittenStatement(given_on=date(2026, 3, 12), until=date(2026, 4, 11)))
    result = compute_obligations(facts(affected_total=600, law_enforcement_delay=delay))
    individuals = by_kind(result, K.INDIVIDUALS)
    # the delay ended before the deadline: due unchanged; the tolling reading is the outer bound
    assert individuals.due == date(2026, 5, 1)
    assert individuals.outer_bound == date(2026, 5, 1) + timedelta(days=30)
    assert "164.412" in individuals.outer_basis
    assert by_kind(result, K.HHS).due == individuals.due
    assert any(
        "written statement on 2026-03-12 delays the notice until 2026-04-11" in w for w in result.warnings
    )


def test_written_statement_on_discovery_day_starts_the_60_days_at_its_end() -> None:
    delay = LawEnforcementDelay(written=WrittenStatement(given_on=date(2026, 3, 2), until=date(2026, 3, 20)))
    result = compute_obligations(facts(law_enforcement_delay=delay))
    assert by_kind(result, K.INDIVIDUALS).due == date(2026, 5, 1)
    assert by_kind(result, K.INDIVIDUALS).outer_bound == date(2026, 3, 20) + timedelta(days=60)


def test_oral_statement_caps_at_30_days() -> None:
    delay = LawEnforcementDelay(oral=OralStatement(given_on=date(2026, 3, 10)))
    result = compute_obligations(facts(law_enforcement_delay=delay))
    assert by_kind(result, K.INDIVIDUALS).due == date(2026, 5, 1)
    assert by_kind(result, K.INDIVIDUALS).outer_bound == date(2026, 5, 31)
    assert result.tolling[0].start == date(2026, 3, 10) and result.tolling[0].end == date(2026, 4, 9)
    assert any("at most 30 days" in w for w in result.warnings)


def test_oral_followed_by_written_within_30_days_runs_to_the_written_date() -> None:
    delay = LawEnforcementDelay(
        oral=OralStatement(given_on=date(2026, 3, 10)),
        written=WrittenStatement(given_on=date(2026, 4, 1), until=date(2026, 6, 8)),
    )
    result = compute_obligations(facts(law_enforcement_delay=delay))
    # the delay runs 2026-03-10 .. 2026-06-07 and is in force on 2026-05-01: due the day it ends;
    # tolling (90 days added back) is the outer bound
    assert by_kind(result, K.INDIVIDUALS).due == date(2026, 6, 8)
    assert by_kind(result, K.INDIVIDUALS).outer_bound == date(2026, 5, 1) + timedelta(days=90)
    assert any("followed within 30 days by a written statement" in w for w in result.warnings)


def test_written_after_the_oral_cap_is_a_separate_delay() -> None:
    delay = LawEnforcementDelay(
        oral=OralStatement(given_on=date(2026, 3, 3)),
        written=WrittenStatement(given_on=date(2026, 4, 10), until=date(2026, 4, 20)),
    )
    result = compute_obligations(facts(law_enforcement_delay=delay))
    assert len(result.tolling) == 2
    assert by_kind(result, K.INDIVIDUALS).due == date(2026, 5, 1)
    assert by_kind(result, K.INDIVIDUALS).outer_bound == date(2026, 5, 1) + timedelta(days=30 + 10)
    assert any("more than 30 days after" in w for w in result.warnings)


def test_statement_after_the_deadline_does_not_extend_it() -> None:
    delay = LawEnforcementDelay(oral=OralStatement(given_on=date(2026, 5, 10)))
    result = compute_obligations(facts(law_enforcement_delay=delay))
    assert by_kind(result, K.INDIVIDUALS).due == date(2026, 5, 1)
    assert by_kind(result, K.INDIVIDUALS).outer_bound is None
    assert "began after this deadline" in by_kind(result, K.INDIVIDUALS).notes


def test_annual_log_is_not_tolled() -> None:
    delay = LawEnforcementDelay(oral=OralStatement(given_on=date(2026, 3, 10)))
    result = compute_obligations(facts(law_enforcement_delay=delay))
    assert by_kind(result, K.HHS_ANNUAL_LOG).due == date(2027, 3, 1)


def test_add_days_tolled_merges_overlaps() -> None:
    from irflow.compliance import TollingPeriod

    start = date(2026, 1, 1)
    periods = [
        TollingPeriod(start=date(2026, 1, 10), end=date(2026, 1, 20), source="a"),
        TollingPeriod(start=date(2026, 1, 15), end=date(2026, 1, 25), source="b"),
    ]
    assert add_days_tolled(start, 60, periods) == start + timedelta(days=60 + 15)
    assert add_days_tolled(start, 60, []) == start + timedelta(days=60)


def test_add_business_days_skips_weekends() -> None:
    assert add_business_days(date(2026, 3, 6), 1) == date(2026, 3, 9)  # Friday -> Monday
    assert add_business_days(date(2026, 3, 2), 14) == date(2026, 3, 20)
    assert add_business_days(date(2026, 3, 2), 0) == date(2026, 3, 2)


# --- business associate ------------------------------------------------------------------------------------


def test_business_associate_owes_only_the_notice_to_the_covered_entity() -> None:
    result = compute_obligations(
        facts(role=Role.BUSINESS_ASSOCIATE, affected_total=5000, affected_by_state={"TX": 900})
    )
    assert kinds(result) == {("ba_to_ce", "US")}
    assert by_kind(result, K.BA_TO_CE).due == date(2026, 5, 1)
    assert any("covered entity's obligations" in w for w in result.warnings)


@pytest.mark.parametrize(("contract", "window"), [(10, 10), (0, 0), (59, 59), (60, 60), (90, 60)])
def test_shorter_contract_window_wins_longer_is_ignored(contract: int, window: int) -> None:
    result = compute_obligations(facts(role=Role.BUSINESS_ASSOCIATE, ba_contract_days=contract))
    assert by_kind(result, K.BA_TO_CE).due == date(2026, 3, 2) + timedelta(days=window)
    assert any("is ignored" in w for w in result.warnings) is (contract >= 60)


def test_business_associate_notice_is_tolled_too() -> None:
    delay = LawEnforcementDelay(oral=OralStatement(given_on=date(2026, 3, 2)))
    result = compute_obligations(
        facts(role=Role.BUSINESS_ASSOCIATE, ba_contract_days=10, law_enforcement_delay=delay)
    )
    assert by_kind(result, K.BA_TO_CE).due == date(2026, 4, 1)  # the oral delay is in force on day 10
    assert by_kind(result, K.BA_TO_CE).outer_bound == date(2026, 3, 2) + timedelta(days=40)


def test_contract_days_for_a_covered_entity_warn() -> None:
    result = compute_obligations(facts(ba_contract_days=10))
    assert by_kind(result, K.INDIVIDUALS).due == date(2026, 5, 1)
    assert any("business_associate only" in w for w in result.warnings)


# --- warnings, zero, validation ---------------------------------------------------------------------------


def test_weekend_due_date_warns_without_rolling_forward() -> None:
    result = compute_obligations(facts(discovered_on=date(2026, 3, 4)))  # +60 = Sunday 2026-05-03
    assert by_kind(result, K.INDIVIDUALS).due == date(2026, 5, 3)
    assert any("individuals (US) is due on a Sunday, 2026-05-03" in w for w in result.warnings)
    weekday = compute_obligations(facts())
    assert not any("is due on a" in w for w in weekday.warnings)


def test_no_affected_individuals_no_obligations() -> None:
    result = compute_obligations(facts(affected_total=0))
    assert result.obligations == ()
    assert any("no affected individuals" in w for w in result.warnings)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"affected_by_state": {"ZZ": 1}}, "unknown state code"),
        ({"affected_by_state": {"TX": 11}}, "more than the total"),
        ({"affected_by_state": {"tx": 1, "TX": 1}}, "given twice"),
        ({"affected_total": -1}, "greater than or equal to 0"),
        ({"ba_contract_days": -1}, "greater than or equal to 0"),
        ({"breach_start": date(2026, 3, 3)}, "after discovery"),
        ({"breach_start": date(2026, 2, 1), "breach_end": date(2026, 1, 1)}, "before breach start"),
        (
            {"law_enforcement_delay": {"oral": {"given_on": date(2026, 3, 1)}}},
            "before discovery",
        ),
        (
            {"law_enforcement_delay": {"written": {"given_on": date(2026, 3, 5), "until": date(2026, 3, 4)}}},
            "before it was given",
        ),
    ],
)
def test_bad_facts_are_rejected(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        facts(**overrides)


def test_state_codes_are_normalized() -> None:
    assert facts(affected_by_state={" tx ": 3}).affected_by_state == {"TX": 3}


def test_json_shape() -> None:
    payload = compute_obligations(facts(affected_total=600, affected_by_state={"TX": 600}), {}).as_json()
    assert set(payload) == {"obligations", "warnings"}
    for ob in payload["obligations"]:
        assert {"kind", "jurisdiction", "due", "basis", "notes"} <= set(ob)
        assert {"status", "outer_bound", "hipaa_treatment"} <= set(ob)
        assert date.fromisoformat(ob["due"]).isoformat() == ob["due"]
        assert isinstance(ob["notes"], str)
