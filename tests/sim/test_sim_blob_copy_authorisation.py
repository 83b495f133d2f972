"""Cross-account Copy Blob needs its source authorised; user delegation keys and their SAS; Put Block.

Sources: Copy Blob (https://learn.microsoft.com/en-us/rest/api/storageservices/copy-blob: a source in another
account must be public or carry a SAS, else 404 CannotVerifyCopySource), Get User Delegation Key and
Create a user delegation SAS (https://learn.microsoft.com/en-us/rest/api/storageservices/get-user-delegation-key,
…/create-user-delegation-sas), revokeUserDelegationKeys (every user-delegation SAS stops working), copies
through a source firewall (https://learn.microsoft.com/en-us/troubleshoot/azure/azure-storage/
copy-blobs-between-storage-accounts-network-restriction), Put Block / Put Block List.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas
from sim_helpers import Sim
from test_sim_blob_forensics import ACCOUNT, CSV, EXPORTS

from irflow.azure.clients import StaticTokenCredential

DESTINATION = "phiclaimsarchive"


def service(sim: Sim, account: str = ACCOUNT) -> BlobServiceClient:
    """The account's blob service at the address the simulator hands out (the journal is kept)."""
    return BlobServiceClient(
        f"{sim.endpoint}/_data/{account}/blob/",
        credential=StaticTokenCredential(sim.tenant.token),
        connection_verify=sim.verify,
        retry_total=0,
    )


@pytest.fixture
def private_source(sim: Sim) -> str:
    """The exports container made private: only a SAS can authorise another account's copy of it."""
    sim.tenant.storage_account(ACCOUNT).container(EXPORTS).public_access = "None"
    with sim.tenant.lock:
        sim.tenant.add_container(DESTINATION, "evidence")
    return f"{service(sim).url.rstrip('/')}/{EXPORTS}/{quote(CSV)}"


def _target(sim: Sim):  # type: ignore[no-untyped-def]
    return service(sim, DESTINATION).get_blob_client("evidence", "copy.csv")


def _sas(sim: Sim, *, key_days: float = 1, read: bool = True, expiry_minutes: float = 15) -> str:
    now = sim.tenant.now()
    key = service(sim).get_user_delegation_key(now - timedelta(minutes=1), now + timedelta(days=key_days))
    return generate_blob_sas(
        ACCOUNT,
        EXPORTS,
        CSV,
        user_delegation_key=key,
        permission=BlobSasPermissions(read=read, write=not read),
        start=now - timedelta(minutes=1),
        expiry=now + timedelta(minutes=expiry_minutes),
    )


def _copy_error(sim: Sim, url: str) -> tuple[int, str]:
    with pytest.raises(HttpResponseError) as caught:
        _target(sim).start_copy_from_url(url)
    return caught.value.status_code, caught.value.response.headers["x-ms-error-code"]


def test_a_private_source_in_another_account_needs_a_sas(sim: Sim, private_source: str) -> None:
    assert _copy_error(sim, private_source) == (404, "CannotVerifyCopySource")
    assert "copy.csv" not in sim.tenant.storage_account(DESTINATION).container("evidence").blobs


def test_a_valid_user_delegation_sas_authorises_the_copy(sim: Sim, private_source: str) -> None:
    answer = _target(sim).start_copy_from_url(f"{private_source}?{_sas(sim)}")
    assert answer["copy_status"] == "success"
    source = sim.tenant.storage_account(ACCOUNT).container(EXPORTS).blobs[CSV]
    assert (
        sim.tenant.storage_account(DESTINATION).container("evidence").blobs["copy.csv"].content
        == source.content
    )
    # the key's value is a secret: never in the journal
    keys = sim.tenant.storage_account(ACCOUNT).user_delegation_keys
    assert keys and all(k.value not in str(e) for k in keys for e in sim.tenant.journal.to_list())


