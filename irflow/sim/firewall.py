"""The data-plane network firewall of storage accounts and key vaults: one rule set, two wire formats.

Azure applies a resource's network rules to its data plane only; ARM (the control plane) is never affected.
For a request through the public endpoint (the only endpoint the simulator has: private endpoints are not
simulated):

- ``publicNetworkAccess: Disabled`` refuses every request, whatever the IP and virtual-network rules say
  (they become inert). ``SecuredByPerimeter`` is refused the same way: network security perimeters are not
  simulated, so the stricter reading is modelled.
- ``networkAcls.defaultAction: Deny`` refuses a caller unless its address lies in an ``ipRules`` entry (an
  IPv4 address or CIDR range) or its subnet is named by a ``virtualNetworkRules`` entry (a service endpoint).
- Trusted-service bypass (``bypass: AzureServices``) admits Azure services, never irflow, so it is ignored.

Sources: "Azure Storage firewall and virtual network rules"
https://learn.microsoft.com/en-us/azure/storage/common/storage-network-security ("firewall rules apply to
data plane operations only"; "Disabled ... blocks all traffic ... IP and virtual network rules are
ignored"), https://learn.microsoft.com/en-us/azure/storage/common/storage-network-security-limitations ;
"Configure Azure Key Vault networking settings"
https://learn.microsoft.com/en-us/azure/key-vault/general/network-security and Key Vault's REST error codes
https://learn.microsoft.com/en-us/azure/key-vault/general/rest-error-codes (403 ``ForbiddenByFirewall``).

The caller's origin (:func:`caller_of`): the tenant's configured :class:`CallerOrigin` when set (an IP and/or
a subnet id: from Python, a scenario's ``caller`` section, ``irflow sim serve --caller-ip/--caller-subnet``
or ``POST /_sim/caller``); else, on the HTTPS server, the peer address of the connection (loopback: never in
an allow-list, since Azure refuses private ranges in IP rules); else (the in-process mount)
:data:`DEFAULT_CALLER_IP`, a public address that no scenario allow-lists. So isolating a resource without
configuring irflow's origin breaks the data plane exactly as it would on Azure.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from irflow.sim.http import SimRequest
    from irflow.sim.models import Tenant

# A public address (TEST-NET-1, RFC 5737) that is the in-process mount's caller when none is configured.
DEFAULT_CALLER_IP = "192.0.2.250"

Reason = Literal["public_network_access_disabled", "not_in_allow_list"]


# Which addresses an ``ipRules`` entry may hold (public IPv4 only, with its Microsoft sources) is one check
# shared with irflow's own settings and actions: irflow.domain.ip_rules.valid_ip_rule.


@dataclass(frozen=True)
class CallerOrigin:
    """Where simulated callers come from: a public IP address and/or the subnet they call from."""

    ip: str | None = None
    subnet_id: str | None = None

    def __post_init__(self) -> None:
        if self.ip is not None:
            try:
                object.__setattr__(self, "ip", str(ipaddress.IPv4Address(self.ip.strip())))
            except ValueError:
                raise ValueError(f"caller ip {self.ip!r} is not an IPv4 address") from None
        if self.subnet_id is not None:
            subnet = self.subnet_id.strip()
            if not subnet.lower().startswith("/subscriptions/") or "/subnets/" not in subnet.lower():
                raise ValueError(f"caller subnet {self.subnet_id!r} is not a subnet resource id")
            object.__setattr__(self, "subnet_id", subnet)
        if self.ip is None and self.subnet_id is None:
            raise ValueError("a caller origin needs an ip, a subnet id, or both")

    def to_dict(self) -> dict[str, Any]:
        return {"ip": self.ip, "subnet_id": self.subnet_id}


@dataclass(frozen=True)
class Refusal:
    """Why a data-plane request is refused, and who was refused."""

    reason: Reason
    caller: CallerOrigin


def caller_of(tenant: Tenant, request: SimRequest) -> CallerOrigin:
    if tenant.caller_origin is not None:
        return tenant.caller_origin
    return CallerOrigin(ip=request.peer or DEFAULT_CALLER_IP)


def _ip_allowed(ip: str | None, rules: list[Any]) -> bool:
    if ip is None:
        return False
    address = ipaddress.ip_address(ip)
    for rule in rules:
        value = rule.get("value") if isinstance(rule, dict) else None
        try:
            if address in ipaddress.ip_network(str(value), strict=False):
                return True
        except ValueError:
            continue
    return False


def _subnet_allowed(subnet_id: str | None, rules: list[Any]) -> bool:
    if subnet_id is None:
        return False
    return any(
        isinstance(rule, dict)
        and str(rule.get("id", "")).lower() == subnet_id.lower()
        and rule.get("state", "Succeeded") == "Succeeded"
        for rule in rules
    )


def check(tenant: Tenant, request: SimRequest, properties: dict[str, Any]) -> Refusal | None:
    """The refusal a resource with these ARM ``properties`` gives this request, or ``None`` to admit it."""
    caller = caller_of(tenant, request)
    if properties.get("publicNetworkAccess", "Enabled") != "Enabled":
        return Refusal("public_network_access_disabled", caller)
    acls = properties.get("networkAcls") or {}
    if acls.get("defaultAction", "Allow") != "Deny":
        return None
    if _ip_allowed(caller.ip, acls.get("ipRules") or []) or _subnet_allowed(
        caller.subnet_id, acls.get("virtualNetworkRules") or []
    ):
        return None
    return Refusal("not_in_allow_list", caller)
