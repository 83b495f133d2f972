"""The evidence package an OCR auditor receives: one zip per incident, re-checkable offline.

:func:`build_evidence_package` is a plain service (the CLI and an HTTP route call it). Deterministic: entries
sorted, fixed entry times and permissions, canonical JSON; two exports of the same records differ only where
the export time is written (``manifest.json``, ``report.html``, ``report.pdf``). The layout and the standalone
verifier are in :mod:`irflow.audit.package`. Nothing leaves the incident's own records, and recipients appear
only as fingerprints.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from irflow import clock
from irflow.audit import AuditChain, canonical_json
from irflow.audit.chain import format_ts
from irflow.audit.package import (
    ANCHOR,
    EVENTS,
    EVIDENCE_MANIFEST,
    FORMAT,
    LINKS,
    MANIFEST,
    PLAYBOOK_INDEX,
    PROOF,
    VERIFY_COMMAND,
    VERSION,
    sha256_hex,
)
from irflow.engine.anchor import ANCHOR_EVENT, AnchorStore, verify_with_anchors
from irflow.notify.hhs_report import FIELDS as HHS_FIELDS
from irflow.redaction import fingerprint, redact, redact_text
from irflow.store.db import Database
from irflow.store.models import (
    AuditEvent,
    Deadline,
    Evidence,
    Incident,
    Notification,
    RiskAssessment,
    Run,
)

ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip entry can say: no build time leaks into the bytes
TEMPLATES = Path(__file__).parent / "report_templates"


@dataclass(frozen=True)
class PackageSummary:
    path: Path
    incident_id: str
    sha256: str
    size: int
    events: int
    first_seq: int
    last_seq: int
    anchored: bool


def build_evidence_package(
    db: Database,
    incident_id: str,
    *,
    anchors: AnchorStore | None = None,
    exported_at: datetime | None = None,
    package_name: str = "FILE.zip",
) -> bytes:
    """The package's bytes. ``anchors`` (the WORM anchor store) lets the proof include the anchor that
    covers the incident's events; without it the package says it is not anchored. Raises LookupError for an
    unknown incident."""
    exported = format_ts(exported_at or clock.now())
    with db.transaction() as session:
        incident = session.get(Incident, incident_id)
        if incident is None:
            raise LookupError(f"no incident {incident_id}")
        doc = _collect(session, incident, exported)
        events, links, anchor_ref = _segment(session, incident_id)
    verification = verify_with_anchors(db, anchors)
    anchor_bytes = None
    if anchor_ref is not None and anchors is not None:
        kept = anchors.read(anchor_ref["blob"])
        if kept.seq == anchor_ref["anchored_seq"] and kept.hash == anchor_ref["anchored_hash"]:
            anchor_bytes = kept.to_bytes()
    if anchor_bytes is None:
        # The segment ends at the incident's last event when no anchor blob can be shown for it.
        last = events[-1]["seq"]
        links = [link for link in links if link["seq"] < last]
    segment = sorted([*events, *links], key=lambda row: row["seq"])
    proof = {
        "method": (
            "The incident's events are included whole; the other events between them only as links "
            "(seq, prev_hash, hash). Each included event's hash is recomputed from its content; every "
            "consecutive pair is checked to be chained; the last hash is compared with the anchor blob "
            "(written under a locked immutability policy outside the database) when one covers it."
        ),
        "first_seq": segment[0]["seq"],
        "first_hash": segment[0]["hash"],
        "last_seq": segment[-1]["seq"],
        "last_hash": segment[-1]["hash"],
        "included_events": len(events),
        "linked_events": len(links),
        "anchor": None
        if anchor_bytes is None
        else {
            "seq": anchor_ref["anchored_seq"],  # type: ignore[index]
            "hash": anchor_ref["anchored_hash"],  # type: ignore[index]
            "account": anchor_ref["account"],  # type: ignore[index]
            "container": anchor_ref["container"],  # type: ignore[index]
            "blob": anchor_ref["blob"],  # type: ignore[index]
        },
        "verification_at_export": {
            "ok": verification.ok,
            "chain": verification.chain.describe(),
            "anchors_checked": verification.anchors if anchors is not None else None,
            "problems": verification.problems,
        },
        "verify_offline": VERIFY_COMMAND.format(file=package_name),
        "verify_against_database": "irflow audit verify",
    }
    doc["proof"] = proof

    files: dict[str, bytes] = {
        EVENTS: _jsonl(events),
        LINKS: _jsonl(links),
        PROOF: _pretty(proof),
        "timeline.json": _pretty(doc["timeline"]),
        "timeline.csv": _timeline_csv(doc["timeline"]),
        "hhs/report-data.json": _pretty(doc["hhs"]),
        EVIDENCE_MANIFEST: _pretty(doc["evidence"]),
        PLAYBOOK_INDEX: _pretty([{k: v for k, v in p.items() if k != "content"} for p in doc["playbooks"]]),
        "README.txt": _readme(doc, package_name).encode("utf-8"),
    }
    if anchor_bytes is not None:
        files[ANCHOR] = anchor_bytes
    for item, content in doc.pop("_evidence_bytes"):
        files[item] = content
    for playbook in doc["playbooks"]:
        files[playbook["file"]] = playbook["content"].encode("utf-8")
    files["report.html"] = render_html(doc).encode("utf-8")
    from irflow.engine.report_pdf import render_pdf

    files["report.pdf"] = render_pdf(doc)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "incident_id": incident_id,
        "exported_at": exported,
        "files": {name: sha256_hex(data) for name, data in sorted(files.items())},
    }
    files[MANIFEST] = _pretty(manifest)
    return _zip(files)


def write_evidence_package(
    db: Database, incident_id: str, path: Path, *, anchors: AnchorStore | None = None
) -> PackageSummary:
    """Write the package to ``path`` (through a temporary file: never a half-written package)."""
    data = build_evidence_package(db, incident_id, anchors=anchors, package_name=path.name)
    temporary = path.with_name(f".{path.name}.partial")
    try:
        temporary.write_bytes(data)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
    proof = json.loads(zipfile.ZipFile(io.BytesIO(data)).read(PROOF))
    return PackageSummary(
        path=path,
        incident_id=incident_id,
        sha256=sha256_hex(data),
        size=len(data),
        events=proof["included_events"],
        first_seq=proof["first_seq"],
        last_seq=proof["last_seq"],
        anchored=proof["anchor"] is not None,
    )


# ------------------------------------------------------------------------------------------ the records
def _event_row(event: AuditEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "ts": format_ts(event.ts),
        "actor": event.actor,
        "incident_id": event.incident_id,
        "type": event.type,
        "payload": event.payload,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def _segment(
    session: Session, incident_id: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any] | None]:
    """The incident's events, the links between them and on to the first anchor covering the last one."""
    events = [_event_row(e) for e in AuditChain().events(session, incident_id=incident_id)]
    if not events:
        raise LookupError(f"incident {incident_id} has no audit event")
    first, last = events[0]["seq"], events[-1]["seq"]
    anchor_ref = None
    for anchor_event in session.execute(
        select(AuditEvent)
        .where(AuditEvent.type == ANCHOR_EVENT, AuditEvent.seq > last)
        .order_by(AuditEvent.seq)
    ).scalars():
        payload = json.loads(anchor_event.payload)
        if int(payload.get("anchored_seq", 0)) >= last:
            anchor_ref = payload
            break
    end = int(anchor_ref["anchored_seq"]) if anchor_ref else last
    own = {e["seq"] for e in events}
    links = [
        {"seq": seq, "prev_hash": prev_hash, "hash": digest}
        for seq, prev_hash, digest in session.execute(
            select(AuditEvent.seq, AuditEvent.prev_hash, AuditEvent.hash)
            .where(AuditEvent.seq >= first, AuditEvent.seq <= end)
            .order_by(AuditEvent.seq)
        )
        if seq not in own
    ]
    return events, links, anchor_ref


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return format_ts(value)
    return value.isoformat()