def test_a_forged_signature_a_write_only_sas_and_an_expired_one_are_refused(
    sim: Sim, private_source: str
) -> None:
    sas = _sas(sim)
    forged = sas.replace("sig=", "sig=AAAA")
    assert _copy_error(sim, f"{private_source}?{forged}") == (403, "CannotVerifyCopySource")
    assert _copy_error(sim, f"{private_source}?{_sas(sim, read=False)}") == (403, "CannotVerifyCopySource")
    assert _copy_error(sim, f"{private_source}?{_sas(sim, expiry_minutes=-5)}") == (
        403,
        "CannotVerifyCopySource",
    )


def test_revoking_user_delegation_keys_invalidates_the_sas(sim: Sim, private_source: str) -> None:
    sas = _sas(sim)
    account = sim.tenant.storage_account(ACCOUNT)
    sim.client().storage_accounts.revoke_user_delegation_keys("rg-phi-prod", ACCOUNT)
    assert account.user_delegation_keys_revoked_at is not None
    assert _copy_error(sim, f"{private_source}?{sas}") == (403, "CannotVerifyCopySource")


def test_a_source_behind_a_firewall_refuses_the_server_side_copy(sim: Sim, private_source: str) -> None:
    sas = _sas(sim)
    acls = {"defaultAction": "Deny", "ipRules": [{"value": "198.51.100.7"}]}
    sim.client().storage_accounts.update("rg-phi-prod", ACCOUNT, {"properties": {"networkAcls": acls}})
    assert _copy_error(sim, f"{private_source}?{sas}") == (403, "CannotVerifyCopySource")


def test_user_delegation_keys_live_at_most_seven_days(sim: Sim) -> None:
    now = sim.tenant.now()
    with pytest.raises(HttpResponseError) as caught:
        service(sim).get_user_delegation_key(now, now + timedelta(days=8))
    assert caught.value.status_code == 400
    assert sim.tenant.storage_account(ACCOUNT).user_delegation_keys == []


def test_blocks_are_staged_then_committed(sim: Sim) -> None:
    with sim.tenant.lock:
        sim.tenant.add_container(DESTINATION, "evidence")
    blob = service(sim, DESTINATION).get_blob_client("evidence", "large.bin")
    chunks = [bytes([i]) * 1000 for i in range(5)]
    blob.upload_blob(iter(chunks), length=None, max_concurrency=1)  # unknown length: Put Block, then the list
    routes = [e.route for e in sim.tenant.journal.writes()]
    assert "storage.blob.put_block" in routes and routes[-1] == "storage.blob.put_block_list"
    assert blob.download_blob().readall() == b"".join(chunks)
    with pytest.raises(HttpResponseError) as caught:
        blob.commit_block_list(["bm90LXN0YWdlZA=="])
    assert (caught.value.status_code, caught.value.error_code) == (400, "InvalidBlockList")


def test_locking_a_retention_policy_needs_its_etag_and_is_final(sim: Sim) -> None:
    """BlobContainersLockImmutabilityPolicy: If-Match with the policy's ETag is required; once Locked, the
    policy cannot be changed by a PUT (only extended)."""
    from azure.core import MatchConditions
    from azure.mgmt.storage.models import ImmutabilityPolicy

    containers = sim.client().blob_containers
    policy = containers.create_or_update_immutability_policy(
        "rg-phi-prod", ACCOUNT, EXPORTS, ImmutabilityPolicy(immutability_period_since_creation_in_days=30)
    )
    with pytest.raises(HttpResponseError) as stale:
        containers.lock_immutability_policy(
            "rg-phi-prod", ACCOUNT, EXPORTS, etag='"0x1"', match_condition=MatchConditions.IfNotModified
        )
    assert stale.value.status_code == 412
    locked = containers.lock_immutability_policy(
        "rg-phi-prod", ACCOUNT, EXPORTS, etag=policy.etag, match_condition=MatchConditions.IfNotModified
    )
    assert locked.state == "Locked"
    with pytest.raises(HttpResponseError) as refused:
        containers.create_or_update_immutability_policy(
            "rg-phi-prod", ACCOUNT, EXPORTS, ImmutabilityPolicy(immutability_period_since_creation_in_days=1)
        )
    assert refused.value.status_code == 409
    assert sim.tenant.storage_account(ACCOUNT).container(EXPORTS).immutability.days == 30
