from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import structlog
from pydantic import SecretStr

from irflow.actions.base import StepContext, get_action
from irflow.azure import AzureClients
from irflow.settings import Settings
from irflow.sim.mock import mount
from irflow.sim.models import Tenant

# irflow's egress IP, configured as a deployment would (IRFLOW_EGRESS_IPS), and where the strict tenant's
# firewalls see irflow's calls come from (irflow.sim.firewall).
IRFLOW_EGRESS_IP = "192.0.2.10"


@pytest.fixture
def tenant() -> Iterator[Tenant]:
    tenant = Tenant.demo()
    tenant.set_caller_origin(ip=IRFLOW_EGRESS_IP)
    with mount(tenant):
        yield tenant


@pytest.fixture(autouse=True)
def _declared_permissions_cover_every_call(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Every REST call an action makes needs a permission the action declares (permission_audit.py)."""
    if "tenant" not in request.fixturenames:
        yield
        return
    from permission_audit import audited

    with audited(request.getfixturevalue("tenant"), monkeypatch) as violations:
        yield
    assert not violations, (
        f"calls made under permissions the actions do not declare: {sorted(set(violations))}"
    )


def _clients(tenant: Tenant, **settings: object) -> AzureClients:
    # The in-process mount serves every Azure API (ARM, data planes, Log Analytics, Graph) at one host.
    host = "https://management.azure.com"
    return AzureClients(
        Settings(azure_token=SecretStr(tenant.token), logs_endpoint=host, graph_endpoint=host, **settings)  # type: ignore[arg-type]
    )


@pytest.fixture
def clients(tenant: Tenant) -> Iterator[AzureClients]:
    """irflow configured as a deployment would be: its egress IP known (IRFLOW_EGRESS_IPS)."""
    clients = _clients(tenant, egress_ips=IRFLOW_EGRESS_IP)
    yield clients
    clients.close()


@pytest.fixture
def clients_without_origin(tenant: Tenant) -> Iterator[AzureClients]:
    """irflow with its network origin NOT configured (no IRFLOW_EGRESS_IPS / IRFLOW_SUBNET_ID)."""
    clients = _clients(tenant)
    yield clients
    clients.close()


def _context_factory(clients: AzureClients):  # type: ignore[no-untyped-def]
    epoch = datetime.now(UTC) - timedelta(seconds=1)

    def build(action: str, **params: object) -> StepContext:
        cls = get_action(action)
        validated = cls.Params.model_validate(params)
        return StepContext(
            params=validated,
            target=str(params.get(cls.target_param or "", "")) or None,
            log=structlog.get_logger("test"),
            clients=clients,
            reference_time=epoch,
        )

    return build


@pytest.fixture
def make_context(clients: AzureClients):  # type: ignore[no-untyped-def]
    return _context_factory(clients)


@pytest.fixture
def make_context_without_origin(clients_without_origin: AzureClients):  # type: ignore[no-untyped-def]
    return _context_factory(clients_without_origin)
