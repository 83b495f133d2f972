"""Fault knobs: the timeout knob (both mounts, ARM and data plane), LRO duration and failure, and setting
every knob from the Python API, a scenario's ``faults:``, the admin routes and ``irflow sim serve``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ServiceResponseError
from azure.core.rest import HttpRequest
from azure.mgmt.network import NetworkManagementClient
from azure.storage.blob import ContainerClient
from sim_helpers import PHI_RG, Sim, StaticTokenCredential, one_account_scenario
from test_sim_server_and_cli import _read_line, client_for

from irflow.sim import Tenant
from irflow.sim.mock import mount
from irflow.sim.models import FaultSettings, SimTimeout
from irflow.sim.scenario import load_scenario

RULE = {
    "properties": {
        "priority": 150,
        "direction": "Inbound",
        "access": "Deny",
        "protocol": "*",
        "sourceAddressPrefix": "10.20.0.0/16",
        "sourcePortRange": "*",
        "destinationAddressPrefix": "*",
        "destinationPortRange": "*",
    }
}


def network_client(sim: Sim) -> NetworkManagementClient:
    return NetworkManagementClient(
        StaticTokenCredential(sim.tenant.token),
        sim.subscription_id,
        base_url=sim.endpoint,
        credential_scopes=[sim.endpoint + "/.default"],
        connection_verify=sim.verify,
    )


def admin(sim: Sim, method: str, body: object | None = None):  # type: ignore[no-untyped-def]
    request = (
        HttpRequest(method, "/_sim/faults", json=body)
        if body is not None
        else HttpRequest(method, "/_sim/faults")
    )
    return sim.client().send_request(request)


# ---------------------------------------------------------------------------------------------- timeouts
def test_timeout_hangs_on_the_tenant_sleep_then_answers_nothing(sim: Sim) -> None:
    waits: list[float] = []
    sim.tenant.sleep = waits.append
    sim.tenant.faults.timeout_rate = 1.0
    sim.tenant.faults.timeout_s = 45
    before = sim.tenant.storage_account("phiimaging").key_value("key1")
    client = sim.client(retry_total=0)

    with pytest.raises(ServiceResponseError) as caught:
        client.storage_accounts.regenerate_key(PHI_RG, "phiimaging", {"keyName": "key1"})

    if sim.mode == "mock":  # responses hands the caller the ReadTimeout itself
        assert isinstance(caught.value.inner_exception, requests.exceptions.ReadTimeout)
    assert waits == [45]
    assert sim.tenant.storage_account("phiimaging").key_value("key1") == before  # nothing changed
    [entry] = sim.tenant.journal.entries()
    assert (entry.method, entry.status, entry.is_write, entry.response) == ("POST", 0, True, None)


def test_a_retry_after_a_timeout_succeeds(sim: Sim) -> None:
    """The first call times out; the SDK's read retry gets the answer (no wall-clock waits)."""

    def hang(seconds: float) -> None:
        sim.tenant.faults.timeout_rate = 0.0  # only the first call times out

    sim.tenant.sleep = hang
    sim.tenant.faults.timeout_rate = 1.0
    client = sim.client(retry_backoff_factor=0)

    account = client.storage_accounts.get_properties(PHI_RG, "phiimaging")

    assert account.name == "phiimaging"
    assert [e.status for e in sim.tenant.journal.entries()] == [0, 200]


def test_timeouts_apply_to_the_blob_data_plane_but_not_to_admin_routes(sim: Sim) -> None:
    endpoint = (
        sim.client().storage_accounts.get_properties(PHI_RG, "phipatientexports").primary_endpoints.blob
    )
    sim.tenant.sleep = lambda seconds: None
    assert admin(sim, "POST", {"timeout_rate": 1.0, "timeout_s": 0}).status_code == 200
    container = ContainerClient(
        endpoint,
        "patient-exports",
        credential=StaticTokenCredential(sim.tenant.token),
        connection_verify=sim.verify,
        retry_total=0,
    )
    with pytest.raises(ServiceResponseError):
        container.get_container_access_policy()
    assert admin(sim, "GET").json()["timeout_rate"] == 1.0  # /_sim/ never times out


