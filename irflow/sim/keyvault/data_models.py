"""Key Vault data-plane state: keys (with versions) and secrets of one vault.

Kept beside the management-plane :class:`~irflow.sim.keyvault.models.KeyVault` (see :func:`vault_data`), so
it is deep-copied with the tenant's baseline and restored by ``tenant.reset()``.

Key material: only the public JWK parts of RSA keys exist (``n``, ``e``). ``n`` is random bytes of the key
size with the top bit and the low bit set: shaped like a modulus, not a real one, and no private part is ever
made. Secret values are registered with the tenant (``issue_secret``) so the journal masks them.
"""

from __future__ import annotations

import base64
import secrets as _secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from irflow.sim import errors

if TYPE_CHECKING:
    from irflow.sim.keyvault.models import KeyVault

RSA_KEY_TYPES = ("RSA", "RSA-HSM")
RSA_KEY_SIZES = (2048, 3072, 4096)
DEFAULT_KEY_OPS = ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"]


class KeyVaultError(errors.ArmError):
    """A Key Vault data-plane error: ``{"error": {"code", "message", "innererror": {"code"}}}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        inner: str | None = None,
    ) -> None:
        super().__init__(status, code, message, headers)
        self.inner = inner

    def body(self) -> dict[str, Any]:
        body = super().body()
        if self.inner:
            body["error"]["innererror"] = {"code": self.inner}
        return body


def bad_parameter(message: str) -> KeyVaultError:
    return KeyVaultError(400, "BadParameter", message)


def new_version() -> str:
    return uuid.uuid4().hex


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def public_modulus(key_size: int) -> str:
    raw = bytearray(_secrets.token_bytes(key_size // 8))
    raw[0] |= 0x80
    raw[-1] |= 0x01
    return _b64url(bytes(raw))


@dataclass
class KeyVersion:
    version: str
    kty: str
    key_size: int
    created: datetime
    updated: datetime
    n: str
    e: str = "AQAB"
    key_ops: list[str] = field(default_factory=lambda: list(DEFAULT_KEY_OPS))
    enabled: bool = True
    not_before: datetime | None = None
    expires: datetime | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class VaultKey:
    name: str
    versions: list[KeyVersion] = field(default_factory=list)  # oldest first

    @property
    def current(self) -> KeyVersion:
        return self.versions[-1]

    def version(self, version: str) -> KeyVersion | None:
        if not version:
            return self.current
        return next((v for v in self.versions if v.version.lower() == version.lower()), None)


@dataclass
class SecretVersion:
    version: str
    value: str
    created: datetime
    updated: datetime
    content_type: str | None = None
    enabled: bool = True
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class VaultSecret:
    name: str
    versions: list[SecretVersion] = field(default_factory=list)


@dataclass
class VaultData:
    keys: dict[str, VaultKey] = field(default_factory=dict)  # lower-cased name → key
    secrets: dict[str, VaultSecret] = field(default_factory=dict)


def vault_data(vault: KeyVault) -> VaultData:
    """The data-plane state of ``vault`` (created empty on first use)."""
    data = vars(vault).get("data_plane")
    if data is None:
        data = vars(vault)["data_plane"] = VaultData()
    return data


def check_key_name(name: str) -> None:
    if not name or len(name) > 127 or not all(c.isalnum() or c == "-" for c in name):
        raise bad_parameter(f"The request URI contains an invalid name: {name}")


def make_key_version(
    *,
    kty: str = "RSA",
    key_size: int | None = None,
    key_ops: list[str] | None = None,
    when: datetime,
    enabled: bool = True,
    tags: dict[str, str] | None = None,
) -> KeyVersion:
    kty_canonical = next((t for t in RSA_KEY_TYPES if t.lower() == str(kty).lower()), None)
    if kty_canonical is None:
        raise bad_parameter(f"irflow.sim simulates RSA keys only; kty {kty!r} is not supported.")
    size = key_size or 2048
    if size not in RSA_KEY_SIZES:
        raise bad_parameter(f"Invalid key size {size}; RSA keys are 2048, 3072 or 4096 bits.")
    return KeyVersion(
        version=new_version(),
        kty=kty_canonical,
        key_size=size,
        created=when,
        updated=when,
        n=public_modulus(size),
        key_ops=list(key_ops or DEFAULT_KEY_OPS),
        enabled=enabled,
        tags=dict(tags or {}),
    )


def add_key_version(vault: KeyVault, name: str, version: KeyVersion) -> VaultKey:
    check_key_name(name)
    data = vault_data(vault)
    key = data.keys.get(name.lower())
    if key is None:
        key = data.keys[name.lower()] = VaultKey(name)
    key.versions.append(version)
    key.versions.sort(key=lambda v: v.created)
    return key


def recovery_level(vault: KeyVault) -> str:
    if not vault.properties.get("enableSoftDelete", True):
        return "Purgeable"
    if vault.properties.get("enablePurgeProtection"):
        return "Recoverable"
    return "Recoverable+Purgeable"


def _epoch(value: datetime) -> int:
    return int(value.timestamp())


def attributes(vault: KeyVault, item: KeyVersion | SecretVersion) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "enabled": item.enabled,
        "created": _epoch(item.created),
        "updated": _epoch(item.updated),
        "recoveryLevel": recovery_level(vault),
        "recoverableDays": int(vault.properties.get("softDeleteRetentionInDays", 90)),
    }
    if isinstance(item, KeyVersion):
        attrs["exportable"] = False
        if item.not_before is not None:
            attrs["nbf"] = _epoch(item.not_before)
        if item.expires is not None:
            attrs["exp"] = _epoch(item.expires)
    return attrs


def object_id(vault_uri: str, collection: str, name: str, version: str) -> str:
    """A key / secret identifier. Azure's is ``{vaultUri}{collection}/{name}/{version}``; the SDKs parse it
    and accept only a vault URL at the host's root (``https://host/keys/n/v``), so the simulator drops the
    vault's path (``/_data/{vault}/vault``): the id names the simulator's host, the key and the version."""
    from urllib.parse import urlsplit

    parts = urlsplit(vault_uri)
    return f"{parts.scheme}://{parts.netloc}/{collection}/{name}/{version}"


def key_bundle(vault: KeyVault, vault_uri: str, key: VaultKey, version: KeyVersion) -> dict[str, Any]:
    """A KeyBundle (public JWK parts only)."""
    return {
        "key": {
            "kid": object_id(vault_uri, "keys", key.name, version.version),
            "kty": version.kty,
            "key_ops": list(version.key_ops),
            "n": version.n,
            "e": version.e,
        },
        "attributes": attributes(vault, version),
        "tags": dict(version.tags),
    }


def key_item(vault: KeyVault, vault_uri: str, key: VaultKey, version: KeyVersion) -> dict[str, Any]:
    return {
        "kid": object_id(vault_uri, "keys", key.name, version.version),
        "attributes": attributes(vault, version),
        "tags": dict(version.tags),
    }


def secret_bundle(
    vault: KeyVault, vault_uri: str, secret: VaultSecret, version: SecretVersion, *, with_value: bool
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": object_id(vault_uri, "secrets", secret.name, version.version),
        "attributes": attributes(vault, version),
        "tags": dict(version.tags),
    }
    if version.content_type is not None:
        body["contentType"] = version.content_type
    if with_value:
        body["value"] = version.value
    return body


def key_summary(key: VaultKey) -> dict[str, Any]:
    """Secret-free view for ``tenant.state()`` and tests."""
    return {
        "name": key.name,
        "kty": key.current.kty,
        "versions": [
            {"version": v.version, "created": v.created.isoformat(), "enabled": v.enabled}
            for v in key.versions
        ],
    }
