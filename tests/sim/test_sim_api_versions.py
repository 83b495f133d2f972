"""api-versions checked per resource type against the versions Azure serves (irflow.sim.api_versions), both
mounts. Sources: https://learn.microsoft.com/azure/azure-resource-manager/troubleshooting/error-register-resource-provider
(NoRegisteredProviderFound), ARM's InvalidApiVersionParameter / MissingApiVersionParameter answers."""

from __future__ import annotations

import pytest
from azure.core.rest import HttpRequest
from sim_helpers import PHI_RG, Sim

from irflow.sim import api_versions
from irflow.sim.urls import ROUTES

ACCOUNT = f"/resourceGroups/{PHI_RG}/providers/Microsoft.Storage/storageAccounts/phiimaging"
NSG = f"/resourceGroups/{PHI_RG}/providers/Microsoft.Network/networkSecurityGroups/nsg-phi-data"


def _get(sim: Sim, path: str, version: str | None) -> tuple[int, dict]:  # type: ignore[type-arg]
    query = f"?api-version={version}" if version is not None else ""
    response = sim.client().send_request(
        HttpRequest("GET", f"/subscriptions/{sim.subscription_id}{path}{query}")
    )
    return response.status_code, response.json()


def test_the_versions_the_pinned_sdks_send_are_served(sim: Sim) -> None:
    assert _get(sim, ACCOUNT, "2026-09-01")[0] == 200
    assert _get(sim, NSG, "2026-03-01")[0] == 200
    assert _get(sim, NSG, "2019-02-01")[0] == 200  # an older published one


def test_a_version_the_type_does_not_serve_is_refused_naming_the_supported_ones(sim: Sim) -> None:
    status, body = _get(sim, ACCOUNT, "1999-01-01-preview")
    assert status == 400
    assert body["error"]["code"] == "NoRegisteredProviderFound"
    message = body["error"]["message"]
    assert "API version '1999-01-01-preview' for type 'storageAccounts'" in message
    assert "'eastus'" in message and "2026-09-01" in message and "The supported locations are" in message
    # a network version is not a storage version
    assert _get(sim, ACCOUNT, "2026-03-01")[1]["error"]["code"] == "NoRegisteredProviderFound"
    # child types are served only from the version that introduced them
    path = ACCOUNT + "/blobServices/default"
    assert _get(sim, path, "2017-10-01")[1]["error"]["code"] == "NoRegisteredProviderFound"


def test_a_value_that_is_no_api_version_is_invalid(sim: Sim) -> None:
    status, body = _get(sim, NSG, "latest")
    assert status == 400
    assert body["error"]["code"] == "InvalidApiVersionParameter"
    assert body["error"]["message"].startswith(
        "The api-version 'latest' is invalid. The supported versions are '"
    )


def test_a_missing_version_is_refused(sim: Sim) -> None:
    status, body = _get(sim, NSG, None)
    assert status == 400 and body["error"]["code"] == "MissingApiVersionParameter"


def test_a_refused_version_changes_nothing_and_skips_rbac(sim: Sim) -> None:
    sim.tenant.deny("Microsoft.Storage/storageAccounts/write", "/")
    response = sim.client().send_request(
        HttpRequest(
            "PATCH",
            f"/subscriptions/{sim.subscription_id}{ACCOUNT}?api-version=2014-01-01",
            json={"properties": {"publicNetworkAccess": "Disabled"}},
        )
    )
    assert response.status_code == 400  # ARM refuses the version before RBAC is consulted
    account = sim.tenant.get_storage_account(sim.subscription_id, PHI_RG, "phiimaging")
    assert account.to_arm("https://x")["properties"].get("publicNetworkAccess") != "Disabled"


def test_every_arm_route_has_its_versions_in_the_table() -> None:
    # A route whose type is missing from the table would accept any version: every ARM route must be listed.
    for route in ROUTES:
        type_name = api_versions.resource_type(route.template)
        assert type_name is not None, route.template
        assert api_versions.supported(type_name), f"{route.name}: no api-versions for {type_name}"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/a/listKeys",
            "Microsoft.Storage/storageAccounts/listKeys",
        ),
        (
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/v/providers/"
            "Microsoft.Insights/diagnosticSettings/d",
            "Microsoft.Insights/diagnosticSettings",
        ),
        ("/subscriptions/s/providers/Microsoft.Network/virtualNetworks", "Microsoft.Network/virtualNetworks"),
        ("/subscriptions/s/resourceGroups/g", None),
    ],
)
def test_resource_type_of_a_path(path: str, expected: str | None) -> None:
    assert api_versions.resource_type(path) == expected
