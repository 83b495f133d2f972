"""The storage firewall on the blob data plane (irflow.sim.firewall), in both mounts.

Each rule as Microsoft documents it ("Azure Storage firewall and virtual network rules",
https://learn.microsoft.com/en-us/azure/storage/common/storage-network-security): firewall rules apply to
the data plane only; publicNetworkAccess Disabled refuses every request through the public endpoint (IP
and virtual-network rules become inert); defaultAction Deny refuses callers outside ipRules (CIDR) and
virtualNetworkRules; a refusal is 403 with x-ms-error-code AuthorizationFailure.
"""

from __future__ import annotations

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from sim_helpers import PHI_RG, Sim
from test_sim_blob_data_plane import container_client

from irflow.sim import Tenant
from irflow.sim.firewall import DEFAULT_CALLER_IP, CallerOrigin

ACCOUNT, CONTAINER = "phipatientexports", "patient-exports"
SUBNET = (
    "/subscriptions/9b2f6c1d-4e8a-4f3b-a1c7-2d5e8f0a6b3c/resourceGroups/rg-ops/providers/Microsoft.Network/"
    "virtualNetworks/vnet-ops/subnets/irflow"
)


def _set_network(sim: Sim, **properties: object) -> None:
    sim.client().storage_accounts.update(PHI_RG, ACCOUNT, {"properties": properties})


def _refused(sim: Sim) -> HttpResponseError:
    with pytest.raises(HttpResponseError) as caught:
        container_client(sim, ACCOUNT, CONTAINER).get_container_access_policy()
    return caught.value


def _admitted(sim: Sim) -> bool:
    return (
        container_client(sim, ACCOUNT, CONTAINER).get_container_access_policy()["public_access"] is not None
    )


def test_public_network_access_disabled_refuses_even_an_allowed_origin(sim: Sim) -> None:
    sim.tenant.set_caller_origin(ip="198.51.100.7")
    acls = {"defaultAction": "Deny", "ipRules": [{"value": "198.51.100.7"}]}
    _set_network(sim, publicNetworkAccess="Disabled", networkAcls=acls)
    refused = _refused(sim)
    assert (
        refused.status_code == 403 and refused.response.headers["x-ms-error-code"] == "AuthorizationFailure"
    )
    assert "not authorized to perform this operation" in refused.message
    # the control plane is not behind the firewall
    assert sim.client().storage_accounts.get_properties(PHI_RG, ACCOUNT).public_network_access == "Disabled"
    assert sim.tenant.storage_account(ACCOUNT).container(CONTAINER).access_policies  # nothing changed


def test_deny_refuses_the_default_caller_and_admits_an_allow_listed_cidr(sim: Sim) -> None:
    _set_network(sim, networkAcls={"defaultAction": "Deny", "bypass": "AzureServices", "ipRules": []})
    assert _refused(sim).response.headers["x-ms-error-code"] == "AuthorizationFailure"
    # bypass AzureServices admits trusted Azure services, never a client such as irflow
    sim.tenant.set_caller_origin(ip="198.51.100.77")
    _set_network(sim, networkAcls={"defaultAction": "Deny", "ipRules": [{"value": "198.51.100.0/24"}]})
    assert _admitted(sim)
    sim.tenant.set_caller_origin(ip="198.51.101.1")  # just outside the range
    assert _refused(sim).status_code == 403


def test_deny_admits_a_caller_from_an_allowed_subnet(sim: Sim) -> None:
    sim.tenant.set_caller_origin(subnet_id=SUBNET)
    _set_network(sim, networkAcls={"defaultAction": "Deny", "virtualNetworkRules": [{"id": SUBNET.upper()}]})
    assert _admitted(sim)  # resource ids compare case-insensitively
    _set_network(sim, networkAcls={"defaultAction": "Deny", "virtualNetworkRules": []})
    assert _refused(sim).status_code == 403


