"""The custom role irflow generates covers what the actions call: the audit of every action test
(permission_audit.py) catches an undeclared call, and the role carries Log Analytics' permissions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import structlog
from permission_audit import audited
from pydantic import SecretStr

from irflow.actions.base import PermissionDenied, StepContext, azure_role_definition
from irflow.actions.monitor import QUERY_READ, WORKSPACE_READ, QueryStorageAccess, table_read
from irflow.actions.network import RULE_WRITE, QuarantineSubnet, QuarantineSubnetParams
from irflow.azure import AzureClients
from irflow.settings import Settings
from irflow.sim.mock import mount
from irflow.sim.models import Tenant


def _context(tenant: Tenant, clients: AzureClients, params: object) -> StepContext:
    return StepContext(
        params=params,  # type: ignore[arg-type]
        target=None,
        log=structlog.get_logger("test"),
        clients=clients,
        reference_time=datetime.now(UTC),
    )


def test_an_action_calling_beyond_its_declared_permissions_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # (no `tenant` fixture here: the suite-wide audit would flag this test's deliberate gap too)
    tenant = Tenant.demo()
    tenant.lro.retry_after = 0
    with mount(tenant):
        clients = AzureClients(Settings(azure_token=SecretStr(tenant.token)))
        clients.network(tenant.default_subscription_id)._config.polling_interval = 0
        vnet = tenant.get_virtual_network(tenant.default_subscription_id, "rg-phi-prod", "vnet-phi")
        params = QuarantineSubnetParams(subnet=f"{vnet.id}/subnets/snet-phi-data")
        monkeypatch.setattr(
            QuarantineSubnet, "permissions", tuple(p for p in QuarantineSubnet.permissions if p != RULE_WRITE)
        )
        with audited(tenant, monkeypatch) as violations:
            QuarantineSubnet().apply(_context(tenant, clients, params))
        clients.close()
    assert ("network.quarantine_subnet", "network.security_rules.create_or_update", RULE_WRITE) in violations


def test_the_generated_role_holds_what_a_log_analytics_query_needs() -> None:
    role = azure_role_definition(["/subscriptions/00000000-0000-0000-0000-000000000000"])
    for permission in (QUERY_READ, WORKSPACE_READ, table_read("StorageBlobLogs")):
        assert permission in role["Actions"]
    for permission in (
        "Microsoft.Network/networkSecurityGroups/write",
        "Microsoft.Network/networkSecurityGroups/join/action",
        "Microsoft.Network/virtualNetworks/subnets/write",
    ):
        assert permission in role["Actions"]


def test_a_table_the_principal_may_not_read_is_refused(tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
    exfil = Tenant.from_scenario("sas-exfiltration")
    exfil.deny(table_read("StorageBlobLogs"))
    with mount(exfil):
        clients = AzureClients(
            Settings(
                azure_token=SecretStr(exfil.token),
                logs_endpoint="https://management.azure.com",
            )
        )
        params = QueryStorageAccess.Params.model_validate(
            {
                "workspace_id": "7e3a9c51-2b4d-4f6e-9a8c-1d3e5f7a9b2c",
                "accounts": [exfil.storage_account("phiexportsnw").id],
            }
        )
        with pytest.raises(PermissionDenied, match=r"workspaces/query/\{Table\}/read"):
            QueryStorageAccess().apply(_context(exfil, clients, params))
        clients.close()
