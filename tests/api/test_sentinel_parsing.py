"""Sentinel payloads, entities, trigger rules and routing as pure functions (no server, no database)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sentinel_helpers import FIXTURE_SUBSCRIPTION, body_of, common_alert, incident

from irflow.engine.playbook import PlaybookError, parse_playbook
from irflow.engine.sentinel_entities import (
    Entity,
    entity_from_sentinel,
    parse_entity_selector,
    select_entities,
)
from irflow.engine.sentinel_payload import DeliveryRejected, parse_delivery
from irflow.engine.sentinel_routing import NoRoute, Route, route

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
SUB = FIXTURE_SUBSCRIPTION
RG = f"/subscriptions/{SUB}/resourceGroups/rg-phi-prod/providers"
VAULT = f"{RG}/Microsoft.KeyVault/vaults/kv-phi"
VNET = f"{RG}/Microsoft.Network/virtualNetworks/vnet-phi"


def _entity(kind: str, **properties: Any) -> dict[str, Any]:
    return {"kind": kind, "properties": properties}


def _with_entities(title: str, *entities: dict[str, Any]) -> Any:
    return parse_delivery(body_of(incident(title=title, relatedEntities=list(entities))))


@pytest.mark.parametrize(
    ("kind", "properties", "expected"),
    [
        ("AzureResource", {"resourceId": VAULT}, Entity("AzureResource", VAULT, "microsoft.keyvault/vaults")),
        (
            "AzureResource",
            {"resourceId": VAULT.lower()},
            Entity(
                "AzureResource",
                VAULT.replace("resourcegroups", "resourceGroups"),
                "microsoft.keyvault/vaults",
            ),
        ),
        (
            "Account",
            {"aadUserId": "6B7C8D9E-0F1A-4B2C-8D3E-4F5A6B7C8D9E", "accountName": "jdoe"},
            Entity("Account", "6b7c8d9e-0f1a-4b2c-8d3e-4f5a6b7c8d9e"),
        ),  # fmt: skip
        ("Ip", {"address": "2001:DB8::1"}, Entity("Ip", "2001:db8::1")),
        (
            "Host",
            {"hostName": "VM-PHI-01", "dnsDomain": "corp.example"},
            Entity("Host", "vm-phi-01.corp.example"),
        ),
        (
            "CloudApplication",
            {"appId": 11161, "appDisplayName": "Office 365"},
            Entity("CloudApplication", "11161"),
        ),
        (
            "MailMessage",
            {"networkMessageId": "8b5e4f1a-2c3d-4e5f-8a9b-0c1d2e3f4a5b", "recipient": "patient@example.org"},
            Entity("MailMessage", "8b5e4f1a-2c3d-4e5f-8a9b-0c1d2e3f4a5b"),
        ),
    ],
)
def test_each_entity_kind_keeps_only_its_identifying_value(
    kind: str, properties: dict, expected: Entity
) -> None:  # type: ignore[type-arg]
    assert entity_from_sentinel(kind, properties) == expected


@pytest.mark.parametrize(
    ("kind", "properties"),
    [
        (
            "Account",
            {"accountName": "jdoe", "upnSuffix": "example.org"},
        ),  # no object id: a name is personal data
        ("Ip", {"address": "not-an-ip"}),
        ("AzureResource", {"resourceId": "/subscriptions/x"}),
        ("MailMessage", {"recipient": "patient@example.org", "subject": "lab results"}),
        ("Host", {"hostName": "bad host name!"}),
        ("File", {"name": "x.exe"}),
    ],
)
def test_entities_without_a_usable_identifier_are_left_out(kind: str, properties: dict) -> None:  # type: ignore[type-arg]
    assert entity_from_sentinel(kind, properties) is None


def test_entity_selectors() -> None:
    assert parse_entity_selector("AzureResource") == ("AzureResource", None)
    assert parse_entity_selector("azureresource:Microsoft.KeyVault/vaults") == (
        "AzureResource",
        "microsoft.keyvault/vaults",
    )
    for bad in ("Acount", "Ip:Microsoft.Network/x", "AzureResource:not a type"):
        with pytest.raises(ValueError):
            parse_entity_selector(bad)
    entities = [
        Entity("AzureResource", VAULT, "microsoft.keyvault/vaults"),
        Entity("AzureResource", VNET, "microsoft.network/virtualnetworks"),
        Entity("AzureResource", VAULT, "microsoft.keyvault/vaults"),
    ]
    assert select_entities(entities, "AzureResource:Microsoft.KeyVault/vaults") == [VAULT]
    assert select_entities(entities, "AzureResource") == [VAULT, VNET]


def test_playbook_trigger_rules_and_entity_bindings_are_checked_with_their_line() -> None:
    steps = "steps:\n  - id: s\n    action: notify.escalate\n    with: {{reason: r}}\n"
    base = "name: p\nversion: 1\n{extra}" + steps
    bad = {
        "triggers:\n  sentinel:\n    - match: {title_typo: x}\n": "unknown field",
        "triggers:\n  sentinel:\n    - match: {entity_types: [Acount]}\n": "unknown Sentinel entity kind",
        "triggers:\n  sentinel:\n    - match: {resource_types: [storage]}\n": "not an ARM resource type",
        "inputs:\n  a: {type: string, from_entities: Mailbox}\n": "unknown Sentinel entity kind",
    }
    for extra, message in bad.items():
        with pytest.raises(PlaybookError) as caught:
            parse_playbook(base.format(extra=extra), "p.yaml")
        assert message in str(caught.value) and "p.yaml:" in str(caught.value), extra
    rule = "    - match: {severities: [high], entity_types: [Ip]}\n      auto_start: true\n"
    good = "triggers:\n  sentinel:\n" + rule
    assert parse_playbook(base.format(extra=good)).spec.triggers.sentinel[0].auto_start is True


def test_routing_picks_the_playbook_by_title_and_resource_type() -> None:
    storage = _entity("AzureResource", resourceId=f"{RG}/Microsoft.Storage/storageAccounts/phiimaging")
    vault = _entity("AzureResource", resourceId=VAULT)
    sas = route(_with_entities("SAS token abuse", storage, vault), PLAYBOOKS)
    assert isinstance(sas, Route) and sas.playbook == "storage-sas-exfiltration" and sas.auto_start
    assert sas.params == {"storage_accounts": [f"{RG}/Microsoft.Storage/storageAccounts/phiimaging"]}

    assert isinstance(route(_with_entities("SAS token abuse", vault), PLAYBOOKS), NoRoute)

    kv = route(_with_entities("Key Vault opened to everyone", vault), PLAYBOOKS)
    assert isinstance(kv, Route) and kv.playbook == "keyvault-overbroad-access" and not kv.auto_start
    assert kv.params == {"key_vaults": [VAULT]}


def test_a_rule_whose_required_inputs_the_entities_cannot_fill_does_not_match() -> None:
    peering = _entity("AzureResource", resourceId=f"{VNET}/virtualNetworkPeerings/to-partner")
    subnet = _entity("AzureResource", resourceId=f"{VNET}/subnets/phi")
    missing = route(_with_entities("VNet peering bypasses the firewall", peering), PLAYBOOKS)
    assert isinstance(missing, NoRoute)
    assert any("network-peering-bypass" in reason and "subnets" in reason for reason in missing.reasons)
    full = route(_with_entities("VNet peering bypasses the firewall", peering, subnet), PLAYBOOKS)
    assert isinstance(full, Route) and full.playbook == "network-peering-bypass"
    assert full.params == {
        "subnets": [f"{VNET}/subnets/phi"],
        "peerings": [f"{VNET}/virtualNetworkPeerings/to-partner"],
    }


def test_the_common_alert_schema() -> None:
    target = f"{RG}/Microsoft.Storage/storageAccounts/phiimaging"
    fired = parse_delivery(body_of(common_alert(SUB, [target], rule="Anonymous reads")))
    assert fired.schema == "azure_monitor_alert" and fired.event_type == "Create" and fired.severity == "high"
    assert fired.entities == (Entity("AzureResource", target, "microsoft.storage/storageaccounts"),)
    resolved = parse_delivery(
        body_of(common_alert(SUB, [target], rule="Anonymous reads", condition="Resolved"))
    )
    assert resolved.event_type == "Update" and resolved.external_ref == fired.external_ref


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"objectEventType": "Delete"}, "invalid_payload"),
        ({"severity": "Critical"}, "invalid_payload"),
        ({"incidentNumber": -1}, "invalid_payload"),
        ({"title": ""}, "invalid_payload"),
        ({"relatedEntities": [{"kind": "Ip"}] * 1001}, "invalid_payload"),
    ],
)
def test_fields_irflow_uses_are_typed_and_bounded(change: dict, code: str) -> None:  # type: ignore[type-arg]
    document = incident()
    event = change.pop("objectEventType", None)
    if event:
        document["objectEventType"] = event
    document["object"]["properties"].update(change)
    with pytest.raises(DeliveryRejected) as caught:
        parse_delivery(body_of(document))
    assert caught.value.code == code


def test_sentinel_incident_ids_are_one_key_whatever_their_case() -> None:
    upper = incident()
    upper["object"]["id"] = upper["object"]["id"].upper().replace("/SUBSCRIPTIONS/", "/subscriptions/")
    assert parse_delivery(body_of(upper)).external_ref == parse_delivery(body_of(incident())).external_ref


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{" + b" " * (1024 * 1024) + b"}", 413, "body_too_large"),
        (b"\xff\xfe{}", 400, "invalid_json"),
        (b'{"a": ' + b"[" * 33 + b"]" * 33 + b"}", 400, "too_deep"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "too_deep"),
        (b'{"k": 1, "k": 2}', 400, "invalid_json"),
        (b'{"' + b"k" * 300 + b'": 1}', 422, "field_too_long"),
        (b'"just a string"', 422, "invalid_payload"),
    ],
)
def test_hostile_bodies_are_refused_by_the_parser_itself(body: bytes, status: int, code: str) -> None:
    """The API's request guard refuses most of these first; the parser does not rely on it."""
    with pytest.raises(DeliveryRejected) as caught:
        parse_delivery(body)
    assert (caught.value.status, caught.value.code) == (status, code)
