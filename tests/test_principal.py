"""irflow's own identity and origin: configured values, the token's oid claim, clear errors."""

from __future__ import annotations

import base64
import json

import pytest

from irflow.azure.clients import AzureClients, StaticTokenCredential
from irflow.azure.principal import (
    SelfIdentityUnknown,
    network_origin,
    object_id_from_token,
    parse_egress_ips,
)
from irflow.settings import Settings


def _jwt(claims: dict) -> str:
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2ln"


def test_egress_ips_are_normalised_and_deduplicated() -> None:
    assert parse_egress_ips(" 203.0.113.7, 198.51.100.0/24,203.0.113.7/32 ,") == (
        "203.0.113.7",
        "198.51.100.0/24",
    )


def test_a_bad_egress_entry_is_named() -> None:
    with pytest.raises(ValueError, match="'not-an-ip'"):
        parse_egress_ips("203.0.113.7,not-an-ip")


def test_origin_reports_whether_it_is_configured() -> None:
    assert not network_origin(Settings()).configured
    origin = network_origin(Settings(subnet_id="/subscriptions/s/resourceGroups/r/providers/x/subnets/y"))
    assert origin.configured and origin.describe().endswith("subnets/y")


def test_object_id_comes_from_the_token_oid_claim() -> None:
    token = _jwt({"oid": "11111111-2222-3333-4444-555555555555", "aud": "https://management.azure.com"})
    assert object_id_from_token(token) == "11111111-2222-3333-4444-555555555555"
    clients = AzureClients(Settings(), credential=StaticTokenCredential(token))
    assert clients.self_object_id() == "11111111-2222-3333-4444-555555555555"


def test_configured_object_id_wins_over_the_token() -> None:
    token = _jwt({"oid": "from-token"})
    clients = AzureClients(Settings(self_object_id="configured"), credential=StaticTokenCredential(token))
    assert clients.self_object_id() == "configured"


@pytest.mark.parametrize("token", ["opaque-token", _jwt({"sub": "x"}), "a.%%%.c"])
def test_no_oid_is_a_clear_configuration_error(token: str) -> None:
    clients = AzureClients(Settings(), credential=StaticTokenCredential(token))
    with pytest.raises(SelfIdentityUnknown, match="IRFLOW_SELF_OBJECT_ID"):
        clients.self_object_id()
