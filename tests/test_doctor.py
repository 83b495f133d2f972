"""`irflow doctor` against the simulated tenant over HTTPS, as a real process: read-only, a clear report of
what is missing, exit 1 then."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from irflow.sim.models import Tenant
from irflow.sim.server import SimServer

REGENERATE = "Microsoft.Storage/storageAccounts/regeneratekey/action"
IRFLOW_ENV = ("IRFLOW_EGRESS_IPS", "IRFLOW_SUBNET_ID", "IRFLOW_SELF_OBJECT_ID", "AZURE_AUTHORITY_HOST")


KEYS_ROTATE = "Microsoft.KeyVault/vaults/keys/rotate/action"


@pytest.fixture
def sim() -> Iterator[SimServer]:
    """The demo tenant as a deployment leaves it: irflow holds a role whose DataActions cover key rotation
    (the generated custom role does; Key Vault Crypto Officer here). The simulated principal holds every
    management action and the blob data actions anyway (irflow.sim.permissions)."""
    tenant = Tenant.demo()
    tenant.assign_role("Key Vault Crypto Officer", f"/subscriptions/{tenant.default_subscription_id}")
    with SimServer(tenant) as server:
        yield server


def doctor(sim: SimServer, tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in IRFLOW_ENV}
    return subprocess.run(
        [sys.executable, "-m", "irflow", "doctor", *args],
        cwd=tmp_path,
        env={**base, **sim.connection_info()["env"], **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _checks(report: dict) -> dict[str, str]:  # type: ignore[type-arg]
    return {c["name"]: c["status"] for c in report["checks"]}


def test_a_complete_configuration_passes_and_changes_nothing(sim: SimServer, tmp_path: Path) -> None:
    scope = f"/subscriptions/{sim.subscription_id}"
    result = doctor(sim, tmp_path, "--scope", scope, "--json", IRFLOW_EGRESS_IPS="203.0.113.7")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert set(_checks(report).values()) == {"ok"}
    assert {"token:arm", "token:logs", "token:graph", "endpoint:arm", "object_id", "origin"} <= set(
        _checks(report)
    )
    assert REGENERATE in report["permissions"]["present"] and report["permissions"]["missing"] == {}
    assert "microsoft.directory/users/invalidateAllRefreshTokens" in report["permissions"]["not_checked"]
    assert sim.tenant.principal_id in json.dumps(report)  # the object id irflow will protect
    assert sim.token not in result.stdout + result.stderr
    assert sim.tenant.journal.writes() == []  # read-only


def test_missing_permissions_and_origin_are_named_and_exit_1(sim: SimServer, tmp_path: Path) -> None:
    scope = f"/subscriptions/{sim.subscription_id}/resourceGroups/rg-phi-prod"
    sim.tenant.deny(REGENERATE, f"/subscriptions/{sim.subscription_id}")
    sim.tenant.deny("Microsoft.Network/*", "/")
    result = doctor(sim, tmp_path, "--scope", scope, "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    checks = _checks(report)
    assert checks["permissions"] == "missing" and checks["origin"] == "missing"
    missing = report["permissions"]["missing"]
    assert missing[REGENERATE] == ["storage.rotate_account_keys"]
    assert "Microsoft.Network/networkSecurityGroups/securityRules/write" in missing
    assert "Microsoft.Storage/storageAccounts/read" in report["permissions"]["present"]

    table = doctor(sim, tmp_path, "--scope", scope)
    assert table.returncode == 1
    assert "missing at" in table.stdout and REGENERATE in table.stdout and "IRFLOW_EGRESS_IPS" in table.stdout


def test_a_deny_below_the_scope_is_not_in_the_scopes_answer(sim: SimServer, tmp_path: Path) -> None:
    # Azure lists what is assigned at the scope or above; a gap on one account does not show at the group.
    account = sim.tenant.storage_account("phiimaging").id
    sim.tenant.deny(REGENERATE, account)
    group = f"/subscriptions/{sim.subscription_id}/resourceGroups/rg-phi-prod"
    at_group = json.loads(
        doctor(sim, tmp_path, "--scope", group, "--json", IRFLOW_EGRESS_IPS="203.0.113.7").stdout
    )
    assert REGENERATE in at_group["permissions"]["present"]
    at_account = doctor(sim, tmp_path, "--scope", account, "--json", IRFLOW_EGRESS_IPS="203.0.113.7")
    assert at_account.returncode == 2 and "not an assignable scope" in at_account.stderr


def test_the_permissions_come_from_irflows_role_assignments(sim: SimServer, tmp_path: Path) -> None:
    # Azure lists one entry per role the caller holds at the scope or above
    # (https://learn.microsoft.com/rest/api/authorization/permissions/list-for-resource-group): without a role
    # granting the Key Vault data actions, rotation is reported missing, naming the action that needs it.
    for assignment in sim.tenant.role_assignments.all():
        sim.tenant.role_assignments.delete(assignment.scope, assignment.name)
    scope = f"/subscriptions/{sim.subscription_id}"
    result = doctor(sim, tmp_path, "--scope", scope, "--json", IRFLOW_EGRESS_IPS="203.0.113.7")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["permissions"]["missing"][KEYS_ROTATE] == ["keyvault.rotate_key"]
    assert set(report["permissions"]["missing"]) == {KEYS_ROTATE, "Microsoft.KeyVault/vaults/keys/read"}
    # assigned on one vault only: below the group, so not in the group's answer
    vault = sim.tenant.key_vault("kv-phi-prod").id
    sim.tenant.assign_role("Key Vault Crypto Officer", vault)
    group = vault.split("/providers/")[0]
    at_group = json.loads(
        doctor(sim, tmp_path, "--scope", group, "--json", IRFLOW_EGRESS_IPS="203.0.113.7").stdout
    )
    assert KEYS_ROTATE in at_group["permissions"]["missing"]
    sim.tenant.assign_role("Key Vault Crypto Officer", group)
    at_group = json.loads(
        doctor(sim, tmp_path, "--scope", group, "--json", IRFLOW_EGRESS_IPS="203.0.113.7").stdout
    )
    assert at_group["permissions"]["missing"] == {} and KEYS_ROTATE in at_group["permissions"]["present"]


def test_an_endpoint_that_does_not_answer_fails_the_check(sim: SimServer, tmp_path: Path) -> None:
    result = doctor(
        sim, tmp_path, "--json", IRFLOW_EGRESS_IPS="203.0.113.7", IRFLOW_LOGS_ENDPOINT="https://127.0.0.1:9"
    )
    assert result.returncode == 1
    checks = _checks(json.loads(result.stdout))
    assert checks["endpoint:logs"] == "failed" and checks["endpoint:arm"] == "ok"
    assert checks["permissions"] == "skipped"


def test_a_token_the_cloud_refuses_is_reported_not_raised(sim: SimServer, tmp_path: Path) -> None:
    scope = f"/subscriptions/{sim.subscription_id}"
    result = doctor(sim, tmp_path, "--scope", scope, "--json", IRFLOW_AZURE_TOKEN="not-the-tenants-token")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    [permissions] = [c for c in report["checks"] if c["name"] == "permissions"]
    assert permissions["status"] == "failed" and "InvalidAuthenticationToken" in permissions["detail"]
    assert "not-the-tenants-token" not in result.stdout


def test_permission_entries_match_as_role_definitions_do() -> None:
    from irflow.doctor import granted

    storage_reader = [{"actions": ["Microsoft.Storage/*"], "notActions": ["*/write"], "dataActions": []}]
    assert granted("Microsoft.Storage/storageAccounts/read", storage_reader)
    assert not granted("Microsoft.Storage/storageAccounts/write", storage_reader)
    assert not granted("Microsoft.Network/networkSecurityGroups/read", storage_reader)
    blob = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"
    assert not granted(blob, storage_reader)  # a data action needs dataActions
    assert granted(blob, [{"actions": [], "dataActions": ["Microsoft.Storage/*"]}])
    # one role's NotActions do not take away what another role grants
    assert granted("Microsoft.Storage/storageAccounts/write", [*storage_reader, {"actions": ["*"]}])
    # an ABAC condition depends on the request: not promised
    conditional = {"actions": [], "dataActions": ["Microsoft.Storage/*"], "condition": "@Request[...]"}
    assert not granted(blob, [conditional])


def test_an_entra_credential_also_needs_the_authority_to_answer(sim: SimServer) -> None:

    from irflow.doctor import run
    from irflow.settings import Settings

    class EntraLike:  # an Entra ID credential as far as the doctor can tell (not the static simulator token)
        def get_token(self, *scopes: str, **kwargs: object):  # type: ignore[no-untyped-def]
            from azure.core.credentials import AccessToken

            return AccessToken(sim.token, 4102444800)

    settings = Settings(
        azure_cloud="custom",
        arm_endpoint=sim.endpoint,
        authority="https://127.0.0.1:9",
        azure_ca_bundle=Path(sim.ca_file),
        self_object_id=sim.tenant.principal_id,
        egress_ips="203.0.113.7",
    )
    report = run(settings, f"/subscriptions/{sim.subscription_id}", credential=EntraLike())  # type: ignore[arg-type]
    checks = {c.name: c.status for c in report.checks}
    assert checks["endpoint:authority"] == "failed" and checks["endpoint:arm"] == "ok"
    assert checks["permissions"] == "ok" and not report.ok


def test_without_the_right_to_list_permissions_the_check_fails_naming_it(
    sim: SimServer, tmp_path: Path
) -> None:
    sim.tenant.deny("Microsoft.Authorization/permissions/read")
    scope = f"/subscriptions/{sim.subscription_id}"
    result = doctor(sim, tmp_path, "--scope", scope, "--json", IRFLOW_EGRESS_IPS="203.0.113.7")
    assert result.returncode == 1
    [check] = [c for c in json.loads(result.stdout)["checks"] if c["name"] == "permissions"]
    assert check["status"] == "failed" and "AuthorizationFailed" in check["detail"]
    assert "Microsoft.Authorization/permissions/read" in check["detail"]
