"""Anchors of the audit chain as WORM blobs in the simulated evidence account (official SDKs, in-process
mount): anchoring, idempotence, and the rewrites only an anchor can catch."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from azure.core.exceptions import HttpResponseError
from pydantic import SecretStr
from sqlalchemy import delete, select

from irflow.audit import AuditChain
from irflow.audit.chain import event_hash
from irflow.azure import AzureClients
from irflow.engine.anchor import (
    ANCHOR_EVENT,
    AnchorConfig,
    AnchorError,
    AnchorStore,
    anchor_chain,
    anchor_if_configured,
    verify_with_anchors,
)
from irflow.settings import Settings
from irflow.sim.mock import mount
from irflow.sim.models import Tenant
from irflow.store.db import Database
from irflow.store.models import AuditEvent, AuditHead

ANCHOR_ACCOUNT = "irflowauditanchors"


@pytest.fixture
def tenant() -> Iterator[Tenant]:
    tenant = Tenant.demo()
    bystander = tenant.storage_account("webassetscdn")
    tenant.add_storage_account(bystander.subscription_id, bystander.resource_group, ANCHOR_ACCOUNT)
    with mount(tenant):
        yield tenant


@pytest.fixture
def store(tenant: Tenant) -> Iterator[AnchorStore]:
    clients = AzureClients(Settings(azure_token=SecretStr(tenant.token)))
    config = AnchorConfig(
        account_id=tenant.storage_account(ANCHOR_ACCOUNT).id,
        container="irflow-audit-anchors",
        retention_days=2190,
        prefix="chain",
    )
    yield AnchorStore(clients, config)
    clients.close()


def _append(db: Database, count: int, incident_id: str = "inc-1") -> None:
    for index in range(count):
        with db.transaction() as session:
            AuditChain().append(
                session, actor="tester", type="test.event", incident_id=incident_id, payload={"i": index}
            )


def _rewrite_from(db: Database, seq: int, payload: dict) -> None:
    """What an attacker with the database does: change event ``seq``, recompute every later hash and the
    head row, so the chain verifies on its own."""
    with db.transaction() as session:
        events = list(
            session.execute(
                select(AuditEvent).where(AuditEvent.seq >= seq).order_by(AuditEvent.seq)
            ).scalars()
        )
        prev = session.get(AuditEvent, seq - 1).hash  # type: ignore[union-attr]
        for event in events:
            if event.seq == seq:
                event.payload = json.dumps(payload, separators=(",", ":"))
            event.prev_hash = prev
            event.hash = event_hash(
                prev_hash=prev,
                seq=event.seq,
                ts=event.ts,
                actor=event.actor,
                incident_id=event.incident_id,
                type=event.type,
                payload=event.payload,
            )
            prev = event.hash
        head = session.get(AuditHead, 1)
        head.hash = prev  # type: ignore[union-attr]


def _truncate_after(db: Database, seq: int) -> None:
    """Delete the tail after ``seq`` and point the head row at ``seq``: the chain still verifies."""
    with db.transaction() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq > seq))
        head = session.get(AuditHead, 1)
        head.seq, head.hash = seq, session.get(AuditEvent, seq).hash  # type: ignore[union-attr]


def test_anchor_writes_a_worm_blob_and_an_audit_event(
    database: Database, store: AnchorStore, tenant: Tenant
) -> None:
    _append(database, 4)
    result = anchor_chain(database, store, actor="system:anchor")
    assert result.created and result.anchor.seq == 4 and result.blob == "chain/000000000004.json"

    container = tenant.storage_account(ANCHOR_ACCOUNT).container("irflow-audit-anchors")
    assert container.immutability is not None and container.immutability.state == "Locked"
    assert container.immutability.days == 2190
    with database.transaction() as session:
        events = list(AuditChain().events(session))
    assert events[-1].type == ANCHOR_EVENT and events[-1].seq == 5
    payload = json.loads(events[-1].payload)
    assert payload["anchored_seq"] == 4 and payload["anchored_hash"] == events[3].hash
    assert json.loads(store.read(result.blob).to_bytes())["hash"] == events[3].hash

    # WORM: the anchor cannot be overwritten or deleted, not even by irflow's own identity.
    blob = store._container().get_blob_client(result.blob)
    with pytest.raises(HttpResponseError) as overwrite:
        blob.upload_blob(b"{}", overwrite=True)
    assert overwrite.value.status_code == 409
    with pytest.raises(HttpResponseError):
        blob.delete_blob()

    report = verify_with_anchors(database, store)
    assert report.ok and report.anchors == 1 and report.last_anchor_seq == 4


def test_anchoring_twice_without_new_events_writes_nothing(database: Database, store: AnchorStore) -> None:
    _append(database, 2)
    first = anchor_chain(database, store)
    again = anchor_chain(database, store)
    assert first.created and not again.created and again.anchor == first.anchor
    with database.transaction() as session:
        assert [e.type for e in AuditChain().events(session)].count(ANCHOR_EVENT) == 1
    _append(database, 1)
    third = anchor_chain(database, store)
    assert third.created and third.anchor.seq == 4
    assert verify_with_anchors(database, store).anchors == 2


def test_tail_and_head_rewrite_is_caught_only_through_the_anchor(
    database: Database, store: AnchorStore
) -> None:
    _append(database, 6)
    anchor_chain(database, store)  # anchors #6, appends #7
    _append(database, 2)
    _rewrite_from(database, 3, {"i": "forged"})

    with database.transaction() as session:
        assert AuditChain().verify(session).ok  # the chain alone does not see it
    report = verify_with_anchors(database, store)
    assert not report.ok and report.first_bad_seq == 6
    assert "event #6 does not match its anchor" in report.problems[0]
    assert "rewritten before the last anchor" in report.problems[0]
    with pytest.raises(AnchorError, match="fails verification"):
        anchor_chain(database, store)  # a rewritten chain is never blessed by a new anchor


def test_truncating_the_tail_and_the_head_row_is_caught(database: Database, store: AnchorStore) -> None:
    _append(database, 5)
    anchor_chain(database, store)
    _truncate_after(database, 3)
    with database.transaction() as session:
        assert AuditChain().verify(session).ok
    report = verify_with_anchors(database, store)
    assert not report.ok and report.first_bad_seq == 5
    assert "event #5" in report.problems[0] and "missing" in report.problems[0]
    assert "the database head is #3" in report.problems[0]


def test_a_rewrite_after_the_last_anchor_is_beyond_its_reach(database: Database, store: AnchorStore) -> None:
    _append(database, 3)
    anchor_chain(database, store)  # anchors #3; #4 is the anchor event
    _append(database, 3)
    _rewrite_from(database, 6, {"i": "forged"})
    assert verify_with_anchors(database, store).ok


def test_an_unlocked_policy_is_locked_before_the_first_anchor(
    database: Database, store: AnchorStore, tenant: Tenant
) -> None:
    store._container().create_container()
    rid = store.rid
    store.clients.storage(rid.subscription_id).blob_containers.create_or_update_immutability_policy(
        rid.resource_group,
        rid.name,
        "irflow-audit-anchors",
        {"properties": {"immutabilityPeriodSinceCreationInDays": 1}},
    )
    container = tenant.storage_account(ANCHOR_ACCOUNT).container("irflow-audit-anchors")
    assert container.immutability is not None and container.immutability.state == "Unlocked"
    with pytest.raises(AnchorError, match="empty"):
        anchor_chain(database, store)  # nothing to anchor, but the container is made WORM first
    assert container.immutability.state == "Locked" and container.immutability.days == 2190


def test_a_longer_unlocked_policy_is_kept_when_locking(
    database: Database, store: AnchorStore, tenant: Tenant
) -> None:
    store._container().create_container()
    rid = store.rid
    store.clients.storage(rid.subscription_id).blob_containers.create_or_update_immutability_policy(
        rid.resource_group,
        rid.name,
        "irflow-audit-anchors",
        {"properties": {"immutabilityPeriodSinceCreationInDays": 3650}},
    )
    _append(database, 1)
    anchor_chain(database, store)
    container = tenant.storage_account(ANCHOR_ACCOUNT).container("irflow-audit-anchors")
    assert container.immutability is not None
    assert container.immutability.state == "Locked" and container.immutability.days == 3650


def test_a_missing_account_is_a_clear_error(database: Database, tenant: Tenant) -> None:
    clients = AzureClients(Settings(azure_token=SecretStr(tenant.token)))
    bystander = tenant.storage_account("webassetscdn")
    missing = bystander.id.rsplit("/", 1)[0] + "/nosuchaccount"
    store = AnchorStore(
        clients, AnchorConfig(account_id=missing, container="anchors", retention_days=1, prefix="")
    )
    _append(database, 1)
    with pytest.raises(AnchorError, match="not found"):
        anchor_chain(database, store)
    clients.close()


def test_verify_before_any_anchor_finds_none(database: Database, store: AnchorStore) -> None:
    _append(database, 2)
    report = verify_with_anchors(database, store)  # the container does not exist yet
    assert report.ok and report.anchors == 0 and report.describe()[-1] == "anchors: none found"


def test_anchors_under_an_earlier_prefix_are_still_checked(
    database: Database, store: AnchorStore, tenant: Tenant
) -> None:
    _append(database, 3)
    anchor_chain(database, store)  # chain/000000000003.json
    moved = AnchorStore(store.clients, AnchorConfig(**{**store.config.__dict__, "prefix": "moved"}))
    _append(database, 1)
    anchor_chain(database, moved)
    assert verify_with_anchors(database, moved).anchors == 2
    _rewrite_from(database, 2, {"i": "forged"})
    report = verify_with_anchors(database, moved)
    assert not report.ok and report.first_bad_seq == 3


def test_the_scheduled_callable_follows_the_settings(
    database: Database, store: AnchorStore, tenant: Tenant
) -> None:
    _append(database, 2)
    assert anchor_if_configured(database, store.clients, Settings()) is None
    settings = Settings(anchor_account_id=tenant.storage_account(ANCHOR_ACCOUNT).id, anchor_prefix="sched")
    result = anchor_if_configured(database, store.clients, settings, actor="system:scheduler")
    assert result is not None and result.created and result.blob == "sched/000000000002.json"
    with pytest.raises(ValueError, match="storage account"):
        Settings(anchor_account_id=tenant.storage_account(ANCHOR_ACCOUNT).id + "/blobServices/default")
