"""Key Vault data plane (keys: get, versions, create, rotate; secrets: set) via azure-keyvault-keys and
azure-keyvault-secrets, both mounts, through the real challenge flow."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys._shared import http_challenge_cache as key_challenges
from azure.keyvault.secrets import SecretClient
from azure.keyvault.secrets._shared import http_challenge_cache as secret_challenges
from sim_helpers import NOW, PHI_RG, Sim, keyvault_client

from irflow.azure.clients import StaticTokenCredential
from irflow.sim.keyvault.data_models import vault_data

VAULT = "kv-phi-prod"
KEK = "phi-records-kek"


@pytest.fixture(autouse=True)
def _clear_challenge_caches() -> Iterator[None]:
    key_challenges.clear()
    secret_challenges.clear()
    yield
    key_challenges.clear()
    secret_challenges.clear()


def vault_url(sim: Sim) -> str:
    return keyvault_client(sim).vaults.get(PHI_RG, VAULT).properties.vault_uri


def key_client(sim: Sim, token: str | None = None) -> KeyClient:
    return KeyClient(
        f"{sim.endpoint}/_data/{VAULT}/vault/",
        StaticTokenCredential(token or sim.tenant.token),
        verify_challenge_resource=False,
        connection_verify=sim.verify,
    )


def secret_client(sim: Sim) -> SecretClient:
    return SecretClient(
        f"{sim.endpoint}/_data/{VAULT}/vault/",
        StaticTokenCredential(sim.tenant.token),
        verify_challenge_resource=False,
        connection_verify=sim.verify,
    )


def test_vault_uri_points_at_the_data_plane(sim: Sim) -> None:
    assert vault_url(sim) == f"{sim.endpoint}/_data/{VAULT}/vault/"


def test_challenge_then_get_key(sim: Sim) -> None:
    key = key_client(sim).get_key(KEK)

    assert key.name == KEK and key.key_type == "RSA"
    assert key.key.e == b"\x01\x00\x01" and len(key.key.n) == 256
    assert key.key.d is None and key.key.p is None  # no private part exists
    assert key.properties.created_on == (NOW - timedelta(days=120)).replace(microsecond=0)
    assert key.properties.recovery_level == "Recoverable+Purgeable"
    first, second = sim.tenant.journal.entries()
    # The SDK's first request carries no token (and no body): answered with the Key Vault challenge.
    assert (first.status, first.route, first.body) == (401, "keyvault.data.get_key", None)
    assert first.response["error"]["message"].startswith("AKV10000: Request is missing a Bearer")
    assert (second.status, second.path) == (200, f"/_data/{VAULT}/vault/keys/{KEK}/")


def test_challenge_header_names_the_tenant_and_vault_resource(sim: Sim) -> None:
    import requests

    response = requests.get(
        f"{sim.endpoint}/_data/{VAULT}/vault/keys/{KEK}/?api-version=7.5", verify=sim.verify, timeout=10
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer authorization="https://login.microsoftonline.com/{sim.tenant.tenant_id}", '
        'resource="https://vault.azure.net"'
    )
    assert "Authorization" not in response.request.headers


def test_list_versions_oldest_first_with_times(sim: Sim) -> None:
    versions = list(key_client(sim).list_properties_of_key_versions(KEK))

    assert [v.created_on for v in versions] == [
        (NOW - timedelta(days=d)).replace(microsecond=0) for d in (540, 120)
    ]
    assert all(v.updated_on == v.created_on and v.enabled for v in versions)
    assert versions[-1].version == key_client(sim).get_key(KEK).properties.version


def test_list_versions_pages(sim: Sim) -> None:
    sim.tenant.page_size = 1
    assert len(list(key_client(sim).list_properties_of_key_versions(KEK))) == 2


def test_rotate_makes_a_new_version(sim: Sim, clock) -> None:  # type: ignore[no-untyped-def]
    client = key_client(sim)
    before = client.get_key(KEK)
    clock.advance(timedelta(minutes=5))

    rotated = client.rotate_key(KEK)

    assert rotated.properties.version != before.properties.version
    assert rotated.key.n != before.key.n and rotated.key_type == "RSA"
    assert rotated.properties.created_on == (NOW + timedelta(minutes=5)).replace(microsecond=0)
    assert len(list(client.list_properties_of_key_versions(KEK))) == 3
    assert client.get_key(KEK).properties.version == rotated.properties.version
    assert client.get_key(KEK, before.properties.version).key.n == before.key.n
    [write] = [e for e in sim.tenant.journal.writes() if e.status == 200]
    assert (write.method, write.route) == ("POST", "keyvault.data.rotate_key")
    assert "d" not in write.response["key"]


def _grant(sim: Sim, **permissions: list[str]) -> None:
    """Add permissions to irflow's own access policy entry (the demo vault uses access policies)."""
    tenant = sim.tenant
    entry = {"tenantId": tenant.tenant_id, "objectId": tenant.principal_id, "permissions": permissions}
    tenant.key_vault(VAULT).update_access_policies("add", [entry], when=NOW)


