"""Dedupe-then-insert, race-safe: the one way irflow inserts a row that a unique key makes idempotent.

A look-up first (the common case, a replay or a re-delivery, writes nothing); then the insert inside a
savepoint, so when a concurrent transaction inserted the same key meanwhile, the unique constraint fires
(PostgreSQL waits for the other transaction and raises on its commit; SQLite's write lock, taken at BEGIN,
makes the race impossible there), only the savepoint rolls back, and the winner's row is returned. The
caller's transaction stays usable either way.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

Row = TypeVar("Row")


def insert_unique(
    session: Session, row: Row, existing: Select[Any], *, look_first: bool = True
) -> tuple[Row, bool]:
    """Insert *row* unless *existing* (a select of the row with the same unique key) finds one.

    Returns the row that holds the key and whether this call inserted it. An integrity error that is not
    about that key (the look-up still finds nothing after it) is raised. ``look_first=False`` skips the
    first look-up, for a caller that has just made it (the savepoint still settles a race).
    """
    if look_first:
        found = session.execute(existing).scalar_one_or_none()
        if found is not None:
            return found, False
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        found = session.execute(existing).scalar_one_or_none()
        if found is None:
            raise
        return found, False
    return row, True
