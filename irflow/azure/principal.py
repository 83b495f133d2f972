"""irflow's own way in: who irflow is in Entra ID and where its Azure calls come from.

Containment must never remove irflow's own access (its object id stays in every allow-list), and network
isolation must leave irflow's origin allowed while evidence capture and revocation run over the data plane.

- Object id: ``IRFLOW_SELF_OBJECT_ID``, else the ``oid`` claim of the token irflow's credential obtains for
  ARM (read, not validated: the token is our own, freshly issued by Entra ID).
- Origin: ``IRFLOW_EGRESS_IPS`` (comma-separated IPv4 addresses or CIDR ranges, as storage and Key Vault
  ``ipRules`` take them) and/or ``IRFLOW_SUBNET_ID`` (a subnet resource id, for ``virtualNetworkRules``).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from azure.core.credentials import TokenCredential

from irflow.domain import ip_rules
from irflow.settings import Settings


class SelfIdentityUnknown(ValueError):
    """irflow cannot tell its own object id; the message says what to configure."""


@dataclass(frozen=True)
class NetworkOrigin:
    """Where irflow's data-plane calls come from."""

    egress_ips: tuple[str, ...] = ()
    subnet_id: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.egress_ips or self.subnet_id)

    def describe(self) -> str:
        parts = [*self.egress_ips, *([self.subnet_id] if self.subnet_id else [])]
        return ", ".join(parts) if parts else "not configured"


def parse_egress_ips(raw: str) -> tuple[str, ...]:
    """``"203.0.113.7, 198.51.100.0/24"`` → normalised entries; a bad entry raises ``ValueError``.

    Only what Azure takes in storage and Key Vault ``ipRules`` is accepted: public IPv4 addresses or
    ranges (:mod:`irflow.domain.ip_rules` names the sources). A private address is never matched by the
    firewall of a public endpoint, so irflow would lock itself out while believing it kept a path."""
    return ip_rules.parse_public_ipv4(raw, setting="IRFLOW_EGRESS_IPS")


def network_origin(settings: Settings) -> NetworkOrigin:
    return NetworkOrigin(
        egress_ips=parse_egress_ips(settings.egress_ips), subnet_id=settings.subnet_id or None
    )


def object_id_from_token(token: str) -> str | None:
    """The ``oid`` claim of a JWT access token, or ``None`` when the token is not a JWT or lacks one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, UnicodeError):
        return None
    oid = claims.get("oid") if isinstance(claims, dict) else None
    return oid if isinstance(oid, str) and oid else None


def self_object_id(settings: Settings, credential: TokenCredential, arm_scope: str) -> str:
    """irflow's object id: configured, else read from its own ARM token's ``oid`` claim."""
    if settings.self_object_id:
        return settings.self_object_id
    token = credential.get_token(arm_scope).token
    oid = object_id_from_token(token)
    if oid is None:
        raise SelfIdentityUnknown(
            "irflow cannot tell its own object id: its token carries no 'oid' claim; "
            "set IRFLOW_SELF_OBJECT_ID to the object id of irflow's managed identity or service principal"
        )
    return oid
