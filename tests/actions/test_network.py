"""Network actions (quarantine / release a subnet, disconnect / restore a peering) through azure-mgmt-network
against the simulated tenant (in-process mount).

Security rule and peering writes are long-running operations. The simulator answers them with
``Retry-After: 0`` here and the network client polls with ``polling_interval=0``, so no test sleeps.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from irflow.actions.base import PermissionDenied, ResourceMissing
from irflow.actions.network import (
    DisconnectPeering,
    QuarantineSubnet,
    QuarantineSubnetParams,
    ReleaseSubnet,
    RestorePeering,
)
from irflow.azure import AzureClients
from irflow.sim.models import Tenant

PHI_RG = "rg-phi-prod"


@pytest.fixture(autouse=True)
def _instant_polls(tenant: Tenant, clients: AzureClients) -> None:
    tenant.lro.retry_after = 0
    # The SDK uses the client's polling_interval when Azure's Retry-After is 0 (its default is 30 s).
    clients.network(tenant.default_subscription_id)._config.polling_interval = 0


def _vnet(tenant: Tenant, group: str = PHI_RG, name: str = "vnet-phi") -> Any:
    return tenant.get_virtual_network(tenant.default_subscription_id, group, name)


def _subnet(tenant: Tenant, name: str = "snet-phi-data") -> str:
    return f"{_vnet(tenant).id}/subnets/{name}"


def _peering(tenant: Tenant, name: str = "peer-to-analytics") -> str:
    return f"{_vnet(tenant).id}/virtualNetworkPeerings/{name}"


def _nsg(tenant: Tenant) -> Any:
    return tenant.get_network_security_group(tenant.default_subscription_id, PHI_RG, "nsg-phi-data")


def _writes(tenant: Tenant) -> list:  # type: ignore[type-arg]
    return tenant.journal.writes()


JUMP_HOST = {
    "name": "soc-jump-host",
    "direction": "Inbound",
    "protocol": "Tcp",
    "source_prefixes": ["10.99.0.4/32"],
    "destination_prefixes": ["*"],
    "ports": ["22"],
}


class TestQuarantineSubnet:
    def test_plan_is_exact_and_writes_nothing(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        ctx = make_context("network.quarantine_subnet", subnet=_subnet(tenant), allow=[JUMP_HOST])
        plan = QuarantineSubnet().plan(ctx)
        after = {c.field: c.after for c in plan.changes}
        assert set(after) == {
            "securityRules.irflow-quarantine-allow-soc-jump-host",
            "securityRules.irflow-quarantine-deny-inbound",
            "securityRules.irflow-quarantine-deny-outbound",
            "flushConnection",
        }
        assert all(c.before in (None, False) for c in plan.changes)
        assert after["flushConnection"] is True
        assert after["securityRules.irflow-quarantine-allow-soc-jump-host"]["priority"] == 100
        assert after["securityRules.irflow-quarantine-deny-inbound"]["priority"] == 101
        assert after["securityRules.irflow-quarantine-deny-outbound"]["priority"] == 100
        assert after["securityRules.irflow-quarantine-deny-inbound"]["access"] == "Deny"
        assert _writes(tenant) == []

    def test_apply_twice_makes_one_change_and_verifies(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        ctx = make_context("network.quarantine_subnet", subnet=_subnet(tenant), allow=[JUMP_HOST])
        action = QuarantineSubnet()
        assert action.verify(ctx) is False
        first = action.apply(ctx)
        assert first.changed and len(first.changes) == 4
        assert first.prior_state["nsg"] == _nsg(tenant).id
        assert first.prior_state["flushConnection"] is False
        assert first.prior_state["rules"] == {
            "irflow-quarantine-allow-soc-jump-host": None,
            "irflow-quarantine-deny-inbound": None,
            "irflow-quarantine-deny-outbound": None,
        }
        writes = _writes(tenant)
        assert [(w.method, w.route) for w in writes] == [
            ("PUT", "network.security_rules.create_or_update")
        ] * 3 + [("PUT", "network.nsgs.create_or_update")]
        # deny rules go in first; the allow-list opens its path after; then flushConnection goes on, which
        # re-evaluates the flows established before the rules (Azure keeps them otherwise)
        assert writes[2].path.endswith("/securityRules/irflow-quarantine-allow-soc-jump-host")
        assert _nsg(tenant).flush_connection is True
        second = action.apply(ctx)
        assert not second.changed
        assert _writes(tenant) == writes
        assert action.verify(ctx) is True
        rules = _nsg(tenant).summary()["securityRules"]
        assert rules["irflow-quarantine-deny-inbound"]["sourceAddressPrefix"] == "*"
        assert rules["irflow-quarantine-allow-soc-jump-host"]["destinationPortRange"] == "22"
        # the NSG's own rules are untouched
        assert rules["allow-vnet-sql-inbound"]["priority"] == 200

    def test_a_changed_allow_list_replaces_only_the_quarantine_rules(
        self, tenant: Tenant, make_context
    ) -> None:  # type: ignore[no-untyped-def]
        QuarantineSubnet().apply(make_context("network.quarantine_subnet", subnet=_subnet(tenant)))
        assert len(_writes(tenant)) == 3  # two deny rules, then flushConnection on
        ctx = make_context("network.quarantine_subnet", subnet=_subnet(tenant), allow=[JUMP_HOST])
        result = QuarantineSubnet().apply(ctx)
        # the deny rule moves from 100 to 101: the allow rule takes 100
        assert result.prior_state["rules"]["irflow-quarantine-deny-inbound"]["priority"] == 100
        assert QuarantineSubnet().verify(ctx)
        QuarantineSubnet().apply(make_context("network.quarantine_subnet", subnet=_subnet(tenant)))
        rules = _nsg(tenant).summary()["securityRules"]
        assert "irflow-quarantine-allow-soc-jump-host" not in rules
        assert rules["irflow-quarantine-deny-inbound"]["priority"] == 100

    def test_an_allow_rule_of_the_nsg_at_the_top_swaps_a_quarantine_nsg_onto_the_subnet(
        self, tenant: Tenant, make_context
    ) -> None:  # type: ignore[no-untyped-def]
        # Nothing can go above a customer Allow rule at priority 100 (Azure: 100 is the top, one rule per
        # priority and direction); the quarantine then moves the subnet onto an NSG of its own.
        rule = _nsg(tenant).rule("allow-vnet-sql-inbound")
        rule.properties["priority"] = 100
        own = _nsg(tenant)
        own_before = own.summary()
        subnet = _subnet(tenant)
        ctx = make_context("network.quarantine_subnet", subnet=subnet, allow=[JUMP_HOST])
        action = QuarantineSubnet()
        plan = action.plan(ctx)
        assert _writes(tenant) == []
        swap = {c.field: c for c in plan.changes}["subnet.networkSecurityGroup"]
        assert swap.before == own.id and swap.after.endswith("/irflow-quarantine-vnet-phi-snet-phi-data")
        assert any("allow-vnet-sql-inbound at priority 100" in n for n in plan.notes)
        assert action.verify(ctx) is False
        first = action.apply(ctx)
        assert first.changed and first.outputs["mode"] == "swap"
        assert [(w.method, w.route) for w in _writes(tenant)] == [
            ("PUT", "network.nsgs.create_or_update"),
            ("PUT", "network.subnets.create_or_update"),
        ]
        quarantine = tenant.get_network_security_group(
            tenant.default_subscription_id, PHI_RG, "irflow-quarantine-vnet-phi-snet-phi-data"
        )
        assert quarantine.flush_connection is True
        assert quarantine.tags["irflow-quarantine-prior-nsg"] == own.id
        assert quarantine.rule("irflow-quarantine-deny-inbound").properties["priority"] == 101
        assert _vnet(tenant).subnets["snet-phi-data"].network_security_group_id == quarantine.id
        assert own.summary() == own_before  # the customer's NSG is not touched
        writes = len(_writes(tenant))
        assert not action.apply(ctx).changed
        assert len(_writes(tenant)) == writes
        assert action.verify(ctx) is True

        release = make_context("network.release_subnet", subnet=subnet)
        assert ReleaseSubnet().verify(release) is False
        assert ReleaseSubnet().apply(release).changed
        assert _vnet(tenant).subnets["snet-phi-data"].network_security_group_id == own.id
        assert [(w.method, w.route) for w in _writes(tenant)[writes:]] == [
            ("PUT", "network.subnets.create_or_update"),
            ("DELETE", "network.nsgs.delete"),
        ]
        assert (
            "irflow-quarantine-vnet-phi-snet-phi-data"
            not in tenant.resource_group(tenant.default_subscription_id, PHI_RG).network_security_groups
        )
        assert not ReleaseSubnet().apply(release).changed
        assert ReleaseSubnet().verify(release)

    def test_established_flows_are_cut_only_because_flush_connection_goes_on(
        self, tenant: Tenant, make_context
    ) -> None:  # type: ignore[no-untyped-def]
        data = _vnet(tenant).subnets["snet-phi-data"]
        data.established_flows = 7
        QuarantineSubnet().apply(make_context("network.quarantine_subnet", subnet=_subnet(tenant)))
        assert data.established_flows == 0

    def test_an_already_flushing_nsg_keeps_its_setting_on_release(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        _nsg(tenant).flush_connection = True
        subnet = _subnet(tenant)
        result = QuarantineSubnet().apply(make_context("network.quarantine_subnet", subnet=subnet))
        assert all(c.field != "flushConnection" for c in result.changes)
        assert [w.route for w in _writes(tenant)] == ["network.security_rules.create_or_update"] * 2
        ReleaseSubnet().apply(make_context("network.release_subnet", subnet=subnet))
        assert _nsg(tenant).flush_connection is True

    def test_private_endpoints_that_ignore_the_nsg_are_reported(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        data = _vnet(tenant).subnets["snet-phi-data"]
        data.private_endpoints = [
            f"{_vnet(tenant).id.rsplit('/providers/', 1)[0]}/providers/"
            "Microsoft.Network/privateEndpoints/pe-phi-blob"
        ]
        ctx = make_context("network.quarantine_subnet", subnet=_subnet(tenant))
        plan = QuarantineSubnet().plan(ctx)
        [note] = [n for n in plan.notes if "private endpoint" in n]
        assert "privateEndpointNetworkPolicies is Disabled" in note and "pe-phi-blob" in note
        data.private_endpoint_network_policies = "NetworkSecurityGroupEnabled"
        assert not [n for n in QuarantineSubnet().plan(ctx).notes if "private endpoint" in n]

    def test_a_subnet_without_nsg_gets_a_quarantine_nsg_and_back_none(
        self, tenant: Tenant, make_context
    ) -> None:  # type: ignore[no-untyped-def]
        # This used to be refused ("attach one before quarantining it"): a subnet without an NSG could not be
        # quarantined at all. It is now moved onto a quarantine NSG and released back to no NSG.
        subnet = _subnet(tenant, "snet-phi-app")
        ctx = make_context("network.quarantine_subnet", subnet=subnet)
        plan = QuarantineSubnet().plan(ctx)
        assert _writes(tenant) == []
        assert {c.field: c.before for c in plan.changes}["subnet.networkSecurityGroup"] is None
        assert any("has no network security group" in n for n in plan.notes)
        assert QuarantineSubnet().apply(ctx).changed
        quarantine = tenant.get_network_security_group(
            tenant.default_subscription_id, PHI_RG, "irflow-quarantine-vnet-phi-snet-phi-app"
        )
        assert quarantine.tags["irflow-quarantine-prior-nsg"] == "none"
        assert quarantine.location == _vnet(tenant).location
        app = _vnet(tenant).subnets["snet-phi-app"]
        assert app.network_security_group_id == quarantine.id
        writes = len(_writes(tenant))
        assert not QuarantineSubnet().apply(ctx).changed and len(_writes(tenant)) == writes
        assert QuarantineSubnet().verify(ctx)
        release = make_context("network.release_subnet", subnet=subnet)
        assert ReleaseSubnet().apply(release).changed
        assert app.network_security_group_id is None
        assert not ReleaseSubnet().apply(release).changed
        assert ReleaseSubnet().verify(release)

    def test_denied_write_names_permission_and_scope(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        tenant.deny("Microsoft.Network/networkSecurityGroups/securityRules/write", _nsg(tenant).id)
        ctx = make_context("network.quarantine_subnet", subnet=_subnet(tenant))
        with pytest.raises(PermissionDenied) as caught:
            QuarantineSubnet().apply(ctx)
        message = str(caught.value)
        assert "Microsoft.Network/networkSecurityGroups/securityRules/write" in message
        assert f"{_nsg(tenant).id}/securityRules/irflow-quarantine-deny-" in message

    def test_missing_subnet_is_named(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        ctx = make_context("network.quarantine_subnet", subnet=_subnet(tenant, "snet-gone"))
        with pytest.raises(ResourceMissing, match="snet-gone"):
            QuarantineSubnet().plan(ctx)

    def test_params_are_validated(self, tenant: Tenant) -> None:
        with pytest.raises(ValidationError, match="not a subnet"):
            QuarantineSubnetParams(subnet=_vnet(tenant).id)
        with pytest.raises(ValidationError, match="not an address prefix"):
            QuarantineSubnetParams(
                subnet=_subnet(tenant), allow=[{**JUMP_HOST, "source_prefixes": ["evil;"]}]
            )
        with pytest.raises(ValidationError, match="not a port"):
            QuarantineSubnetParams(subnet=_subnet(tenant), allow=[{**JUMP_HOST, "ports": ["70000"]}])
        with pytest.raises(ValidationError, match="unique"):
            QuarantineSubnetParams(subnet=_subnet(tenant), allow=[JUMP_HOST, JUMP_HOST])


class TestReleaseSubnet:
    def test_release_removes_exactly_the_quarantine_rules(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        subnet = _subnet(tenant)
        QuarantineSubnet().apply(make_context("network.quarantine_subnet", subnet=subnet, allow=[JUMP_HOST]))
        writes = len(_writes(tenant))
        ctx = make_context("network.release_subnet", subnet=subnet)
        action = ReleaseSubnet()
        plan = action.plan(ctx)
        assert {c.field for c in plan.changes} == {
            "securityRules.irflow-quarantine-allow-soc-jump-host",
            "securityRules.irflow-quarantine-deny-inbound",
            "securityRules.irflow-quarantine-deny-outbound",
            "flushConnection",
        }
        assert len(_writes(tenant)) == writes
        assert action.verify(ctx) is False
        result = action.apply(ctx)
        assert result.changed and len(result.prior_state["rules"]) == 3
        # the three rules go, then flushConnection is put back as it was (and irflow's tag removed)
        assert [w.method for w in _writes(tenant)[writes:]] == ["DELETE"] * 3 + ["PUT"]
        assert not action.apply(ctx).changed
        assert len(_writes(tenant)) == writes + 4
        assert _nsg(tenant).flush_connection is False
        assert "irflow-quarantine-flush-prior" not in _nsg(tenant).tags
        assert action.verify(ctx)
        assert set(_nsg(tenant).summary()["securityRules"]) == {
            "allow-vnet-sql-inbound",
            "deny-internet-inbound",
        }

    def test_denied_delete_names_permission_and_scope(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        subnet = _subnet(tenant)
        QuarantineSubnet().apply(make_context("network.quarantine_subnet", subnet=subnet))
        tenant.deny("Microsoft.Network/networkSecurityGroups/securityRules/delete", "/")
        with pytest.raises(
            PermissionDenied, match=r"securityRules/delete on .*irflow-quarantine-deny-inbound"
        ):
            ReleaseSubnet().apply(make_context("network.release_subnet", subnet=subnet))

    def test_missing_subnet_is_named(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        ctx = make_context("network.release_subnet", subnet=_subnet(tenant, "snet-gone"))
        with pytest.raises(ResourceMissing, match="snet-gone"):
            ReleaseSubnet().plan(ctx)


class TestDisconnectPeering:
    def test_plan_records_the_definition_and_writes_nothing(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        plan = DisconnectPeering().plan(make_context("network.disconnect_peering", peering=_peering(tenant)))
        [change] = plan.changes
        assert change.field == "virtualNetworkPeerings.peer-to-analytics" and change.after is None
        assert change.before["allowForwardedTraffic"] is True
        assert change.before["remoteVirtualNetwork"] == _vnet(tenant, "rg-analytics", "vnet-analytics").id
        assert _writes(tenant) == []

    def test_apply_twice_makes_one_change_and_verifies(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        ctx = make_context("network.disconnect_peering", peering=_peering(tenant))
        action = DisconnectPeering()
        assert action.verify(ctx) is False
        first = action.apply(ctx)
        assert first.changed
        assert first.prior_state["remoteAddressSpace"] == ["10.20.0.0/16"]
        assert first.prior_state["allowVirtualNetworkAccess"] is True
        writes = _writes(tenant)
        assert [(w.method, w.route) for w in writes] == [("DELETE", "network.peerings.delete")]
        second = action.apply(ctx)
        assert not second.changed
        assert _writes(tenant) == writes
        assert action.verify(ctx)
        assert _vnet(tenant).peerings == {}
        back = _vnet(tenant, "rg-analytics", "vnet-analytics").peerings["peer-to-phi"]
        assert back.peering_state == "Disconnected"

    def test_denied_delete_names_permission_and_scope(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        tenant.deny("Microsoft.Network/virtualNetworks/virtualNetworkPeerings/delete", _vnet(tenant).id)
        with pytest.raises(PermissionDenied) as caught:
            DisconnectPeering().apply(make_context("network.disconnect_peering", peering=_peering(tenant)))
        assert "virtualNetworkPeerings/delete" in str(caught.value) and _peering(tenant) in str(caught.value)

    def test_missing_network_is_named(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        peering = _peering(tenant).replace("/vnet-phi/", "/vnet-gone/")
        with pytest.raises(ResourceMissing, match="vnet-gone"):
            DisconnectPeering().plan(make_context("network.disconnect_peering", peering=peering))


class TestRestorePeering:
    def test_disconnect_then_restore_reconnects_both_sides(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        peering = _peering(tenant)
        cut = DisconnectPeering().apply(make_context("network.disconnect_peering", peering=peering))
        writes = len(_writes(tenant))
        ctx = make_context("network.restore_peering", peering=peering, prior=cut.prior_state)
        action = RestorePeering()
        plan = action.plan(ctx)
        assert [c.field for c in plan.changes] == [
            "remotePeering.peeringState",
            "virtualNetworkPeerings.peer-to-analytics",
        ]
        assert len(_writes(tenant)) == writes
        assert action.verify(ctx) is False
        result = action.apply(ctx)
        assert result.changed and result.outputs["peeringState"] == "Connected"
        assert result.prior_state["peering"] is None
        restores = _writes(tenant)[writes:]
        assert [(w.method, w.route) for w in restores] == [("PUT", "network.peerings.create_or_update")] * 2
        assert restores[0].path.endswith("/vnet-analytics/virtualNetworkPeerings/peer-to-phi")
        assert restores[1].body["properties"]["allowForwardedTraffic"] is True
        assert not action.apply(ctx).changed
        assert len(_writes(tenant)) == writes + 2
        assert action.verify(ctx)
        assert _vnet(tenant).peerings["peer-to-analytics"].peering_state == "Connected"
        assert (
            _vnet(tenant, "rg-analytics", "vnet-analytics").peerings["peer-to-phi"].peering_state
            == "Connected"
        )

    def test_a_subnet_peering_comes_back_subnet_scoped(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        analytics = _vnet(tenant, "rg-analytics", "vnet-analytics")
        remote_subnet = next(iter(analytics.subnets.values())).name
        for side, local, remote in (
            (_vnet(tenant).peerings["peer-to-analytics"], "snet-phi-data", remote_subnet),
            (analytics.peerings["peer-to-phi"], remote_subnet, "snet-phi-data"),
        ):
            side.peer_complete_vnets = False
            side.local_subnet_names, side.remote_subnet_names = [local], [remote]
        peering = _peering(tenant)
        cut = DisconnectPeering().apply(make_context("network.disconnect_peering", peering=peering))
        assert cut.prior_state["peerCompleteVnets"] is False
        assert cut.prior_state["localSubnetNames"] == ["snet-phi-data"]
        ctx = make_context("network.restore_peering", peering=peering, prior=cut.prior_state)
        RestorePeering().apply(ctx)
        restored = _vnet(tenant).peerings["peer-to-analytics"]
        assert restored.peer_complete_vnets is False
        assert (restored.local_subnet_names, restored.remote_subnet_names) == (
            ["snet-phi-data"],
            [remote_subnet],
        )
        assert restored.peering_state == "Connected"
        assert RestorePeering().verify(ctx)
        # a full VNet peering in its place is not the recorded one
        restored.peer_complete_vnets = True
        assert RestorePeering().verify(ctx) is False

    def test_denied_write_names_permission_and_scope(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        peering = _peering(tenant)
        cut = DisconnectPeering().apply(make_context("network.disconnect_peering", peering=peering))
        tenant.deny("Microsoft.Network/virtualNetworks/virtualNetworkPeerings/write", "/")
        ctx = make_context("network.restore_peering", peering=peering, prior=cut.prior_state)
        with pytest.raises(PermissionDenied, match="virtualNetworkPeerings/write on .*peer-to-phi"):
            RestorePeering().apply(ctx)

    def test_missing_remote_network_is_named(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        peering = _peering(tenant)
        cut = DisconnectPeering().apply(make_context("network.disconnect_peering", peering=peering))
        prior = {**cut.prior_state, "remoteVirtualNetwork": cut.prior_state["remoteVirtualNetwork"] + "x"}
        ctx = make_context("network.restore_peering", peering=peering, prior=prior)
        with pytest.raises(ResourceMissing, match="vnet-analyticsx"):
            RestorePeering().plan(ctx)