def test_create_rsa_key(sim: Sim) -> None:
    _grant(sim, keys=["create"])
    key = key_client(sim).create_rsa_key("export-cmk", size=3072)

    assert key.name == "export-cmk" and len(key.key.n) == 384
    [write] = [e for e in sim.tenant.journal.writes() if e.status == 200]
    assert write.route == "keyvault.data.create_key" and write.body == {"kty": "RSA", "key_size": 3072}
    assert len(vault_data(sim.tenant.key_vault(VAULT)).keys["export-cmk"].versions) == 1


def test_missing_key_is_404_key_not_found(sim: Sim) -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        key_client(sim).rotate_key("nope")
    assert caught.value.error.code == "KeyNotFound"


def test_set_secret_value_never_reaches_the_journal(sim: Sim) -> None:
    value = "Server=tcp:phi-sql;Password=correct horse battery staple"
    _grant(sim, secrets=["set"])

    secret = secret_client(sim).set_secret("etl-db-connection", value, content_type="text/plain")

    assert secret.value == value and secret.properties.content_type == "text/plain"
    assert secret.properties.version
    journal = str(sim.tenant.journal.to_list())
    assert "correct horse" not in journal
    [write] = [e for e in sim.tenant.journal.writes() if e.status == 200]
    assert write.body["value"] == "***" and "value" not in write.response


def test_public_network_access_disabled_is_forbidden_by_connection(sim: Sim) -> None:
    keyvault_client(sim).vaults.update(PHI_RG, VAULT, {"properties": {"publicNetworkAccess": "Disabled"}})

    with pytest.raises(HttpResponseError) as caught:
        key_client(sim).rotate_key(KEK)

    assert caught.value.status_code == 403
    assert caught.value.error.code == "Forbidden"
    assert caught.value.error.innererror["code"] == "ForbiddenByConnection"
    assert len(vault_data(sim.tenant.key_vault(VAULT)).keys[KEK.lower()].versions) == 2


def test_firewall_deny_is_forbidden_unless_the_callers_origin_is_allowed(sim: Sim) -> None:
    """The shared data-plane firewall (irflow.sim.firewall; Key Vault network security,
    https://learn.microsoft.com/en-us/azure/key-vault/general/network-security): an allowed origin passes."""
    sim.tenant.set_caller_origin(ip="198.51.100.7")
    mgmt = keyvault_client(sim)
    mgmt.vaults.update(PHI_RG, VAULT, {"properties": {"networkAcls": {"defaultAction": "Deny"}}})
    with pytest.raises(HttpResponseError) as caught:
        key_client(sim).get_key(KEK)
    assert caught.value.error.innererror["code"] == "ForbiddenByFirewall"

    assert "Client address: 198.51.100.7" in caught.value.error.message
    acls = {"defaultAction": "Deny", "ipRules": [{"value": "198.51.100.0/24"}]}
    mgmt.vaults.update(PHI_RG, VAULT, {"properties": {"networkAcls": acls}})
    assert key_client(sim).get_key(KEK).name == KEK


def test_rbac_denial_is_forbidden_by_rbac(sim: Sim) -> None:
    sim.tenant.deny("Microsoft.KeyVault/vaults/keys/rotate/action")

    with pytest.raises(HttpResponseError) as caught:
        key_client(sim).rotate_key(KEK)

    assert caught.value.status_code == 403
    assert caught.value.error.innererror["code"] == "ForbiddenByRbac"
    assert key_client(sim).get_key(KEK).name == KEK  # reading is still allowed


def test_wrong_token_is_refused(sim: Sim) -> None:
    from azure.core.exceptions import ClientAuthenticationError

    with pytest.raises(ClientAuthenticationError):
        key_client(sim, token="not-the-token").get_key(KEK)


def test_reset_restores_the_key_versions(sim: Sim) -> None:
    key_client(sim).rotate_key(KEK)
    sim.tenant.reset()
    assert len(list(key_client(sim).list_properties_of_key_versions(KEK))) == 2


def test_scenario_keys(clock) -> None:  # type: ignore[no-untyped-def]
    from irflow.sim import Tenant

    scenario = {
        "subscriptions": [
            {
                "id": "00000000-0000-0000-0000-000000000001",
                "resource_groups": [
                    {
                        "name": "rg",
                        "key_vaults": [
                            {"name": "kv-one", "keys": [{"name": "k1", "versions_days_ago": [3, 10, 1]}]}
                        ],
                    }
                ],
            }
        ]
    }
    tenant = Tenant.from_scenario(scenario, clock=clock)
    key = vault_data(tenant.key_vault("kv-one")).keys["k1"]
    assert [v.created for v in key.versions] == [NOW - timedelta(days=d) for d in (10, 3, 1)]
    with pytest.raises(ValueError, match="RSA"):
        Tenant.from_scenario(
            {
                "subscriptions": [
                    {
                        "id": "00000000-0000-0000-0000-000000000001",
                        "resource_groups": [
                            {
                                "name": "rg",
                                "key_vaults": [{"name": "kv-two", "keys": [{"name": "k", "kty": "oct"}]}],
                            }
                        ],
                    }
                ]
            },
            clock=clock,
        )
