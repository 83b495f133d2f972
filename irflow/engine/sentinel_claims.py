"""Process-local memory of Sentinel claims: external ref → (incident id, the run its intake started).

A claim never changes once committed (the incident's ``external_ref`` is unique and never rewritten, and the
run the intake started is recorded in the same unit of work), so a remembered claim is right on every replica
and for as long as the process lives. Only committed claims are remembered, never an absence: an unknown ref
always goes to the database. Bounded (least recently used out first); one memory per database.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict

from irflow.store.db import Database

CAPACITY = 100_000


class ClaimMemory:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._claims: OrderedDict[str, tuple[str, str | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, external_ref: str) -> tuple[str, str | None] | None:
        with self._lock:
            claim = self._claims.get(external_ref)
            if claim is not None:
                self._claims.move_to_end(external_ref)
            return claim

    def remember(self, external_ref: str, incident_id: str, intake_run_id: str | None) -> None:
        with self._lock:
            self._claims[external_ref] = (incident_id, intake_run_id)
            self._claims.move_to_end(external_ref)
            while len(self._claims) > self.capacity:
                self._claims.popitem(last=False)

    def clear(self) -> None:
        """Forget every claim: the next delivery of each reads the database (as in a new process)."""
        with self._lock:
            self._claims.clear()


_memories: weakref.WeakKeyDictionary[Database, ClaimMemory] = weakref.WeakKeyDictionary()
_memories_lock = threading.Lock()


def claims_of(db: Database) -> ClaimMemory:
    """The memory of *db*'s claims (a new database, as in each test, starts with an empty one)."""
    with _memories_lock:
        memory = _memories.get(db)
        if memory is None:
            memory = _memories[db] = ClaimMemory()
        return memory
