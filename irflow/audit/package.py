"""The evidence package's layout and its standalone verifier (no database, no network).

Layout (every path is fixed; ``manifest.json`` lists the SHA-256 of every other file):

- ``audit/events.jsonl`` — the incident's audit events, complete (content, ``prev_hash``, ``hash``).
- ``audit/links.jsonl`` — the other events of the global chain between the first and the last included
  event, as links only (``seq``, ``prev_hash``, ``hash``): their content belongs to other incidents or to
  the system and stays out of this package.
- ``audit/proof.json`` — first and last seq and hash, the verification result at export, the anchor that
  covers the segment (when one exists) and the command that re-checks the package.
- ``audit/anchor.json`` — optional: the anchor blob's bytes as read from the WORM container at export.
- ``evidence/manifest.json`` + ``evidence/items/<id>.json`` — every evidence item with SHA-256 and custody.
- ``playbooks/index.json`` + ``playbooks/*.yaml`` — the pinned playbook copies the runs executed.

What the verifier proves: every file matches the package manifest; every included event's hash recomputes
from its content; consecutive events and links are chained (``prev_hash`` = the previous ``hash``) without a
gap from the first to the last seq; the proof's first and last hashes are those events'; an included anchor
names a seq of the segment with that event's hash; every evidence item whose bytes are included hashes to
its manifest SHA-256 and its custody event is in the chain; every playbook copy hashes to its recorded hash.
What it cannot prove alone: the content of link-only events (their hashes are taken as given) — the anchor,
written under a locked immutability policy outside the database, is what fixes the segment's last hash;
``irflow audit verify`` against the database re-checks everything in full.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from irflow.audit.chain import event_hash

FORMAT = "irflow-evidence-package"
VERSION = 1
MANIFEST = "manifest.json"
EVENTS = "audit/events.jsonl"
LINKS = "audit/links.jsonl"
PROOF = "audit/proof.json"
ANCHOR = "audit/anchor.json"
EVIDENCE_MANIFEST = "evidence/manifest.json"
PLAYBOOK_INDEX = "playbooks/index.json"
VERIFY_COMMAND = "irflow audit verify-package {file}"
MAX_MEMBER_BYTES = 512 * 1024 * 1024  # a package member larger than this is refused, not read


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class PackageReport:
    checks: int = 0
    problems: list[str] = field(default_factory=list)
    incident_id: str | None = None
    first_seq: int | None = None
    last_seq: int | None = None
    anchored: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, problem: str) -> None:
        self.problems.append(problem)

    def describe(self) -> list[str]:
        if not self.ok:
            return [f"evidence package FAILED ({len(self.problems)} problems):", *self.problems]
        anchor = "anchored outside the database" if self.anchored else "not covered by an anchor"
        return [
            f"evidence package intact: {self.checks} hashes checked for incident {self.incident_id}; "
            f"audit chain #{self.first_seq}..#{self.last_seq} links and recomputes ({anchor})"
        ]


class PackageError(ValueError):
    """The file is not a readable evidence package."""


def _read_members(source: Path | bytes) -> dict[str, bytes]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (OSError, zipfile.BadZipFile) as exc:
        raise PackageError(f"not a zip file: {exc}") from None
    members: dict[str, bytes] = {}
    with archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            if info.filename in members:
                raise PackageError(f"{info.filename} appears twice in the archive")
            if info.file_size > MAX_MEMBER_BYTES:
                raise PackageError(f"{info.filename} is larger than {MAX_MEMBER_BYTES} bytes")
            try:
                members[info.filename] = archive.read(info)
            except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
                raise PackageError(f"{info.filename} cannot be read: {exc}") from None
    return members


def _json(members: dict[str, bytes], name: str) -> Any:
    if name not in members:
        raise PackageError(f"{name} is missing")
    try:
        return json.loads(members[name])
    except ValueError as exc:
        raise PackageError(f"{name} is not JSON: {exc}") from None


def _jsonl(members: dict[str, bytes], name: str) -> list[dict[str, Any]]:
    if name not in members:
        raise PackageError(f"{name} is missing")
    rows = []
    for number, line in enumerate(members[name].decode("utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise PackageError(f"{name}:{number} is not JSON: {exc}") from None
    return rows


def verify_package(source: Path | bytes) -> PackageReport:
    """Re-check every hash in the package. Raises :class:`PackageError` when it cannot be read at all."""
    members = _read_members(source)
    report = PackageReport()
    manifest = _json(members, MANIFEST)
    kind = (manifest.get("format"), manifest.get("version")) if isinstance(manifest, dict) else None
    if kind != (FORMAT, VERSION):
        raise PackageError(f"not an {FORMAT} version {VERSION} (manifest.json says otherwise)")
    try:
        report.incident_id = manifest.get("incident_id")
        _check_files(members, manifest, report)
        _check_chain(members, report)
        _check_evidence(members, report)
        _check_playbooks(members, report)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PackageError(f"a record of the package is malformed: {exc!r}") from None
    return report


def _check_files(members: dict[str, bytes], manifest: dict[str, Any], report: PackageReport) -> None:
    listed: dict[str, str] = manifest.get("files") or {}
    for name in sorted(set(members) - {MANIFEST} - set(listed)):
        report.fail(f"{name} is in the archive but not in manifest.json")
    for name, digest in sorted(listed.items()):
        if name not in members:
            report.fail(f"{name} is listed in manifest.json but missing from the archive")
            continue
        report.checks += 1
        if sha256_hex(members[name]) != digest:
            report.fail(f"{name}: SHA-256 does not match manifest.json (altered after export)")


def _check_chain(members: dict[str, bytes], report: PackageReport) -> None:
    events = _jsonl(members, EVENTS)
    links = _jsonl(members, LINKS)
    proof = _json(members, PROOF)
    if not events:
        report.fail(f"{EVENTS} holds no event")
        return
    for event in events:
        if event.get("incident_id") != report.incident_id:
            report.fail(f"event #{event['seq']} belongs to incident {event.get('incident_id')}, not this one")
    segment = sorted([*events, *links], key=lambda row: int(row["seq"]))
    full = {int(e["seq"]) for e in events}
    previous: dict[str, Any] | None = None
    for row in segment:
        seq = int(row["seq"])
        if previous is not None:
            if seq == int(previous["seq"]):
                report.fail(f"event #{seq} appears twice")
            elif seq != int(previous["seq"]) + 1:
                report.fail(f"events #{int(previous['seq']) + 1}..#{seq - 1} are missing from the segment")
            elif row["prev_hash"] != previous["hash"]:
                report.fail(
                    f"event #{seq}: prev_hash is not the hash of event #{previous['seq']} (chain broken)"
                )
        if seq in full:
            recomputed = event_hash(
                prev_hash=row["prev_hash"],
                seq=seq,
                ts=datetime.fromisoformat(row["ts"].replace("Z", "+00:00")),
                actor=row["actor"],
                incident_id=row["incident_id"],
                type=row["type"],
                payload=row["payload"],
            )
            report.checks += 1
            if recomputed != row["hash"]:
                report.fail(f"event #{seq}: content does not match its hash (edited)")
        previous = row
    first, last = segment[0], segment[-1]
    report.first_seq, report.last_seq = int(first["seq"]), int(last["seq"])
    for end, row in (("first", first), ("last", last)):
        report.checks += 1
        if proof.get(f"{end}_seq") != int(row["seq"]) or proof.get(f"{end}_hash") != row["hash"]:
            report.fail(f"audit/proof.json: the {end} seq/hash is not that of the segment's {end} event")
    by_seq = {int(row["seq"]): row for row in segment}
    anchor_doc = proof.get("anchor")
    if anchor_doc is not None and ANCHOR not in members:
        report.fail(f"audit/proof.json names an anchor but {ANCHOR} is missing")
    if ANCHOR in members:
        anchor = _json(members, ANCHOR)
        report.checks += 1
        row = by_seq.get(int(anchor["seq"]))
        if row is None or row["hash"] != anchor["hash"]:
            report.fail(f"{ANCHOR}: the anchored event #{anchor['seq']} is not in the segment with that hash")
        elif anchor_doc is None or anchor_doc.get("seq") != anchor["seq"]:
            report.fail(f"audit/proof.json does not describe the anchor in {ANCHOR}")
        else:
            report.anchored = True


def _check_evidence(members: dict[str, bytes], report: PackageReport) -> None:
    items = _json(members, EVIDENCE_MANIFEST)
    chained = {
        (json.loads(e["payload"]).get("evidence_id"), json.loads(e["payload"]).get("sha256"))
        for e in _jsonl(members, EVENTS)
        if e["type"] == "evidence.captured"
    }
    for item in items:
        report.checks += 1
        if (item["id"], item["sha256"]) not in chained:
            report.fail(f"evidence {item['id']}: no evidence.captured event in the chain with its SHA-256")
        path = item.get("bytes")
        if path is None:
            continue
        if path not in members:
            report.fail(f"evidence {item['id']}: {path} is missing")
            continue
        report.checks += 1
        if sha256_hex(members[path]) != item["sha256"] or len(members[path]) != item["size"]:
            report.fail(f"evidence {item['id']}: {path} does not match its SHA-256 and size")


def _check_playbooks(members: dict[str, bytes], report: PackageReport) -> None:
    for entry in _json(members, PLAYBOOK_INDEX):
        report.checks += 1
        data = members.get(entry["file"])
        if data is None:
            report.fail(f"playbook {entry['file']} is missing")
        elif sha256_hex(data) != entry["sha256"]:
            report.fail(f"playbook {entry['file']} does not match the hash the runs pinned")
