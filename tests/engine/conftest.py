from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from irflow.engine import runtime
from irflow.settings import Settings
from irflow.sim.models import Tenant
from irflow.sim.server import SimServer

# irflow's egress IP, configured as a deployment would (IRFLOW_EGRESS_IPS); the strict tenant's firewalls see
# irflow's calls come from it (irflow.sim.firewall).
IRFLOW_EGRESS_IP = "192.0.2.10"


@pytest.fixture
def sim() -> Iterator[SimServer]:
    tenant = Tenant.demo()
    tenant.set_caller_origin(ip=IRFLOW_EGRESS_IP)
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
        egress_ips=IRFLOW_EGRESS_IP,
        playbooks_dir=Path(__file__).resolve().parents[2] / "playbooks",
    )


@pytest.fixture
def svc(settings: Settings) -> Iterator[runtime.Services]:
    services = runtime.launch(settings)
    yield services
    runtime.shutdown()


@pytest.fixture
def sim_process() -> Iterator[dict]:  # type: ignore[type-arg]
    """``irflow sim serve`` as a real process (120 ms per Azure call); yields its JSON start line."""
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "irflow", "sim", "serve", "--port", "0", "--latency-ms", "120"),
            *("--caller-ip", IRFLOW_EGRESS_IP),  # its start line's env then carries IRFLOW_EGRESS_IPS
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    info = json.loads(process.stdout.readline())
    yield info
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=10)
