"""Sensitive playbook inputs, sealed at rest.

A playbook input declared ``sensitive: true`` (a password, a patient identifier, a personal e-mail address) is
never stored in the clear: ``runs.params`` and the ``steps.params`` that derive from it hold

    {"sealed": "<Fernet token>", "fingerprint": "hmac-sha256:…"}

The token is AES-128-CBC + HMAC-SHA256 (Fernet) under ``IRFLOW_DATA_KEY`` (a Fernet key; in production
injected from Azure Key Vault); the fingerprint is keyed too (:func:`irflow.redaction.fingerprint`). The audit
trail gets the fingerprint only, so nothing sensitive enters the hash chain, where it could never be purged.
The engine unseals right before it renders a template or validates an action's params, in memory only.
The key is the database's data key (``IRFLOW_DATA_KEY``, else the installation's generated one), the same
that seals free-text columns (irflow/store/sealed.py) and DBOS's program data (:class:`SealedDBOSSerializer`).
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from dbos._serialization import DefaultSerializer

from irflow.redaction import fingerprint
from irflow.store.sealed import PREFIX

SEALED = "sealed"
_FERNET: list[Fernet] = []


class SealingUnavailable(ValueError):
    """Sensitive values arrived but no data key is configured."""


def use_data_key(key: str | None) -> None:
    """Install the Fernet key (``IRFLOW_DATA_KEY``), or none."""
    _FERNET[:] = [Fernet(key.encode("ascii"))] if key else []


def check_data_key(key: str) -> str:
    """A configuration check: *key* is a Fernet key (32 url-safe base64 bytes)."""
    try:
        Fernet(key.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise ValueError(
            "IRFLOW_DATA_KEY must be a Fernet key: 32 random bytes, url-safe base64 (44 characters)"
        ) from None
    return key


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {SEALED, "fingerprint"}


def seal(value: Any) -> dict[str, str]:
    if not _FERNET:
        raise SealingUnavailable(
            "the data key is not loaded: set IRFLOW_DATA_KEY (a Fernet key, e.g. from Key Vault) so "
            "sensitive values are stored encrypted"
        )
    plain = json.dumps(value, sort_keys=True, separators=(",", ":"))
    token = _FERNET[0].encrypt(plain.encode("utf-8")).decode("ascii")
    return {SEALED: token, "fingerprint": fingerprint(plain)}


def unseal(value: Any) -> Any:
    """*value* with every sealed part decrypted (recursively); in memory only, never stored."""
    if is_sealed(value):
        if not _FERNET:
            raise SealingUnavailable("a sealed value needs IRFLOW_DATA_KEY to be read")
        try:
            return json.loads(_FERNET[0].decrypt(value[SEALED].encode("ascii")))
        except InvalidToken:
            raise SealingUnavailable("a sealed value does not open with this IRFLOW_DATA_KEY") from None
    if isinstance(value, dict):
        return {key: unseal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unseal(item) for item in value]
    return value


def seal_inputs(params: dict[str, Any], sensitive: set[str]) -> dict[str, Any]:
    """Run inputs with each sensitive one sealed."""
    sealed = dict(params)
    for name in sensitive & set(params):
        if params[name] is not None:
            sealed[name] = seal(params[name])
    return sealed


def seal_derived(params: dict[str, Any], run_params: dict[str, Any]) -> dict[str, Any]:
    """A step's rendered params with every value that holds a sensitive input of its run sealed."""
    secrets = [_plain_strings(unseal(value)) for value in run_params.values() if is_sealed(value)]
    needles = {text for group in secrets for text in group if text}
    if not needles:
        return params
    return {name: seal(value) if _holds(value, needles) else value for name, value in params.items()}


def fingerprints_only(value: Any) -> Any:
    """What the audit trail may hold of a value: sealed parts become their fingerprint."""
    if is_sealed(value):
        return value["fingerprint"]
    if isinstance(value, dict):
        return {key: fingerprints_only(item) for key, item in value.items()}
    if isinstance(value, list):
        return [fingerprints_only(item) for item in value]
    return value


class SealedDBOSSerializer(DefaultSerializer):
    """DBOS's program data (workflow inputs and outputs, step outputs, messages such as approval comments,
    recorded errors) pickled as DBOS does, then sealed with the data key: DBOS's system tables hold no
    readable value. Rows DBOS wrote before (``py_pickle``) are still read by DBOS's own serializer."""

    def serialize(self, data: Any) -> str:
        return PREFIX + _key().encrypt(super().serialize(data).encode("ascii")).decode("ascii")

    def deserialize(self, serialized_data: str) -> Any:
        if not serialized_data.startswith(PREFIX):
            return super().deserialize(serialized_data)
        try:
            opened = _key().decrypt(serialized_data[len(PREFIX) :].encode("ascii")).decode("ascii")
        except InvalidToken:
            raise SealingUnavailable("DBOS data does not open with this IRFLOW_DATA_KEY") from None
        return super().deserialize(opened)

    def name(self) -> str:
        return "irflow_sealed_pickle"


def _key() -> Fernet:
    if not _FERNET:
        raise SealingUnavailable("the data key is not loaded (irflow.store.installation.install_keys)")
    return _FERNET[0]


def _plain_strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [text for item in value.values() for text in _plain_strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _plain_strings(item)]
    return [] if value is None or isinstance(value, bool) else [str(value)]


def _holds(value: Any, needles: set[str]) -> bool:
    return any(needle in text for text in _plain_strings(value) for needle in needles)
