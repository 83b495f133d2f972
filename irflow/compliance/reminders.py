"""When a deadline reminder is due (pure): T-30, T-14, T-7, T-3, T-1 days, and overdue."""

from __future__ import annotations

from datetime import date

THRESHOLDS_DAYS = (30, 14, 7, 3, 1)
OVERDUE = "overdue"


def reminder_stage(due: date, today: date) -> str | None:
    """The reminder stage ``today`` is in for a deadline ``due``, or None before T-30.

    A stage is named by the smallest threshold not below the days left (``T-7`` from 7 down to 4 days left),
    so a deadline created late skips the stages already past instead of sending them all at once.
    """
    days_left = (due - today).days
    if days_left < 0:
        return OVERDUE
    for threshold in sorted(THRESHOLDS_DAYS):
        if days_left <= threshold:
            return f"T-{threshold}"
    return None
