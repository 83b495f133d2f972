"""Which addresses an Azure firewall ``ipRules`` entry may hold: one check for irflow and its simulator.

Storage and Key Vault ``networkAcls.ipRules`` take public IPv4 addresses or CIDR ranges only:

- Storage: "Only IPv4 addresses are allowed", "IP address ranges reserved for private networks (as defined
  in RFC 1918) aren't allowed" and "Small address ranges using /31 or /32 prefix sizes aren't supported"
  (https://learn.microsoft.com/azure/storage/common/storage-network-security-limitations).
- Key Vault: "any IP range inside 10.0.0.0-10.255.255.255 (private IP addresses) cannot be used to add
  network rules" (https://learn.microsoft.com/powershell/module/az.keyvault/add-azkeyvaultnetworkrule); its
  firewall admits public IPv4 addresses only
  (https://learn.microsoft.com/azure/key-vault/general/network-security).

The rest of RFC 1918, loopback, link-local and "this network" are refused too (the stricter reading: such an
address never reaches a public endpoint anyway). The documentation ranges of RFC 5737 (192.0.2.0/24,
198.51.100.0/24, 203.0.113.0/24) are not private ranges and Azure accepts them, so they stay accepted.
"""

from __future__ import annotations

import ipaddress

NOT_PUBLIC_RANGES = tuple(
    ipaddress.IPv4Network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16", "0.0.0.0/8")
)


def refusal(value: str) -> str | None:
    """Why ``value`` cannot be an ``ipRules`` entry, or ``None`` when it can (prefix size not checked)."""
    try:
        network = ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError:
        return "is not an IPv4 address or CIDR range"
    if network.version != 4:
        return "is IPv6; Azure storage and Key Vault IP rules take IPv4 only"
    if any(network.overlaps(private) for private in NOT_PUBLIC_RANGES):
        return (
            "is (or overlaps) a private, loopback or link-local range, which Azure refuses in storage and "
            "Key Vault IP rules; give the public address irflow's calls leave from (its NAT gateway or "
            "firewall), or use a subnet (IRFLOW_SUBNET_ID) for a private path"
        )
    return None


def valid_ip_rule(value: str, *, small_prefixes: bool) -> bool:
    """Whether ``value`` is a public IPv4 address or CIDR range an ``ipRules`` entry may hold.

    ``small_prefixes=False`` refuses an explicit /31 or /32 (storage); Key Vault takes them.
    """
    if refusal(value) is not None:
        return False
    network = ipaddress.IPv4Network(str(value).strip(), strict=False)
    return small_prefixes or "/" not in str(value) or network.prefixlen not in (31, 32)


# Never the source address of a call reaching a public endpoint, though Azure's ipRules documentation does not
# say it refuses them: shared address space behind carrier-grade NAT (RFC 6598), multicast and the reserved
# 240.0.0.0/4 (RFC 1112, with the limited broadcast address). Refused as irflow's egress address only.
NOT_AN_EGRESS_SOURCE = tuple(
    ipaddress.IPv4Network(n) for n in ("100.64.0.0/10", "224.0.0.0/4", "240.0.0.0/4")
)


def parse_public_ipv4(raw: str, *, setting: str | None = None) -> tuple[str, ...]:
    """A comma-separated list of public IPv4 addresses or ranges, normalised (``203.0.113.7/32`` →
    ``203.0.113.7``) and deduplicated; the first entry Azure would refuse, or that can never be the source
    of a call, raises ``ValueError`` naming ``setting`` (when given) and the entry."""
    entries: list[str] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        problem = refusal(item)
        network = ipaddress.IPv4Network(item, strict=False) if problem is None else None
        if network is not None and any(network.overlaps(r) for r in NOT_AN_EGRESS_SOURCE):
            problem = (
                "is (or overlaps) carrier-grade NAT, multicast or reserved address space, never the public "
                "address a call reaches Azure from; give the public address irflow's calls leave from"
            )
        if problem is not None or network is None:
            where = f"{setting}: " if setting else ""
            raise ValueError(f"{where}{item[:100]!r} {problem}")
        entries.append(str(network.network_address) if network.num_addresses == 1 else str(network))
    return tuple(dict.fromkeys(entries))