def _collect(session: Session, incident: Incident, exported: str) -> dict[str, Any]:
    events = list(AuditChain().events(session, incident_id=incident.id))
    timeline = [
        {
            "seq": e.seq,
            "ts": format_ts(e.ts),
            "actor": e.actor,
            "type": e.type,
            "payload": json.loads(e.payload),
            "hash": e.hash,
        }
        for e in events
    ]
    actors: dict[str, Counter[str]] = defaultdict(Counter)
    for e in events:
        actors[e.actor][e.type] += 1
    runs = list(
        session.execute(
            select(Run).where(Run.incident_id == incident.id).order_by(Run.created_at, Run.id)
        ).scalars()
    )
    evidence, evidence_bytes = _evidence(session, incident.id, events)
    deadlines = _deadlines(session, incident.id, exported)
    notices = [
        {
            "id": n.id,
            "template": n.template,
            "channel": n.channel,
            "recipient_fingerprint": n.recipient_fingerprint,
            "subject": redact_text(n.subject),
            "status": n.status,
            "attempts": n.attempts,
            "created_at": _iso(n.created_at),
            "sent_at": _iso(n.sent_at),
            # The body of a notice to a person names that person: the package proves which copy was
            # sent by its SHA-256; the text stays sealed in irflow's database.
            "copy_sha256": sha256_hex(n.body.encode("utf-8")),
        }
        for n in session.execute(
            select(Notification)
            .where(Notification.incident_id == incident.id)
            .order_by(Notification.created_at, Notification.id)
        ).scalars()
    ]
    facts = {
        "role": incident.role,
        "discovered_at": _iso(incident.discovered_at),
        "affected_total": incident.affected_total,
        "affected_by_state": dict(sorted((incident.affected_by_state or {}).items())),
        "breach_start": _iso(incident.breach_start),
        "breach_end": _iso(incident.breach_end),
        "law_enforcement_delay": incident.law_enforcement_delay,
        "ba_contract_days": incident.ba_contract_days,
    }
    return {
        "exported_at": exported,
        "incident": {
            "id": incident.id,
            "title": redact_text(incident.title),
            "severity": incident.severity,
            "source": incident.source,
            "external_ref": incident.external_ref,
            "status": incident.status,
            "detected_at": _iso(incident.detected_at),
            "created_at": _iso(incident.created_at),
            "updated_at": _iso(incident.updated_at),
            "risk_outcome": incident.risk_outcome,
        },
        "facts": facts,
        "risk_assessments": [
            {
                "author": r.author,
                "created_at": _iso(r.created_at),
                "outcome": r.outcome,
                "nature_and_extent": redact_text(r.nature_and_extent),
                "unauthorized_person": redact_text(r.unauthorized_person),
                "acquired_or_viewed": redact_text(r.acquired_or_viewed),
                "mitigation": redact_text(r.mitigation),
            }
            for r in session.execute(
                select(RiskAssessment)
                .where(RiskAssessment.incident_id == incident.id)
                .order_by(RiskAssessment.created_at, RiskAssessment.id)
            ).scalars()
        ],
        "runs": [_run(run) for run in runs],
        "deadlines": deadlines,
        "notices": notices,
        "evidence": evidence,
        "_evidence_bytes": evidence_bytes,
        "timeline": timeline,
        "actors": [
            {"actor": actor, "events": sum(types.values()), "types": dict(sorted(types.items()))}
            for actor, types in sorted(actors.items())
        ],
        "playbooks": _playbooks(runs),
        "hhs": _hhs(incident, deadlines, notices, runs),
    }


