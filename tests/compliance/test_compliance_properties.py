"""Property tests of the compliance clock (hypothesis)."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from irflow.compliance import (
    IncidentFacts,
    LawEnforcementDelay,
    ObligationKind,
    ObligationStatus,
    OralStatement,
    Role,
    WrittenStatement,
    compute_obligations,
    load_jurisdictions,
)

LAWS = load_jurisdictions()
STATES = sorted(LAWS)
K = ObligationKind

dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31))


@st.composite
def delays(draw: st.DrawFn, discovered: date) -> LawEnforcementDelay | None:
    kind = draw(st.sampled_from(["none", "written", "oral", "both"]))
    if kind == "none":
        return None
    written = oral = None
    if kind in ("written", "both"):
        on = discovered + timedelta(days=draw(st.integers(0, 120)))
        written = WrittenStatement(given_on=on, until=on + timedelta(days=draw(st.integers(0, 400))))
    if kind in ("oral", "both"):
        oral = OralStatement(given_on=discovered + timedelta(days=draw(st.integers(0, 120))))
    return LawEnforcementDelay(written=written, oral=oral)


@st.composite
def incident(draw: st.DrawFn, with_delay: bool = True) -> IncidentFacts:
    discovered = draw(dates)
    by_state = draw(st.dictionaries(st.sampled_from(STATES), st.integers(0, 3000), max_size=6))
    total = sum(by_state.values()) + draw(st.integers(0, 3000))
    return IncidentFacts(
        role=draw(st.sampled_from(list(Role))),
        discovered_on=discovered,
        affected_total=total,
        affected_by_state=by_state,
        law_enforcement_delay=draw(delays(discovered)) if with_delay else None,
        ba_contract_days=draw(st.none() | st.integers(0, 120)),
        hipaa=draw(st.booleans()),
    )


def family(kind: ObligationKind) -> str:
    # 500 or more moves HHS from the annual log to the contemporaneous notice: the same duty to tell HHS.
    return "hhs" if kind in (K.HHS, K.HHS_ANNUAL_LOG) else kind.value


@settings(max_examples=300, deadline=None)
@given(incident())
def test_due_dates_never_before_discovery(facts: IncidentFacts) -> None:
    for ob in compute_obligations(facts).obligations:
        assert ob.due >= facts.discovered_on
        assert ob.outer_bound is None or ob.outer_bound > ob.due  # the outer bound is never the due date


@settings(max_examples=300, deadline=None)
@given(incident(with_delay=False))
def test_without_tolling_individuals_within_60_days(facts: IncidentFacts) -> None:
    for ob in compute_obligations(facts).obligations:
        if ob.kind in (K.INDIVIDUALS, K.HHS, K.MEDIA, K.BA_TO_CE):
            assert ob.due <= facts.discovered_on + timedelta(days=60)


@settings(max_examples=300, deadline=None)
@given(incident())
def test_a_delay_never_makes_a_date_earlier_except_a_statutes_post_delay_window(facts: IncidentFacts) -> None:
    delayed = {o.key: o for o in compute_obligations(facts).obligations}
    plain = compute_obligations(facts.model_copy(update={"law_enforcement_delay": None}))
    for ob in plain.obligations:
        row = LAWS.get(ob.jurisdiction)
        post_delay_rule = row is not None and row.law_enforcement.after_delay is not None
        if not post_delay_rule:  # Maine's "7 business days after the delay" may come before its 30 days
            assert delayed[ob.key].due >= ob.due
        if delayed[ob.key].outer_bound is not None:
            assert delayed[ob.key].outer_bound >= ob.due


@settings(max_examples=300, deadline=None)
@given(incident(), st.sampled_from(STATES), st.integers(1, 2000), st.integers(0, 2000))
def test_adding_affected_people_never_removes_an_obligation(
    facts: IncidentFacts, state: str, more_in_state: int, more_unplaced: int
) -> None:
    by_state = dict(facts.affected_by_state)
    by_state[state] = by_state.get(state, 0) + more_in_state
    bigger = facts.model_copy(
        update={
            "affected_by_state": by_state,
            "affected_total": facts.affected_total + more_in_state + more_unplaced,
        }
    )
    before = {(family(o.kind), o.jurisdiction, o.recipient) for o in compute_obligations(facts).obligations}
    after = {(family(o.kind), o.jurisdiction, o.recipient) for o in compute_obligations(bigger).obligations}
    assert before <= after


@settings(max_examples=300, deadline=None)
@given(incident())
def test_state_obligation_iff_residents_and_data(facts: IncidentFacts) -> None:
    result = compute_obligations(facts)
    listed = {o.jurisdiction for o in result.obligations if o.kind is K.STATE_RESIDENTS}
    expected = (
        {s for s, n in facts.affected_by_state.items() if n > 0 and s in LAWS}
        if facts.role is Role.COVERED_ENTITY
        else set()
    )
    assert listed == expected
    for ob in result.obligations:
        if ob.kind in (K.STATE_RESIDENTS, K.STATE_REGULATOR):
            row = LAWS[ob.jurisdiction]
            assert ob.hipaa_treatment == (row.hipaa.treatment.value if facts.hipaa else None)
            if not facts.hipaa:
                assert ob.status is ObligationStatus.OPEN  # without HIPAA every state law applies in full


@settings(max_examples=200, deadline=None)
@given(incident())
def test_deterministic_and_sorted(facts: IncidentFacts) -> None:
    first = compute_obligations(facts)
    second = compute_obligations(IncidentFacts.model_validate(facts.model_dump()))
    assert first == second
    assert first.as_json() == second.as_json()
    dues = [o.due for o in first.obligations]
    assert dues == sorted(dues)


@settings(max_examples=200, deadline=None)
@given(incident())
def test_weekend_warning_iff_weekend_due(facts: IncidentFacts) -> None:
    result = compute_obligations(facts)
    for ob in result.obligations:
        warned = any(f"{ob.kind.value} ({ob.jurisdiction}) is due on a" in w for w in result.warnings)
        if ob.status is ObligationStatus.OPEN and ob.due.weekday() >= 5:
            assert warned
        if ob.due.weekday() < 5:
            assert not any(
                f"{ob.kind.value} ({ob.jurisdiction}) is due on a {day}, {ob.due}" in w
                for w in result.warnings
                for day in ("Saturday", "Sunday")
            )


@settings(max_examples=200, deadline=None)
@given(incident())
def test_business_associate_only_notifies_the_covered_entity(facts: IncidentFacts) -> None:
    ba = facts.model_copy(update={"role": Role.BUSINESS_ASSOCIATE})
    obligations = compute_obligations(ba).obligations
    assert {o.kind for o in obligations} <= {K.BA_TO_CE}
    if facts.affected_total > 0 and facts.law_enforcement_delay is None and facts.hipaa:
        window = min(60, facts.ba_contract_days if facts.ba_contract_days is not None else 60)
        assert [o.due for o in obligations] == [facts.discovered_on + timedelta(days=window)]