def test_timeout_draws_are_seeded_and_only_taken_when_the_knob_is_set() -> None:
    def outcomes(seed: int) -> list[int]:
        tenant = Tenant.demo(seed=seed, faults=FaultSettings(timeout_rate=0.5, timeout_s=0))
        tenant.sleep = lambda seconds: None
        with mount(tenant):
            for _ in range(12):
                with contextlib.suppress(SimTimeout):
                    requests.get(
                        f"https://management.azure.com/subscriptions/{tenant.default_subscription_id}"
                        f"/resourceGroups/{PHI_RG}/providers/Microsoft.Storage/storageAccounts/phiimaging"
                        "?api-version=2026-09-01",
                        headers={"Authorization": f"Bearer {tenant.token}"},
                        timeout=5,
                    )
        return [e.status for e in tenant.journal.entries()]

    first = outcomes(7)
    assert first == outcomes(7) and {0, 200} == set(first)
    quiet = Tenant.demo(seed=7)
    assert quiet.faults.draw_timeout(quiet.random) is False
    assert quiet.random.random() == Tenant.demo(seed=7).random.random()  # no draw was taken


def test_fault_settings_validate_the_timeout_knob() -> None:
    with pytest.raises(ValueError, match="timeout_rate"):
        FaultSettings(timeout_rate=1.5)
    with pytest.raises(ValueError, match="timeout_s"):
        FaultSettings(timeout_s=-1)


# ---------------------------------------------------------------------------------------------- LROs
def test_lro_failure_rate_fails_the_operation_and_changes_nothing(sim: Sim) -> None:
    sim.tenant.configure_faults({"lro": {"failure_rate": 1.0, "retry_after": 0}})

    poller = network_client(sim).security_rules.begin_create_or_update(
        PHI_RG, "nsg-phi-data", "deny-analytics", RULE, polling_interval=0
    )
    with pytest.raises(HttpResponseError) as caught:
        poller.result()

    assert "InternalServerError" in str(caught.value)
    rules = sim.tenant.get_network_security_group(sim.subscription_id, PHI_RG, "nsg-phi-data").rules
    assert "deny-analytics" not in rules


def test_lro_duration_keeps_operations_running_on_the_tenant_clock(sim: Sim, clock) -> None:  # type: ignore[no-untyped-def]
    sim.tenant.configure_faults({"lro": {"duration_s": 5, "retry_after": 0}})
    started = clock()

    poller = network_client(sim).security_rules.begin_create_or_update(
        PHI_RG, "nsg-phi-data", "deny-analytics", RULE, polling_interval=0
    )
    [operation] = sim.tenant.lro.operations.values()
    assert operation.deadline == started + timedelta(seconds=5)
    assert not poller.done()  # the frozen tenant clock keeps it running
    clock.advance(timedelta(seconds=5))
    rule = poller.result()

    assert rule.provisioning_state == "Succeeded" and operation.status == "Succeeded"
    polls = [
        e.response["status"]
        for e in sim.tenant.journal.entries()
        if e.route == "network.operations.get_status"
    ]
    assert polls[-1] == "Succeeded"


