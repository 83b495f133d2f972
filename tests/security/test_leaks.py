"""Leak test: a corpus of PHI and secret values passed as sensitive playbook inputs, through real CLI
processes (INFO and DEBUG, JSON and console logs, failing invocations), then every output scanned: stdout,
stderr, every table of the application database and of DBOS's system database. Expected: 0 leaks.

Titles, facts, risk assessments, approval comments, recipients, simulated Azure data, API errors and the
evidence package: tests/security/test_leak_surfaces.py (the same corpus)."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from hostile import irflow

from irflow.sim.models import Tenant
from irflow.sim.server import SimServer

pytestmark = pytest.mark.slow


def _b64(seed: str, size: int = 64) -> str:
    return base64.b64encode(hashlib.sha512(seed.encode()).digest()[:size]).decode()


CORPUS: dict[str, list[str]] = {
    "ssn": ["123-45-6789", "078-05-1120", "219-09-9999", "457-55-5462"],
    "mrn": ["MRN-00482913", "MR#7734021", "MRN 55102938", "MR#A9920113"],
    "dob": ["DOB 1984-03-17", "born 1990-11-02", "date of birth 1975-06-30", "DOB: 07/04/1962"],
    "email": [
        "jane.doe@example.org",
        "pat.smith%40example.net",
        "m.okafor@hospital.example",
        "r.lee+phi@clinic.example",
    ],
    "phone": ["(555) 867-5309", "+1 415 555 0142", "312-555-0199", "phone 617.555.0123"],
    "name": [
        "Patient: Maria Gonzalez",
        "patient name: John O'Brien",
        "Name: Wei Chen",
        "Patient Aisha Rahman",
    ],
    "address": [
        "home address: 42 Elm Street",
        "street_address=17 Harbor Road",
        "mailing address: 9 Pine Ct",
        "patient address: 3 Oak Ave",
    ],
    "password": [
        "password is hunter2-Correct",
        "pwd=Tr0ub4dor&3",
        "passphrase: correct horse battery",
        "P@ssw0rd!2026",
    ],
    "account-key": [_b64(f"account-key-{i}") for i in range(4)],
    "sas": [
        f"sv=2022-11-02&ss=b&srt=co&sp=rl&sig=Zx{i}q8LmN0pQ2rS4tU6vW8xY0zA2bC4dE6fG8hI%3D" for i in range(4)
    ],
    "jwt": [
        f"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEyMzQiLCJpZCI6{i}fQ.c2lnbmF0dXJlLWJ5dGVzLTEyMzQ1Njc4OTA"
        for i in range(4)
    ],
    "aad-secret": [
        f"Abc{i}Q~" + _b64(f"aad-{i}", 30).replace("+", "x").replace("/", "y")[:34] for i in range(4)
    ],
    "hex-key": [hashlib.sha256(f"hex-key-{i}".encode()).hexdigest() for i in range(4)],
    "connection-string": [
        f"DefaultEndpointsProtocol=https;AccountName=phi{i};AccountKey={_b64(f'conn-{i}')};EndpointSuffix=core.windows.net"
        for i in range(4)
    ],
}
VALUES = [value for values in CORPUS.values() for value in values]

PLAYBOOK = """\
name: leak-probe
version: 1
inputs:
  account: {type: resource_id, sensitive: true}
  notes: {type: "list[string]", sensitive: true}
  count: {type: int, sensitive: true, required: false, default: 1}
steps:
  - id: isolate
    action: storage.isolate_account
    with: {account: "{{ inputs.account }}"}
"""


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(Tenant.demo()) as server:
        yield server


def _env(sim: SimServer, workdir: Path, level: str, fmt: str) -> dict[str, str]:
    return {
        **sim.connection_info()["env"],
        "IRFLOW_DATABASE_URL": f"sqlite:///{workdir / 'irflow.db'}",
        "IRFLOW_QUEUE_POLLING_INTERVAL": "0.05",
        "IRFLOW_DATA_KEY": KEY,
        "IRFLOW_LOG_LEVEL": level,
        "IRFLOW_LOG_FORMAT": fmt,
    }


KEY = Fernet.generate_key().decode()


def _forms(value: str) -> set[str]:
    """The value as it may appear: raw, JSON-escaped, and each long piece of it."""
    return {value, json.dumps(value)[1:-1]}


def _tables(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        names = [row[0] for row in conn.execute("select name from sqlite_master where type = 'table'")]
        return {
            f"{path.name}:{name}": "\n".join(repr(row) for row in conn.execute(f'select * from "{name}"'))
            for name in names
        }


def test_no_sensitive_value_leaks_anywhere(sim: SimServer, tmp_path: Path) -> None:
    playbook = tmp_path / "leak-probe.yaml"
    playbook.write_text(PLAYBOOK)
    account = (
        f"/subscriptions/{sim.subscription_id}/resourceGroups/rg-phi-prod/providers/"
        "Microsoft.Storage/storageAccounts/phiimaging"
    )
    outputs: dict[str, str] = {}
    for level, fmt in (("DEBUG", "json"), ("INFO", "console")):
        result = irflow(
            "run",
            str(playbook),
            "--yes",
            "--json",
            "--param",
            f"account={account}",
            "--param",
            "notes=" + ",".join(VALUES),
            env=_env(sim, tmp_path, level, fmt),
        )
        assert result.returncode == 0, result.stderr[-2000:]
        outputs[f"run {level} {fmt}: stdout"] = result.stdout
        outputs[f"run {level} {fmt}: stderr"] = result.stderr
    failing = 0
    for kind, values in CORPUS.items():  # an invalid sensitive input: the error must not echo it
        result = irflow(
            "run",
            str(playbook),
            "--param",
            f"account={account}",
            "--param",
            "notes=x",
            "--param",
            f"count={values[0]}",
            env=_env(sim, tmp_path, "DEBUG", "json"),
        )
        assert result.returncode != 0 and "not shown" in result.stderr, result.stderr
        outputs[f"error {kind}: stdout"] = result.stdout
        outputs[f"error {kind}: stderr"] = result.stderr
        failing += 1
    outputs.update(_tables(tmp_path / "irflow.db"))
    outputs.update(_tables(tmp_path / "irflow.dbos.db"))

    leaks = [
        (surface, value)
        for surface, text in outputs.items()
        for value in VALUES
        if any(form in text for form in _forms(value))
    ]
    print(
        f"\nleak scan: {len(VALUES)} values of {len(CORPUS)} kinds, 2 runs (DEBUG/json, INFO/console) and "
        f"{failing} failing invocations, {len(outputs)} surfaces (stdout, stderr, "
        f"{sum(1 for s in outputs if '.db:' in s)} database tables incl. DBOS's): {len(leaks)} leaks"
    )
    assert not leaks, leaks[:10]

    with sqlite3.connect(tmp_path / "irflow.db") as conn:
        (params,) = conn.execute("select params from runs limit 1").fetchone()
        (step_params,) = conn.execute("select params from steps limit 1").fetchone()
    assert set(json.loads(params)["notes"]) == {"sealed", "fingerprint"}
    assert set(json.loads(step_params)["account"]) == {
        "sealed",
        "fingerprint",
    }  # derived from a sensitive input
