"""The evidence package of an incident run through the engine against the simulator: contents, determinism,
the standalone verifier, and tampering it catches."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from irflow.audit import AuditChain
from irflow.audit.package import PackageError, verify_package
from irflow.engine import runtime
from irflow.engine.anchor import AnchorConfig, AnchorStore, anchor_chain
from irflow.engine.export import build_evidence_package, write_evidence_package
from irflow.engine.incidents import FactsUpdate, RiskAssessmentInput, record_risk_assessment, update_facts
from irflow.engine.runs import run_view, submit_run
from irflow.sim.server import SimServer

PLAYBOOK = """
name: evidence-drill
version: 1
description: Capture state and preserve the PHI blobs as evidence.
inputs:
  account: {type: resource_id, description: PHI storage account}
  evidence_account: {type: resource_id, description: Evidence storage account}
steps:
  - id: capture-before
    action: forensics.capture_resource_state
    with: {resources: ["{{ inputs.account }}"], phase: before}
  - id: preserve
    action: forensics.snapshot_containers
    with: {account: "{{ inputs.account }}", evidence_account: "{{ inputs.evidence_account }}"}
"""
T1 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
T2 = datetime(2026, 12, 2, 8, 30, tzinfo=UTC)


@pytest.fixture
def incident(svc: runtime.Services, sim: SimServer, tmp_path: Path) -> tuple[str, AnchorStore]:
    """An incident with a run, evidence, facts, a risk assessment; another incident's events interleaved;
    the chain anchored in a WORM container of the simulated evidence account."""
    path = tmp_path / "evidence-drill.yaml"
    path.write_text(PLAYBOOK)
    params = {
        "account": sim.tenant.storage_account("phipatientexports").id,
        "evidence_account": sim.tenant.storage_account("webassetscdn").id,
    }
    run = submit_run(svc, str(path), params, actor="cli:tester", auto_approve=True, title="Exfiltration <b>&")
    assert run.handle.get_result() == "succeeded", run_view(svc, run.run_id)
    other = svc.state.open_incident(title="Unrelated", severity="low", source="cli", actor="cli:other")
    with svc.db.transaction() as session:
        AuditChain().append(session, actor="cli:other", type="test.note", incident_id=other, payload={"n": 1})
    update_facts(
        svc.db,
        run.incident_id,
        FactsUpdate(
            discovered_at=datetime(2026, 11, 30, tzinfo=UTC),
            affected_total=812,
            affected_by_state={"TX": 700, "CO": 112},
            breach_start=date(2026, 11, 20),
        ),
        actor="cli:privacy-officer",
    )
    record_risk_assessment(
        svc.db,
        run.incident_id,
        RiskAssessmentInput(
            nature_and_extent="claims exports: names, member ids, diagnosis codes",
            unauthorized_person="unknown external IP using a leaked SAS",
            acquired_or_viewed="downloads observed in StorageBlobLogs",
            mitigation="keys rotated, SAS revoked, account isolated",
            outcome="notify",
        ),
        author="cli:privacy-officer",
    )
    bystander = sim.tenant.storage_account("webassetscdn")
    sim.tenant.add_storage_account(bystander.subscription_id, bystander.resource_group, "irflowauditanchors")
    store = AnchorStore(
        svc.clients,
        AnchorConfig(
            account_id=sim.tenant.storage_account("irflowauditanchors").id,
            container="irflow-audit-anchors",
            retention_days=2190,
            prefix="chain",
        ),
    )
    with svc.db.transaction() as session:
        AuditChain().append(session, actor="cli:other", type="test.note", incident_id=other, payload={"n": 2})
    anchor_chain(svc.db, store)
    return run.incident_id, store


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _rezip(
    members: dict[str, bytes], change: Callable[[dict[str, bytes]], None], *, fix_manifest: bool
) -> bytes:
    """Tamper with the package; with ``fix_manifest`` the file list is re-hashed too (a careful forger)."""
    members = dict(members)
    change(members)
    if fix_manifest:
        manifest = json.loads(members["manifest.json"])
        manifest["files"] = {
            name: hashlib.sha256(data).hexdigest()
            for name, data in members.items()
            if name != "manifest.json"
        }
        members["manifest.json"] = json.dumps(manifest).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_package_holds_everything_and_verifies_offline(
    svc: runtime.Services, incident: tuple[str, AnchorStore]
) -> None:
    incident_id, store = incident
    data = build_evidence_package(svc.db, incident_id, anchors=store, exported_at=T1)
    members = _members(data)
    assert {
        "README.txt",
        "manifest.json",
        "report.html",
        "report.pdf",
        "timeline.csv",
        "timeline.json",
        "audit/events.jsonl",
        "audit/links.jsonl",
        "audit/proof.json",
        "audit/anchor.json",
        "evidence/manifest.json",
        "playbooks/index.json",
        "hhs/report-data.json",
    } <= set(members)
    assert members["report.pdf"].startswith(b"%PDF-")
    html = members["report.html"].decode()
    for heading in (
        "Incident and facts",
        "Risk assessment",
        "Actions taken",
        "whether each was met",
        "Notices",
        "chain of custody",
        "Who did what",
        "Timeline",
        "Audit chain proof",
        "HHS breach report",
    ):
        assert heading in html
    assert "unknown external IP using a leaked SAS" in html and "claims exports" in html
    assert "Exfiltration &lt;b&gt;&amp;" in html and "<b>&" not in html  # escaped, never markup

    events = [json.loads(line) for line in members["audit/events.jsonl"].splitlines()]
    links = [json.loads(line) for line in members["audit/links.jsonl"].splitlines()]
    assert {e["incident_id"] for e in events} == {incident_id}
    assert links and all(set(link) == {"seq", "prev_hash", "hash"} for link in links)  # no foreign content
    assert b"Unrelated" not in b"".join(members.values())
    proof = json.loads(members["audit/proof.json"])
    assert proof["first_seq"] == events[0]["seq"] and proof["first_hash"] == events[0]["hash"]
    assert proof["anchor"]["seq"] == proof["last_seq"] and proof["verification_at_export"]["ok"] is True
    assert proof["verify_offline"] == "irflow audit verify-package FILE.zip"

    evidence = json.loads(members["evidence/manifest.json"])
    assert sorted(e["kind"] for e in evidence) == ["blob_copy"] * 3 + ["resource_state"]
    for item in evidence:
        assert item["custody"] and item["custody"][0]["type"] == "evidence.captured"
        if item["bytes"]:
            assert hashlib.sha256(members[item["bytes"]]).hexdigest() == item["sha256"]
    [playbook] = json.loads(members["playbooks/index.json"])
    assert hashlib.sha256(members[playbook["file"]]).hexdigest() == playbook["sha256"]
    hhs = json.loads(members["hhs/report-data.json"])
    assert hhs["known_fields"]["breach.individuals_affected"] == 812
    assert "covered_entity.name" in hhs["to_complete"]
    timeline = json.loads(members["timeline.json"])
    assert [t["seq"] for t in timeline] == [e["seq"] for e in events]
    assert members["timeline.csv"].decode().splitlines()[0] == "seq,ts,actor,type,payload,hash"

    report = verify_package(data)
    assert report.ok, report.problems
    assert report.anchored and report.incident_id == incident_id and report.checks > len(events)


def test_export_is_deterministic_apart_from_the_export_time(
    svc: runtime.Services, incident: tuple[str, AnchorStore]
) -> None:
    incident_id, store = incident
    first = build_evidence_package(svc.db, incident_id, anchors=store, exported_at=T1)
    assert build_evidence_package(svc.db, incident_id, anchors=store, exported_at=T1) == first
    later = _members(build_evidence_package(svc.db, incident_id, anchors=store, exported_at=T2))
    before = _members(first)
    assert list(before) == sorted(before)
    assert {name for name in before if before[name] != later[name]} == {
        "manifest.json",
        "report.html",
        "report.pdf",
    }
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


@pytest.mark.parametrize(
    ("what", "change", "expected"),
    [
        (
            "an event's content",
            lambda m: m.__setitem__(
                "audit/events.jsonl", m["audit/events.jsonl"].replace(b'"cli:tester"', b'"cli:mallory"', 1)
            ),
            "content does not match its hash",
        ),
        (
            "a link dropped",
            lambda m: m.__setitem__(
                "audit/links.jsonl", b"".join(m["audit/links.jsonl"].splitlines(keepends=True)[1:])
            ),
            "missing from the segment",
        ),
        (
            "evidence bytes",
            lambda m: [
                m.__setitem__(k, v + b" ") for k, v in list(m.items()) if k.startswith("evidence/items/")
            ],
            "does not match its SHA-256",
        ),
        (
            "a playbook copy",
            lambda m: [m.__setitem__(k, v + b"#") for k, v in list(m.items()) if k.endswith(".yaml")],
            "does not match the hash the runs pinned",
        ),
        (
            "the anchor",
            lambda m: m.__setitem__(
                "audit/anchor.json", m["audit/anchor.json"].replace(b'"hash":"', b'"hash":"0', 1)
            ),
            "audit/anchor.json",
        ),
        ("the anchor removed", lambda m: m.pop("audit/anchor.json"), "audit/anchor.json is missing"),
    ],
)
def test_verifier_catches_tampering(
    svc: runtime.Services,
    incident: tuple[str, AnchorStore],
    what: str,
    change,
    expected: str,  # type: ignore[no-untyped-def]
) -> None:
    incident_id, store = incident
    members = _members(build_evidence_package(svc.db, incident_id, anchors=store, exported_at=T1))
    naive = verify_package(_rezip(members, change, fix_manifest=False))
    assert not naive.ok and any("manifest.json" in p for p in naive.problems), what
    careful = verify_package(_rezip(members, change, fix_manifest=True))
    assert not careful.ok and any(expected in p for p in careful.problems), (what, careful.problems)


def test_an_unanchored_package_says_so_and_still_verifies(
    svc: runtime.Services, incident: tuple[str, AnchorStore], tmp_path: Path
) -> None:
    incident_id, _ = incident
    summary = write_evidence_package(svc.db, incident_id, tmp_path / "package.zip")
    assert not summary.anchored and summary.path.is_file()
    assert not list(tmp_path.glob(".*.partial"))
    report = verify_package(summary.path)
    assert report.ok and not report.anchored
    proof = json.loads(_members(summary.path.read_bytes())["audit/proof.json"])
    assert proof["verify_offline"] == "irflow audit verify-package package.zip"


def test_unknown_incident_and_unreadable_package(svc: runtime.Services, tmp_path: Path) -> None:
    with pytest.raises(LookupError):
        build_evidence_package(svc.db, "no-such-incident")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    with pytest.raises(PackageError, match="not a zip"):
        verify_package(junk)
