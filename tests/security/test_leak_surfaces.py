"""Leak test across every input surface: the corpus of tests/security/test_leaks.py (PHI and secrets, 14
kinds) typed as incident titles, facts, risk assessments, approval comments and notification recipients,
planted in the simulated tenant (resource tags, container metadata, blob names), and echoed by failing CLI and
API calls. Every process is real (``irflow demo``, ``irflow serve``, the CLI) and logs at DEBUG as JSON or at
INFO to the console. Scanned: stderr of every process, stdout of the demo and of failing commands, API error
answers, every table of the application database and of DBOS's (DBOS cells are base64 pickles: decoded before
the scan), and every file of the evidence packages (the PDF's text as a reader extracts it). No
IRFLOW_DATA_KEY is configured: the installation's generated key seals.

Expected: 0 leaks in logs and answers, audit payloads, stored tables and exported files (free text appears in
the evidence package only redacted). Views that show an authorised operator the record they asked for
(``incidents show``) are not scanned.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import os
import re
import sqlite3
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from hostile import REPO, TIME_LIMIT, irflow
from procs import start_serve
from pypdf import PdfReader
from test_leaks import CORPUS, VALUES

from irflow.sim.models import Tenant
from irflow.sim.server import SimServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

# Values a blob name can carry in a URL path without escaping questions ('?', '#', '%', '\\' excluded).
BLOB_SAFE = re.compile(r"^[A-Za-z0-9 .@:'()+_=-]+$")
PROBE = """\
name: leak-gate
version: 1
inputs:
  storage_accounts: {type: "list[resource_id]"}
steps:
  - id: isolate
    action: storage.isolate_account
    for_each: "{{ inputs.storage_accounts }}"
    requires_approval: true
  - id: escalate
    action: notify.escalate
    with: {reason: "contained"}
