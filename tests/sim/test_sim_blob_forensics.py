"""Blob data plane for forensic copies: list / get / properties / snapshot / copy / put / delete through the
official ``azure.storage.blob`` clients (bearer token), in both mounts, with container legal holds and
time-based retention enforced, and no blob bytes in the journal."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient
from sim_helpers import PHI_RG, Sim

from irflow.azure.clients import StaticTokenCredential
from irflow.sim import Tenant
from irflow.sim.scenario import load_scenario, read_scenario
from irflow.sim.storage import blob_data

ACCOUNT = "phipatientexports"
EXPORTS = "patient-exports"
MANIFEST = "exports/2026-02-27/manifest.json"
CSV = "exports/2026-02-27/demographics-batch-001.csv"
BIN = "exports/2026-02-28/demographics-batch-002.bin"


def service(sim: Sim, account: str = ACCOUNT) -> BlobServiceClient:
    """The blob service client at the address the management plane hands out (``primaryEndpoints.blob``)."""
    endpoint = sim.client().storage_accounts.get_properties(PHI_RG, account).primary_endpoints.blob
    sim.tenant.journal.clear()
    return BlobServiceClient(
        endpoint,
        credential=StaticTokenCredential(sim.tenant.token),
        connection_verify=sim.verify,
        retry_total=0,
    )


def exports(sim: Sim) -> ContainerClient:
    return service(sim).get_container_client(EXPORTS)


def evidence(sim: Sim, **container: object) -> ContainerClient:
    """An evidence container in the same account, made through the Python API (legal hold, retention …)."""
    sim.tenant.add_container(ACCOUNT, "evidence", **container)  # type: ignore[arg-type]
    return service(sim).get_container_client("evidence")


def md5(data: bytes) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).digest()


def test_demo_exports_hold_three_synthetic_blobs(sim: Sim) -> None:
    blobs = list(exports(sim).list_blobs())

    assert [b.name for b in blobs] == [CSV, MANIFEST, BIN]
    sizes = {b.name: b.size for b in blobs}
    assert sizes[BIN] == 4096
    types = {b.name: b.content_settings.content_type for b in blobs}
    assert types == {CSV: "text/csv", MANIFEST: "application/json", BIN: "application/octet-stream"}
    assert all(b.blob_type == "BlockBlob" and b.etag.startswith("0x") for b in blobs)
    [entry] = sim.tenant.journal.entries()
    assert (entry.route, entry.status, entry.query["comp"]) == ("storage.blob.list_blobs", 200, "list")
    # Nothing in the scenario looks like a real person.
    csv = sim.tenant.storage_account(ACCOUNT).container(EXPORTS).blobs[CSV].content.decode()
    assert "NOT A REAL PERSON" in csv


def test_get_blob_returns_content_md5_etag_and_type(sim: Sim) -> None:
    blob = exports(sim).get_blob_client(MANIFEST)
    stored = sim.tenant.storage_account(ACCOUNT).container(EXPORTS).blobs[MANIFEST]

    download = blob.download_blob()

    assert download.readall() == stored.content
    props = download.properties
    assert props.content_settings.content_md5 == bytearray(md5(stored.content))
    assert props.etag == stored.etag and props.blob_type == "BlockBlob"
    assert props.content_settings.content_type == "application/json"
    # A range answers 206 with just those bytes.
    assert blob.download_blob(offset=2, length=5).readall() == stored.content[2:7]
    assert [e.status for e in sim.tenant.journal.entries()] == [206, 206]


def test_get_blob_properties_is_a_head(sim: Sim) -> None:
    props = exports(sim).get_blob_client(BIN).get_blob_properties()

    stored = sim.tenant.storage_account(ACCOUNT).container(EXPORTS).blobs[BIN]
    assert props.size == 4096 and stored.content == blob_data.synthetic_content(BIN, 4096)
    assert props.content_settings.content_md5 == bytearray(md5(stored.content))
    assert props.creation_time == stored.created and props.last_modified == stored.last_modified
    [entry] = sim.tenant.journal.entries()
    assert (entry.method, entry.route, entry.response["sha256"]) == (
        "HEAD",
        "storage.blob.get_blob_properties",
        hashlib.sha256(stored.content).hexdigest(),
    )


def test_snapshot_keeps_the_old_content_and_is_listed(sim: Sim, clock) -> None:  # type: ignore[no-untyped-def]
    container = exports(sim)
    blob = container.get_blob_client(MANIFEST)
    original = blob.download_blob().readall()

    snapshot = blob.create_snapshot()
    clock.advance(timedelta(minutes=5))
    blob.upload_blob(b'{"rewritten": true}', overwrite=True)

    assert snapshot["snapshot"] == "2026-03-02T09:30:00.0000000Z"
    assert blob.download_blob().readall() == b'{"rewritten": true}'
    snap = container.get_blob_client(MANIFEST, snapshot=snapshot["snapshot"])
    assert snap.download_blob().readall() == original
    listed = [(b.name, b.snapshot) for b in container.list_blobs(include=["snapshots"])]
    assert listed == [(CSV, None), (MANIFEST, snapshot["snapshot"]), (MANIFEST, None), (BIN, None)]
    assert [b.snapshot for b in container.list_blobs()] == [None, None, None]


def test_forensic_copy_of_a_snapshot_into_an_evidence_container(sim: Sim) -> None:
    source = exports(sim).get_blob_client(CSV)
    snapshot = source.create_snapshot()["snapshot"]
    blob_service = service(sim)
    case = blob_service.get_container_client("evidence-case-0042")
    case.create_container(metadata={"case": "case0042"})

    copied = case.get_blob_client(f"{EXPORTS}/{CSV}")
    answer = copied.start_copy_from_url(f"{source.url}?snapshot={snapshot}")

    assert answer["copy_status"] == "success" and answer["copy_id"]
    props = copied.get_blob_properties()
    assert props.copy.status == "success" and props.copy.id == answer["copy_id"]
    assert props.copy.source.endswith(f"/patient-exports/{CSV}?snapshot={snapshot}")
    assert props.copy.progress == f"{props.size}/{props.size}"
    assert props.content_settings.content_type == "text/csv"
    assert copied.download_blob().readall() == source.download_blob().readall()
    stored = sim.tenant.storage_account(ACCOUNT).container("evidence-case-0042")
    assert stored.metadata == {"case": "case0042"}
    copies = [e for e in sim.tenant.journal.writes() if e.route == "storage.blob.put_blob"]
    assert copies[0].status == 202
    assert copies[0].response["copy"]["status"] == "success"
    assert (
        copies[0].response["sha256"] == hashlib.sha256(stored.blobs[f"{EXPORTS}/{CSV}"].content).hexdigest()
    )
    with pytest.raises(ResourceExistsError) as caught:
        case.create_container()
    assert caught.value.error_code == "ContainerAlreadyExists"


def test_put_blob_journals_size_and_sha256_never_the_bytes(sim: Sim) -> None:
    container = evidence(sim)
    content = json.dumps({"finding": "SYNTHETIC-SECRET-MARKER", "rows": 2}).encode()

    container.upload_blob("case-1/findings.json", content, metadata={"caseid": "c1"})

    stored = sim.tenant.storage_account(ACCOUNT).container("evidence").blobs["case-1/findings.json"]
    assert stored.content == content and stored.metadata == {"caseid": "c1"}
    [write] = sim.tenant.journal.writes()
    digest = hashlib.sha256(content).hexdigest()
    assert write.body == {"size": len(content), "sha256": digest}
    assert write.response["sha256"] == digest and write.status == 201
    dump = json.dumps(sim.tenant.journal.to_list())
    assert "SYNTHETIC-SECRET-MARKER" not in dump
    [item] = container.list_blobs(include=["metadata"])
    assert item.metadata == {"caseid": "c1"}
    with pytest.raises(ResourceExistsError) as caught:
        container.upload_blob("case-1/findings.json", b"again")  # overwrite=False: If-None-Match: *
    assert caught.value.error_code == "BlobAlreadyExists"
    container.upload_blob("checked.bin", b"x" * 100, validate_content=True)  # Content-MD5 verified


def test_retention_policy_allows_new_blobs_but_not_overwrite_or_delete(sim: Sim, clock) -> None:  # type: ignore[no-untyped-def]
    container = evidence(sim, immutability_days=7)
    container.upload_blob("copy.csv", b"a,b\n")

    with pytest.raises(HttpResponseError) as caught:
        container.upload_blob("copy.csv", b"tampered", overwrite=True)
    assert (caught.value.status_code, caught.value.error_code) == (409, "BlobImmutableDueToPolicy")
    with pytest.raises(HttpResponseError) as caught:
        container.delete_blob("copy.csv")
    assert caught.value.error_code == "BlobImmutableDueToPolicy"
    source = exports(sim).get_blob_client(CSV).url
    with pytest.raises(HttpResponseError) as caught:
        container.get_blob_client("copy.csv").start_copy_from_url(source)
    assert caught.value.error_code == "BlobImmutableDueToPolicy"
    assert container.download_blob("copy.csv").readall() == b"a,b\n"
    container.get_blob_client("copy.csv").create_snapshot()  # a new object: allowed

    clock.advance(timedelta(days=7, seconds=1))  # the retention interval has passed
    container.delete_blob("copy.csv", delete_snapshots="include")
    assert list(container.list_blobs()) == []


def test_legal_hold_freezes_existing_blobs(sim: Sim) -> None:
    container = evidence(sim, legal_hold_tags=["case0042"])
    source = exports(sim).get_blob_client(MANIFEST).url
    copied = container.get_blob_client("manifest.json")
    copied.start_copy_from_url(source)

    for attempt in (
        lambda: copied.start_copy_from_url(source),
        lambda: copied.upload_blob(b"{}", overwrite=True),
        lambda: copied.delete_blob(),
    ):
        with pytest.raises(HttpResponseError) as caught:
            attempt()
        assert (caught.value.status_code, caught.value.error_code) == (409, "BlobImmutableDueToLegalHold")
    assert (
        copied.download_blob().readall()
        == sim.tenant.storage_account(ACCOUNT).container(EXPORTS).blobs[MANIFEST].content
    )


def test_delete_with_snapshots_needs_delete_snapshots(sim: Sim) -> None:
    blob = exports(sim).get_blob_client(BIN)
    snapshot = blob.create_snapshot()["snapshot"]

    with pytest.raises(HttpResponseError) as caught:
        blob.delete_blob()
    assert (caught.value.status_code, caught.value.error_code) == (409, "SnapshotsPresent")
    exports(sim).get_blob_client(BIN, snapshot=snapshot).delete_blob()
    blob.create_snapshot()
    blob.delete_blob(delete_snapshots="only")
    assert blob.get_blob_properties().size == 4096
    blob.delete_blob()
    with pytest.raises(ResourceNotFoundError) as caught:
        blob.get_blob_properties()
    assert caught.value.status_code == 404


def test_copy_sources_must_be_blobs_of_the_simulator(sim: Sim) -> None:
    container = evidence(sim)
    target = container.get_blob_client("x")
    with pytest.raises(HttpResponseError) as caught:
        target.start_copy_from_url("https://example.invalid/_data/phipatientexports/blob/patient-exports/a")
    assert (caught.value.status_code, caught.value.error_code) == (400, "CannotVerifyCopySource")
    missing = exports(sim).get_blob_client("no/such/blob").url
    with pytest.raises(HttpResponseError) as caught:
        target.start_copy_from_url(missing)
    assert (caught.value.status_code, caught.value.error_code) == (404, "CannotVerifyCopySource")
    assert sim.tenant.storage_account(ACCOUNT).container("evidence").blobs == {}


def test_missing_blob_and_container(sim: Sim) -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        exports(sim).get_blob_client("nope.csv").download_blob()
    assert caught.value.error_code == "BlobNotFound"
    with pytest.raises(ResourceNotFoundError) as caught:
        list(service(sim).get_container_client("no-such-container").list_blobs())
    assert caught.value.error_code == "ContainerNotFound"


def test_list_pages_with_markers_and_prefix(sim: Sim) -> None:
    container = exports(sim)
    pages = [[b.name for b in page] for page in container.list_blobs(results_per_page=2).by_page()]
    assert pages == [[CSV, MANIFEST], [BIN]]
    assert [b.name for b in container.list_blobs(name_starts_with="exports/2026-02-28/")] == [BIN]


def test_rbac_denies_blob_writes(sim: Sim) -> None:
    container_id = sim.tenant.storage_account(ACCOUNT).container(EXPORTS).id
    sim.tenant.deny(blob_data.BLOB_WRITE, container_id)
    blob = exports(sim).get_blob_client(MANIFEST)
    with pytest.raises(HttpResponseError) as caught:
        blob.create_snapshot()
    assert (caught.value.status_code, caught.value.error_code) == (403, "AuthorizationPermissionMismatch")
    assert blob.download_blob().readall()  # reads are still granted


def test_scenario_blobs_content_or_size_and_reset(clock) -> None:  # type: ignore[no-untyped-def]
    tenant = Tenant.demo(clock=clock)
    blobs = tenant.storage_account(ACCOUNT).container(EXPORTS).blobs
    assert set(blobs) == {CSV, MANIFEST, BIN}
    assert blobs[CSV].content_type == "text/csv"
    assert blobs[BIN].content.startswith(b"SYNTHETIC TEST DATA (irflow.sim)")
    assert base64.b64decode(blobs[BIN].content_md5) == md5(blobs[BIN].content)
    del blobs[CSV]
    tenant.reset()
    assert CSV in tenant.storage_account(ACCOUNT).container(EXPORTS).blobs

    document = read_scenario("demo")
    container = document["subscriptions"][0]["resource_groups"][0]["storage_accounts"][0]["containers"][0]
    container["blobs"] = [{"name": "a.txt", "content": "x", "size": 3}]
    with pytest.raises(ValueError, match="content or size"):
        load_scenario(document, clock=clock)
    container["blobs"] = [{"name": "a.txt", "content": "x"}, {"name": "a.txt", "size": 1}]
    with pytest.raises(ValueError, match="unique"):
        load_scenario(document, clock=clock)
    container["blobs"] = 7  # a count still works, with no blobs behind it
    counted = load_scenario(document, clock=clock).storage_account(ACCOUNT).container(EXPORTS)
    assert counted.blob_count == 7 and counted.blobs == {}


def test_add_blob_python_api(clock) -> None:  # type: ignore[no-untyped-def]
    tenant = Tenant.demo(clock=clock)
    blob = tenant.add_blob(ACCOUNT, "etl-staging", "notes/readme.txt", "synthetic")
    assert (blob.content, blob.content_type) == (b"synthetic", "text/plain; charset=utf-8")
    assert tenant.add_blob(ACCOUNT, "etl-staging", "b.bin", size=10).content == blob_data.synthetic_content(
        "b.bin", 10
    )
    with pytest.raises(ValueError, match="already exists"):
        tenant.add_blob(ACCOUNT, "etl-staging", "b.bin", size=1)
    with pytest.raises(ValueError, match="content or size"):
        tenant.add_blob(ACCOUNT, "etl-staging", "c.bin")