def test_default_action_allow_admits_anyone(sim: Sim) -> None:
    assert sim.tenant.caller_origin is None
    assert _admitted(sim)


def test_without_a_configured_origin_the_caller_is_never_allow_listed(sim: Sim) -> None:
    """In-process: a public default address no scenario allows; HTTPS server: the peer (loopback)."""
    rules = [{"value": "203.0.113.0/24"}, {"value": "198.51.100.0/24"}]
    _set_network(sim, networkAcls={"defaultAction": "Deny", "ipRules": rules})
    assert _refused(sim).status_code == 403
    assert not any(DEFAULT_CALLER_IP.startswith(r["value"].rsplit(".", 1)[0]) for r in rules)


def test_caller_origin_is_validated() -> None:
    with pytest.raises(ValueError, match="not an IPv4 address"):
        CallerOrigin(ip="not-an-ip")
    with pytest.raises(ValueError, match="not a subnet resource id"):
        CallerOrigin(subnet_id="vnet-ops/irflow")
    with pytest.raises(ValueError, match="needs an ip"):
        CallerOrigin()


def test_admin_route_and_scenario_set_the_origin(sim: Sim) -> None:
    if sim.mode != "server":
        pytest.skip("the admin route is for the server process")
    headers = {"Authorization": f"Bearer {sim.tenant.token}"}

    def post(body: dict) -> tuple[int, dict]:  # type: ignore[type-arg]
        url = f"{sim.endpoint}/_sim/caller"
        answer = requests.post(url, json=body, headers=headers, verify=sim.verify, timeout=30)
        return answer.status_code, answer.json()

    assert post({"ip": "198.51.100.7"}) == (200, {"ip": "198.51.100.7", "subnet_id": None})
    assert sim.tenant.caller_origin == CallerOrigin(ip="198.51.100.7")
    status, body = post({"ip": "300.1.1.1"})
    assert status == 400 and "not an IPv4 address" in body["error"]["message"]
    assert post({"ip": None, "subnet_id": None})[0] == 200 and sim.tenant.caller_origin is None

    tenant = Tenant.from_scenario({"caller": {"ip": "198.51.100.9", "subnet_id": SUBNET}})
    assert tenant.caller_origin == CallerOrigin("198.51.100.9", SUBNET)
    with pytest.raises(ValueError, match="invalid scenario: caller"):
        Tenant.from_scenario({"caller": {"ip": "nope"}})


@pytest.mark.parametrize(
    "value", ["10.1.2.0/24", "192.168.7.9", "172.20.0.0/16", "127.0.0.1", "198.51.100.7/32"]
)
def test_ip_rules_take_public_ranges_only(sim: Sim, value: str) -> None:
    """Storage refuses private (RFC 1918) ranges and /31 or /32 prefixes in IP rules
    (https://learn.microsoft.com/en-us/azure/storage/common/storage-network-security-limitations)."""
    before = sim.tenant.storage_account(ACCOUNT).properties["networkAcls"]
    with pytest.raises(HttpResponseError) as caught:
        _set_network(sim, networkAcls={"defaultAction": "Deny", "ipRules": [{"value": value}]})
    assert caught.value.status_code == 400 and caught.value.error.code == "InvalidValuesForRequestParameters"
    assert sim.tenant.storage_account(ACCOUNT).properties["networkAcls"] == before


def test_the_servers_start_line_passes_the_origin_on_as_irflows_configuration() -> None:
    from irflow.sim.server import SimServer

    with SimServer(Tenant.from_scenario("sas-exfiltration")) as server:
        env = server.connection_info()["env"]
    assert env["IRFLOW_EGRESS_IPS"] == "192.0.2.10" and "IRFLOW_SUBNET_ID" not in env
    with SimServer(Tenant.demo()) as server:
        assert "IRFLOW_EGRESS_IPS" not in server.connection_info()["env"]  # no origin: none configured