"""


def _chunks(values: list[str], size: int, limit: int = 300) -> list[str]:
    """The values joined in groups of at most *size*, each group at most *limit* characters."""
    groups: list[list[str]] = [[]]
    for value in values:
        if len(groups[-1]) == size or len(" | ".join([*groups[-1], value])) > limit:
            groups.append([])
        groups[-1].append(value)
    return [" | ".join(group) for group in groups]


def _scenario(path: Path) -> Path:
    """The demo tenant with the corpus planted in tags, container metadata and blob names."""
    doc = yaml.safe_load((REPO / "irflow/sim/scenarios/demo.yaml").read_text())
    account = doc["subscriptions"][0]["resource_groups"][0]["storage_accounts"][0]
    account["tags"].update({f"contact{i}": value for i, value in enumerate(VALUES[:15])})
    container = account["containers"][0]
    container["metadata"].update({f"note{i}": value for i, value in enumerate(VALUES[15:30])})
    container["blobs"].extend(
        {"name": f"exports/leak/{value}.csv", "content": "SYNTHETIC\n", "content_type": "text/csv"}
        for value in VALUES
        if BLOB_SAFE.match(value)
    )
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _forms(value: str) -> set[str]:
    return {value, json.dumps(value)[1:-1], value.replace("&", "&amp;").replace("'", "&#39;")}


def _decoded(cell: Any) -> str:
    """A table cell as text; a DBOS cell (base64 pickle, maybe sealed) with its bytes decoded too."""
    text = repr(cell)
    if isinstance(cell, str) and len(cell) >= 8 and re.fullmatch(r"[A-Za-z0-9+/=]+", cell):
        with contextlib.suppress(binascii.Error, ValueError):
            text += "\n" + base64.b64decode(cell).decode("utf-8", "replace")
    return text


def _tables(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        names = [row[0] for row in conn.execute("select name from sqlite_master where type = 'table'")]
        return {
            f"{path.name}:{name}": "\n".join(
                " ".join(_decoded(cell) for cell in row) for row in conn.execute(f'select * from "{name}"')
            )
            for name in names
        }


def _pdf_text(data: bytes) -> str:
    """The text of every page, as a reader sees it (the report embeds a Unicode font: glyph ids, not text)."""
    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)


def _package(path: Path) -> dict[str, str]:
    with zipfile.ZipFile(path) as archive:
        return {
            f"{path.name}:{name}": _pdf_text(archive.read(name))
            if name.endswith(".pdf")
            else archive.read(name).decode("utf-8", "replace")
            for name in archive.namelist()
        }


def test_the_corpus_leaks_through_no_surface(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path / "leaky.yaml")
    logs: dict[str, str] = {}  # stderr of every process, and every failing call's answer
    base_env = {"IRFLOW_LOG_LEVEL": "DEBUG", "IRFLOW_LOG_FORMAT": "json"}

    # 1. simulated Azure data: the whole SAS playbook, forensics and an evidence package, at DEBUG/json
    demo = irflow(
        "demo", "--scenario", str(scenario), "--json", "--workdir", str(tmp_path / "demo"), env=base_env
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    summary = json.loads(demo.stdout)
    logs["demo: stderr"] = demo.stderr
    logs["demo: stdout"] = demo.stdout
    database = Path(summary["database"])
    packages = [Path(summary["evidence_package"]["path"])]

    # 2. titles, facts, approval comments, recipients and API errors through `irflow serve`
    tenant = Tenant.from_scenario(str(scenario))
    tenant.set_caller_origin(ip="192.0.2.10")
    with SimServer(tenant) as sim:
        env = {
            **sim.connection_info()["env"],
            "IRFLOW_DATABASE_URL": f"sqlite:///{database}",
            "IRFLOW_EGRESS_IPS": "192.0.2.10",
            "IRFLOW_QUEUE_POLLING_INTERVAL": "0.05",
            "IRFLOW_PLAYBOOKS_DIR": str(tmp_path / "playbooks"),
            "IRFLOW_ONCALL_RECIPIENTS": ",".join(CORPUS["email"][:1] + ["soc@example.org"]),
            "IRFLOW_LOG_LEVEL": "INFO",
            "IRFLOW_LOG_FORMAT": "console",
        }
        (tmp_path / "playbooks").mkdir()
        (tmp_path / "playbooks" / "leak-gate.yaml").write_text(PROBE)
        token = irflow("tokens", "create", "--role", "admin", "--name", "leak", env=env)
        assert token.returncode == 0, token.stderr
        logs["tokens: stderr"] = token.stderr
        serve_log = tmp_path / "serve.log"
        server = start_serve(  # its logs go to a file: a full pipe would block the server at DEBUG
            {**os.environ, "PYTHONPATH": str(REPO), **env, "IRFLOW_LOG_LEVEL": "DEBUG"},
            REPO,
            log=serve_log,
            ready_within=120,
        )
        try:
            api = f"{server.base}/api/v1"
            http = requests.Session()
            http.headers["Authorization"] = f"Bearer {token.stdout.strip().splitlines()[-1]}"
            account = tenant.storage_account("phiimaging").id
            incidents = []
            for title in _chunks(VALUES, 5):  # every value in a title
                answer = http.post(
                    f"{api}/incidents",
                    json={
                        "title": title,
                        "severity": "high",
                        "playbook": "leak-gate",
                        "params": {"storage_accounts": [account]},
                    },
                    timeout=60,
                )
                assert answer.status_code == 201, answer.text
                incidents.append(answer.json())
            first = incidents[0]
            for value in VALUES:  # an invalid param, an unknown incident, garbage facts: never echoed
                for method, path, body in (
                    (
                        "post",
                        "/incidents",
                        {
                            "title": "x",
                            "severity": "high",
                            "playbook": "leak-gate",
                            "params": {"storage_accounts": [value]},
                        },
                    ),
                    ("get", f"/incidents/{value}", None),
                    ("patch", f"/incidents/{first['id']}/facts", {"discovered_at": value}),
                    (
                        "patch",
                        f"/incidents/{first['id']}/facts",
                        {"law_enforcement_delay": {"oral": {"given_on": value}}},
                    ),
                ):
                    answer = http.request(method, f"{api}{path}", json=body, timeout=60)
                    assert 400 <= answer.status_code < 500, (path, answer.status_code)
                    logs[f"api {method} {path.split('/')[1]} {value}: answer"] = answer.text
            for reason in _chunks(VALUES, 10, 2000):  # facts free text
                answer = http.patch(
                    f"{api}/incidents/{first['id']}/facts",
                    json={"discovered_at": "2026-11-20T10:00:00Z", "discovery_reason": reason},
                    timeout=60,
                )
                assert answer.status_code == 200, answer.text
            comments = _chunks(VALUES, 5, 500)
            for index, created in enumerate(incidents):  # approval comments
                comment = comments[index % len(comments)]
                for _ in range(600):
                    run = http.get(f"{api}/runs/{created['run_id']}", timeout=30).json()
                    if run["status"] == "awaiting_approval":
                        break
                    time.sleep(0.1)
                answer = http.post(
                    f"{api}/runs/{created['run_id']}/approve", json={"comment": comment}, timeout=60
                )
                assert answer.status_code == 200, answer.text
            for created in incidents:
                for _ in range(1200):
                    run = http.get(f"{api}/runs/{created['run_id']}", timeout=30).json()
                    if run["status"] in ("succeeded", "failed"):
                        break
                    time.sleep(0.1)
                assert run["status"] == "succeeded", run
        finally:
            server.stop(TIME_LIMIT)
        logs["serve: stdout and stderr"] = serve_log.read_text()

        # 3. risk assessments and CLI error paths, at DEBUG/json
        cli_env = {**env, **base_env}
        for nature, person in zip(_chunks(VALUES, 7, 5000), _chunks(VALUES[::-1], 7, 5000), strict=True):
            result = irflow(
                "incidents",
                "assess",
                first["id"],
                "--outcome",
                "notify",
                "--nature",
                nature,
                "--recipient",
                person,
                "--acquired",
                nature,
                "--mitigation",
                person,
                env=cli_env,
            )
            assert result.returncode == 0, result.stderr
            logs[f"assess: stderr {nature[:20]}"] = result.stderr
        for index, value in enumerate(VALUES):  # each value once, each error path 14 times
            calls = (
                ("incidents", "facts", first["id"], "--le-written-on", value),
                ("incidents", "facts", first["id"], "--discovered", value),
                ("incidents", "show", value),
                ("run", "leak-gate", "--param", f"storage_accounts={value}"),
            )
            for args in (calls[index % len(calls)],):
                result = irflow(*args, env=cli_env)
                assert result.returncode != 0, args
                logs[f"cli {args[1]} {args[-2]} {value}: stdout"] = result.stdout
                logs[f"cli {args[1]} {args[-2]} {value}: stderr"] = result.stderr
        for created in incidents[:2]:
            out_file = tmp_path / f"package-{created['id']}.zip"
            result = irflow("audit", "export", created["id"], "--out", str(out_file), env=cli_env)
            assert result.returncode == 0, result.stderr
            logs[f"export {created['id']}: stderr"] = result.stderr
            packages.append(out_file)

    tables = {**_tables(database), **_tables(database.with_name(database.stem + ".dbos.db"))}
    with sqlite3.connect(database) as conn:
        audit = {
            "audit payloads": "\n".join(row[0] for row in conn.execute("select payload from audit_events"))
        }
    exported = {name: text for package in packages for name, text in _package(package).items()}
    # The scan is meaningful: ids written in clear are found where they should be.
    assert (
        first["id"] in tables["irflow.db:incidents"]
        and first["id"] in exported[f"{packages[1].name}:report.pdf"]
    )

    def hits(surfaces: dict[str, str]) -> list[tuple[str, str]]:
        return [(s, v) for s, text in surfaces.items() for v in VALUES if any(f in text for f in _forms(v))]

    found = {
        "logs and answers": hits(logs),
        "audit": hits(audit),
        "tables": hits(tables),
        "exported files": hits(exported),
    }
    print(
        f"\nleak scan: {len(VALUES)} values of {len(CORPUS)} kinds through titles, facts, risk assessments, "
        f"approval comments, recipients, simulated Azure data (tags, metadata, blob names) and "
        f"{sum(1 for s in logs if 'answer' in s or 'cli ' in s)} failing CLI/API calls; "
        + ", ".join(
            f"{name}: {len(VALUES)} x {len(surfaces)} surfaces, {len(found[name])} hits"
            for name, surfaces in (
                ("logs and answers", logs),
                ("audit", audit),
                ("tables", tables),
                ("exported files", exported),
            )
        )
    )
    assert not any(found.values()), {name: hits[:10] for name, hits in found.items()}
