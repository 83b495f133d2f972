"""What the dashboard shows of deadlines: urgency and countdown of each card, and the deadline timeline's
geometry (every obligation on a time axis from discovery, today marked, tolling periods shaded), drawn as SVG
by a template. Pure functions of the views and today's date; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from irflow.engine.services.deadlines import TollingView
from irflow.engine.services.views import DeadlineView

ENDED = ("met", "late", "not_required")
KIND_LABELS = {
    "individuals": "Individuals",
    "hhs": "HHS",
    "hhs_annual_log": "HHS annual log",
    "media": "Media",
    "ba_to_ce": "Covered entity",
    "state_residents": "State residents",
    "state_regulator": "State regulator",
    "substitute_notice": "Substitute notice",
    "urgent_notice": "Urgent notice",
}

WIDTH = 900
LABEL_W = 230
RIGHT_PAD = 100
TOP = 34
ROW_H = 28
BOTTOM = 30


def label(d: DeadlineView) -> str:
    name = KIND_LABELS.get(d.kind, d.kind)
    where = d.jurisdiction if not d.recipient else f"{d.jurisdiction}, {d.recipient}"
    return f"{name} ({where})"


def urgency(d: DeadlineView, today: date) -> str:
    """overdue, urgent (< 7 days), soon (< 30 days), later; or the status of an obligation that ended."""
    if d.status in ENDED:
        return d.status
    days = (d.due - today).days
    if days < 0:
        return "overdue"
    if days < 7:
        return "urgent"
    if days < 30:
        return "soon"
    return "later"


def countdown(d: DeadlineView, today: date) -> str:
    if d.status == "met":
        return f"met: sent {d.sent_on}" if d.sent_on else "met"
    if d.status == "late":
        return f"sent late on {d.sent_on}" if d.sent_on else "sent late"
    if d.status == "not_required":
        return "not required"
    days = (d.due - today).days
    if days == 0:
        return "due today"
    if days < 0:
        return f"{-days} day{'s' if days != -1 else ''} overdue"
    return f"{days} day{'s' if days != 1 else ''} left"


@dataclass(frozen=True)
class Tick:
    x: float
    text: str


@dataclass(frozen=True)
class Band:
    x: float
    width: float
    text: str


@dataclass(frozen=True)
class Row:
    y: float
    label: str
    x_due: float
    x_outer: float | None
    due: date
    urgency: str
    status_text: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    right: int
    axis_y: float
    x_start: float
    x_today: float | None
    start: date
    end: date
    ticks: list[Tick]
    tolling: list[Band]
    rows: list[Row]
    summary: str


def _step(days: int) -> int:
    for step in (1, 2, 7, 14, 30, 60, 90, 180, 365):
        if days / step <= 10:
            return step
    return 730


def timeline(
    deadlines: list[DeadlineView], discovered_on: date | None, tolling: list[TollingView], today: date
) -> Chart | None:
    """The chart of the obligations that have a date to meet (not the ones not required); None without any."""
    shown = [d for d in deadlines if d.status != "not_required"]
    if not shown:
        return None
    start = discovered_on or min(min(d.due for d in shown), today)
    last = max([d.due for d in shown] + [d.outer_bound for d in shown if d.outer_bound] + [today])
    last = max([last] + [t.end for t in tolling])
    span = max((last - start).days, 1)
    end = last + timedelta(days=max(2, span // 20))
    days = (end - start).days
    right = WIDTH - RIGHT_PAD

    def x(day: date) -> float:
        clamped = min(max(day, start), end)
        return round(LABEL_W + (right - LABEL_W) * (clamped - start).days / days, 1)

    step = _step(days)
    ticks = [
        Tick(x(start + timedelta(days=n)), (start + timedelta(days=n)).isoformat())
        for n in range(0, days + 1, step)
    ]
    bands = [
        Band(x(t.start), max(x(t.end) - x(t.start), 1.0), f"law-enforcement delay ({t.source})")
        for t in tolling
    ]
    rows = [
        Row(
            y=TOP + ROW_H * i + ROW_H / 2,
            label=label(d),
            x_due=x(d.due),
            x_outer=x(d.outer_bound) if d.outer_bound and d.outer_bound > d.due else None,
            due=d.due,
            urgency=urgency(d, today),
            status_text=countdown(d, today),
        )
        for i, d in enumerate(sorted(shown, key=lambda d: (d.due, d.kind, d.jurisdiction)))
    ]
    axis_y = TOP + ROW_H * len(rows)
    summary = "; ".join(f"{r.label}: due {r.due}, {r.status_text}" for r in rows)
    if tolling:
        summary += "; tolled " + ", ".join(f"{t.start} to {t.end}" for t in tolling)
    return Chart(
        width=WIDTH,
        height=int(axis_y + BOTTOM),
        left=LABEL_W,
        right=right,
        axis_y=axis_y,
        x_start=x(start),
        x_today=x(today) if start <= today <= end else None,
        start=start,
        end=end,
        ticks=ticks,
        tolling=bands,
        rows=rows,
        summary=f"Discovered {start}; today {today}. {summary}.",
    )
