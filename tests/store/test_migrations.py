"""Migrations and models agree, on SQLite and on PostgreSQL; empty SQLite files upgrade themselves."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from irflow.store.db import Database, SchemaOutOfDate, current_revision, ensure_schema, head_revision
from irflow.store.models import Base


def test_migrations_match_the_models(database: Database) -> None:
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata)
    assert diff == []
    assert current_revision(database.engine) == head_revision()


def test_chain_head_is_seeded(database: Database) -> None:
    with database.engine.connect() as conn:
        assert conn.execute(text("SELECT seq, hash FROM audit_head WHERE id = 1")).one() == (0, "0" * 64)


def test_empty_sqlite_file_upgrades_itself(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = Database(f"sqlite:///{tmp_path / 'new' / 'irflow.db'}")
    ensure_schema(db.engine)
    assert current_revision(db.engine) == head_revision()
    ensure_schema(db.engine)  # a second call is a no-op
    db.dispose()


def test_a_foreign_database_is_refused_not_altered(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = Database(f"sqlite:///{tmp_path / 'other.db'}")
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE something_else (id INTEGER)"))
    with pytest.raises(SchemaOutOfDate, match="irflow db upgrade"):
        ensure_schema(db.engine)
    db.dispose()
