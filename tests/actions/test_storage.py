"""Storage actions through the official SDK against the simulated tenant (in-process mount)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from irflow.actions.base import ResourceMissing, all_actions
from irflow.actions.storage import IsolateAccount, RotateAccountKeys
from irflow.sim.models import Tenant


def _account_id(tenant: Tenant, name: str) -> str:
    return tenant.storage_account(name).id


def _writes(tenant: Tenant) -> list:  # type: ignore[type-arg]
    return tenant.journal.writes()


ORIGIN_RULE = [{"value": "192.0.2.10", "action": "Allow"}]  # IRFLOW_EGRESS_IPS of the fixtures


class TestIsolateAccount:
    def test_plan_is_exact_and_writes_nothing(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        ctx = make_context("storage.isolate_account", account=_account_id(tenant, "phipatientexports"))
        plan = IsolateAccount().plan(ctx)
        assert [(c.field, c.before, c.after) for c in plan.changes] == [
            ("properties.allowBlobPublicAccess", True, False),
            ("properties.networkAcls.defaultAction", "Allow", "Deny"),
            ("properties.networkAcls.bypass", "AzureServices", "None"),
            ("properties.networkAcls.ipRules", [], ORIGIN_RULE),
        ]
        assert plan.notes == []
        assert _writes(tenant) == []

    def test_apply_twice_makes_one_change_and_verifies(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        """Allow-list mode: exactly irflow's origin stays allowed, public network access stays Enabled (the
        data plane is still needed), the customer's own rules are removed and recorded as prior state."""
        account = _account_id(tenant, "phiimaging")
        ctx = make_context("storage.isolate_account", account=account)
        action = IsolateAccount()
        assert action.verify(ctx) is False
        first = action.apply(ctx)
        assert first.changed
        assert first.prior_state["networkAcls"]["ipRules"] == [{"value": "203.0.113.0/24", "action": "Allow"}]
        assert first.prior_state["networkAcls"]["bypass"] == "AzureServices"
        writes_after_first = _writes(tenant)
        assert len(writes_after_first) == 1 and writes_after_first[0].method == "PATCH"
        second = action.apply(ctx)
        assert not second.changed
        assert _writes(tenant) == writes_after_first
        assert action.verify(ctx) is True
        props = tenant.storage_account("phiimaging").properties
        assert props["publicNetworkAccess"] == "Enabled"
        assert props["allowBlobPublicAccess"] is False
        assert props["networkAcls"]["defaultAction"] == "Deny"
        assert props["networkAcls"]["bypass"] == "None"
        assert props["networkAcls"]["ipRules"] == ORIGIN_RULE
        assert props["networkAcls"]["virtualNetworkRules"] == []

    def test_subnet_origin_becomes_the_virtual_network_rule(
        self, tenant: Tenant, clients, make_context
    ) -> None:  # type: ignore[no-untyped-def]
        from irflow.azure.principal import NetworkOrigin

        subnet = tenant.storage_account("phiimaging").id.split("/providers/")[0] + (
            "/providers/Microsoft.Network/virtualNetworks/vnet-ops/subnets/irflow"
        )
        clients.origin = NetworkOrigin(egress_ips=("198.51.100.0/31",), subnet_id=subnet)
        ctx = make_context("storage.isolate_account", account=_account_id(tenant, "phiimaging"))
        IsolateAccount().apply(ctx)
        acls = tenant.storage_account("phiimaging").properties["networkAcls"]
        # storage refuses /31 and /32 ranges: a /31 is written as its two addresses
        assert [r["value"] for r in acls["ipRules"]] == ["198.51.100.0", "198.51.100.1"]
        assert [r["id"] for r in acls["virtualNetworkRules"]] == [subnet]
        assert IsolateAccount().verify(ctx)

    def test_without_origin_it_still_isolates_and_says_irflow_is_locked_out(  # type: ignore[no-untyped-def]
        self, tenant: Tenant, clients, make_context
    ) -> None:
        from irflow.azure.principal import NetworkOrigin

        clients.origin = NetworkOrigin()
        ctx = make_context("storage.isolate_account", account=_account_id(tenant, "phiimaging"))
        plan = IsolateAccount().plan(ctx)
        assert any("IRFLOW_EGRESS_IPS" in note for note in plan.notes)
        IsolateAccount().apply(ctx)
        assert tenant.storage_account("phiimaging").properties["networkAcls"]["ipRules"] == []

    def test_a_sealed_account_is_never_reopened(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        account = tenant.storage_account("phiimaging")
        account.properties["publicNetworkAccess"] = "Disabled"
        ctx = make_context("storage.isolate_account", account=account.id)
        result = IsolateAccount().apply(ctx)
        assert account.properties["publicNetworkAccess"] == "Disabled"
        assert any("already Disabled" in note for note in result.notes)
        assert not any(c.field == "properties.publicNetworkAccess" for c in result.changes)

    def test_missing_account_is_named(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        missing = _account_id(tenant, "phiimaging").replace("phiimaging", "phigone")
        ctx = make_context("storage.isolate_account", account=missing)
        with pytest.raises(ResourceMissing, match="phigone"):
            IsolateAccount().plan(ctx)

    def test_params_are_validated(self) -> None:
        from irflow.actions.storage import IsolateAccountParams

        with pytest.raises(ValidationError, match="not an Azure resource id"):
            IsolateAccountParams(account="phiimaging")
        with pytest.raises(ValidationError, match="not a storage account"):
            IsolateAccountParams(
                account="/subscriptions/9b2f6c1d-4e8a-4f3b-a1c7-2d5e8f0a6b3c/resourceGroups/rg/providers/"
                "Microsoft.KeyVault/vaults/kv1"
            )
        with pytest.raises(ValidationError, match="Extra inputs"):
            IsolateAccountParams.model_validate({"account": "x", "surprise": 1})


class TestRotateAccountKeys:
    def test_plan_writes_nothing_and_names_both_keys(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        ctx = make_context("storage.rotate_account_keys", account=_account_id(tenant, "phiclaimsarchive"))
        plan = RotateAccountKeys().plan(ctx)
        assert [c.field for c in plan.changes] == ["keys.key1", "keys.key2"]
        assert _writes(tenant) == []

    def test_each_key_rotates_exactly_once(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        account = tenant.storage_account("phipatientexports")
        old = {k: account.key_value(k) for k in ("key1", "key2")}
        ctx = make_context("storage.rotate_account_keys", account=account.id)
        action = RotateAccountKeys()
        result = action.apply(ctx)
        assert result.changed
        assert set(result.outputs["new_keys"]) == {"key1", "key2"}
        assert all(v.startswith("hmac-sha256:") for v in result.outputs["new_keys"].values())
        assert all(account.key_value(k) != old[k] for k in old)
        writes = _writes(tenant)
        assert [w.route for w in writes] == ["storage.accounts.regenerate_key"] * 2
        again = action.apply(ctx)
        assert not again.changed
        assert _writes(tenant) == writes
        assert action.verify(ctx)
        # no key value anywhere in what the action returns
        dumped = result.model_dump_json() + again.model_dump_json()
        assert all(account.key_value(k) not in dumped and old[k] not in dumped for k in old)

    def test_only_the_requested_key(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        account = tenant.storage_account("phiimaging")
        key2 = account.key_value("key2")
        ctx = make_context("storage.rotate_account_keys", account=account.id, keys=["key1"])
        RotateAccountKeys().apply(ctx)
        assert account.key_value("key2") == key2
        assert [w.body for w in _writes(tenant)] == [{"keyName": "key1"}]


def test_registry_is_complete() -> None:
    """Every action carries params, a docstring example, permissions and a target parameter."""
    actions = all_actions()
    assert {"storage.isolate_account", "storage.rotate_account_keys"} <= set(actions)
    for name, action in actions.items():
        assert action.name == name
        assert action.Params.model_fields, name
        assert action.example().strip().startswith("- id:"), name
        assert all(p.startswith(("Microsoft.", "microsoft.directory/")) for p in action.permissions), name
        assert action.permissions or name.startswith("notify."), f"{name} changes Azure: it needs permissions"
        assert action.summary(), name


def test_every_action_is_exercised_against_the_simulator() -> None:
    """Each registered action is driven by name by a test: Azure actions in tests/actions (the in-process
    simulator), notify.* actions in tests/notify (a real SMTP server)."""
    from pathlib import Path

    tests = Path(__file__).parents[1]
    files = [*tests.joinpath("actions").glob("test_*.py"), *tests.joinpath("notify").glob("test_*.py")]
    sources = "\n".join(p.read_text() for p in files)
    missing = [name for name in all_actions() if name not in sources]
    assert missing == []


class TestRestoreAccountNetwork:
    def test_isolate_then_restore_round_trips(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        from irflow.actions.storage import RestoreAccountNetwork

        account = tenant.storage_account("phiimaging")
        original = dict(account.properties["networkAcls"])
        isolated = IsolateAccount().apply(make_context("storage.isolate_account", account=account.id))
        ctx = make_context("storage.restore_account_network", account=account.id, prior=isolated.prior_state)
        action = RestoreAccountNetwork()
        plan = action.plan(ctx)
        # allow-list mode leaves public network access as it was: only the rules and blob access come back
        assert {c.field for c in plan.changes} == {
            "properties.allowBlobPublicAccess",
            "properties.networkAcls",
        }
        writes = len(_writes(tenant))
        assert action.apply(ctx).changed
        assert len(_writes(tenant)) == writes + 1
        assert not action.apply(ctx).changed
        assert len(_writes(tenant)) == writes + 1
        assert action.verify(ctx)
        assert account.properties["networkAcls"] == original
        assert account.summary()["publicNetworkAccess"] == "Enabled"

    def test_prior_state_is_validated(self, tenant: Tenant) -> None:
        from irflow.actions.storage import RestoreAccountNetworkParams

        with pytest.raises(ValidationError, match="publicNetworkAccess"):
            RestoreAccountNetworkParams(account=_account_id(tenant, "phiimaging"), prior={"networkAcls": {}})


class TestSealAccount:
    def test_seal_apply_twice_verify_and_unseal_from_prior_state(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        from irflow.actions.storage import SealAccount, UnsealAccount

        account = tenant.storage_account("phiimaging")
        ctx = make_context("storage.seal_account", account=account.id)
        plan = SealAccount().plan(ctx)
        assert [(c.field, c.before, c.after) for c in plan.changes] == [
            ("properties.publicNetworkAccess", "Enabled", "Disabled")
        ]
        assert plan.notes and _writes(tenant) == []
        sealed = SealAccount().apply(ctx)
        assert sealed.changed and sealed.prior_state == {"publicNetworkAccess": "Enabled"}
        assert not SealAccount().apply(ctx).changed
        assert len(_writes(tenant)) == 1 and SealAccount().verify(ctx)
        assert account.properties["publicNetworkAccess"] == "Disabled"

        unseal = make_context("storage.unseal_account", account=account.id, prior=sealed.prior_state)
        assert [c.after for c in UnsealAccount().plan(unseal).changes] == ["Enabled"]
        assert len(_writes(tenant)) == 1
        assert UnsealAccount().apply(unseal).changed
        assert not UnsealAccount().apply(unseal).changed
        assert len(_writes(tenant)) == 2 and UnsealAccount().verify(unseal)
        assert account.properties["publicNetworkAccess"] == "Enabled"


class TestNetworkRefusal:
    """The data plane under the strict firewall (irflow.sim.firewall): irflow's origin passes allow-list
    mode; a network refusal is reported as one, naming the resource and what to configure."""

    def test_allow_list_mode_keeps_irflows_data_plane_path(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        from irflow.actions.storage import RemoveStoredAccessPolicies

        account = tenant.storage_account("phipatientexports")
        IsolateAccount().apply(make_context("storage.isolate_account", account=account.id))
        ctx = make_context("storage.remove_stored_access_policies", account=account.id)
        assert RemoveStoredAccessPolicies().apply(ctx).changed
        assert RemoveStoredAccessPolicies().verify(ctx)

    def test_outside_the_allow_list_is_a_network_refusal_not_rbac(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        from irflow.actions.base import NetworkRefused
        from irflow.actions.storage import RemoveStoredAccessPolicies

        account = tenant.storage_account("phipatientexports")
        IsolateAccount().apply(make_context("storage.isolate_account", account=account.id))
        tenant.set_caller_origin(ip="198.51.100.99")  # irflow now calls from somewhere else
        ctx = make_context("storage.remove_stored_access_policies", account=account.id)
        with pytest.raises(NetworkRefused) as refused:
            RemoveStoredAccessPolicies().plan(ctx)
        message = str(refused.value)
        assert "network refusal" in message and "AuthorizationFailure" in message
        assert account.id in message and "IRFLOW_EGRESS_IPS" in message and "IRFLOW_SUBNET_ID" in message
        assert "permission denied" not in message

    def test_sealed_account_refuses_even_irflow(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        from irflow.actions.base import NetworkRefused
        from irflow.actions.storage import RemoveStoredAccessPolicies, SealAccount

        account = tenant.storage_account("phipatientexports")
        IsolateAccount().apply(make_context("storage.isolate_account", account=account.id))
        SealAccount().apply(make_context("storage.seal_account", account=account.id))
        with pytest.raises(NetworkRefused, match="phipatientexports"):
            RemoveStoredAccessPolicies().plan(
                make_context("storage.remove_stored_access_policies", account=account.id)
            )


def test_a_key_vault_firewall_refusal_is_a_network_refusal(tenant: Tenant, clients) -> None:  # type: ignore[no-untyped-def]
    """The shared data-plane firewall on a vault: Key Vault's 403 ForbiddenByFirewall (and
    ForbiddenByConnection) maps to NetworkRefused as the blob service's AuthorizationFailure does
    (https://learn.microsoft.com/en-us/azure/key-vault/general/rest-error-codes)."""
    from azure.keyvault.keys._shared import http_challenge_cache

    from irflow.actions.base import NetworkRefused, azure_errors

    vault = tenant.key_vaults()[0]
    vault.properties["networkAcls"] = {"defaultAction": "Deny", "bypass": "None", "ipRules": []}
    http_challenge_cache.clear()
    try:
        keys = clients.keys(f"https://management.azure.com/_data/{vault.name}/vault/")
        read = "Microsoft.KeyVault/vaults/keys/read"
        with (
            pytest.raises(NetworkRefused, match="ForbiddenByFirewall") as refused,
            azure_errors(permission=read, scope=vault.id),
        ):
            list(keys.list_properties_of_keys())
        assert vault.id in str(refused.value) and "permission denied" not in str(refused.value)
        vault.properties["publicNetworkAccess"] = "Disabled"
        with (
            pytest.raises(NetworkRefused, match="ForbiddenByConnection"),
            azure_errors(permission=read, scope=vault.id),
        ):
            list(keys.list_properties_of_keys())
    finally:
        http_challenge_cache.clear()


class TestBlockPublicContainers:
    def test_plan_apply_twice_verify(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        from irflow.actions.storage import BlockPublicContainers

        account = tenant.storage_account("phipatientexports")
        ctx = make_context("storage.block_public_containers", account=account.id)
        action = BlockPublicContainers()
        plan = action.plan(ctx)
        assert [(c.field, c.before, c.after) for c in plan.changes] == [
            ("containers.patient-exports.publicAccess", "Container", "None")
        ]
        assert _writes(tenant) == []
        result = action.apply(ctx)
        assert result.changed and result.prior_state["publicAccess"]["patient-exports"] == "Container"
        writes = _writes(tenant)
        assert [w.method for w in writes] == ["PATCH"] and writes[0].path.endswith(
            "/containers/patient-exports"
        )
        assert not action.apply(ctx).changed
        assert _writes(tenant) == writes
        assert action.verify(ctx)

    def test_named_containers_must_exist(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        from irflow.actions.storage import BlockPublicContainers

        account = tenant.storage_account("phiimaging")
        ctx = make_context("storage.block_public_containers", account=account.id, containers=["no-such"])
        with pytest.raises(ResourceMissing, match="no-such"):
            BlockPublicContainers().plan(ctx)


class TestEnableDataProtection:
    def test_turns_protection_on_once_and_never_shortens(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        from irflow.actions.storage import EnableDataProtection

        account = tenant.storage_account("phiimaging")
        ctx = make_context("storage.enable_data_protection", account=account.id, blob_retention_days=14)
        action = EnableDataProtection()
        assert {c.field for c in action.plan(ctx).changes} == {
            "properties.deleteRetentionPolicy",
            "properties.containerDeleteRetentionPolicy",
            "properties.isVersioningEnabled",
        }
        assert action.apply(ctx).changed
        writes = _writes(tenant)
        assert [w.method for w in writes] == ["PUT"]
        assert not action.apply(ctx).changed and _writes(tenant) == writes
        assert action.verify(ctx)
        shorter = make_context("storage.enable_data_protection", account=account.id, blob_retention_days=7)
        assert action.plan(shorter).changes == []  # 14 days already: a shorter ask changes nothing

    def test_existing_longer_retention_is_kept(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        from irflow.actions.storage import EnableDataProtection

        account = tenant.storage_account("phiclaimsarchive")  # the demo gives it 7-day blob soft delete
        ctx = make_context("storage.enable_data_protection", account=account.id, blob_retention_days=5)
        fields = {c.field for c in EnableDataProtection().plan(ctx).changes}
        assert "properties.deleteRetentionPolicy" not in fields


class TestDataProtectionStrictness:
    def test_full_properties_are_put(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        from irflow.actions.storage import EnableDataProtection

        account = tenant.storage_account("phiclaimsarchive")
        before = dict(account.blob_service.properties)
        EnableDataProtection().apply(make_context("storage.enable_data_protection", account=account.id))
        [put] = _writes(tenant)
        assert set(before) <= set(
            put.body["properties"]
        )  # every setting read is written back, not only changes
        assert put.body["properties"]["cors"] == before["cors"]

    def test_the_simulator_refuses_versioning_on_hierarchical_namespace(
        self, tenant: Tenant, clients
    ) -> None:  # type: ignore[no-untyped-def]
        """Versioning is not supported on hierarchical-namespace accounts
        (https://learn.microsoft.com/en-us/azure/storage/blobs/versioning-overview)."""
        from azure.core.exceptions import HttpResponseError

        account = tenant.storage_account("phiimaging")
        account.properties["isHnsEnabled"] = True
        client = clients.storage(account.subscription_id).blob_services
        with pytest.raises(HttpResponseError) as refused:
            client.set_service_properties(
                account.resource_group, account.name, {"properties": {"isVersioningEnabled": True}}
            )
        assert refused.value.status_code == 400
        assert account.blob_service.properties.get("isVersioningEnabled") is not True

    def test_hierarchical_namespace_gets_soft_delete_without_versioning(
        self, tenant: Tenant, make_context
    ) -> None:  # type: ignore[no-untyped-def]
        from irflow.actions.storage import EnableDataProtection

        account = tenant.storage_account("phiimaging")
        account.properties["isHnsEnabled"] = True
        ctx = make_context("storage.enable_data_protection", account=account.id)
        plan = EnableDataProtection().plan(ctx)
        assert "properties.isVersioningEnabled" not in {c.field for c in plan.changes}
        assert "hierarchical-namespace" in plan.notes[0] and _writes(tenant) == []
        assert EnableDataProtection().apply(ctx).changed
        assert not EnableDataProtection().apply(ctx).changed and len(_writes(tenant)) == 1
        assert EnableDataProtection().verify(ctx)
        assert account.blob_service.properties["deleteRetentionPolicy"]["enabled"] is True


class TestAzureRefusals:
    """A 403 names the missing permission and scope; a 404 names the missing resource."""

    @pytest.mark.parametrize(
        ("action", "denied", "extra"),
        [
            ("storage.isolate_account", "Microsoft.Storage/storageAccounts/write", {}),
            ("storage.rotate_account_keys", "Microsoft.Storage/storageAccounts/regeneratekey/action", {}),
            (
                "storage.block_public_containers",
                "Microsoft.Storage/storageAccounts/blobServices/containers/write",
                {},
            ),
            ("storage.enable_data_protection", "Microsoft.Storage/storageAccounts/blobServices/write", {}),
        ],
    )
    def test_permission_denied_names_permission_and_scope(  # type: ignore[no-untyped-def]
        self, tenant: Tenant, make_context, action: str, denied: str, extra: dict
    ) -> None:
        from irflow.actions.base import PermissionDenied, get_action

        account = tenant.storage_account("phipatientexports")
        tenant.deny(denied, scope=account.id)
        ctx = make_context(action, account=account.id, **extra)
        with pytest.raises(PermissionDenied) as caught:
            get_action(action)().apply(ctx)
        message = str(caught.value)
        assert denied in message and account.id in message and "AuthorizationFailed" in message
        assert [w for w in _writes(tenant) if w.status < 400] == []

    def test_read_permission_denied_at_plan(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        from irflow.actions.base import PermissionDenied

        account = tenant.storage_account("phiimaging")
        tenant.deny("Microsoft.Storage/storageAccounts/read", scope=account.id)
        with pytest.raises(PermissionDenied, match="storageAccounts/read"):
            IsolateAccount().plan(make_context("storage.isolate_account", account=account.id))


class TestRemoveStoredAccessPolicies:
    def test_removes_the_policy_once_and_keeps_public_access(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        from irflow.actions.storage import RemoveStoredAccessPolicies

        account = tenant.storage_account("phipatientexports")
        ctx = make_context("storage.remove_stored_access_policies", account=account.id)
        action = RemoveStoredAccessPolicies()
        plan = action.plan(ctx)
        assert [c.field for c in plan.changes] == [
            "containers.patient-exports.storedAccessPolicies.partner-export"
        ]
        assert plan.changes[0].before["permission"] == "rl"
        assert _writes(tenant) == []
        result = action.apply(ctx)
        assert result.changed
        writes = _writes(tenant)
        assert len(writes) == 1 and "comp=acl" in writes[0].path + "?" + "&".join(
            f"{k}={v}" for k, v in writes[0].query.items()
        )
        assert not action.apply(ctx).changed and _writes(tenant) == writes
        assert action.verify(ctx)
        container = account.container("patient-exports")
        assert container.public_access == "Container"  # unchanged: blocking it is another action's job

    def test_after_isolation_the_container_becomes_private_and_says_so(
        self, tenant: Tenant, make_context
    ) -> None:  # type: ignore[no-untyped-def]
        from irflow.actions.storage import RemoveStoredAccessPolicies

        account = tenant.storage_account("phipatientexports")
        IsolateAccount().apply(make_context("storage.isolate_account", account=account.id))
        ctx = make_context("storage.remove_stored_access_policies", account=account.id)
        result = RemoveStoredAccessPolicies().apply(ctx)
        assert {c.field for c in result.changes} == {
            "containers.patient-exports.storedAccessPolicies.partner-export",
            "containers.patient-exports.publicAccess",
        }
        assert RemoveStoredAccessPolicies().verify(ctx)


STORAGE_ACTIONS = [
    ("storage.isolate_account", {}),
    ("storage.rotate_account_keys", {}),
    ("storage.block_public_containers", {}),
    ("storage.enable_data_protection", {}),
    ("storage.remove_stored_access_policies", {}),
    (
        "storage.restore_account_network",
        {"prior": {"publicNetworkAccess": "Enabled", "allowBlobPublicAccess": True, "networkAcls": {}}},
    ),
]


@pytest.mark.parametrize(("action", "extra"), STORAGE_ACTIONS)
def test_a_missing_account_is_named(tenant: Tenant, make_context, action: str, extra: dict) -> None:  # type: ignore[no-untyped-def,type-arg]
    from irflow.actions.base import get_action

    missing = _account_id(tenant, "phiimaging").replace("phiimaging", "phivanished")
    with pytest.raises(ResourceMissing, match="phivanished"):
        get_action(action)().plan(make_context(action, account=missing, **extra))
    assert _writes(tenant) == []


@pytest.mark.parametrize(
    ("action", "denied", "extra"),
    [
        (
            "storage.remove_stored_access_policies",
            "Microsoft.Storage/storageAccounts/blobServices/containers/setAcl/action",
            {},
        ),
        (
            "storage.restore_account_network",
            "Microsoft.Storage/storageAccounts/write",
            {"prior": {"publicNetworkAccess": "Enabled", "allowBlobPublicAccess": True, "networkAcls": {}}},
        ),
    ],
)
def test_more_refusals_name_permission_and_scope(  # type: ignore[no-untyped-def]
    tenant: Tenant, make_context, action: str, denied: str, extra: dict
) -> None:
    from irflow.actions.base import PermissionDenied, get_action

    account = tenant.storage_account("phipatientexports")
    if action == "storage.restore_account_network":
        IsolateAccount().apply(make_context("storage.isolate_account", account=account.id))
    tenant.deny(denied, scope=account.id)
    with pytest.raises(PermissionDenied) as caught:
        get_action(action)().apply(make_context(action, account=account.id, **extra))
    assert denied in str(caught.value) and account.id in str(caught.value)
