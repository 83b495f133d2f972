"""The demo's evidence package through the CLI, as an auditor receives it: it opens, its documented command
re-verifies it offline, a tampered copy fails, and ``irflow audit export`` writes the same kind of package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest


def irflow(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IRFLOW_")}
    return subprocess.run(
        [sys.executable, "-m", "irflow", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_demo_package_reverifies_with_the_documented_command(tmp_path: Path) -> None:
    demo = irflow("demo", "--json", cwd=tmp_path)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    summary = json.loads(demo.stdout)
    package = Path(summary["evidence_package"]["path"])
    assert summary["evidence_package"]["verified"] and summary["evidence_package"]["anchored"]

    with zipfile.ZipFile(package) as archive:
        proof = json.loads(archive.read("audit/proof.json"))
        readme = archive.read("README.txt").decode()
        assert archive.read("report.pdf").startswith(b"%PDF-")
        members = {name: archive.read(name) for name in archive.namelist()}
    command = proof["verify_offline"]
    assert command == f"irflow audit verify-package {package.name}" and command in readme

    # The documented command, run where the package is, with no database configured at all.
    offline = irflow(
        *command.split()[1:], cwd=package.parent, env={"IRFLOW_DATABASE_URL": "sqlite:///nowhere/x.db"}
    )
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert "evidence package intact" in offline.stdout and "anchored outside the database" in offline.stdout

    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(tampered, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data.replace(b"cli:", b"clx:") if name == "audit/events.jsonl" else data)
    caught = irflow("audit", "verify-package", str(tampered), "--json", cwd=tmp_path)
    assert caught.returncode == 1
    assert any("audit/events.jsonl" in problem for problem in json.loads(caught.stdout)["problems"])

    junk = tmp_path / "junk.zip"
    junk.write_text("not a package")
    refused = irflow("audit", "verify-package", str(junk), cwd=tmp_path)
    assert refused.returncode == 2 and "not a zip" in refused.stderr and "Traceback" not in refused.stderr

    env = {"IRFLOW_DATABASE_URL": f"sqlite:///{summary['database']}"}
    out = tmp_path / "again.zip"
    exported = irflow(
        "audit", "export", summary["incident_id"], "--out", str(out), "--json", cwd=tmp_path, env=env
    )
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["anchored"] is False  # no anchor account configured here
    assert irflow("audit", "verify-package", str(out), cwd=tmp_path).returncode == 0
    unknown = irflow(
        "audit", "export", "no-such-incident", "--out", str(tmp_path / "n.zip"), cwd=tmp_path, env=env
    )
    assert unknown.returncode == 2 and "no incident" in unknown.stderr and not (tmp_path / "n.zip").exists()
