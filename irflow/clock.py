"""The one injectable clock. Product code asks ``clock.now()``; tests install a fixed or stepping clock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

_lock = threading.Lock()
_source: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731


def now() -> datetime:
    """Current time, timezone-aware UTC."""
    value = _source()
    if value.tzinfo is None:
        raise ValueError("clock source returned a naive datetime")
    return value.astimezone(UTC)


def install(source: Callable[[], datetime]) -> Callable[[], datetime]:
    """Replace the clock source; returns the previous one so callers can restore it."""
    global _source
    with _lock:
        previous, _source = _source, source
    return previous


class FrozenClock:
    """A clock for tests: stands still until advanced."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta
