"""irflow's own identity and origin: configured values, the token's oid claim, clear errors."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from irflow.azure.clients import AzureClients, StaticTokenCredential
from irflow.azure.principal import (
    SelfIdentityUnknown,
    network_origin,
    object_id_from_token,
    parse_egress_ips,
)
from irflow.settings import Settings

SUBNET = "/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/virtualNetworks/v/subnets/y"


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


# Azure refuses private ranges in storage and Key Vault ipRules (storage-network-security-limitations: "IP
# address ranges reserved for private networks (as defined in RFC 1918) aren't allowed", "Only IPv4
# addresses are allowed"; Add-AzKeyVaultNetworkRule: private ranges "cannot be used to add network rules").
@pytest.mark.parametrize(
    "entry", ["10.1.2.3", "172.16.0.0/12", "192.168.10.0/24", "127.0.0.1", "169.254.169.254", "10.0.0.0/7"]
)
def test_a_private_egress_entry_is_refused_with_what_to_configure(entry: str) -> None:
    with pytest.raises(ValueError, match="private, loopback or link-local") as refused:
        parse_egress_ips(f"203.0.113.7,{entry}")
    assert "IRFLOW_EGRESS_IPS" in str(refused.value) and repr(entry) in str(refused.value)
    assert "public address" in str(refused.value)


@pytest.mark.parametrize("entry", ["100.64.1.2", "224.0.0.1", "255.255.255.255", "240.0.0.0/4"])
def test_an_egress_entry_that_is_never_a_public_source_is_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="carrier-grade NAT, multicast or reserved"):
        parse_egress_ips(entry)


def test_an_ipv6_egress_entry_is_refused() -> None:
    with pytest.raises(ValueError, match="IPv4 only"):
        parse_egress_ips("2001:db8::1")


def test_documentation_ranges_stay_accepted_as_azure_accepts_them() -> None:
    # RFC 5737 ranges are not private: Azure takes them in ipRules, and the tests use them as irflow's
    # public egress address.
    assert parse_egress_ips("192.0.2.10,198.51.100.0/24,203.0.113.7") == (
        "192.0.2.10",
        "198.51.100.0/24",
        "203.0.113.7",
    )


def test_settings_refuse_a_private_egress_ip_and_a_malformed_subnet() -> None:
    with pytest.raises(ValidationError, match="private, loopback or link-local"):
        Settings(egress_ips="10.0.0.4")
    with pytest.raises(ValidationError, match="subnet resource id"):
        Settings(subnet_id="vnet-ops/irflow")
    assert Settings(egress_ips="192.0.2.10", subnet_id=SUBNET).subnet_id == SUBNET


def test_the_cli_names_the_bad_setting_without_a_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "IRFLOW_EGRESS_IPS": "192.168.1.20"}
    result = subprocess.run(
        [sys.executable, "-m", "irflow", "doctor"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "IRFLOW_EGRESS_IPS" in result.stderr and "private" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_origin_reports_whether_it_is_configured() -> None:
    assert not network_origin(Settings()).configured
    origin = network_origin(Settings(subnet_id=SUBNET))
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
