from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from procs import EGRESS_IP, sim_serve
from pydantic import SecretStr

from irflow.engine import runtime
from irflow.settings import Settings
from irflow.sim.models import Tenant
from irflow.sim.server import SimServer


@pytest.fixture
def sim() -> Iterator[SimServer]:
    tenant = Tenant.demo()
    tenant.set_caller_origin(ip=EGRESS_IP)
    with SimServer(tenant) as server:
        yield server


@pytest.fixture
def settings(database_url: str, sim: SimServer) -> Settings:
    return Settings(
        database_url=database_url,
        azure_cloud="custom",
        arm_endpoint=sim.endpoint,
        azure_ca_bundle=Path(sim.ca_file),
        azure_token=SecretStr(sim.token),
        queue_polling_interval=0.05,
        oncall_recipients="soc-oncall@example.org",
        egress_ips=EGRESS_IP,
        playbooks_dir=Path(__file__).resolve().parents[2] / "playbooks",
    )


@pytest.fixture
def svc(settings: Settings) -> Iterator[runtime.Services]:
    services = runtime.launch(settings)
    yield services
    runtime.shutdown()


@pytest.fixture
def sim_process() -> Iterator[dict]:  # type: ignore[type-arg]
    """``irflow sim serve`` as a real process (120 ms per Azure call); yields its JSON start line, whose env
    carries IRFLOW_EGRESS_IPS."""
    with sim_serve(latency_ms=120, caller_ip=EGRESS_IP) as sim:
        yield sim.info
