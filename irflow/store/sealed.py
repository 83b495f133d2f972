"""Free text sealed at rest: the data key of one database, and the column types that use it.

Some values must be kept although they may hold PHI: a notice's recipient and body (needed to deliver it),
an incident's title, a risk assessment's four factors, an approval comment, a forensic log export. Their
columns are :class:`SealedText` / :class:`SealedJSON`: the value is written as ``sealed:v1:<Fernet token>``
(AES-128-CBC + HMAC-SHA256) and opened when read, so a dump of the database, a backup or a replica holds no
readable PHI without the key.

The key is ``IRFLOW_DATA_KEY`` (a Fernet key; in production from Azure Key Vault, the same on every replica).
Without it, one is generated on first use and kept in ``installation_secrets`` (see docs/data-retention.md):
every process on the database then opens what another sealed, but whoever can read that table can read the
rest, so production configures the key. The key belongs to the database (it is attached to the engine's
dialect), so one process may open several databases, each with its own key.

Rows written before migration 0011 hold plain text; they are read as they are.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Engine, Text, text
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.types import TypeDecorator

PREFIX = "sealed:v1:"
DATA_KEY = "data-key"


class SealedDataUnreadable(RuntimeError):
    """A sealed value that this database's data key cannot open (the key changed or was lost)."""


def fernet_key_from_secret(hex_secret: str) -> str:
    """The Fernet key of a generated installation secret (32 random bytes, hex)."""
    return base64.urlsafe_b64encode(bytes.fromhex(hex_secret)).decode("ascii")


class DataKeyring:
    """The data key of one database: configured (``IRFLOW_DATA_KEY``) or the installation's own."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._fernet: Fernet | None = None
        self._lock = threading.Lock()
        engine.dialect.irflow_keyring = self  # type: ignore[attr-defined]

    @property
    def key_loaded(self) -> bool:
        return self._fernet is not None

    def use(self, key: str) -> None:
        """Use this Fernet key (the configured ``IRFLOW_DATA_KEY``)."""
        self._fernet = Fernet(key.encode("ascii"))

    def ensure(self) -> None:
        """Load the key before a transaction needs it: the configured one, else the installation's."""
        if self._fernet is not None:
            return
        with self._lock:
            if self._fernet is not None:
                return
            configured = _configured_key()
            if configured:
                self._fernet = Fernet(configured.encode("ascii"))
                return
            generated = self._installation_key()
            if generated is not None:
                self._fernet = Fernet(generated.encode("ascii"))

    def installation_key(self) -> str:
        """The generated key of this database (created now if it has none)."""
        key = self._installation_key()
        if key is None:
            raise RuntimeError("the database has no installation_secrets table yet: run `irflow db upgrade`")
        return key

    def _installation_key(self) -> str | None:
        select = text("SELECT value FROM installation_secrets WHERE name = :name")
        try:
            with self._engine.connect() as conn:
                value = conn.execute(select, {"name": DATA_KEY}).scalar()
        except (OperationalError, ProgrammingError):
            return None  # not migrated yet: nothing sealed can exist either
        if value is None:
            insert = text(
                "INSERT INTO installation_secrets (name, value, created_at) VALUES (:name, :value, :at)"
            )
            try:
                with self._engine.begin() as conn:
                    conn.execute(
                        insert,
                        {"name": DATA_KEY, "value": secrets.token_hex(32), "at": self._now()},
                    )
            except IntegrityError:
                pass  # another process created it first; theirs is the one
            with self._engine.connect() as conn:
                value = conn.execute(select, {"name": DATA_KEY}).scalar_one()
        return fernet_key_from_secret(value)

    def _now(self) -> Any:
        from irflow import clock

        now = clock.now()
        return now.replace(tzinfo=None) if self._engine.dialect.name == "sqlite" else now

    def seal_text(self, value: str) -> str:
        return PREFIX + self._key().encrypt(value.encode("utf-8")).decode("ascii")

    def open_text(self, stored: str) -> str:
        if not stored.startswith(PREFIX):
            return stored  # written before sealing existed (migration 0011)
        try:
            return self._key().decrypt(stored[len(PREFIX) :].encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise SealedDataUnreadable(
                "stored data does not open with this IRFLOW_DATA_KEY: configure the key it was sealed with"
            ) from None

    def _key(self) -> Fernet:
        if self._fernet is None:
            self.ensure()
        if self._fernet is None:
            raise SealedDataUnreadable("no data key for this database: run `irflow db upgrade`")
        return self._fernet


def keyring_of(dialect: Dialect) -> DataKeyring:
    keyring = getattr(dialect, "irflow_keyring", None)
    if keyring is None:
        raise RuntimeError("this engine was not opened through irflow.store.db.Database: no data key")
    return keyring


def _configured_key() -> str | None:
    from irflow.settings import get_settings

    key = get_settings().data_key
    return key.get_secret_value() if key is not None else None


class SealedText(TypeDecorator[str]):
    """Text encrypted at rest with the database's data key; plain in Python."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else keyring_of(dialect).seal_text(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else keyring_of(dialect).open_text(value)


class SealedJSON(TypeDecorator[Any]):
    """A JSON document encrypted at rest (stored as sealed text); a dict or list in Python."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return keyring_of(dialect).seal_text(json.dumps(value, sort_keys=True, default=str))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return json.loads(keyring_of(dialect).open_text(value))
