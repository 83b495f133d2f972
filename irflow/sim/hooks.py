"""A hook that holds the answer to an Azure write, for crash tests: kill the caller right after a write.

Armed with ``after=N`` (``POST /_sim/hooks/pause-after-write {"after": N, "hold_s": 60}``), the N-th mutation
from then on (a write Azure accepted, see :attr:`irflow.sim.journal.JournalEntry.mutation`) is applied and
journaled as usual, then its answer is held back: the caller has changed Azure but does not know it yet. A
test sees ``paused`` in ``GET /_sim/hooks``, kills the caller, and releases the hook
(``POST /_sim/hooks/release``); the answer then goes to a closed connection. A held answer is released after
``hold_s`` seconds in any case, so nothing waits forever. Other calls go on meanwhile (the hold is outside
the tenant lock). Time here is wall-clock: the hook holds a real thread, whatever the tenant's clock says.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from irflow.sim.journal import JournalEntry

MAX_HOLD_S = 600.0
RELEASE_WAIT_S = 10.0


class WriteHook:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._countdown: int | None = None
        self._hold_s = 60.0
        self._release = threading.Event()
        self._paused: JournalEntry | None = None
        self._held = 0  # answers held so far (each released once)

    def arm(self, after: int, hold_s: float = 60.0) -> dict[str, Any]:
        """Hold the answer of the ``after``-th mutation from now (1: the next one)."""
        if not isinstance(after, int) or isinstance(after, bool) or after < 1:
            raise ValueError("after must be an integer >= 1")
        if not isinstance(hold_s, int | float) or isinstance(hold_s, bool) or not 0 < hold_s <= MAX_HOLD_S:
            raise ValueError(f"hold_s must be a number of seconds in (0, {MAX_HOLD_S:g}]")
        with self._lock:
            if self._paused is not None:
                raise ValueError("an answer is held: release it first")
            self._countdown, self._hold_s = after, float(hold_s)
            self._release.clear()
        return self.status()

    def release(self) -> dict[str, Any]:
        """Let a held answer go (and disarm the hook); returns once the held thread has let go (bounded), so
        the hook can be armed again at once."""
        with self._lock:
            self._countdown = None
            self._release.set()
        deadline = time.monotonic() + RELEASE_WAIT_S
        while time.monotonic() < deadline:
            with self._lock:
                if self._paused is None:
                    break
            time.sleep(0.005)
        return self.status()

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "armed": self._countdown is not None,
                "remaining": self._countdown,
                "paused": self._paused is not None,
                "mutation": self._paused.to_dict() if self._paused is not None else None,
                "held": self._held,
            }

    def after_mutation(self, entry: JournalEntry) -> None:
        """Called by the router, outside the tenant lock, after a mutation was journaled."""
        with self._lock:
            if self._countdown is None:
                return
            self._countdown -= 1
            if self._countdown > 0:
                return
            self._countdown = None
            self._paused = entry
            self._held += 1
            hold_s = self._hold_s
        try:
            self._release.wait(hold_s)
        finally:
            with self._lock:
                self._paused = None
