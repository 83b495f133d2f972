"""Sensitive inputs: sealed at rest with the data key, fingerprints in the audit trail, never echoed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr, ValidationError

from irflow.engine import sealing
from irflow.engine.playbook import coerce_inputs, parse_playbook
from irflow.settings import Settings

ACCOUNT = (
    "/subscriptions/9b2f6c1d-4e8a-4f3b-a1c7-2d5e8f0a6b3c/resourceGroups/rg-phi-prod/providers/"
    "Microsoft.Storage/storageAccounts/phiimaging"
)
PLAYBOOK = """\
name: sealed
version: 1
inputs:
  account: {type: resource_id}
  pin: {type: int, sensitive: true}
steps:
  - id: isolate
    action: storage.isolate_account
    with: {account: "{{ inputs.account }}"}
"""


@pytest.fixture
def data_key() -> Iterator[str]:
    key = Fernet.generate_key().decode()
    sealing.use_data_key(key)
    yield key
    sealing.use_data_key(None)


def test_seal_and_unseal_round_trip(data_key: str) -> None:
    sealed = sealing.seal_inputs({"pin": 123456789, "account": "/subscriptions/x"}, {"pin"})
    assert sealed["account"] == "/subscriptions/x"
    assert sealing.is_sealed(sealed["pin"]) and "123456789" not in str(sealed)
    assert sealing.unseal(sealed) == {"pin": 123456789, "account": "/subscriptions/x"}
    assert sealing.fingerprints_only(sealed)["pin"].startswith("hmac-sha256:")


def test_derived_step_params_are_sealed(data_key: str) -> None:
    run = sealing.seal_inputs({"note": "Patient: Maria Gonzalez"}, {"note"})
    step = sealing.seal_derived({"reason": "about Patient: Maria Gonzalez today", "phase": "before"}, run)
    assert sealing.is_sealed(step["reason"]) and step["phase"] == "before"


def test_without_a_data_key_sensitive_values_are_refused() -> None:
    sealing.use_data_key(None)
    with pytest.raises(sealing.SealingUnavailable, match="set IRFLOW_DATA_KEY"):
        sealing.seal("hunter2")


def test_another_key_cannot_open_a_sealed_value(data_key: str) -> None:
    sealed = sealing.seal("hunter2")
    sealing.use_data_key(Fernet.generate_key().decode())
    with pytest.raises(sealing.SealingUnavailable, match="does not open"):
        sealing.unseal(sealed)


def test_a_bad_sensitive_value_is_not_echoed() -> None:
    spec = parse_playbook(PLAYBOOK).spec
    with pytest.raises(ValueError) as caught:
        coerce_inputs(spec, {"account": ACCOUNT, "pin": "123-45-6789"})
    assert "123-45-6789" not in str(caught.value) and "not shown" in str(caught.value)


def test_the_data_key_is_checked_with_the_settings() -> None:
    with pytest.raises(ValidationError, match="IRFLOW_DATA_KEY must be a Fernet key"):
        Settings(data_key=SecretStr("not-a-key"))
    assert Settings(data_key=SecretStr(Fernet.generate_key().decode())).data_key is not None
