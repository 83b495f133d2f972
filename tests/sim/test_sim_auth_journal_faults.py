"""Authentication, the journal, fault knobs, admin routes and reset, in both mounts."""

from __future__ import annotations

import json
import threading

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.core.rest import HttpRequest
from sim_helpers import ALL_ACCOUNTS, PHI_RG, Sim

from irflow.sim.journal import REDACTED


def test_no_token_is_401_authentication_failed(sim: Sim) -> None:
    client = sim.client(authentication_policy=SansIOHTTPPolicy())  # a pipeline that sends no Authorization
    with pytest.raises(ClientAuthenticationError) as caught:
        client.storage_accounts.get_properties(PHI_RG, "phiimaging")
    assert caught.value.status_code == 401
    assert caught.value.error.code == "AuthenticationFailed"
    assert caught.value.response.headers["WWW-Authenticate"].startswith("Bearer ")


def test_wrong_token_is_401_invalid_authentication_token(sim: Sim) -> None:
    client = sim.client(token="not-the-tenant-token")
    with pytest.raises(ClientAuthenticationError) as caught:
        client.storage_accounts.regenerate_key(PHI_RG, "phiimaging", {"keyName": "key1"})
    assert caught.value.error.code == "InvalidAuthenticationToken"
    # Refused before anything changed; the refusal itself is journaled.
    assert sim.tenant.storage_account("phiimaging").key_times["key1"] < sim.tenant.now()
    [entry] = sim.tenant.journal.entries()
    assert entry.status == 401 and entry.route == "storage.accounts.regenerate_key"


def test_journal_tells_writes_from_reads(sim: Sim) -> None:
    client = sim.client()
    client.storage_accounts.get_properties(PHI_RG, "phiimaging")
    list(client.storage_accounts.list_by_resource_group(PHI_RG))
    client.storage_accounts.list_keys(PHI_RG, "phiimaging")
    client.storage_accounts.update(PHI_RG, "phiimaging", {"properties": {"allowSharedKeyAccess": False}})
    client.storage_accounts.regenerate_key(PHI_RG, "phiimaging", {"keyName": "key1"})

    entries = sim.tenant.journal.entries()
    assert [(e.method, e.route, e.is_write) for e in entries] == [
        ("GET", "storage.accounts.get_properties", False),
        ("GET", "storage.accounts.list_by_resource_group", False),
        ("POST", "storage.accounts.list_keys", False),  # a POST that only reads
        ("PATCH", "storage.accounts.update", True),
        ("POST", "storage.accounts.regenerate_key", True),
    ]
    assert [e.route for e in sim.tenant.journal.writes()] == [
        "storage.accounts.update",
        "storage.accounts.regenerate_key",
    ]
    update = entries[3]
    assert update.path.endswith("/storageAccounts/phiimaging")
    assert update.query["api-version"]
    assert update.body == {"properties": {"allowSharedKeyAccess": False}}
    assert update.status == 200
    assert update.time.tzinfo is not None and update.time.utcoffset().total_seconds() == 0
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]

    sim.tenant.journal.clear()
    assert sim.tenant.journal.entries() == []


def test_keys_and_token_never_reach_the_journal(sim: Sim) -> None:
    client = sim.client()
    old = [k.value for k in client.storage_accounts.list_keys(PHI_RG, "phipatientexports").keys_property]
    new = [
        k.value
        for k in client.storage_accounts.regenerate_key(
            PHI_RG, "phipatientexports", {"keyName": "key1"}
        ).keys_property
    ]
    admin = client.send_request(HttpRequest("GET", "/_sim/journal"))
    assert admin.status_code == 200

    for dump in (json.dumps(sim.tenant.journal.to_list()), admin.text()):
        for secret in {*old, *new, sim.tenant.token}:
            assert secret not in dump
        assert REDACTED in dump
    keys = sim.tenant.journal.entries()[0].response["keys"]
    assert [k["value"] for k in keys] == [REDACTED, REDACTED]
    assert [k["keyName"] for k in keys] == ["key1", "key2"]


def test_error_rate_answers_500_and_changes_nothing(sim: Sim) -> None:
    sim.tenant.faults.error_rate = 1.0
    client = sim.client(retry_total=0)
    before = sim.tenant.storage_account("phiimaging").key_value("key1")

    with pytest.raises(HttpResponseError) as caught:
        client.storage_accounts.regenerate_key(PHI_RG, "phiimaging", {"keyName": "key1"})

    assert caught.value.status_code == 500
    assert caught.value.error.code == "InternalServerError"
    assert sim.tenant.storage_account("phiimaging").key_value("key1") == before
    [entry] = sim.tenant.journal.entries()
    assert entry.status == 500 and entry.is_write


def test_latency_delays_each_call(sim: Sim) -> None:
    waits: list[float] = []
    sim.tenant.sleep = waits.append
    sim.tenant.faults.latency_ms = 60
    client = sim.client()
    client.storage_accounts.get_properties(PHI_RG, "phiimaging")
    client.storage_accounts.list_by_resource_group(PHI_RG).next()
    assert waits == [0.06, 0.06]


def test_admin_state_and_reset(sim: Sim) -> None:
    client = sim.client()
    original_key = sim.tenant.storage_account("phiimaging").key_value("key2")
    client.storage_accounts.update(PHI_RG, "phiimaging", {"properties": {"publicNetworkAccess": "Disabled"}})
    client.storage_accounts.regenerate_key(PHI_RG, "phiimaging", {"keyName": "key2"})

    state = client.send_request(HttpRequest("GET", "/_sim/state")).json()
    assert [a["name"] for a in state["storage_accounts"]] == ALL_ACCOUNTS
    imaging = next(a for a in state["storage_accounts"] if a["name"] == "phiimaging")
    assert imaging["publicNetworkAccess"] == "Disabled"
    assert state["default_subscription_id"] == sim.subscription_id

    assert client.send_request(HttpRequest("POST", "/_sim/reset")).status_code == 200
    assert sim.tenant.journal.entries() == []  # admin calls are not journaled either
    account = client.storage_accounts.get_properties(PHI_RG, "phiimaging")
    assert account.public_network_access == "Enabled"
    assert sim.tenant.storage_account("phiimaging").key_value("key2") == original_key


def test_admin_routes_need_the_token(sim: Sim) -> None:
    client = sim.client(token="wrong")
    response = client.send_request(HttpRequest("GET", "/_sim/journal"))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_concurrent_clients_see_a_consistent_tenant(sim: Sim) -> None:
    client = sim.client()
    failures: list[BaseException] = []

    def rotate(key_name: str) -> None:
        try:
            for _ in range(5):
                client.storage_accounts.regenerate_key(PHI_RG, "phipatientexports", {"keyName": key_name})
                client.storage_accounts.get_properties(PHI_RG, "phipatientexports")
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=rotate, args=(f"key{i % 2 + 1}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert failures == []
    assert len(sim.tenant.journal.writes()) == 30
    assert len(sim.tenant.journal.entries()) == 60
