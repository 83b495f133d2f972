"""The CLI as users and scripts drive it: real processes, exit codes, messages."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from irflow.store.db import head_revision

REPO = Path(__file__).resolve().parents[1]
ACCOUNT_KEY = re.compile(r"[A-Za-z0-9+/]{86}==")


def irflow(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 180):  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, "-m", "irflow", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_demo_contains_the_breach_and_proves_it(tmp_path: Path) -> None:
    result = irflow("demo", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["ok"] is True
    assert all(summary["checks"].values()), summary["checks"]
    database = Path(summary["database"])
    assert database.is_file() and database.is_relative_to(tmp_path)

    output = result.stdout + result.stderr
    assert not ACCOUNT_KEY.search(output)
    assert "Bearer " not in output and "sig=" not in output

    env = {"IRFLOW_DATABASE_URL": f"sqlite:///{database}"}
    verify = irflow("audit", "verify", cwd=tmp_path, env=env)
    assert verify.returncode == 0 and "intact" in verify.stdout

    incident = summary["incident_id"]
    facts = irflow(
        "incidents",
        "facts",
        incident,
        "--discovered",
        "2026-03-02",
        "--affected",
        "1200",
        "--state",
        "TX=600",
        "--json",
        cwd=tmp_path,
        env=env,
    )
    assert facts.returncode == 0, facts.stderr
    deadlines = {
        (d["kind"], d["jurisdiction"]): d["due"] for d in json.loads(facts.stdout)["incident"]["deadlines"]
    }
    assert deadlines[("individuals", "US")] == "2026-05-01" and ("media", "TX") in deadlines
    shown = irflow("incidents", "show", incident, cwd=tmp_path, env=env)
    assert shown.returncode == 0 and "2026-05-01" in shown.stdout and "contained" in shown.stdout
    notices = irflow("notices", "list", incident, "--json", cwd=tmp_path, env=env)
    assert notices.returncode == 0, notices.stderr
    [escalation] = json.loads(notices.stdout)["items"]
    assert escalation["template"].startswith("internal-escalation") and escalation["status"] == "pending"
    assert escalation["recipient"].startswith("hmac-sha256:") and "@" not in notices.stdout
    shown = irflow("notices", "show", escalation["id"], cwd=tmp_path, env=env)
    assert shown.returncode == 0 and "ESCALATION" in shown.stdout
    deliver = irflow("notices", "deliver", cwd=tmp_path, env=env)
    assert deliver.returncode == 0 and "waiting for an unconfigured channel 1" in deliver.stdout

    bad = irflow("incidents", "facts", incident, "--state", "TX=5000", cwd=tmp_path, env=env)
    assert bad.returncode == 2 and "more than the total" in bad.stderr and "Traceback" not in bad.stderr

    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE audit_events SET payload = '{}' WHERE seq = 7")
    tampered = irflow("audit", "verify", cwd=tmp_path, env=env)
    assert tampered.returncode == 1
    assert "#7" in tampered.stdout and "edited" in tampered.stdout


def test_demo_human_output(tmp_path: Path) -> None:
    result = irflow("demo", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for words in (
        "containment run",
        "audit timeline",
        "audit chain intact",
        "database:",
        "each key regenerated once",
    ):
        assert words in result.stdout, words
    assert "FAIL" not in result.stdout
    _dashboard_of_the_demo_signs_in(result.stdout, tmp_path)


def _dashboard_of_the_demo_signs_in(stdout: str, cwd: Path) -> None:
    """The demo ends with the dashboard's address, the serve command for its database and a token that
    signs in there (the serve command run as printed, on another port)."""
    url = re.search(r"^dashboard: (http://127\.0\.0\.1:8080/ui/incidents/[0-9a-f-]{36})$", stdout, re.M)
    command = re.search(
        r"serve the demo database with: IRFLOW_DATABASE_URL=(\S+) irflow serve (.+)$", stdout, re.M
    )
    token = stdout.strip().splitlines()[-1]
    assert url and command and token.startswith("irf_"), stdout[-1500:]
    port = _free_port()
    args = command.group(2).replace("--port 8080", f"--port {port}").split()
    env = {**os.environ, "IRFLOW_DATABASE_URL": command.group(1)}
    serve = subprocess.Popen(
        [sys.executable, "-m", "irflow", "serve", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=30) as client:
            page = client.get("/ui/sign-in")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert csrf, page.text[:300]
            cookie = page.cookies["irflow_session"]
            path = url.group(1).removeprefix("http://127.0.0.1:8080")
            answer = client.post(
                "/ui/sign-in",
                data={"csrf_token": csrf.group(1), "token": token, "next": path},
                headers={"Cookie": f"irflow_session={cookie}"},  # httpx keeps a Secure cookie off plain http
            )
            assert answer.status_code == 303 and answer.headers["location"] == path, answer.text[:500]
            signed_in = answer.cookies["irflow_session"]
            incident = client.get(path, headers={"Cookie": f"irflow_session={signed_in}"})
            assert incident.status_code == 200 and "Demo" in incident.text and "Deadlines" in incident.text
    finally:
        serve.terminate()
        serve.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_run_with_bad_params_is_refused_cleanly(tmp_path: Path) -> None:
    env = {"IRFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'irflow.db'}"}
    result = irflow(
        "run", "storage-sas-exfiltration", "--param", "storage_accounts=phiimaging", cwd=REPO, env=env
    )
    assert result.returncode == 2
    assert "not an Azure resource id" in result.stderr
    assert "Traceback" not in result.stderr
    with sqlite3.connect(tmp_path / "irflow.db") as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM audit_events").fetchone()[0] == 0

    missing = irflow("run", "storage-sas-exfiltration", "--param", "nonsense", cwd=REPO, env=env)
    assert missing.returncode == 2 and "KEY=VALUE" in missing.stderr


def test_invalid_configuration_is_reported(tmp_path: Path) -> None:
    result = irflow("audit", "verify", cwd=tmp_path, env={"IRFLOW_DATABASE_URL": "mysql://nope"})
    assert result.returncode == 2
    assert "IRFLOW_DATABASE_URL" in result.stderr and "Traceback" not in result.stderr


def test_db_upgrade_and_verify_on_a_new_database(tmp_path: Path) -> None:
    env = {"IRFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}"}
    upgraded = irflow("db", "upgrade", cwd=tmp_path, env=env)
    assert upgraded.returncode == 0 and f"empty -> {head_revision()}" in upgraded.stdout
    verify = irflow("audit", "verify", "--json", cwd=tmp_path, env=env)
    assert verify.returncode == 0 and json.loads(verify.stdout)["ok"] is True


def test_playbooks_validate_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nversion: 1\nsteps:\n  - id: one\n    action: storage.nope\n")
    result = irflow("playbooks", "validate", str(bad), cwd=REPO)
    assert result.returncode == 1
    assert f"{bad}:5:" in result.stderr and "unknown action" in result.stderr
    good = irflow("playbooks", "validate", cwd=REPO)
    assert good.returncode == 0 and "storage-sas-exfiltration" in good.stdout


def test_actions_list_shows_permissions(tmp_path: Path) -> None:
    result = irflow("actions", "list", cwd=tmp_path)
    assert result.returncode == 0
    assert "storage.rotate_account_keys" in result.stdout
    assert "Microsoft.Storage/storageAccounts/regeneratekey/action" in result.stdout


def test_actions_permissions_and_least_privilege_role(tmp_path: Path) -> None:
    from irflow.actions.base import all_actions

    expected = sorted({p for action in all_actions().values() for p in action.permissions}, key=str.lower)
    table = irflow("actions", "permissions", cwd=tmp_path)
    assert table.returncode == 0 and all(p in table.stdout for p in expected)

    scope = "/subscriptions/9b2f6c1d-4e8a-4f3b-a1c7-2d5e8f0a6b3c/resourceGroups/rg-phi-prod"
    role = irflow("actions", "permissions", "--format", "azure-role", "--scope", scope, cwd=tmp_path)
    assert role.returncode == 0, role.stderr
    definition = json.loads(role.stdout)
    assert definition["IsCustom"] is True
    # exactly the actions' Azure permissions, and the permission list irflow doctor reads
    azure = [p for p in expected if not p.startswith("microsoft.directory/")]
    azure = sorted([*azure, "Microsoft.Authorization/permissions/read"], key=str.lower)
    assert sorted(definition["Actions"] + definition["DataActions"], key=str.lower) == azure
    assert definition["AssignableScopes"] == [scope] and definition["NotActions"] == []

    unscoped = irflow("actions", "permissions", "--format", "azure-role", cwd=tmp_path)
    assert unscoped.returncode == 2 and "--scope" in unscoped.stderr
    bad = irflow("actions", "permissions", "--format", "azure-role", "--scope", "/nope", cwd=tmp_path)
    assert bad.returncode == 2 and "not an assignable scope" in bad.stderr
