"""Secrets irflow generates for itself on first use and keeps in its database (``installation_secrets``).

Used when the operator configures none: the HMAC key of fingerprints (``IRFLOW_FINGERPRINT_KEY`` wins when
set; in production take it from Key Vault) and the data key that seals free text and sensitive inputs
(``IRFLOW_DATA_KEY`` wins; see irflow/store/sealed.py). Every process sharing a database shares the key, so a
fingerprint computed by one replica matches another's.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select

from irflow import clock
from irflow.redaction import use_fingerprint_key
from irflow.settings import Settings
from irflow.store.db import Database
from irflow.store.models import InstallationSecret
from irflow.store.unique import insert_unique

FINGERPRINT_KEY = "fingerprint-key"


def installation_secret(db: Database, name: str) -> str:
    """The secret named *name*, created (32 random bytes, hex) if this database has none yet."""
    with db.transaction() as session:
        row, _ = insert_unique(  # another process may create it first: theirs is the one
            session,
            InstallationSecret(name=name, value=secrets.token_hex(32), created_at=clock.now()),
            select(InstallationSecret).where(InstallationSecret.name == name),
        )
        return row.value


def install_keys(settings: Settings, db: Database) -> None:
    """Make :func:`irflow.redaction.fingerprint` use this installation's key, and sealing (sensitive inputs
    and the sealed columns of irflow/store/sealed.py) its data key: IRFLOW_DATA_KEY, else a generated one."""
    from irflow.engine.sealing import use_data_key

    if settings.data_key is not None:
        data_key = settings.data_key.get_secret_value()
        db.keyring.use(data_key)
    else:
        data_key = db.keyring.installation_key()
    use_data_key(data_key)
    if settings.fingerprint_key is not None:
        use_fingerprint_key(settings.fingerprint_key.get_secret_value())
    else:
        use_fingerprint_key(bytes.fromhex(installation_secret(db, FINGERPRINT_KEY)))
