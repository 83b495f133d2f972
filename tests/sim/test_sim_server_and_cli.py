"""The HTTPS mount on its own, and ``irflow sim serve`` as a real process."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError
from azure.mgmt.storage import StorageManagementClient
from sim_helpers import ALL_ACCOUNTS, PHI_RG, StaticTokenCredential, one_account_scenario

from irflow.sim import Tenant
from irflow.sim.server import SimServer


def client_for(
    endpoint: str, token: str, subscription_id: str, verify: str | bool
) -> StorageManagementClient:
    return StorageManagementClient(
        StaticTokenCredential(token),
        subscription_id,
        base_url=endpoint,
        credential_scopes=[endpoint + "/.default"],
        connection_verify=verify,
        retry_total=0,
    )


def test_server_certificate_covers_localhost_and_next_links_follow_the_host() -> None:
    tenant = Tenant.demo(page_size=1)
    with SimServer(tenant) as server:
        assert server.endpoint == f"https://127.0.0.1:{server.port}"
        endpoint = f"https://localhost:{server.port}"
        client = client_for(endpoint, server.token, server.subscription_id, server.ca_file)
        assert [a.name for a in client.storage_accounts.list()] == ALL_ACCOUNTS
        pages = [e for e in tenant.journal.entries() if e.route == "storage.accounts.list"]
        assert pages[0].response["nextLink"].startswith(endpoint + "/")


def test_server_is_not_trusted_without_its_ca() -> None:
    with SimServer(Tenant.demo()) as server:
        client = client_for(server.endpoint, server.token, server.subscription_id, True)
        with pytest.raises(ServiceRequestError):
            client.storage_accounts.get_properties(PHI_RG, "phiimaging")


def test_stop_removes_the_throw_away_ca_and_closes_the_port() -> None:
    server = SimServer(Tenant.demo()).start()
    ca_file = Path(server.ca_file)
    assert ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")
    client = client_for(server.endpoint, server.token, server.subscription_id, server.ca_file)
    client.storage_accounts.get_properties(PHI_RG, "phiimaging")  # leaves a keep-alive connection open
    server.stop()
    assert not ca_file.exists()
    assert not server.running
    server.stop()  # idempotent


def _read_line(stream, timeout: float) -> str:  # type: ignore[no-untyped-def]
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        pytest.fail("irflow sim serve printed nothing in time")


@pytest.mark.slow
def test_sim_serve_prints_one_json_line_and_serves_until_sigterm(tmp_path: Path) -> None:
    scenario = one_account_scenario(tmp_path / "one.yaml")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "irflow.cli.sim",
            "serve",
            "--port",
            "0",
            "--scenario",
            str(scenario),
            "--latency-ms",
            "1",
            "--error-rate",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        info = json.loads(_read_line(process.stdout, timeout=30))
        assert set(info) == {"endpoint", "ca_file", "token", "subscription_id", "env"}
        assert info["endpoint"].startswith("https://127.0.0.1:")
        assert info["subscription_id"] == "11111111-2222-4333-8444-555555555555"
        # the static token has no oid claim: the tenant's principal is named as irflow's own object id
        assert uuid.UUID(info["env"].pop("IRFLOW_SELF_OBJECT_ID"))
        assert info["env"] == {
            "IRFLOW_AZURE_CLOUD": "custom",
            "IRFLOW_ARM_ENDPOINT": info["endpoint"],
            "IRFLOW_AZURE_CA_BUNDLE": info["ca_file"],
            "IRFLOW_AZURE_TOKEN": info["token"],
            "IRFLOW_AUTHORITY": info["endpoint"],
        }
        client = client_for(info["endpoint"], info["token"], info["subscription_id"], info["ca_file"])
        account = client.storage_accounts.get_properties("rg-x", "onlyaccount")
        assert account.primary_endpoints.blob == f"{info['endpoint']}/_data/onlyaccount/blob/"

        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert out == ""  # the JSON line was the only output
    assert not Path(info["ca_file"]).exists()
    assert info["token"] not in err


@pytest.mark.slow
def test_sim_serve_refuses_an_unknown_scenario() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "irflow.cli.sim", "serve", "--scenario", "no-such-scenario"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "no-such-scenario" in result.stderr


@pytest.mark.slow
def test_sim_serve_throttle_flags_override_the_scenario(tmp_path: Path) -> None:
    scenario = one_account_scenario(tmp_path / "throttled.yaml", faults="{throttle: false, latency_ms: 0}")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "irflow.cli.sim",
            "serve",
            "--scenario",
            str(scenario),
            "--throttle",
            "--throttle-writes",
            "1/0.001",  # one write, then a token every 1000 s: the second write is refused
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        info = json.loads(_read_line(process.stdout, timeout=30))
        client = client_for(info["endpoint"], info["token"], info["subscription_id"], info["ca_file"])
        client.storage_accounts.update("rg-x", "onlyaccount", {"tags": {"a": "1"}})
        with pytest.raises(HttpResponseError) as caught:
            client.storage_accounts.update("rg-x", "onlyaccount", {"tags": {"a": "2"}})
        assert caught.value.status_code == 429
        assert caught.value.error.code == "SubscriptionRequestsThrottled"
        assert int(caught.value.response.headers["Retry-After"]) >= 999
        assert caught.value.response.headers["x-ms-ratelimit-remaining-subscription-writes"] == "0"
        account = client.storage_accounts.get_properties("rg-x", "onlyaccount")  # reads are not throttled
        assert account.tags == {"a": "1"}
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err


@pytest.mark.slow
def test_sim_serve_deny_flag_refuses_the_operation(tmp_path: Path) -> None:
    scenario = one_account_scenario(tmp_path / "denied.yaml")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "irflow.cli.sim",
            "serve",
            "--scenario",
            str(scenario),
            "--deny",
            "Microsoft.Storage/storageAccounts/regeneratekey/action@/subscriptions/11111111-2222-4333-8444-555555555555",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        info = json.loads(_read_line(process.stdout, timeout=30))
        client = client_for(info["endpoint"], info["token"], info["subscription_id"], info["ca_file"])
        with pytest.raises(HttpResponseError) as caught:
            client.storage_accounts.regenerate_key("rg-x", "onlyaccount", {"keyName": "key1"})
        assert caught.value.status_code == 403
        assert caught.value.error.code == "AuthorizationFailed"
        assert client.storage_accounts.list_keys("rg-x", "onlyaccount").keys_property
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
