"""The API against real processes on loopback: ``irflow serve`` over ``irflow sim serve``, an API token from
``irflow tokens create``, and Entra ID tokens of a loopback tenant."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

pytestmark = pytest.mark.slow
PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
ACCOUNTS = ("phipatientexports", "phiimaging")


@pytest.fixture
def sim_process() -> Iterator[dict[str, Any]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "irflow", "sim", "serve", "--port", "0", "--latency-ms", "20"]
        # irflow's egress IP: the strict firewalls see irflow come from it (IRFLOW_EGRESS_IPS)
        + ["--caller-ip", "192.0.2.10"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    info = json.loads(process.stdout.readline())
    yield info
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=20)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(sim_process, oidc, tmp_path: Path) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        **sim_process["env"],
        "IRFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'irflow.db'}",
        "IRFLOW_ONCALL_RECIPIENTS": "soc-oncall@example.org",
        "IRFLOW_QUEUE_POLLING_INTERVAL": "0.05",
        "IRFLOW_PLAYBOOKS_DIR": str(PLAYBOOKS),
        "IRFLOW_ENTRA_TENANT_ID": oidc.tenant_id,
        "IRFLOW_ENTRA_AUDIENCE": oidc.audience,
        "IRFLOW_ENTRA_AUTHORITY": oidc.authority,
    }
    tokens = {}
    for role, name in (("responder", "oncall"), ("admin", "laptop")):
        created = subprocess.run(
            [sys.executable, "-m", "irflow", "tokens", "create", "--role", role, "--name", name],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert created.returncode == 0, created.stderr
        tokens[role] = created.stdout.splitlines()[-1]
    port = _free_port()
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "irflow", "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        assert process.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "irflow serve did not become ready"
        time.sleep(0.2)
    try:
        yield {
            "base": base,
            "token": tokens["responder"],
            "admin_token": tokens["admin"],
            "sim": sim_process,
            "oidc": oidc,
            "env": env,
            "dir": tmp_path,
        }
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_trigger_a_playbook_through_the_api_and_watch_it_finish(served) -> None:  # type: ignore[no-untyped-def]
    base, sub = served["base"], served["sim"]["subscription_id"]
    api = httpx.Client(
        base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {served['token']}"}, timeout=30
    )
    accounts = [
        f"/subscriptions/{sub}/resourceGroups/rg-phi-prod/providers/Microsoft.Storage/storageAccounts/{name}"
        for name in ACCOUNTS
    ]
    created = api.post(
        "/incidents",
        json={
            "title": "SAS token exfiltration",
            "severity": "high",
            "playbook": "storage-sas-exfiltration",
            "params": {"storage_accounts": accounts},
        },
    )
    assert created.status_code == 201, created.text
    ids = created.json()
    deadline = time.monotonic() + 180
    while True:
        run = api.get(f"/runs/{ids['run_id']}").json()
        if run["status"] in ("succeeded", "failed", "cancelled"):
            break
        assert time.monotonic() < deadline, f"run still {run['status']}"
        time.sleep(0.25)
    assert run["status"] == "succeeded", run["error"]
    assert run["steps"] and {s["state"] for s in run["steps"]} <= {"succeeded", "skipped"}
    isolated = {s["target"].rsplit("/", 1)[-1] for s in run["steps"] if s["step"] == "isolate"}
    assert isolated == set(ACCOUNTS)

    incident = api.get(f"/incidents/{ids['id']}").json()
    assert incident["source"] == "api" and incident["runs"][0]["status"] == "succeeded"
    # the responder may not approve, and a finished run has nothing to cancel
    assert api.post(f"/runs/{ids['run_id']}/approve", json={}).status_code == 403
    cancel = api.post(f"/runs/{ids['run_id']}/cancel", json={})
    assert cancel.status_code == 409 and "already ended" in cancel.json()["error"]["message"]
    events = api.get("/audit", params={"incident_id": ids["id"], "limit": 1000}).json()["items"]
    created_by = {e["actor"] for e in events if e["type"] in ("incident.opened", "run.created")}
    assert len(created_by) == 1 and created_by.pop().startswith("token/oncall#")
    assert api.get("/audit/verify").json()["ok"] is True
    metrics = httpx.get(f"{base}/metrics", timeout=10).text
    assert 'irflow_runs{status="succeeded"} 1.0' in metrics
    assert "irflow_step_duration_seconds_count" in metrics

    # The CLI reads the same views through the API (IRFLOW_URL, IRFLOW_TOKEN) as from the database.
    local_env = served["env"]
    remote_env = {
        **{k: v for k, v in local_env.items() if not k.startswith("IRFLOW_")},
        "IRFLOW_URL": base,
        "IRFLOW_TOKEN": served["admin_token"],
        "IRFLOW_DATABASE_URL": "sqlite:///./no-database-here/irflow.db",
    }
    laptop = served["dir"] / "laptop"
    laptop.mkdir()
    notices = _cli(["notices", "list", ids["id"], "--json"], local_env, served["dir"])
    assert json.loads(notices)["items"], "the playbook's escalation should have queued a notification"
    first_notice = json.loads(notices)["items"][0]["id"]
    for command in (
        ["incidents", "list", "--json"],
        ["incidents", "list"],
        ["incidents", "show", ids["id"], "--json"],
        ["incidents", "show", ids["id"]],
        ["runs", "show", ids["run_id"], "--json"],
        ["runs", "show", ids["run_id"]],
        ["notices", "list", ids["id"], "--json"],
        ["notices", "show", first_notice],
    ):
        assert _cli(command, remote_env, laptop) == _cli(command, local_env, served["dir"]), command
    assert not (laptop / "no-database-here").exists()
    missing = subprocess.run(
        [sys.executable, "-m", "irflow", "runs", "show", "no-such-run"],
        env=remote_env,
        cwd=laptop,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "no run no-such-run" in missing.stderr


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "irflow", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, (args, done.stderr)
    return done.stdout


def test_entra_id_tokens_are_validated_by_the_served_api(served) -> None:  # type: ignore[no-untyped-def]
    oidc, url = served["oidc"], f"{served['base']}/api/v1/incidents"

    def status(token: str, method: str = "GET") -> tuple[int, str]:
        response = httpx.request(
            method, url, headers={"Authorization": f"Bearer {token}"}, json=None, timeout=30
        )
        return response.status_code, response.json().get("error", {}).get("message", "")

    assert status(oidc.token(roles=["irflow.viewer"]))[0] == 200
    assert status(oidc.token(roles=["irflow.viewer"], issuer=oidc.issuer_v1))[0] == 200
    refused = {
        "audience": oidc.token(roles=["irflow.admin"], audience="api://another-app"),
        "issuer": oidc.token(roles=["irflow.admin"], issuer="https://sts.windows.net/another-tenant/"),
        "signature": oidc.token(
            roles=["irflow.admin"], key=rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ),
        "expired": oidc.token(roles=["irflow.admin"], expires_in=-600),
    }
    for what, token in refused.items():
        code, message = status(token)
        assert code == 401, (what, message)
        assert {"audience": "audience", "issuer": "issuer", "signature": "signature", "expired": "expired"}[
            what
        ] in message
    assert status(oidc.token(roles=["irflow.viewer"]), "POST")[0] == 403
