"""The dashboard's pure parts: deadline urgency and countdown, the timeline's geometry, form reading, and the
session cookie (signature, expiry, CSRF)."""

from __future__ import annotations

import time
from datetime import date, timedelta

import pytest

from irflow.engine.services.deadlines import TollingView
from irflow.engine.services.principals import Principal
from irflow.engine.services.views import DeadlineView, Facts
from irflow.ui import chart
from irflow.ui.forms import ORIGINAL, FormError, fact_values, facts_update
from irflow.ui.session import Session, SessionCodec

TODAY = date(2026, 3, 20)


def deadline(days: int, status: str = "open", **extra: object) -> DeadlineView:
    return DeadlineView(
        kind=str(extra.pop("kind", "individuals")),
        jurisdiction="US",
        due=TODAY + timedelta(days=days),
        basis="45 CFR 164.404(b)",
        notes="",
        status=status,
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("days", "status", "urgency", "text"),
    [
        (-3, "open", "overdue", "3 days overdue"),
        (-1, "open", "overdue", "1 day overdue"),
        (0, "open", "urgent", "due today"),
        (6, "open", "urgent", "6 days left"),
        (7, "open", "soon", "7 days left"),
        (29, "open", "soon", "29 days left"),
        (30, "open", "later", "30 days left"),
        (-10, "met", "met", "met"),
        (5, "not_required", "not_required", "not required"),
    ],
)
def test_cards_are_coloured_by_urgency_and_count_down(
    days: int, status: str, urgency: str, text: str
) -> None:
    d = deadline(days, status)
    assert chart.urgency(d, TODAY) == urgency
    assert chart.countdown(d, TODAY) == text


def test_the_timeline_places_every_obligation_today_and_the_tolling_period_on_one_axis() -> None:
    discovered = TODAY - timedelta(days=20)
    rows = [
        deadline(40),
        deadline(40, kind="hhs", outer_bound=TODAY + timedelta(days=55)),
        deadline(-2, kind="media"),
        deadline(10, "not_required", kind="state_residents"),
    ]
    tolled = [TollingView(start=TODAY - timedelta(days=5), end=TODAY + timedelta(days=10), source="written")]
    drawn = chart.timeline(rows, discovered, tolled, TODAY)
    assert drawn is not None
    assert len(drawn.rows) == 3  # not required: no date to meet, only a card
    assert drawn.start == discovered and drawn.end > TODAY + timedelta(days=55)
    assert drawn.left == drawn.x_start < drawn.x_today is not None
    by_kind = {r.label.split(" (")[0]: r for r in drawn.rows}
    assert by_kind["Media"].x_due < drawn.x_today < by_kind["Individuals"].x_due == by_kind["HHS"].x_due
    assert by_kind["HHS"].x_outer is not None and by_kind["HHS"].x_outer > by_kind["HHS"].x_due
    assert by_kind["Individuals"].x_outer is None
    assert by_kind["Media"].urgency == "overdue"
    band = drawn.tolling[0]
    assert band.x < drawn.x_today < band.x + band.width
    assert all(drawn.left <= t.x <= drawn.right for t in drawn.ticks) and 2 <= len(drawn.ticks) <= 11
    assert "today 2026-03-20" in drawn.summary and "tolled" in drawn.summary
    assert chart.timeline([deadline(3, "not_required")], discovered, [], TODAY) is None


def facts(**values: object) -> Facts:
    base: dict[str, object] = {
        "role": "covered_entity",
        "discovered_at": None,
        "affected_total": None,
        "affected_by_state": {},
        "breach_start": None,
        "breach_end": None,
        "law_enforcement_delay": None,
        "ba_contract_days": None,
    }
    return Facts.model_validate({**base, **values})


def submitted(shown: dict[str, str], **changes: str) -> dict[str, str]:
    form = {**shown, **changes}
    form.update({ORIGINAL + k: v for k, v in shown.items()})
    return form


def test_only_the_fields_a_user_changed_become_the_facts_command() -> None:
    shown = fact_values(
        facts(discovered_at="2026-03-01T14:30:27Z", affected_total=600, affected_by_state={"CA": 550}),
        "America/New_York",
    )
    assert shown["discovered_at"] == "2026-03-01T09:30"  # the organisation's zone, to the minute
    assert shown["affected_by_state"] == "CA=550"
    assert facts_update(submitted(shown)) == {}  # seconds dropped by the form are not a change
    body = facts_update(submitted(shown, affected_total="700", affected_by_state="CA=550; tx=150"))
    assert body == {"affected_total": 700, "affected_by_state": {"CA": 550, "tx": 150}}
    delay = facts_update(submitted(shown, le_oral_given_on="2026-03-05"))
    assert delay == {"law_enforcement_delay": {"oral": {"given_on": "2026-03-05"}}}
    cleared = facts_update(submitted(fact_values(facts(affected_total=5), "UTC"), affected_total=""))
    assert cleared == {"affected_total": None}
    with pytest.raises(FormError, match="whole number"):
        facts_update(submitted(shown, affected_total="many"))
    with pytest.raises(FormError, match="CODE=COUNT"):
        facts_update(submitted(shown, affected_by_state="California"))


def test_a_session_cookie_is_refused_when_forged_tampered_or_expired() -> None:
    codec = SessionCodec(b"k" * 32)
    who = Principal(kind="token", id="t1", name="ops", roles=frozenset({"approver"}))
    value = codec.dumps(Session(principal=who, expires_at=time.time() + 60))
    back = codec.loads(value)
    assert back.principal == who and not back.changed
    assert codec.loads(value, now=time.time() + 61).principal is None
    assert codec.loads(value, now=time.time() + 61).expired
    assert SessionCodec(b"j" * 32).loads(value).principal is None  # another key
    assert codec.loads(value[:-2] + ("AA" if not value.endswith("AA") else "BB")).principal is None
    assert codec.loads("garbage").principal is None and codec.loads(None).changed
    anonymous = codec.loads(codec.dumps(Session()))
    assert anonymous.principal is None and not anonymous.expired
    assert anonymous.csrf_matches(anonymous.csrf)
    assert (
        not anonymous.csrf_matches(None)
        and not anonymous.csrf_matches("")
        and not anonymous.csrf_matches("x")
    )
    assert "irf_" not in value  # the cookie never carries a token
