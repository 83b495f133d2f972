"""Pure pieces: redaction, merge-patch, route matching."""

from __future__ import annotations

import pytest
import requests
from sim_helpers import NOW

from irflow.sim import Tenant
from irflow.sim.arm import format_time, merge_patch
from irflow.sim.http import SimRequest, SimResponse
from irflow.sim.journal import REDACTED, redact, redact_query
from irflow.sim.mock import mount
from irflow.sim.router import Route, Router


def test_redact_masks_key_values_secret_fields_and_known_secrets() -> None:
    key = "q3Vx9Zr0cT1b7kLmN2pQ8sUvWxYz0aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789abcdefghijklmnopqrs+/A=="
    body = {
        "keys": [{"keyName": "key1", "value": key, "permissions": "Full"}],
        "connectionString": f"DefaultEndpointsProtocol=https;AccountKey={key}",
        "note": f"leaked {key}; twice: {key}",
        "nested": [{"accountKey": "x"}],
        "harmless": "phipatientexports-2026-03-02",
    }
    assert redact(body, {key}) == {
        "keys": [{"keyName": "key1", "value": REDACTED, "permissions": "Full"}],
        "connectionString": REDACTED,
        "note": f"leaked {REDACTED}; twice: {REDACTED}",
        "nested": [{"accountKey": REDACTED}],
        "harmless": "phipatientexports-2026-03-02",
    }
    assert body["keys"][0]["value"] == key  # the original is untouched
    assert redact_query({"sig": "abc", "api-version": "1"}) == {"sig": REDACTED, "api-version": "1"}


def test_merge_patch_follows_rfc_7396() -> None:
    target = {
        "a": 1,
        "acl": {"defaultAction": "Allow", "bypass": "AzureServices", "ipRules": [{"value": "x"}]},
    }
    patch = {"acl": {"defaultAction": "Deny", "ipRules": []}, "a": None, "b": {"c": None, "d": 2}}
    assert merge_patch(target, patch) == {
        "acl": {"defaultAction": "Deny", "bypass": "AzureServices", "ipRules": []},
        "b": {"d": 2},
    }
    assert target["a"] == 1


def test_format_time_has_seven_fraction_digits() -> None:
    assert format_time(NOW) == "2026-03-02T09:30:00.0000000Z"


def test_routes_match_literal_segments_case_insensitively() -> None:
    route = Route("GET", "/subscriptions/{sub}/resourceGroups/{rg}", lambda t, r: SimResponse(200), "x")
    router = Router([route])
    request = SimRequest.from_url("GET", "https://h/SUBSCRIPTIONS/s1/resourcegroups/My%20RG/")
    assert router._match(router._routes, request) is route
    assert request.params == {"sub": "s1", "rg": "My RG"}
    assert (
        router._match(
            router._routes, SimRequest.from_url("POST", "https://h/subscriptions/s/resourceGroups/r")
        )
        is None
    )
    assert Route("POST", "/x", route.handler, "r", read_only=True).is_write is False
    assert Route("POST", "/x", route.handler, "w").is_write is True
    assert route.is_write is False


def test_mock_mount_lets_nothing_else_through() -> None:
    tenant = Tenant.demo()
    with mount(tenant), pytest.raises(requests.exceptions.ConnectionError):
        requests.get("https://example.com/", timeout=5)
    assert tenant.journal.entries() == []


def test_mock_mount_serves_another_base_url() -> None:
    tenant = Tenant.demo()
    with mount(tenant, base_url="https://management.usgovcloudapi.net/"):
        response = requests.get(
            "https://management.usgovcloudapi.net/_sim/state",
            headers={"Authorization": f"Bearer {tenant.token}"},
            timeout=5,
        )
    assert response.status_code == 200
    assert response.json()["default_subscription_id"] == tenant.default_subscription_id
