"""One change to one Azure resource at a time, across runs and across processes.

Two runs of the same containment (an alert re-delivered, a responder re-running it) must not both write: each
action's ``apply`` re-reads Azure and is a no-op when Azure already shows the target state, so serialising
``apply`` + ``verify`` per (action, target) is enough for the second run to find the work done.

- Within a process (every mode, SQLite included): a lock per key. On SQLite this is the whole story: the
  embedded mode runs one engine process per database (``runtime._lock_embedded`` holds an exclusive file
  lock), so no other process applies actions on that database.
- Across processes on PostgreSQL: a session-level advisory lock keyed by a 64-bit hash of the key, on a
  connection of a small pool of its own, held for the apply and released right after (or by PostgreSQL when
  the holder's connection dies). https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS

Waiting is bounded (``lock_timeout`` on PostgreSQL, the same bound in-process): a holder that takes longer
makes the waiter's attempt fail as retryable, and the step's retry policy decides, so nothing waits forever.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text

WAIT_S = 120.0


class TargetBusy(RuntimeError):
    """Another run held the target's lock longer than the wait bound: retry later."""


def lock_key(action: str, target: str) -> int:
    """A stable signed 64-bit key (PostgreSQL's bigint) for an action on a target."""
    digest = hashlib.sha256(f"irflow-target\0{action}\0{target}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class TargetLocks:
    def __init__(self, engine: Engine, *, max_holders: int, wait_s: float = WAIT_S) -> None:
        self.wait_s = wait_s
        self._local: dict[int, tuple[threading.Lock, int]] = {}
        self._guard = threading.Lock()
        self._pg: Engine | None = None
        if engine.dialect.name == "postgresql":
            # Its own pool: a lock held over an Azure call must not take a connection the steps need.
            self._pg = create_engine(engine.url, pool_size=max_holders, max_overflow=0, pool_pre_ping=True)

    @contextmanager
    def hold(self, action: str, target: str | None) -> Iterator[None]:
        if target is None:
            yield
            return
        key = lock_key(action, target)
        local = self._acquire_local(key)
        try:
            if not local.acquire(timeout=self.wait_s):
                raise TargetBusy(f"{action} on {target}: another run is changing it; retry later")
            try:
                if self._pg is None:
                    yield
                else:
                    with self._advisory(key, action, target):
                        yield
            finally:
                local.release()
        finally:
            self._release_local(key)

    @contextmanager
    def _advisory(self, key: int, action: str, target: str) -> Iterator[None]:
        assert self._pg is not None
        with self._pg.connect() as conn:
            try:
                conn.execute(text(f"SET lock_timeout = '{int(self.wait_s * 1000)}ms'"))
                conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
                conn.commit()
            except Exception as exc:  # the wait bound passed (LockNotAvailable) or the server is gone
                conn.invalidate()
                reason = type(exc).__name__
                raise TargetBusy(f"{action} on {target}: cannot take its lock ({reason})") from None
            try:
                yield
            finally:
                try:
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    conn.commit()
                except Exception:
                    conn.invalidate()  # closing the session releases its locks

    def _acquire_local(self, key: int) -> threading.Lock:
        with self._guard:
            lock, users = self._local.get(key, (threading.Lock(), 0))
            self._local[key] = (lock, users + 1)
            return lock

    def _release_local(self, key: int) -> None:
        with self._guard:
            lock, users = self._local[key]
            if users <= 1:
                del self._local[key]
            else:
                self._local[key] = (lock, users - 1)

    def close(self) -> None:
        if self._pg is not None:
            self._pg.dispose()
