"""The unit of work: one transaction taking its row locks in one fixed order, writing its audit events last.

Lock order, for every transaction that locks more than one of them (PostgreSQL row locks)::

    Incident  ->  Run  ->  Step(s), by (position, item_index)  ->  AuditHead

- A unit of work refuses a lock taken out of that order (:class:`LockOrderViolation`), so a new code path
  cannot bring back the deadlock two opposite orders made (``transition_run`` once locked Run -> AuditHead ->
  Incident while ``update_facts`` locked Incident -> AuditHead: PostgreSQL aborted one as DeadlockDetected).
- AuditHead is always last: audit events are collected while the work happens (``AuditChain.append`` on the
  unit's session, also from code it calls such as the outbox) and appended in one batch when the block ends,
  just before commit. So the head lock, which every audited transaction takes, is held only for the append
  and the commit, and a transaction holding it never waits for another lock.
- Row locks are ``FOR NO KEY UPDATE``: they never block the ``FOR KEY SHARE`` lock PostgreSQL takes on a
  parent row when a child row referencing it is inserted (a step of a locked run, a notification of a locked
  incident). Primary keys are never updated, which is all ``NO KEY`` promises.
- SQLite takes its single write lock at ``BEGIN IMMEDIATE`` (``irflow.store.db``): its transactions are
  serial and the order holds trivially.

Dedupe-then-insert goes through :func:`irflow.store.unique.insert_unique` (:meth:`UnitOfWork.insert_unique`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from irflow.audit import AuditChain, defer_appends
from irflow.store.db import Database
from irflow.store.models import Incident, Run, Step
from irflow.store.unique import insert_unique

T = TypeVar("T")

LOCK_ORDER: tuple[type[Any], ...] = (Incident, Run, Step)
# FOR NO KEY UPDATE on PostgreSQL (SQLite ignores row locks).
_ROW_LOCK = {"key_share": True}


class LockOrderViolation(RuntimeError):
    """A programming error: a row lock requested against the documented order."""


class UnitOfWork:
    def __init__(self, session: Session, chain: AuditChain) -> None:
        self.session = session
        self.chain = chain
        self._rank = -1

    def _take(self, model: type[Any]) -> None:
        rank = LOCK_ORDER.index(model)
        if rank < self._rank:
            held = LOCK_ORDER[self._rank].__name__
            raise LockOrderViolation(f"{model.__name__} locked after {held}: the order is {_ORDER_TEXT}")
        self._rank = rank

    def lock(self, model: type[T], key: str) -> T | None:
        """The row of *model* with primary key *key*, locked for update (None when there is none)."""
        self._take(model)
        return self.session.get(model, key, with_for_update=_ROW_LOCK, populate_existing=True)

    def lock_step_with_incident(self, step_id: str) -> tuple[Step, str] | None:
        """One step locked, with its incident's id, in one round trip (the run and incident not locked)."""
        self._take(Step)
        found = self.session.execute(
            select(Step, Run.incident_id)
            .join(Run, Run.id == Step.run_id)
            .where(Step.id == step_id)
            .with_for_update(of=Step, key_share=True)
            .execution_options(populate_existing=True)
        ).first()
        return None if found is None else (found[0], found[1])

    def lock_steps(self, query: Select[tuple[Step]]) -> list[Step]:
        """The steps *query* selects, locked in (run, position, item_index) order."""
        self._take(Step)
        ordered = query.order_by(Step.run_id, Step.position, Step.item_index).with_for_update(key_share=True)
        return list(self.session.execute(ordered).scalars())

    def audit(
        self, *, actor: str, type: str, incident_id: str | None, payload: dict[str, Any] | None = None
    ) -> None:
        """Collect one audit event; it is appended to the chain when the unit of work commits."""
        self.chain.append(self.session, actor=actor, type=type, incident_id=incident_id, payload=payload)

    def insert_unique(self, row: T, existing: Select[Any], *, look_first: bool = True) -> tuple[T, bool]:
        """Race-safe dedupe-then-insert (see :mod:`irflow.store.unique`)."""
        return insert_unique(self.session, row, existing, look_first=look_first)


_ORDER_TEXT = " -> ".join(model.__name__ for model in LOCK_ORDER) + " -> AuditHead"


@contextmanager
def unit_of_work(db: Database, chain: AuditChain | None = None) -> Iterator[UnitOfWork]:
    """One transaction: commits on success (audit events appended last), rolls back on any error."""
    chain = chain or AuditChain()
    with db.transaction() as session:
        defer_appends(session)
        yield UnitOfWork(session, chain)
        chain.append_deferred(session)
