"""The package verifier on archives that are not (valid) evidence packages: a clear PackageError, never a
traceback from deep inside."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from irflow.audit.package import PackageError, verify_package


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


MANIFEST = {"format": "irflow-evidence-package", "version": 1, "incident_id": "i", "files": {}}


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({}, "manifest.json is missing"),
        ({"manifest.json": b"[1]"}, "not an irflow-evidence-package"),
        ({"manifest.json": b"{nope"}, "not JSON"),
        ({"manifest.json": json.dumps({**MANIFEST, "version": 9}).encode()}, "version 1"),
        ({"manifest.json": json.dumps({**MANIFEST, "files": []}).encode()}, "malformed"),
        ({"manifest.json": json.dumps(MANIFEST).encode()}, "audit/events.jsonl is missing"),
        (
            {
                "manifest.json": json.dumps(MANIFEST).encode(),
                "audit/events.jsonl": b'{"seq": 1}\n',
                "audit/links.jsonl": b"",
                "audit/proof.json": b"{}",
            },
            "malformed",
        ),
    ],
)
def test_unreadable_packages_are_refused_with_a_reason(members: dict[str, bytes], message: str) -> None:
    with pytest.raises(PackageError, match=message):
        verify_package(_zip(members))
