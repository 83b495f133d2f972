"""Key Vault actions through the official SDKs against the simulated tenant (in-process mount)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.keyvault.keys._shared import http_challenge_cache
from pydantic import SecretStr, ValidationError

from irflow.actions.base import ActionError, NetworkRefused, PermissionDenied, ResourceMissing, get_action
from irflow.actions.keyvault import (
    EnablePurgeProtection,
    IsolateVault,
    RestoreVaultNetwork,
    RevokeAccessPolicies,
    RotateKey,
)
from irflow.azure import AzureClients
from irflow.settings import Settings
from irflow.sim.models import Tenant

VAULT = "kv-phi-prod"
KEY = "phi-records-kek"
DEVELOPERS = "8e3f1a52-7c4d-4b9e-a6f0-2d1c5b7e9a43"  # clinical-data-developers: get, decrypt, unwrapKey
ETL = "4b7d2e19-3a6c-4f8e-9d15-7c2a0e6b8f31"  # nightly-etl managed identity: get, wrapKey, unwrapKey
LOOPBACK = "192.0.2.10"  # irflow's egress IP in the fixtures: where the strict tenant sees its calls from


@pytest.fixture(autouse=True)
def _clear_key_vault_challenges() -> Iterator[None]:
    """The SDK caches Key Vault challenges per host in a module-global; every test starts clean."""
    http_challenge_cache.clear()
    yield
    http_challenge_cache.clear()


def _clients(token: str, **settings: object) -> AzureClients:
    host = "https://management.azure.com"
    return AzureClients(
        Settings(azure_token=SecretStr(token), logs_endpoint=host, graph_endpoint=host, **settings)  # type: ignore[arg-type]
    )


def _vault_id(tenant: Tenant) -> str:
    return tenant.key_vault(VAULT).id


def _writes(tenant: Tenant) -> list:  # type: ignore[type-arg]
    return tenant.journal.writes()


def _successful_writes(tenant: Tenant) -> list:  # type: ignore[type-arg]
    return [w for w in tenant.journal.writes() if w.status < 400]


class TestIsolateVault:
    def test_plan_without_origin_or_allow_list_disables_public_access_and_writes_nothing(
        self, tenant: Tenant, make_context_without_origin
    ) -> None:  # type: ignore[no-untyped-def]
        ctx = make_context_without_origin("keyvault.isolate_vault", vault=_vault_id(tenant))
        plan = IsolateVault().plan(ctx)
        assert {(c.field, c.before, c.after) for c in plan.changes} == {
            ("properties.publicNetworkAccess", "Enabled", "Disabled"),
            ("properties.networkAcls.defaultAction", "Allow", "Deny"),
            ("properties.networkAcls.bypass", "AzureServices", "None"),
        }
        assert any("private endpoints" in note for note in plan.notes)
        assert any("IRFLOW_EGRESS_IPS" in note and "not configured" in note for note in plan.notes)
        assert _writes(tenant) == []

    def test_plan_keeps_irflows_origin_behind_the_firewall(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        # irflow's egress IP (IRFLOW_EGRESS_IPS, the clients fixture) is allowed without being passed.
        plan = IsolateVault().plan(make_context("keyvault.isolate_vault", vault=_vault_id(tenant)))
        assert {(c.field, str(c.before), str(c.after)) for c in plan.changes} == {
            ("properties.networkAcls.defaultAction", "Allow", "Deny"),
            ("properties.networkAcls.bypass", "AzureServices", "None"),
            ("properties.networkAcls.ipRules", "[]", "[{'value': '192.0.2.10/32'}]"),
        }
        assert any("irflow's own origin stays allowed (192.0.2.10)" in note for note in plan.notes)
        assert any("ignores firewall rules" in note for note in plan.notes)
        assert _writes(tenant) == []

    def test_allow_ip_rules_add_to_irflows_origin(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        ctx = make_context(
            "keyvault.isolate_vault", vault=_vault_id(tenant), allow_ip_rules=["198.51.100.0/24", LOOPBACK]
        )
        IsolateVault().apply(ctx)
        acls = tenant.key_vault(VAULT).properties["networkAcls"]
        assert acls["ipRules"] == [{"value": "192.0.2.10/32"}, {"value": "198.51.100.0/24"}]

    def test_a_subnet_origin_becomes_a_virtual_network_rule(
        self, tenant: Tenant, clients, make_context
    ) -> None:  # type: ignore[no-untyped-def]
        from irflow.azure.principal import NetworkOrigin

        vault = tenant.key_vault(VAULT)
        subnet = vault.id.split("/providers/")[0] + (
            "/providers/Microsoft.Network/virtualNetworks/vnet-ops/subnets/snet-irflow"
        )
        clients.origin = NetworkOrigin(egress_ips=(), subnet_id=subnet)
        result = IsolateVault().apply(make_context("keyvault.isolate_vault", vault=vault.id))
        assert result.changed
        acls = vault.properties["networkAcls"]
        assert acls["virtualNetworkRules"] == [{"id": subnet}] and acls["ipRules"] == []
        assert vault.properties["publicNetworkAccess"] == "Enabled"
        tenant.set_caller_origin(subnet_id=subnet)  # irflow now calls from that subnet
        assert RotateKey().plan(make_context("keyvault.rotate_key", vault=vault.id, key=KEY)).changes

    def test_a_vault_already_disabled_is_not_reopened(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        vault = tenant.key_vault(VAULT)
        vault.apply_update({"properties": {"publicNetworkAccess": "Disabled"}}, when=tenant.now())
        plan = IsolateVault().plan(make_context("keyvault.isolate_vault", vault=vault.id))
        assert "properties.publicNetworkAccess" not in {c.field for c in plan.changes}
        assert any("already Disabled" in note for note in plan.notes)
        IsolateVault().apply(make_context("keyvault.isolate_vault", vault=vault.id))
        assert vault.properties["publicNetworkAccess"] == "Disabled"

    def test_apply_twice_makes_one_change_and_irflow_keeps_its_access(
        self, tenant: Tenant, make_context
    ) -> None:  # type: ignore[no-untyped-def]
        vault = tenant.key_vault(VAULT)
        ctx = make_context("keyvault.isolate_vault", vault=vault.id)
        action = IsolateVault()
        assert action.verify(ctx) is False
        first = action.apply(ctx)
        assert first.changed and len(first.changes) == 3
        assert first.prior_state == {
            "publicNetworkAccess": "Enabled",
            "networkAcls": {
                "bypass": "AzureServices",
                "defaultAction": "Allow",
                "ipRules": [],
                "virtualNetworkRules": [],
            },
        }
        writes = _writes(tenant)
        assert [(w.method, w.route) for w in writes] == [("PATCH", "keyvault.vaults.update")]
        second = action.apply(ctx)
        assert not second.changed
        assert _writes(tenant) == writes
        assert action.verify(ctx) is True
        acls = vault.properties["networkAcls"]
        assert acls["defaultAction"] == "Deny" and acls["bypass"] == "None"
        assert acls["ipRules"] == [{"value": "192.0.2.10/32"}]
        # the allow-listed caller still reaches the data plane
        rotate = make_context("keyvault.rotate_key", vault=vault.id, key=KEY)
        assert RotateKey().plan(rotate).changes

    def test_without_irflows_origin_the_data_plane_refusal_is_named_as_network(
        self, tenant: Tenant, make_context_without_origin
    ) -> None:  # type: ignore[no-untyped-def]
        vault_id = _vault_id(tenant)
        IsolateVault().apply(make_context_without_origin("keyvault.isolate_vault", vault=vault_id))
        assert tenant.key_vault(VAULT).properties["publicNetworkAccess"] == "Disabled"
        rotate = make_context_without_origin("keyvault.rotate_key", vault=vault_id, key=KEY)
        with pytest.raises(NetworkRefused, match="ForbiddenByConnection") as caught:
            RotateKey().plan(rotate)
        assert not isinstance(caught.value, PermissionDenied)
        message = str(caught.value)
        assert (
            vault_id in message and "IRFLOW_EGRESS_IPS" in message and "not a missing permission" in message
        )

    def test_existing_rules_are_dropped_or_kept(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        vault = tenant.key_vault(VAULT)
        subnet = vault.id.split("/providers/")[0] + (
            "/providers/Microsoft.Network/virtualNetworks/vnet-phi/subnets/snet-phi-app"
        )
        vault.apply_update(
            {
                "properties": {
                    "networkAcls": {
                        "defaultAction": "Allow",
                        "bypass": "AzureServices",
                        "ipRules": [{"value": "185.220.101.0/24"}],
                        "virtualNetworkRules": [{"id": subnet}],
                    }
                }
            },
            when=tenant.now(),
        )
        keep = make_context(
            "keyvault.isolate_vault", vault=vault.id, keep_virtual_network_rules=True, bypass="AzureServices"
        )
        plan = IsolateVault().plan(keep)
        assert {c.field for c in plan.changes} == {
            "properties.networkAcls.defaultAction",
            "properties.networkAcls.ipRules",
        }  # public access stays Enabled: the kept subnet rule is an allow-list
        result = IsolateVault().apply(keep)
        assert result.prior_state["networkAcls"]["ipRules"] == [{"value": "185.220.101.0/24"}]
        assert vault.properties["networkAcls"]["virtualNetworkRules"] == [{"id": subnet}]
        # the other address range goes, irflow's own origin is allowed
        assert vault.properties["networkAcls"]["ipRules"] == [{"value": "192.0.2.10/32"}]
        assert vault.properties["publicNetworkAccess"] == "Enabled"

    def test_params_are_validated(self, tenant: Tenant) -> None:
        from irflow.actions.keyvault import IsolateVaultParams

        with pytest.raises(ValidationError, match="not a key vault id"):
            IsolateVaultParams(vault=tenant.storage_account("phiimaging").id)
        with pytest.raises(ValidationError, match="does not appear to be an IPv4 or IPv6 network"):
            IsolateVaultParams(vault=_vault_id(tenant), allow_ip_rules=["not-an-ip"])
        with pytest.raises(ValidationError, match="IPv4 only"):
            IsolateVaultParams(vault=_vault_id(tenant), allow_ip_rules=["2001:db8::/32"])
        with pytest.raises(ValidationError, match="Extra inputs"):
            IsolateVaultParams.model_validate({"vault": _vault_id(tenant), "surprise": 1})
        private_ranges = ("10.0.0.7", "172.20.0.0/16", "192.168.1.0/24", "127.0.0.1", "169.254.169.254")
        for private in (*private_ranges, "8.0.0.0/6"):  # 8.0.0.0/6 spans 10.0.0.0/8
            with pytest.raises(ValidationError, match="public IPv4 addresses only") as caught:
                IsolateVaultParams(vault=_vault_id(tenant), allow_ip_rules=[LOOPBACK, private])
            assert "IRFLOW_EGRESS_IPS" in str(caught.value)
        params = IsolateVaultParams(vault=_vault_id(tenant), allow_ip_rules=["203.0.113.7", "203.0.113.7/32"])
        assert params.allow_ip_rules == ["203.0.113.7/32"]


class TestRestoreVaultNetwork:
    def test_isolate_then_restore_round_trips(
        self, tenant: Tenant, make_context, make_context_without_origin
    ) -> None:  # type: ignore[no-untyped-def]
        vault = tenant.key_vault(VAULT)
        original = dict(vault.properties["networkAcls"])
        # without irflow's origin the vault is closed completely (public network access Disabled)
        isolate = make_context_without_origin("keyvault.isolate_vault", vault=vault.id)
        isolated = IsolateVault().apply(isolate)
        ctx = make_context("keyvault.restore_vault_network", vault=vault.id, prior=isolated.prior_state)
        action = RestoreVaultNetwork()
        before = len(_writes(tenant))
        plan = action.plan(ctx)
        assert {c.field for c in plan.changes} == {"properties.publicNetworkAccess", "properties.networkAcls"}
        assert len(_writes(tenant)) == before
        assert action.apply(ctx).changed
        assert len(_writes(tenant)) == before + 1
        assert not action.apply(ctx).changed
        assert len(_writes(tenant)) == before + 1
        assert action.verify(ctx)
        assert vault.properties["networkAcls"] == original
        assert vault.properties["publicNetworkAccess"] == "Enabled"

    def test_prior_state_is_validated(self, tenant: Tenant) -> None:
        from irflow.actions.keyvault import RestoreVaultNetworkParams

        with pytest.raises(ValidationError, match="publicNetworkAccess"):
            RestoreVaultNetworkParams(vault=_vault_id(tenant), prior={"networkAcls": {}})
        with pytest.raises(ValidationError, match="defaultAction"):
            RestoreVaultNetworkParams(
                vault=_vault_id(tenant), prior={"publicNetworkAccess": "Enabled", "networkAcls": {}}
            )


class TestRevokeAccessPolicies:
    def test_plan_is_exact_and_writes_nothing(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        plan = RevokeAccessPolicies().plan(
            make_context("keyvault.revoke_access_policies", vault=_vault_id(tenant))
        )
        assert [(c.field, c.before, c.after) for c in plan.changes] == [
            (f"accessPolicies.{DEVELOPERS}.keys", ["get", "decrypt", "unwrapKey"], []),
            (f"accessPolicies.{DEVELOPERS}.secrets", ["get"], []),
            (f"accessPolicies.{ETL}.keys", ["get", "wrapKey", "unwrapKey"], ["wrapKey"]),
            (f"accessPolicies.{ETL}.secrets", ["get", "list"], ["list"]),
        ]
        assert _writes(tenant) == []

    def test_apply_twice_removes_once_and_keeps_the_keep_list(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        vault = tenant.key_vault(VAULT)
        ctx = make_context("keyvault.revoke_access_policies", vault=vault.id, keep_object_ids=[ETL.upper()])
        action = RevokeAccessPolicies()
        assert not action.verify(ctx)
        result = action.apply(ctx)
        assert result.changed and {c.field for c in result.changes} == {
            f"accessPolicies.{DEVELOPERS}.keys",
            f"accessPolicies.{DEVELOPERS}.secrets",
        }
        # prior policies: object ids and permissions only
        assert result.prior_state["accessPolicies"] == [
            {
                "objectId": DEVELOPERS,
                "permissions": {
                    "keys": ["get", "decrypt", "unwrapKey"],
                    "secrets": ["get"],
                    "certificates": [],
                },
            },
            {
                "objectId": ETL,
                "permissions": {"keys": ["get", "wrapKey", "unwrapKey"], "secrets": ["get", "list"]},
            },
            {"objectId": tenant.principal_id, "permissions": {"keys": ["get", "list", "rotate"]}},
        ]
        writes = _writes(tenant)
        assert (
            len(writes) == 1
            and writes[0].method == "PUT"
            and writes[0].path.endswith("/accessPolicies/remove")
        )
        assert not action.apply(ctx).changed
        assert _writes(tenant) == writes
        assert action.verify(ctx)
        assert vault.access_policy(DEVELOPERS) is None  # nothing left: Azure drops the entry
        assert vault.access_policy(ETL)["permissions"]["keys"] == ["get", "wrapKey", "unwrapKey"]

    def test_configurable_permissions_and_the_legacy_all(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        vault = tenant.key_vault(VAULT)
        legacy = "0c9d8e7f-6a5b-4c3d-9e2f-1a0b9c8d7e6f"
        vault.update_access_policies(
            "add",
            [{"tenantId": vault.tenant_id, "objectId": legacy, "permissions": {"keys": ["all"]}}],
            when=tenant.now(),
        )
        ctx = make_context(
            "keyvault.revoke_access_policies",
            vault=vault.id,
            keep_object_ids=[DEVELOPERS],
            key_permissions=["unwrapKey"],
            secret_permissions=[],
        )
        action = RevokeAccessPolicies()
        assert [(c.field, c.after) for c in action.plan(ctx).changes] == [
            (f"accessPolicies.{ETL}.keys", ["get", "wrapKey"]),
            (f"accessPolicies.{legacy}.keys", []),
        ]
        action.apply(ctx)
        assert action.verify(ctx)
        assert vault.access_policy(ETL)["permissions"]["secrets"] == ["get", "list"]
        assert vault.access_policy(legacy) is None

    def test_irflow_is_always_kept_so_rotation_still_works(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        """irflow's own object id (here the ``oid`` of its token) is kept without being listed: the key
        rotation that follows still has its keys get / rotate permissions."""
        vault = tenant.key_vault(VAULT)
        revoke = make_context("keyvault.revoke_access_policies", vault=vault.id)
        plan = RevokeAccessPolicies().plan(revoke)
        assert all(tenant.principal_id not in c.field for c in plan.changes)
        RevokeAccessPolicies().apply(revoke)
        assert vault.access_policy(tenant.principal_id)["permissions"]["keys"] == ["get", "list", "rotate"]
        assert vault.access_policy(ETL)["permissions"]["keys"] == ["wrapKey"]
        assert RotateKey().apply(make_context("keyvault.rotate_key", vault=vault.id, key=KEY)).changed

    def test_configured_self_object_id_is_kept(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        """``IRFLOW_SELF_OBJECT_ID`` wins over the token's ``oid``: a deployment whose identity differs from
        the token's subject (here the ETL identity stands for it) keeps that principal's access."""
        ctx = make_context("keyvault.revoke_access_policies", vault=_vault_id(tenant))
        ctx.clients = _clients(tenant.token, self_object_id=ETL)
        fields = {c.field for c in RevokeAccessPolicies().plan(ctx).changes}
        assert fields == {f"accessPolicies.{DEVELOPERS}.keys", f"accessPolicies.{DEVELOPERS}.secrets"} | {
            f"accessPolicies.{tenant.principal_id}.keys"
        }

    def test_unknown_self_identity_refuses_and_writes_nothing(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        opaque = "not-a-jwt"  # a token without an oid claim, and no IRFLOW_SELF_OBJECT_ID
        tenant.token = opaque
        ctx = make_context("keyvault.revoke_access_policies", vault=_vault_id(tenant))
        ctx.clients = _clients(opaque)
        with pytest.raises(ActionError, match="IRFLOW_SELF_OBJECT_ID") as caught:
            RevokeAccessPolicies().apply(ctx)
        assert "irflow's own access" in str(caught.value)
        assert _writes(tenant) == []

    def test_on_an_rbac_vault_it_changes_nothing_and_says_so(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        """With ``enableRbacAuthorization`` Key Vault ignores access policies
        (https://learn.microsoft.com/azure/key-vault/general/rbac-access-policy): removing them would
        revoke nothing, so the action writes nothing and never reports a revocation."""
        vault = tenant.key_vault(VAULT)
        vault.properties["enableRbacAuthorization"] = True
        ctx = make_context("keyvault.revoke_access_policies", vault=vault.id)
        action = RevokeAccessPolicies()
        plan = action.plan(ctx)
        assert plan.changes == [] and "ignores its access policies" in plan.notes[0]
        result = action.apply(ctx)
        assert not result.changed and result.changes == []
        assert "nothing is changed" in result.notes[0] and "revoke_role_assignments" in result.notes[0]
        assert action.verify(ctx)
        assert _writes(tenant) == []
        assert vault.access_policy(DEVELOPERS) is not None

    def test_permissions_are_removed_as_the_vault_spells_them(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        """Azure's ``accessPolicies/remove`` matches names case-sensitively and answers 200 on a mismatch
        (AZURE_NOTES; https://learn.microsoft.com/rest/api/keyvault/keyvault/vaults/update-access-policy):
        the action sends the vault's own spelling, so ``Get`` / ``UnwrapKey`` really go."""
        vault = tenant.key_vault(VAULT)
        odd = "0c9d8e7f-6a5b-4c3d-9e2f-1a0b9c8d7e6f"
        vault.update_access_policies(
            "add",
            [{"tenantId": vault.tenant_id, "objectId": odd, "permissions": {"keys": ["Get", "UnwrapKey"]}}],
            when=tenant.now(),
        )
        ctx = make_context(
            "keyvault.revoke_access_policies", vault=vault.id, keep_object_ids=[DEVELOPERS, ETL]
        )
        action = RevokeAccessPolicies()
        [change] = action.plan(ctx).changes
        assert (change.field, change.before, change.after) == (
            f"accessPolicies.{odd}.keys",
            ["Get", "UnwrapKey"],
            [],
        )
        assert action.apply(ctx).changed
        assert vault.access_policy(odd) is None and action.verify(ctx)

    def test_keep_list_takes_object_ids_only(self, tenant: Tenant) -> None:
        from irflow.actions.keyvault import RevokeAccessPoliciesParams

        with pytest.raises(ValidationError, match="object id"):
            RevokeAccessPoliciesParams(vault=_vault_id(tenant), keep_object_ids=["nightly-etl"])


class TestRotateKey:
    def test_a_refusal_by_access_policies_names_the_policy_to_grant(
        self, tenant: Tenant, make_context
    ) -> None:  # type: ignore[no-untyped-def]
        """On an access-policy vault irflow's entry must list keys rotate (Key Vault: 403 ForbiddenByPolicy):
        the error says which access policy to add, not an RBAC role that would not help there."""
        vault = tenant.key_vault(VAULT)
        vault.update_access_policies(
            "remove",
            [
                {
                    "tenantId": vault.tenant_id,
                    "objectId": tenant.principal_id,
                    "permissions": {"keys": ["rotate"]},
                }
            ],
            when=tenant.now(),
        )
        ctx = make_context("keyvault.rotate_key", vault=vault.id, key=KEY)
        assert RotateKey().plan(ctx).changes  # keys get is still granted
        with pytest.raises(PermissionDenied, match="ForbiddenByPolicy") as caught:
            RotateKey().apply(ctx)
        assert f"the access policies of {vault.id} do not give irflow keys rotate" in str(caught.value)
        assert _successful_writes(tenant) == []

    def test_plan_writes_nothing_and_names_the_key(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        plan = RotateKey().plan(make_context("keyvault.rotate_key", vault=_vault_id(tenant), key=KEY))
        assert [(c.field, c.after) for c in plan.changes] == [(f"keys.{KEY}", "rotate")]
        assert set(plan.changes[0].before) == {"version", "created"}
        assert _successful_writes(tenant) == [] and _writes(tenant) == []

    def test_rotates_exactly_once_and_outputs_the_version_only(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        vault = tenant.key_vault(VAULT)
        ctx = make_context("keyvault.rotate_key", vault=vault.id, key=KEY)
        action = RotateKey()
        assert not action.verify(ctx)
        result = action.apply(ctx)
        assert result.changed
        writes = _writes(tenant)
        assert [w.route for w in writes if w.status < 400] == ["keyvault.data.rotate_key"]
        assert (
            result.outputs["key"] == KEY
            and result.outputs["version"] != result.prior_state["current"]["version"]
        )
        assert result.outputs["key_id"].endswith(f"/keys/{KEY}/{result.outputs['version']}")
        again = action.apply(ctx)
        assert not again.changed and again.outputs["version"] == result.outputs["version"]
        assert _writes(tenant) == writes
        assert action.verify(ctx)
        # no key material in what the action returns
        from irflow.sim.keyvault.data_models import vault_data

        moduli = [v.n for v in vault_data(vault).keys[KEY].versions]
        assert len(moduli) == 3
        dumped = result.model_dump_json() + again.model_dump_json()
        assert all(n not in dumped for n in moduli)

    def test_a_key_rotated_since_the_given_time_is_left_alone(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        since = datetime.now(UTC) - timedelta(days=200)  # the current version is 120 days old
        ctx = make_context("keyvault.rotate_key", vault=_vault_id(tenant), key=KEY, rotated_since=since)
        plan = RotateKey().plan(ctx)
        assert plan.changes == [] and "already rotated" in plan.notes[0]
        assert not RotateKey().apply(ctx).changed
        assert _writes(tenant) == []

    def test_missing_key_is_named(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        ctx = make_context("keyvault.rotate_key", vault=_vault_id(tenant), key="no-such-key")
        with pytest.raises(ResourceMissing, match="no-such-key"):
            RotateKey().plan(ctx)

    def test_key_name_is_validated(self, tenant: Tenant) -> None:
        from irflow.actions.keyvault import RotateKeyParams

        with pytest.raises(ValidationError, match="not a Key Vault key name"):
            RotateKeyParams(vault=_vault_id(tenant), key="phi/records")


class TestEnablePurgeProtection:
    def test_plan_apply_twice_verify(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        vault = tenant.key_vault(VAULT)
        ctx = make_context("keyvault.enable_purge_protection", vault=vault.id)
        action = EnablePurgeProtection()
        plan = action.plan(ctx)
        assert [(c.field, c.before, c.after) for c in plan.changes] == [
            ("properties.enablePurgeProtection", None, True)
        ]
        assert any("irreversible" in note for note in plan.notes)
        assert _writes(tenant) == []
        result = action.apply(ctx)
        assert result.changed and result.prior_state["enablePurgeProtection"] is None
        writes = _writes(tenant)
        assert [(w.method, w.body) for w in writes] == [
            ("PATCH", {"properties": {"enablePurgeProtection": True}})
        ]
        assert not action.apply(ctx).changed and _writes(tenant) == writes
        assert action.verify(ctx)
        assert vault.summary()["enablePurgeProtection"] is True
        assert "IRREVERSIBLE" in (EnablePurgeProtection.__doc__ or "")


VAULT_ACTIONS = [
    ("keyvault.isolate_vault", "Microsoft.KeyVault/vaults/write", {}),
    ("keyvault.revoke_access_policies", "Microsoft.KeyVault/vaults/accessPolicies/write", {}),
    ("keyvault.rotate_key", "Microsoft.KeyVault/vaults/keys/rotate/action", {"key": KEY}),
    ("keyvault.enable_purge_protection", "Microsoft.KeyVault/vaults/write", {}),
    (
        "keyvault.restore_vault_network",
        "Microsoft.KeyVault/vaults/write",
        {
            "prior": {
                "publicNetworkAccess": "Disabled",
                "networkAcls": {"defaultAction": "Deny", "bypass": "None"},
            }
        },
    ),
]


class TestAzureRefusals:
    """A 403 names the missing permission and scope; a 404 names the missing resource."""

    @pytest.mark.parametrize(("action", "denied", "extra"), VAULT_ACTIONS)
    def test_permission_denied_names_permission_and_scope(  # type: ignore[no-untyped-def]
        self, tenant: Tenant, make_context, action: str, denied: str, extra: dict
    ) -> None:
        vault_id = _vault_id(tenant)
        tenant.deny(denied, scope=vault_id)
        ctx = make_context(action, vault=vault_id, **extra)
        with pytest.raises(PermissionDenied) as caught:
            get_action(action)().apply(ctx)
        message = str(caught.value)
        assert denied in message and vault_id in message
        assert [w for w in _successful_writes(tenant)] == []

    def test_read_permission_denied_at_plan(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        vault_id = _vault_id(tenant)
        tenant.deny("Microsoft.KeyVault/vaults/read", scope=vault_id)
        with pytest.raises(PermissionDenied, match="vaults/read"):
            IsolateVault().plan(make_context("keyvault.isolate_vault", vault=vault_id))

    def test_key_read_denied_at_plan(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        vault_id = _vault_id(tenant)
        tenant.deny("Microsoft.KeyVault/vaults/keys/read", scope=vault_id)
        with pytest.raises(PermissionDenied, match="keys/read") as caught:
            RotateKey().plan(make_context("keyvault.rotate_key", vault=vault_id, key=KEY))
        assert f"{vault_id}/keys/{KEY}" in str(caught.value)

    @pytest.mark.parametrize(("action", "_denied", "extra"), VAULT_ACTIONS)
    def test_missing_vault_is_named(  # type: ignore[no-untyped-def]
        self, tenant: Tenant, make_context, action: str, _denied: str, extra: dict
    ) -> None:
        missing = _vault_id(tenant).replace(VAULT, "kv-phi-gone")
        ctx = make_context(action, vault=missing, **extra)
        with pytest.raises(ResourceMissing, match="kv-phi-gone"):
            get_action(action)().plan(ctx)
        with pytest.raises(ResourceMissing, match="kv-phi-gone"):
            get_action(action)().apply(ctx)
        assert _writes(tenant) == []


class TestRestoreAccessPolicies:
    @staticmethod
    def _revoked(tenant: Tenant, make_context) -> dict:  # type: ignore[no-untyped-def, type-arg]
        ctx = make_context("keyvault.revoke_access_policies", vault=_vault_id(tenant), keep_object_ids=[ETL])
        return RevokeAccessPolicies().apply(ctx).prior_state

    def test_plan_is_exact_and_writes_nothing(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        from irflow.actions.keyvault import RestoreAccessPolicies

        prior = self._revoked(tenant, make_context)
        writes = _writes(tenant)
        ctx = make_context("keyvault.restore_access_policies", vault=_vault_id(tenant), prior=prior)
        plan = RestoreAccessPolicies().plan(ctx)
        assert [(c.field, c.before, c.after) for c in plan.changes] == [
            (f"accessPolicies.{DEVELOPERS}.keys", [], ["get", "decrypt", "unwrapKey"]),
            (f"accessPolicies.{DEVELOPERS}.secrets", [], ["get"]),
        ]
        assert _writes(tenant) == writes

    def test_apply_twice_adds_back_once_and_verifies(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        from irflow.actions.keyvault import RestoreAccessPolicies

        vault = tenant.key_vault(VAULT)
        original = vault.access_policy(DEVELOPERS)["permissions"]
        prior = self._revoked(tenant, make_context)
        assert vault.access_policy(DEVELOPERS) is None
        before = len(_writes(tenant))
        ctx = make_context("keyvault.restore_access_policies", vault=vault.id, prior=prior)
        action = RestoreAccessPolicies()
        assert action.verify(ctx) is False
        result = action.apply(ctx)
        assert result.changed
        writes = _writes(tenant)
        assert len(writes) == before + 1
        assert writes[-1].method == "PUT" and writes[-1].path.endswith("/accessPolicies/add")
        assert not action.apply(ctx).changed
        assert _writes(tenant) == writes
        assert action.verify(ctx)
        restored = vault.access_policy(DEVELOPERS)["permissions"]
        assert {k: sorted(v) for k, v in restored.items() if v} == {
            k: sorted(v) for k, v in original.items() if v
        }
        assert vault.access_policy(ETL)["permissions"]["keys"] == ["get", "wrapKey", "unwrapKey"]

    def test_only_missing_permissions_are_added(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        from irflow.actions.keyvault import RestoreAccessPolicies

        vault = tenant.key_vault(VAULT)
        ctx = make_context(
            "keyvault.revoke_access_policies",
            vault=vault.id,
            keep_object_ids=[DEVELOPERS],
            secret_permissions=[],
        )
        prior = RevokeAccessPolicies().apply(ctx).prior_state
        restore = make_context("keyvault.restore_access_policies", vault=vault.id, prior=prior)
        assert [(c.field, c.before, c.after) for c in RestoreAccessPolicies().plan(restore).changes] == [
            (f"accessPolicies.{ETL}.keys", ["wrapKey"], ["wrapKey", "get", "unwrapKey"])
        ]
        RestoreAccessPolicies().apply(restore)
        assert sorted(vault.access_policy(ETL)["permissions"]["keys"]) == ["get", "unwrapKey", "wrapKey"]

    def test_permission_denied_names_permission_and_scope(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        from irflow.actions.keyvault import RestoreAccessPolicies

        prior = self._revoked(tenant, make_context)
        before = len(_successful_writes(tenant))
        vault_id = _vault_id(tenant)
        tenant.deny("Microsoft.KeyVault/vaults/accessPolicies/write", scope=vault_id)
        ctx = make_context("keyvault.restore_access_policies", vault=vault_id, prior=prior)
        with pytest.raises(PermissionDenied) as caught:
            RestoreAccessPolicies().apply(ctx)
        message = str(caught.value)
        assert "Microsoft.KeyVault/vaults/accessPolicies/write" in message
        assert f"{vault_id}/accessPolicies/add" in message
        assert len(_successful_writes(tenant)) == before
        assert tenant.key_vault(VAULT).access_policy(DEVELOPERS) is None

    def test_missing_vault_is_named(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        from irflow.actions.keyvault import RestoreAccessPolicies

        missing = _vault_id(tenant).replace(VAULT, "kv-phi-gone")
        prior = {"accessPolicies": [{"objectId": DEVELOPERS, "permissions": {"keys": ["get"]}}]}
        ctx = make_context("keyvault.restore_access_policies", vault=missing, prior=prior)
        with pytest.raises(ResourceMissing, match="kv-phi-gone"):
            RestoreAccessPolicies().plan(ctx)
        with pytest.raises(ResourceMissing, match="kv-phi-gone"):
            RestoreAccessPolicies().apply(ctx)
        assert _writes(tenant) == []

    def test_prior_state_is_validated(self, tenant: Tenant) -> None:
        from irflow.actions.keyvault import RestoreAccessPoliciesParams

        with pytest.raises(ValidationError, match="accessPolicies"):
            RestoreAccessPoliciesParams(vault=_vault_id(tenant), prior={})
        with pytest.raises(ValidationError):
            RestoreAccessPoliciesParams(
                vault=_vault_id(tenant), prior={"accessPolicies": [{"objectId": "clinical-data-developers"}]}
            )