def _changes(document: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [
        {"field": c.get("field"), "before": redact(c.get("before")), "after": redact(c.get("after"))}
        for c in (document or {}).get("changes") or []
    ]


def _run(run: Run) -> dict[str, Any]:
    steps = sorted(run.steps, key=lambda s: (s.position, s.item_index, s.id))
    return {
        "id": run.id,
        "playbook": run.playbook_name,
        "playbook_version": run.playbook_version,
        "playbook_sha256": run.playbook_hash,
        "status": run.status,
        "dry_run": run.dry_run,
        "auto_approve": run.auto_approve,
        "actor": run.actor,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "error": redact_text(run.error) if run.error else None,
        "steps": [
            {
                "key": s.step_key,
                "item_index": s.item_index,
                "action": s.action,
                "target": s.target,
                "state": s.state,
                "attempts": s.attempts,
                "requires_approval": s.requires_approval,
                "planned_changes": _changes(s.plan),
                "applied_changes": _changes(s.result),
                "prior_state": (s.result or {}).get("prior_state") or {},
                "notes": redact(
                    [*((s.plan or {}).get("notes") or []), *((s.result or {}).get("notes") or [])]
                ),
                "error": redact_text(s.error) if s.error else None,
                "updated_at": _iso(s.updated_at),
            }
            for s in steps
        ],
    }


def _evidence(
    session: Session, incident_id: str, events: list[AuditEvent]
) -> tuple[list[dict[str, Any]], list[tuple[str, bytes]]]:
    custody: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        payload = json.loads(e.payload)
        if e.type.startswith("evidence.") and payload.get("evidence_id"):
            custody[payload["evidence_id"]].append(
                {"seq": e.seq, "ts": format_ts(e.ts), "actor": e.actor, "type": e.type, "hash": e.hash}
            )
    items, blobs = [], []
    for ev in session.execute(
        select(Evidence)
        .where(Evidence.incident_id == incident_id)
        .order_by(Evidence.captured_at, Evidence.id)
    ).scalars():
        # A capture's bytes go in whole when nothing in them needs redacting (the verifier re-hashes them);
        # otherwise a redacted copy goes in beside the chained SHA-256 of the original, which stays sealed
        # in irflow's database (a log export holds identities from Azure logs).
        path = redacted_path = None
        if ev.content is not None:
            shown = _redacted_content(ev.content)
            if shown == ev.content:
                path = f"evidence/items/{ev.id}.json"
                blobs.append((path, ev.content.encode("utf-8")))
            else:
                redacted_path = f"evidence/redacted/{ev.id}.json"
                blobs.append((redacted_path, shown.encode("utf-8")))
        items.append(
            {
                "id": ev.id,
                "kind": ev.kind,
                # A blob's name may hold PHI: the package names sources and locations by fingerprint
                # (the same keyed fingerprints as the chain of custody's evidence.captured events).
                "source_fingerprint": fingerprint(ev.source),
                "location_fingerprint": fingerprint(ev.location),
                "sha256": ev.sha256,
                "size": ev.size,
                "captured_at": _iso(ev.captured_at),
                "metadata": redact(ev.meta),
                # Blob copies stay in the immutable evidence container; their SHA-256 is in the chain.
                "bytes": path,
                "redacted_copy": redacted_path,
                "custody": custody.get(ev.id, []),
            }
        )
    return items, blobs


def _redacted_content(content: str) -> str:
    try:
        document = json.loads(content)
    except ValueError:
        return redact_text(content)
    shown = redact(document)
    return content if shown == document else json.dumps(shown, indent=2, sort_keys=True)


def _deadlines(session: Session, incident_id: str, exported: str) -> list[dict[str, Any]]:
    today = exported[:10]
    rows = []
    for d in session.execute(
        select(Deadline).where(Deadline.incident_id == incident_id).order_by(Deadline.due, Deadline.kind)
    ).scalars():
        due = d.due.isoformat()
        if d.status == "met":
            outcome = "met"
        elif d.status in ("not_required", "tolled"):
            outcome = d.status
        elif due < today:
            outcome = "missed: not recorded as met by its due date"
        else:
            outcome = "open"
        rows.append(
            {
                "kind": d.kind,
                "jurisdiction": d.jurisdiction,
                "due": due,
                "status": d.status,
                "met": outcome,
                "basis": d.basis,
                "notes": d.notes,
            }
        )
    return rows


def _playbooks(runs: list[Run]) -> list[dict[str, Any]]:
    pinned: dict[str, dict[str, Any]] = {}
    for run in runs:
        entry = pinned.setdefault(
            run.playbook_hash,
            {
                "name": run.playbook_name,
                "version": run.playbook_version,
                "sha256": run.playbook_hash,
                "file": (
                    f"playbooks/{run.playbook_name}-v{run.playbook_version}-{run.playbook_hash[:12]}.yaml"
                ),
                "runs": [],
                "content": run.playbook_content,
            },
        )
        entry["runs"].append(run.id)
    return sorted(pinned.values(), key=lambda p: p["file"])


def _hhs(
    incident: Incident, deadlines: list[dict[str, Any]], notices: list[dict[str, Any]], runs: list[Run]
) -> dict[str, Any]:
    """The fields of the HHS breach report that the incident's records answer; the rest (the covered
    entity's name, address and contact, breach type and location, safeguards, actions) are the privacy
    officer's to fill in and are listed, never guessed."""
    known: dict[str, Any] = {
        "breach.start_date": _iso(incident.breach_start),
        "breach.end_date": _iso(incident.breach_end),
        "breach.discovery_start_date": incident.discovered_at.date().isoformat()
        if incident.discovered_at
        else None,
        "breach.individuals_affected": incident.affected_total,
    }
    known = {k: v for k, v in known.items() if v is not None}
    hhs_deadline = next((d for d in deadlines if d["kind"] == "hhs"), None)
    return {
        "form": "HHS OCR breach portal (45 CFR 164.408)",
        "known_fields": known,
        "to_complete": [name for name in HHS_FIELDS if name not in known],
        "hhs_deadline": hhs_deadline,
        "containment_runs": [
            {"playbook": r.playbook_name, "status": r.status, "finished_at": _iso(r.finished_at)}
            for r in runs
            if not r.dry_run
        ],
    }


# ---------------------------------------------------------------------------------------------- output
def _pretty(value: Any) -> bytes:
    """Canonical JSON (sorted keys), indented for people, ending with a newline."""
    return (json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(canonical_json(row) + "\n" for row in rows).encode("utf-8")


def _cell(value: str) -> str:
    """A spreadsheet must not run a cell as a formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _timeline_csv(timeline: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["seq", "ts", "actor", "type", "payload", "hash"])
    for row in timeline:
        writer.writerow(
            [
                row["seq"],
                row["ts"],
                _cell(row["actor"]),
                _cell(row["type"]),
                _cell(canonical_json(row["payload"])),
                row["hash"],
            ]
        )
    return out.getvalue().encode("utf-8")


def _readme(doc: dict[str, Any], package_name: str) -> str:
    proof = doc["proof"]
    return (
        f"irflow evidence package: incident {doc['incident']['id']}\n\n"
        "report.html / report.pdf   the incident report (same content)\n"
        "timeline.csv / .json       the incident's audit events\n"
        "audit/events.jsonl         the incident's audit events with prev_hash and hash\n"
        "audit/links.jsonl          the chain links between them (other events: seq, prev_hash, hash only)\n"
        "audit/proof.json           first and last hash, the verification at export, the covering anchor\n"
        "evidence/manifest.json     every evidence item with SHA-256 and chain of custody\n"
        "playbooks/                 the playbook copies the runs executed, with their SHA-256\n"
        "hhs/report-data.json       the HHS breach report fields the records answer\n"
        "manifest.json              SHA-256 of every other file\n\n"
        f"Audit chain: events #{proof['first_seq']}..#{proof['last_seq']}, "
        f"first hash {proof['first_hash']}, last hash {proof['last_hash']}.\n\n"
        "Re-verify offline, from this file alone (no database, no network):\n\n"
        f"    {VERIFY_COMMAND.format(file=package_name)}\n\n"
        "Against the live database and its anchors: irflow audit verify\n"
    )


@lru_cache(maxsize=1)
def _environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def render_html(doc: dict[str, Any]) -> str:
    from irflow.engine.report import sections

    return _environment().get_template("report.html.j2").render(doc=doc, sections=sections(doc))


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            archive.writestr(info, files[name], compresslevel=9)
    return buffer.getvalue()
