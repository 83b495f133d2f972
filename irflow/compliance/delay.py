"""Law-enforcement delay (45 CFR 164.412): the periods it covers and its two readings.

164.412(a): a written statement delays the notice "for the time period specified by the official";
164.412(b): an oral statement delays it "temporarily and no longer than 30 days from the date of the oral
statement, unless a written statement ... is submitted during that time".
Source: https://www.ecfr.gov/current/title-45/subtitle-A/subchapter-C/part-164/subpart-D/section-164.412

Two readings of what the delay does to a deadline, both computed:

* **ends-the-delay** (the stricter): the delay suspends the duty while it is in force; once it ends, a
  deadline that fell inside it is due on the day it ends. A delay that ended before the deadline moves
  nothing.
* **tolling** (the later): the days of the delay do not count, so each is added back to the deadline.

The earliest date safe under both is the due date; the tolling date is shown as the outer bound.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from irflow.compliance.models import ORAL_STATEMENT_MAX_DAYS, LawEnforcementDelay, TollingPeriod

STRICT_BASIS = (
    "45 CFR 164.412 read as suspending the notice only while the delay is in force: due the day it ends"
)
TOLLING_BASIS = "45 CFR 164.412 read as tolling: the days of the delay are added to the deadline"


def tolling_periods(delay: LawEnforcementDelay | None) -> tuple[tuple[TollingPeriod, ...], list[str]]:
    """The periods a delay covers (``start`` inclusive, ``end`` exclusive: the day the delay ends), merged,
    and warnings describing each statement. What a period does to a deadline is said per obligation, not here.
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
                f"law-enforcement delay: oral statement on {oral.given_on} followed within 30 days by a "
                f"written statement on {written.given_on}: the delay runs from {oral.given_on} until "
                f"{written.until} (45 CFR 164.412(a),(b))"
            )
            written = None
        else:
            periods.append(TollingPeriod(start=oral.given_on, end=cap, source="oral"))
            warnings.append(
                f"law-enforcement delay: oral statement on {oral.given_on} delays the notice at most 30 "
                "days, "
                f"until {cap}, unless a written statement follows within that time (45 CFR 164.412(b)); "
                f"document the statement and the official's identity"
            )
            if written is not None:
                when = "more than 30 days after" if written.given_on > cap else "before"
                warnings.append(
                    f"law-enforcement delay: the written statement of {written.given_on} came {when} the "
                    "oral "
                    "statement, so it does not continue it: it is a delay of its own, from "
                    f"{written.given_on} "
                    f"until {written.until}"
                )
    if written is not None:
        periods.append(TollingPeriod(start=written.given_on, end=written.until, source="written"))
        warnings.append(
            f"law-enforcement delay: written statement on {written.given_on} delays the notice until "
            f"{written.until} (45 CFR 164.412(a))"
        )
    return merge(periods), warnings


def merge(periods: Iterable[TollingPeriod]) -> tuple[TollingPeriod, ...]:
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
    """``start + days`` counting only days on which the clock runs (the tolling reading)."""
    return tolled(start, start + timedelta(days=days), periods)


def tolled(start: date, plain: date, periods: Iterable[TollingPeriod]) -> date:
    """The tolling reading of a deadline ``plain`` counted from ``start``: each delayed day on or after
    ``start`` moves it one day later; a period that begins after the (already moved) deadline moves
    nothing."""
    due = plain
    for period in merge(periods):
        begin = max(period.start, start)
        if period.end > begin and begin <= due:
            due += period.end - begin
    return due


def in_force_until(plain: date, periods: Iterable[TollingPeriod]) -> date | None:
    """The day the delay in force on ``plain`` ends (following delays that continue it), or None."""
    end: date | None = None
    due = plain
    for period in merge(periods):
        if period.start <= due < period.end:
            due = end = period.end
    return end


def last_delay_end_before(plain: date, periods: Iterable[TollingPeriod]) -> date | None:
    """The end of the last delay that began on or before ``plain`` (whether or not still in force)."""
    ends = [p.end for p in merge(periods) if p.start <= plain]
    return max(ends) if ends else None


@dataclass(frozen=True)
class Readings:
    """A deadline under a law-enforcement delay: ``due`` (earliest safe), ``outer_bound`` (later reading)."""

    due: date
    outer_bound: date | None
    note: str


def two_readings(start: date, plain: date, periods: tuple[TollingPeriod, ...]) -> Readings:
    """The ends-the-delay and tolling readings of the deadline ``plain`` counted from ``start``."""
    if not periods:
        return Readings(plain, None, "")
    end = in_force_until(plain, periods)
    strict = end if end is not None and end > plain else plain
    later = tolled(start, plain, periods)
    if later == plain:
        began = [p for p in periods if p.start > plain]
        note = (
            f"The law-enforcement delay began after this deadline ({plain}) and does not move it."
            if began and len(began) == len(periods)
            else ""
        )
        return Readings(plain, None, note)
    if strict == plain:
        note = (
            f"The law-enforcement delay ended before this deadline: due {plain} under the reading that the "
            f"delay only suspends notice while in force; {later} if the delayed days are added back."
        )
    else:
        note = (
            f"The law-enforcement delay is in force on {plain}: due the day it ends, {strict}; {later} if "
            "the "
            f"delayed days are added back."
        )
    return Readings(strict, later if later > strict else None, note)