# ---------------------------------------------------------------------------------------------- setting knobs
def test_admin_routes_get_and_set_the_knobs(sim: Sim) -> None:
    knobs = admin(sim, "GET").json()
    assert knobs["timeout_rate"] == 0.0 and knobs["lro"] == {
        "duration_s": 0.0,
        "retry_after": 1,
        "failure_rate": 0.0,
        "failure": None,
    }

    answer = admin(
        sim,
        "POST",
        {"timeout_rate": 0.25, "timeout_s": 5, "lro": {"duration_s": 30, "failure_rate": 0.5}},
    )

    assert answer.status_code == 200
    assert answer.json()["lro"]["duration_s"] == 30 and answer.json()["timeout_s"] == 5
    tenant = sim.tenant
    assert (tenant.faults.timeout_rate, tenant.faults.timeout_s) == (0.25, 5)
    assert (tenant.lro.duration_s, tenant.lro.failure_rate, tenant.lro.retry_after) == (30, 0.5, 1)
    assert tenant.state()["faults"]["timeout_rate"] == 0.25

    failing = admin(sim, "POST", {"lro": {"failure": {"code": "Conflict", "message": "injected"}}})
    assert failing.json()["lro"]["failure"] == {"code": "Conflict", "message": "injected"}
    assert admin(sim, "POST", {"lro": {"failure": None}}).json()["lro"]["failure"] is None

    for bad in ({"timeout_rate": 2}, {"lro": {"duration_s": -1}}, {"no_such_knob": 1}, [1]):
        refused = admin(sim, "POST", bad)
        assert refused.status_code == 400, bad
        assert refused.json()["error"]["code"] == "InvalidRequestContent"
    assert tenant.faults.timeout_rate == 0.25 and tenant.lro.duration_s == 30  # all or nothing
    tenant.reset()
    assert tenant.fault_knobs()["lro"]["failure_rate"] == 0.5  # knobs survive reset


def test_scenario_faults_section_sets_every_knob(clock) -> None:  # type: ignore[no-untyped-def]
    document = {
        "subscriptions": [{"id": "11111111-2222-4333-8444-555555555555"}],
        "faults": {
            "latency_ms": 3,
            "error_rate": 0.1,
            "timeout_rate": 0.2,
            "timeout_s": 12,
            "lro": {"duration_s": 20, "retry_after": 0, "failure_rate": 0.3, "failure": {"code": "Boom"}},
        },
    }
    tenant = load_scenario(document, clock=clock)

    knobs = tenant.fault_knobs()
    assert (knobs["latency_ms"], knobs["error_rate"], knobs["timeout_rate"], knobs["timeout_s"]) == (
        3,
        0.1,
        0.2,
        12,
    )
    assert knobs["lro"]["duration_s"] == 20 and knobs["lro"]["failure_rate"] == 0.3
    assert knobs["lro"]["retry_after"] == 0 and knobs["lro"]["failure"]["code"] == "Boom"
    # A faults argument replaces the whole section, LRO knobs included.
    overridden = load_scenario(document, clock=clock, faults=FaultSettings())
    assert overridden.fault_knobs()["timeout_rate"] == 0 and overridden.lro.duration_s == 0
    document["faults"]["lro"] = {"failure_rate": 3}
    with pytest.raises(ValueError, match="invalid scenario"):
        load_scenario(document, clock=clock)


@pytest.mark.slow
def test_sim_serve_fault_flags(tmp_path: Path) -> None:
    scenario = one_account_scenario(
        tmp_path / "faulty.yaml", faults="{lro: {duration_s: 3, failure_rate: 0.1}, timeout_rate: 0.0}"
    )
    command = [sys.executable, "-m", "irflow.cli.sim", "serve", "--scenario", str(scenario)]
    flags = [
        "--timeout-seconds",
        "0",
        "--lro-seconds",
        "12",
        "--lro-fail-rate",
        "0.25",
        "--lro-retry-after",
        "0",
    ]
    process = subprocess.Popen(
        [*command, *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        info = json.loads(_read_line(process.stdout, timeout=30))
        client = client_for(info["endpoint"], info["token"], info["subscription_id"], info["ca_file"])
        knobs = client.send_request(HttpRequest("GET", "/_sim/faults")).json()
        assert knobs["lro"] == {"duration_s": 12.0, "retry_after": 0, "failure_rate": 0.25, "failure": None}
        assert knobs["timeout_s"] == 0 and knobs["timeout_rate"] == 0
        # Flags win over the scenario; the admin route changes the running server's knobs.
        set_faults = HttpRequest("POST", "/_sim/faults", json={"timeout_rate": 1.0})
        assert client.send_request(set_faults).status_code == 200
        with pytest.raises(ServiceResponseError):  # the connection is closed without an answer
            client.storage_accounts.get_properties("rg-x", "onlyaccount")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err


@pytest.mark.slow
def test_sim_serve_refuses_a_bad_fail_rate() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "irflow.cli.sim", "serve", "--lro-fail-rate", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert "lro-fail-rate" in result.stderr
