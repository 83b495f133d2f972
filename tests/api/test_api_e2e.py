"""The API against real processes on loopback: ``irflow serve`` over ``irflow sim serve``, an API token from
``irflow tokens create``, and Entra ID tokens of a loopback tenant."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from procs import create_token, irflow_env, serve

pytestmark = pytest.mark.slow
ACCOUNTS = ("phipatientexports", "phiimaging")


@pytest.fixture
def served(sim_process, oidc, tmp_path: Path) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    env = {
        **irflow_env(sim_process, f"sqlite:///{tmp_path / 'irflow.db'}"),
        "IRFLOW_ENTRA_TENANT_ID": oidc.tenant_id,
        "IRFLOW_ENTRA_AUDIENCE": oidc.audience,
        "IRFLOW_ENTRA_AUTHORITY": oidc.authority,
    }
    tokens = {
        role: create_token(env, tmp_path, role=role, name=name)
        for role, name in (("responder", "oncall"), ("admin", "laptop"))
    }
    with serve(env, tmp_path, log=tmp_path / "serve.log") as server:
        yield {
            "base": server.base,
            "token": tokens["responder"],
            "admin_token": tokens["admin"],
            "sim": sim_process,
            "oidc": oidc,
            "env": env,
            "dir": tmp_path,
        }


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


def _cli_run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "irflow", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=240
    )


# about forty CLI processes, each one importing irflow: generous on a loaded machine
@pytest.mark.timeout(900)
def test_the_cli_steers_runs_and_facts_through_a_remote_irflow(served) -> None:  # type: ignore[no-untyped-def]
    """`irflow run`, runs, incidents, deadlines and notices with IRFLOW_URL: no database on the laptop, the
    same output as the same command on the server's database."""
    from datetime import UTC, datetime, timedelta

    sub = served["sim"]["subscription_id"]
    accounts = ",".join(
        f"/subscriptions/{sub}/resourceGroups/rg-phi-prod/providers/Microsoft.Storage/storageAccounts/{name}"
        for name in ACCOUNTS
    )
    local_env = served["env"]
    laptop = served["dir"] / "laptop"
    laptop.mkdir()

    def remote_env(token: str) -> dict[str, str]:
        return {
            **{k: v for k, v in local_env.items() if not k.startswith("IRFLOW_")},
            "IRFLOW_URL": served["base"],
            "IRFLOW_TOKEN": token,
            "IRFLOW_DATABASE_URL": "sqlite:///./no-database-here/irflow.db",
        }

    responder, admin = remote_env(served["token"]), remote_env(served["admin_token"])

    def same(command: list[str]) -> str:
        remote = _cli(command, admin, laptop)
        assert remote == _cli(command, local_env, served["dir"]), command
        return remote

    # a containment started from the laptop runs on the server's worker and is followed to its end
    contained = _cli_run(
        ["run", "storage-sas-exfiltration", "--param", f"storage_accounts={accounts}", "--json"],
        responder,
        laptop,
    )
    assert contained.returncode == 0, contained.stderr
    run = json.loads(contained.stdout)
    assert run["status"] == "succeeded" and run["steps"]
    incident = run["incident_id"]
    same(["runs", "show", run["id"], "--json"])

    # pre-approving gates needs the approver role; nothing is started when it is refused
    refused = _cli_run(
        [
            "run",
            "release-containment",
            "--incident",
            incident,
            "--param",
            f"storage_accounts={accounts}",
            "--yes",
        ],
        responder,
        laptop,
    )
    assert refused.returncode == 2 and "approver role" in refused.stderr, refused.stderr
    # a gated release waits for a human (exit 3), is listed, and is cancelled from the laptop
    gated = _cli_run(
        ["run", "release-containment", "--incident", incident, "--param", f"storage_accounts={accounts}"],
        admin,
        laptop,
    )
    assert gated.returncode == 3 and "waits for approval" in gated.stderr, (gated.stdout, gated.stderr)
    release = gated.stdout.split()[1]
    listed = json.loads(same(["runs", "list", "--json"]))
    assert [item["id"] for item in listed["items"]] == [release]
    same(["runs", "list", "--all"])
    rejected = _cli_run(["runs", "reject", release, "--step", "no-such-step"], admin, laptop)
    assert rejected.returncode == 2 and "no step waiting" in rejected.stderr, rejected.stderr
    cancelled = _cli_run(["runs", "cancel", release, "--reason", "drill"], admin, laptop)
    assert cancelled.returncode == 0 and "cancelled (was awaiting_approval" in cancelled.stdout, (
        cancelled.stderr
    )
    not_failed = _cli_run(["runs", "retry", run["id"]], admin, laptop)
    assert not_failed.returncode == 2 and "failed" in not_failed.stderr, not_failed.stderr

    # facts, deadlines and a notice recorded as sent, with only the copy's hash leaving the laptop
    today = datetime.now(UTC).date()
    facts = _cli_run(
        ["incidents", "facts", incident, "--affected", "1200", "--state", "TX=700", "--state", "CA=500"]
        + ["--discovered", (today - timedelta(days=10)).isoformat()],
        admin,
        laptop,
    )
    assert facts.returncode == 0, facts.stderr
    bad_state = _cli_run(["incidents", "facts", incident, "--state", "TX=many"], admin, laptop)
    assert bad_state.returncode == 2 and "whole number" in bad_state.stderr
    # the 164.402(2) assessment: recorded from the laptop as on the server (the second one changes nothing)
    assess = ["incidents", "assess", incident, "--outcome", "notify", "--nature", "names, dates of service"]
    assess += ["--recipient", "unknown", "--acquired", "unknown", "--mitigation", "SAS keys rotated"]
    same(assess)
    refused_assess = _cli_run([*assess[:4], "maybe", *assess[5:]], admin, laptop)
    assert refused_assess.returncode == 2 and "outcome" in refused_assess.stderr, refused_assess.stderr
    same(["incidents", "show", incident, "--json"])
    same(["incidents", "show", incident])
    same(["deadlines", "list", "--json"])
    same(["deadlines", "list", "--status", "open"])
    copy = laptop / "letter.txt"
    copy.write_text("Dear patient, ...")
    sent = _cli_run(
        ["incidents", "notice-sent", incident, "individuals", "--on", (today - timedelta(days=1)).isoformat()]
        + ["--method", "email", "--count", "3", "--copy", str(copy)],
        admin,
        laptop,
    )
    assert sent.returncode == 0, sent.stderr
    assert "copy SHA-256 " + hashlib.sha256(copy.read_bytes()).hexdigest() in sent.stdout
    shown = json.loads(same(["incidents", "show", incident, "--json"]))
    assert any(n["kind"] == "individuals" and n["copy_sha256"] for n in shown["notices_sent"])
    assert not (laptop / "no-database-here").exists()

    forged = _cli_run(["incidents", "list"], remote_env("irf_" + "x" * 43), laptop)
    assert forged.returncode == 2 and "unknown API token" in forged.stderr
