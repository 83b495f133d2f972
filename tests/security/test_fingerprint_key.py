"""The fingerprint key: configured, or generated once per database and shared by every process on it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from irflow import redaction
from irflow.engine.runtime import open_database
from irflow.redaction import fingerprint
from irflow.settings import Settings
from irflow.store.installation import FINGERPRINT_KEY, installation_secret


def test_generated_once_per_database_and_reused(tmp_path: Path) -> None:
    previous = list(redaction._FINGERPRINT_KEY)
    try:
        settings = Settings(database_url=f"sqlite:///{tmp_path / 'a.db'}")
        db = open_database(settings)
        first = fingerprint("pat@example.org")
        stored = installation_secret(db, FINGERPRINT_KEY)
        assert len(stored) == 64
        db.dispose()
        redaction._FINGERPRINT_KEY.clear()  # as a new process would start
        db = open_database(settings)
        assert fingerprint("pat@example.org") == first
        assert installation_secret(db, FINGERPRINT_KEY) == stored
        db.dispose()

        other = open_database(Settings(database_url=f"sqlite:///{tmp_path / 'b.db'}"))
        assert fingerprint("pat@example.org") != first  # another installation, another key
        other.dispose()
    finally:
        redaction._FINGERPRINT_KEY[:] = previous


def test_configured_key_wins(tmp_path: Path) -> None:
    previous = list(redaction._FINGERPRINT_KEY)
    try:
        key = SecretStr("a-key-from-key-vault-0123456789")
        db = open_database(Settings(database_url=f"sqlite:///{tmp_path / 'a.db'}", fingerprint_key=key))
        configured = fingerprint("pat@example.org")
        redaction.use_fingerprint_key("a-key-from-key-vault-0123456789")
        assert fingerprint("pat@example.org") == configured
        db.dispose()
    finally:
        redaction._FINGERPRINT_KEY[:] = previous


@pytest.mark.postgres
def test_one_key_per_postgresql_database_even_when_two_processes_race(postgres_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from irflow.store.db import Database, upgrade

    db = Database(postgres_url)
    upgrade(db.engine)
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            keys = set(pool.map(lambda _: installation_secret(db, FINGERPRINT_KEY), range(8)))
        assert len(keys) == 1
    finally:
        db.dispose()
