"""The incident report's content, once: sections of paragraphs, tables and preformatted blocks that the HTML
template (``report_templates/report.html.j2``) and the PDF (:mod:`irflow.engine.report_pdf`) both render,
so the two say the same thing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Block:
    title: str
    text: str


@dataclass
class Section:
    id: str
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def sections(doc: dict[str, Any]) -> list[Section]:
    incident, facts, proof = doc["incident"], doc["facts"], doc["proof"]
    out = [
        Section(
            "facts",
            "Incident and facts",
            tables=[
                Table(
                    ["field", "value"],
                    [[k.replace("_", " "), _text(v)] for k, v in incident.items()]
                    + [[k.replace("_", " "), _text(v)] for k, v in facts.items()],
                )
            ],
        )
    ]
    risk = Section("risk", "Risk assessment (45 CFR 164.402(2))")
    if not doc["risk_assessments"]:
        risk.paragraphs.append("No risk assessment recorded: a breach is presumed (45 CFR 164.402(2)).")
    for r in doc["risk_assessments"]:
        risk.tables.append(
            Table(
                ["factor", "finding"],
                [
                    ["nature and extent of PHI", r["nature_and_extent"]],
                    ["unauthorized person", r["unauthorized_person"]],
                    ["acquired or viewed", r["acquired_or_viewed"]],
                    ["mitigation", r["mitigation"]],
                    ["outcome", r["outcome"]],
                ],
                caption=f"by {r['author']} at {r['created_at']}",
            )
        )
    out.append(risk)

    actions = Section("actions", "Actions taken (every step, with its state before and after)")
    for run in doc["runs"]:
        rows = []
        for s in run["steps"]:
            changes = s["applied_changes"] or s["planned_changes"]
            change_text = (
                "; ".join(f"{c['field']}: {_text(c['before'])} -> {_text(c['after'])}" for c in changes)
                or "no change"
            )
            rows.append(
                [
                    s["key"] if s["item_index"] < 0 else f"{s['key']}[{s['item_index']}]",
                    s["action"],
                    s["target"] or "—",
                    s["state"],
                    str(s["attempts"]),
                    change_text + (f" (error: {s['error']})" if s["error"] else ""),
                ]
            )
        actions.tables.append(
            Table(
                ["step", "action", "target", "state", "attempts", "before -> after"],
                rows,
                caption=(
                    f"run {run['id']}: {run['playbook']} v{run['playbook_version']} "
                    f"(sha256 {run['playbook_sha256']}){' dry run' if run['dry_run'] else ''}, "
                    f"{run['status']}, started by {run['actor']} at {run['created_at']}, "
                    f"finished {run['finished_at'] or '—'}"
                ),
            )
        )
    if not doc["runs"]:
        actions.paragraphs.append("No playbook run.")
    out.append(actions)

    out.append(
        Section(
            "deadlines",
            "Notification deadlines and whether each was met (as of the export)",
            tables=[
                Table(
                    ["obligation", "jurisdiction", "due", "met", "basis"],
                    [
                        [d["kind"], d["jurisdiction"], d["due"], d["met"], d["basis"]]
                        for d in doc["deadlines"]
                    ],
                )
            ],
            paragraphs=[] if doc["deadlines"] else ["No deadline computed (facts not recorded)."],
        )
    )
    notices = Section("notices", "Notices and notifications, with their copies")
    notices.tables.append(
        Table(
            ["template", "channel", "recipient (fingerprint)", "status", "created", "sent"],
            [
                [
                    n["template"],
                    n["channel"],
                    n["recipient_fingerprint"],
                    n["status"],
                    n["created_at"],
                    _text(n["sent_at"]),
                ]
                for n in doc["notices"]
            ],
        )
    )
    for n in doc["notices"]:
        notices.blocks.append(
            Block(f"copy: {n['subject']} ({n['id']})", f"SHA-256 of the copy as stored: {n['copy_sha256']}")
        )
    out.append(notices)

    out.append(
        Section(
            "evidence",
            "Forensic evidence and chain of custody",
            tables=[
                Table(
                    [
                        "id",
                        "kind",
                        "source (fingerprint)",
                        "sha256",
                        "size",
                        "captured",
                        "custody (audit events)",
                    ],
                    [
                        [
                            e["id"],
                            e["kind"],
                            e["source_fingerprint"],
                            e["sha256"],
                            str(e["size"]),
                            e["captured_at"],
                            ", ".join(f"#{c['seq']} {c['type']} by {c['actor']}" for c in e["custody"]),
                        ]
                        for e in doc["evidence"]
                    ],
                )
            ],
        )
    )
    out.append(
        Section(
            "who",
            "Who did what",
            tables=[
                Table(
                    ["actor", "events", "event types"],
                    [
                        [a["actor"], str(a["events"]), ", ".join(f"{t} x{n}" for t, n in a["types"].items())]
                        for a in doc["actors"]
                    ],
                )
            ],
        )
    )
    out.append(
        Section(
            "timeline",
            "Timeline (the incident's audit events)",
            tables=[
                Table(
                    ["seq", "time (UTC)", "actor", "event", "details"],
                    [
                        [str(t["seq"]), t["ts"], t["actor"], t["type"], _text(t["payload"])]
                        for t in doc["timeline"]
                    ],
                )
            ],
        )
    )
    anchor = proof["anchor"]
    verification = proof["verification_at_export"]
    out.append(
        Section(
            "proof",
            "Audit chain proof",
            paragraphs=[
                f"Events #{proof['first_seq']} to #{proof['last_seq']}: {proof['included_events']} of this "
                f"incident included whole, {proof['linked_events']} others as links.",
                f"First hash {proof['first_hash']}; last hash {proof['last_hash']}.",
                (
                    f"Anchored: event #{anchor['seq']} in blob {anchor['blob']} of container "
                    f"{anchor['container']} (locked immutability policy)."
                    if anchor
                    else "Not yet covered by an anchor: re-check with `irflow audit verify` after the next."
                ),
                f"Verification at export: {'passed' if verification['ok'] else 'FAILED'} — "
                + verification["chain"]
                + ("; " + "; ".join(verification["problems"]) if verification["problems"] else ""),
                f"Re-verify offline from this package alone: {proof['verify_offline']}",
            ],
        )
    )
    hhs = doc["hhs"]
    out.append(
        Section(
            "hhs",
            "HHS breach report data",
            tables=[Table(["field", "value"], [[k, _text(v)] for k, v in hhs["known_fields"].items()])],
            paragraphs=[
                f"To complete on the {hhs['form']}: " + ", ".join(hhs["to_complete"]) + ".",
            ],
        )
    )
    return out
