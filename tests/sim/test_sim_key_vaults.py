"""Key Vault management plane (vault get / update, access policies) via azure-mgmt-keyvault, both mounts."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from sim_helpers import DEVELOPERS, ETL_IDENTITY, NOW, PHI_RG, Sim, keyvault_client

from irflow.sim import Tenant

VAULT = "kv-phi-prod"


def raw(pipeline_response, deserialized, headers):  # type: ignore[no-untyped-def]
    return pipeline_response.http_response.json()


def policy(sim: Sim, object_id: str, **permissions: list[str]) -> dict:
    return {"tenantId": sim.tenant.tenant_id, "objectId": object_id, "permissions": permissions}


def test_get_vault_has_azure_shape(sim: Sim) -> None:
    vault = keyvault_client(sim).vaults.get(PHI_RG, VAULT)

    assert vault.id == (
        f"/subscriptions/{sim.subscription_id}/resourceGroups/{PHI_RG}/providers/Microsoft.KeyVault/vaults/{VAULT}"
    )
    assert vault.type == "Microsoft.KeyVault/vaults" and vault.location == "eastus"
    props = vault.properties
    assert props.tenant_id == sim.tenant.tenant_id
    assert props.sku.name == "standard" and props.sku.family == "A"
    assert props.public_network_access == "Enabled"
    assert props.network_acls.default_action == "Allow" and props.network_acls.bypass == "AzureServices"
    assert props.enable_soft_delete is True and props.soft_delete_retention_in_days == 90
    assert props.enable_purge_protection is None
    assert props.vault_uri == f"{sim.endpoint}/_data/{VAULT}/vault/"
    developers = next(p for p in props.access_policies if p.object_id == DEVELOPERS)
    assert developers.permissions.keys_property == ["get", "decrypt", "unwrapKey"]
    assert developers.permissions.secrets == ["get"]

    body = keyvault_client(sim).vaults.get(PHI_RG, VAULT, cls=raw)
    assert set(body) >= {"id", "name", "type", "location", "tags", "properties"}
    assert {"sku", "tenantId", "accessPolicies", "vaultUri", "provisioningState"} <= set(body["properties"])


def test_patch_locks_the_vault_down(sim: Sim) -> None:
    client = keyvault_client(sim)
    patch = {
        "properties": {
            "publicNetworkAccess": "Disabled",
            "networkAcls": {"defaultAction": "Deny", "bypass": "None", "ipRules": [{"value": "203.0.113.7"}]},
            "enablePurgeProtection": True,
        }
    }

    vault = client.vaults.update(PHI_RG, VAULT, patch)

    assert vault.properties.public_network_access == "Disabled"
    assert vault.properties.network_acls.default_action == "Deny"
    assert vault.properties.network_acls.bypass == "None"
    assert [r.value for r in vault.properties.network_acls.ip_rules] == ["203.0.113.7"]
    assert vault.properties.enable_purge_protection is True
    # Access policies are untouched by a PATCH that does not name them.
    assert len(vault.properties.access_policies) == 3
    summary = sim.tenant.key_vault(VAULT).summary()
    assert summary["enablePurgeProtection"] is True and summary["publicNetworkAccess"] == "Disabled"
    [entry] = sim.tenant.journal.writes()
    assert (entry.route, entry.method, entry.status) == ("keyvault.vaults.update", "PATCH", 200)

    # Applying it again is a no-op change; turning purge protection off is refused like Azure.
    client.vaults.update(PHI_RG, VAULT, patch)
    with pytest.raises(HttpResponseError) as caught:
        client.vaults.update(PHI_RG, VAULT, {"properties": {"enablePurgeProtection": False}})
    assert caught.value.status_code == 400
    assert caught.value.error.code == "BadRequest"
    assert "enablePurgeProtection" in caught.value.error.message
    assert sim.tenant.key_vault(VAULT).properties["enablePurgeProtection"] is True


def test_soft_delete_cannot_be_turned_off(sim: Sim) -> None:
    with pytest.raises(HttpResponseError) as caught:
        keyvault_client(sim).vaults.update(PHI_RG, VAULT, {"properties": {"enableSoftDelete": False}})
    assert caught.value.status_code == 400
    assert sim.tenant.key_vault(VAULT).properties["enableSoftDelete"] is True


def test_invalid_patch_changes_nothing(sim: Sim) -> None:
    with pytest.raises(HttpResponseError) as caught:
        keyvault_client(sim).vaults.update(
            PHI_RG,
            VAULT,
            {"properties": {"publicNetworkAccess": "Disabled", "networkAcls": {"defaultAction": "Maybe"}}},
        )
    assert caught.value.status_code == 400
    assert sim.tenant.key_vault(VAULT).properties["publicNetworkAccess"] == "Enabled"


@pytest.mark.parametrize(
    "value", ["10.1.2.3", "172.16.0.0/12", "192.168.10.0/24", "127.0.0.1", "169.254.1.0/24", "8.0.0.0/6"]
)
def test_ip_rules_refuse_private_loopback_and_link_local_ranges(sim: Sim, value: str) -> None:
    """Key Vault IP rules take public IPv4 only (8.0.0.0/6 spans 10.0.0.0/8): the PATCH is refused whole.
    Private ranges "cannot be used to add network rules"
    (https://learn.microsoft.com/powershell/module/az.keyvault/add-azkeyvaultnetworkrule)."""
    before = sim.tenant.key_vault(VAULT).properties.get("networkAcls")
    with pytest.raises(HttpResponseError) as caught:
        keyvault_client(sim).vaults.update(
            PHI_RG,
            VAULT,
            {
                "properties": {
                    "publicNetworkAccess": "Enabled",
                    "networkAcls": {
                        "defaultAction": "Deny",
                        "ipRules": [{"value": "203.0.113.7"}, {"value": value}],
                    },
                }
            },
        )
    assert caught.value.status_code == 400
    assert caught.value.error.code == "BadRequest"
    assert value in caught.value.error.message and "public" in caught.value.error.message
    assert sim.tenant.key_vault(VAULT).properties.get("networkAcls") == before
    assert all(entry.status == 400 for entry in sim.tenant.journal.writes())


def test_ip_rules_take_a_public_single_address_range(sim: Sim) -> None:
    """Unlike storage, Key Vault takes a /32: one public address written as a range."""
    public_32 = "198.51.100.10/32"
    vault = keyvault_client(sim).vaults.update(
        PHI_RG,
        VAULT,
        {"properties": {"networkAcls": {"defaultAction": "Deny", "ipRules": [{"value": public_32}]}}},
    )
    assert [r.value for r in vault.properties.network_acls.ip_rules] == [public_32]


def test_remove_takes_away_only_the_listed_permissions(sim: Sim) -> None:
    client = keyvault_client(sim)
    answer = client.vaults.update_access_policy(
        PHI_RG,
        VAULT,
        "remove",
        {
            "properties": {
                "accessPolicies": [policy(sim, DEVELOPERS, keys=["decrypt", "unwrapKey"], secrets=["get"])]
            }
        },
    )
    assert answer.type == "Microsoft.KeyVault/vaults/accessPolicies"
    assert answer.properties.access_policies[0].object_id == DEVELOPERS

    developers = sim.tenant.key_vault(VAULT).access_policy(DEVELOPERS)
    assert developers["permissions"] == {"keys": ["get"], "secrets": [], "certificates": []}
    # Removing what is left drops the entry; the other principals are untouched.
    client.vaults.update_access_policy(
        PHI_RG, VAULT, "remove", {"properties": {"accessPolicies": [policy(sim, DEVELOPERS, keys=["get"])]}}
    )
    vault = client.vaults.get(PHI_RG, VAULT)
    assert [p.object_id for p in vault.properties.access_policies] == [ETL_IDENTITY, sim.tenant.principal_id]
    assert [e.route for e in sim.tenant.journal.writes()] == ["keyvault.vaults.update_access_policy"] * 2


def test_remove_matches_permissions_case_sensitively_and_answers_200(sim: Sim) -> None:
    """Azure's ``accessPolicies/remove`` compares permission names case-sensitively: ``GET`` takes nothing
    from an entry holding ``get``, and the call still answers 200 (AZURE_NOTES, "Rules Azure enforces";
    https://learn.microsoft.com/rest/api/keyvault/keyvault/vaults/update-access-policy)."""
    client = keyvault_client(sim)
    answer = client.vaults.update_access_policy(
        PHI_RG, VAULT, "remove", {"properties": {"accessPolicies": [policy(sim, DEVELOPERS, keys=["GET"])]}}
    )
    assert answer.properties.access_policies[0].object_id == DEVELOPERS
    developers = sim.tenant.key_vault(VAULT).access_policy(DEVELOPERS)
    assert developers["permissions"]["keys"] == ["get", "decrypt", "unwrapKey"]
    assert [e.status for e in sim.tenant.journal.writes()] == [200]


def test_add_merges_permissions_per_principal(sim: Sim) -> None:
    client = keyvault_client(sim)
    responder = "0c9d8e7f-6a5b-4c3d-2e1f-0a9b8c7d6e5f"
    client.vaults.update_access_policy(
        PHI_RG,
        VAULT,
        "add",
        {
            "properties": {
                "accessPolicies": [
                    policy(sim, DEVELOPERS, keys=["get", "list"], certificates=["get"]),
                    policy(sim, responder, secrets=["list"]),
                ]
            }
        },
    )
    vault = sim.tenant.key_vault(VAULT)
    assert vault.access_policy(DEVELOPERS)["permissions"] == {
        "keys": ["get", "decrypt", "unwrapKey", "list"],
        "secrets": ["get"],
        "certificates": ["get"],
    }
    assert vault.access_policy(responder)["permissions"] == {"secrets": ["list"]}


def test_replace_replaces_the_whole_list(sim: Sim) -> None:
    keyvault_client(sim).vaults.update_access_policy(
        PHI_RG,
        VAULT,
        "replace",
        {"properties": {"accessPolicies": [policy(sim, ETL_IDENTITY, keys=["wrapKey"])]}},
    )
    vault = sim.tenant.key_vault(VAULT)
    assert [p["objectId"] for p in vault.access_policies] == [ETL_IDENTITY]
    assert vault.access_policy(ETL_IDENTITY)["permissions"] == {"keys": ["wrapKey"]}


def test_foreign_tenant_policy_is_refused(sim: Sim) -> None:
    entry = {**policy(sim, DEVELOPERS, keys=["get"]), "tenantId": "00000000-0000-0000-0000-000000000000"}
    with pytest.raises(HttpResponseError) as caught:
        keyvault_client(sim).vaults.update_access_policy(
            PHI_RG, VAULT, "add", {"properties": {"accessPolicies": [entry]}}
        )
    assert caught.value.status_code == 400


def test_missing_vault_is_404(sim: Sim) -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        keyvault_client(sim).vaults.get(PHI_RG, "kv-nope")
    assert caught.value.error.code == "ResourceNotFound"


def test_rbac_denies_access_policy_writes(sim: Sim) -> None:
    sim.tenant.deny("Microsoft.KeyVault/vaults/accessPolicies/write")
    with pytest.raises(HttpResponseError) as caught:
        keyvault_client(sim).vaults.update_access_policy(
            PHI_RG,
            VAULT,
            "remove",
            {"properties": {"accessPolicies": [policy(sim, DEVELOPERS, keys=["get"])]}},
        )
    assert caught.value.status_code == 403 and caught.value.error.code == "AuthorizationFailed"
    assert "Microsoft.KeyVault/vaults/accessPolicies/write" in caught.value.error.message
    assert "get" in sim.tenant.key_vault(VAULT).access_policy(DEVELOPERS)["permissions"]["keys"]
    assert keyvault_client(sim).vaults.get(PHI_RG, VAULT).name == VAULT


def test_scenario_key_vaults_and_reset(clock) -> None:  # type: ignore[no-untyped-def]
    tenant = Tenant.demo(clock=clock)
    vault = tenant.key_vault(VAULT)
    assert vault.created < NOW
    vault.apply_update({"properties": {"enablePurgeProtection": True}}, when=NOW)
    tenant.reset()
    assert "enablePurgeProtection" not in tenant.key_vault(VAULT).properties
    with pytest.raises(ValueError, match="key vault"):
        Tenant.from_scenario(
            {
                "subscriptions": [
                    {
                        "id": "9b2f6c1d-4e8a-4f3b-a1c7-2d5e8f0a6b3c",
                        "resource_groups": [
                            {
                                "name": "rg",
                                "key_vaults": [
                                    {"name": "kv-x", "properties": {"publicNetworkAccess": "Maybe"}}
                                ],
                            }
                        ],
                    }
                ]
            }
        )


def _new_vault(sim: Sim, **properties: object) -> dict:  # type: ignore[type-arg]
    return {
        "location": "eastus",
        "properties": {
            "tenantId": sim.tenant.tenant_id,
            "sku": {"family": "A", "name": "standard"},
            **properties,
        },
    }


@pytest.mark.parametrize(("api_version", "rbac"), [(None, True), ("2026-02-01", True), ("2023-07-01", False)])
def test_create_vault_defaults_to_rbac_from_api_2026_02_01(
    sim: Sim, api_version: str | None, rbac: bool
) -> None:
    """New vaults use the Azure RBAC permission model by default from api-version 2026-02-01 (AZURE_NOTES;
    https://learn.microsoft.com/azure/key-vault/general/rbac-access-policy); the SDK's own default version
    is newer. Older versions keep access policies."""
    kwargs = {"api_version": api_version} if api_version else {}
    client = keyvault_client(sim, polling_interval=0, **kwargs)
    vault = client.vaults.begin_create_or_update(PHI_RG, "kv-phi-new", _new_vault(sim)).result()
    assert vault.properties.enable_rbac_authorization is rbac
    assert vault.properties.provisioning_state == "Succeeded"
    assert sim.tenant.key_vault("kv-phi-new").properties["enableRbacAuthorization"] is rbac
    explicit = client.vaults.begin_create_or_update(
        PHI_RG, "kv-phi-policies", _new_vault(sim, enableRbacAuthorization=False, accessPolicies=[])
    ).result()
    assert explicit.properties.enable_rbac_authorization is False


@pytest.mark.parametrize(
    ("name", "body", "status", "code"),
    [
        ("kv-phi-prod2", {"properties": {}}, 400, "BadRequest"),  # no location
        ("kv--double", None, 400, "VaultNameNotValid"),
        ("kv-phi-prod", None, 200, None),  # an existing vault: an update
    ],
)
def test_create_vault_validation(
    sim: Sim, name: str, body: dict | None, status: int, code: str | None
) -> None:  # type: ignore[type-arg]
    client = keyvault_client(sim, polling_interval=0)
    if status == 200:
        vault = client.vaults.begin_create_or_update(
            PHI_RG, name, _new_vault(sim, enablePurgeProtection=True)
        )
        assert vault.result().properties.enable_purge_protection is True
        return
    with pytest.raises(HttpResponseError) as caught:
        client.vaults.begin_create_or_update(PHI_RG, name, body or _new_vault(sim)).result()
    assert (caught.value.status_code, caught.value.error.code) == (status, code)
    assert sim.tenant.find_key_vault(name) is None


def test_vault_names_are_global(sim: Sim) -> None:
    sim.tenant.add_resource_group(sim.subscription_id, "rg-other")
    with pytest.raises(HttpResponseError) as caught:
        keyvault_client(sim, polling_interval=0).vaults.begin_create_or_update(
            "rg-other", VAULT, _new_vault(sim)
        ).result()
    assert (caught.value.status_code, caught.value.error.code) == (409, "VaultAlreadyExists")


def test_vaults_list_by_subscription_and_group_page_through_next_link(sim: Sim) -> None:
    """Vaults - List By Subscription / By Resource Group, paged with nextLink
    (https://learn.microsoft.com/rest/api/keyvault/keyvault/vaults/list-by-subscription)."""
    from azure.mgmt.keyvault import KeyVaultManagementClient

    from irflow.azure.clients import StaticTokenCredential

    client = KeyVaultManagementClient(
        StaticTokenCredential(sim.tenant.token),
        sim.subscription_id,
        base_url=sim.endpoint,
        credential_scopes=[sim.endpoint + "/.default"],
        connection_verify=sim.verify,
    )
    sim.tenant.add_key_vault(sim.subscription_id, PHI_RG, "kv-phi-second")
    sim.tenant.add_key_vault(sim.subscription_id, "rg-analytics", "kv-analytics")
    everywhere = sorted(v.name for v in sim.tenant.key_vaults() if sim.subscription_id in v.id)
    assert len(everywhere) == 3
    sim.tenant.page_size = 1
    assert sorted(v.name for v in client.vaults.list_by_subscription()) == everywhere
    assert len(sim.tenant.journal.entries()) == 3  # one page each
    assert sorted(v.name for v in client.vaults.list_by_subscription(top=1)) == everywhere
    assert sorted(v.name for v in client.vaults.list_by_resource_group(PHI_RG)) == [
        "kv-phi-prod",
        "kv-phi-second",
    ]
