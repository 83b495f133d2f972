"""The PDF renderer on its own: the same sections as the HTML, deterministic, and usable without a Unicode
font (the core font's fallback replaces what it cannot draw instead of failing)."""

from __future__ import annotations

import re
import zlib
from typing import Any

import pytest
from markupsafe import escape

from irflow.engine import report_pdf
from irflow.engine.export import render_html
from irflow.engine.report import sections


def _doc() -> dict[str, Any]:
    return {
        "exported_at": "2026-12-01T12:00:00.000000Z",
        "incident": {"id": "i-1", "title": "Exfiltration — Zürich → 東京", "status": "contained"},
        "facts": {"affected_total": 3, "affected_by_state": {"TX": 3}},
        "risk_assessments": [],
        "runs": [],
        "deadlines": [
            {
                "kind": "individuals",
                "jurisdiction": "US",
                "due": "2027-01-29",
                "met": "open",
                "basis": "45 CFR 164.404(b)",
            }
        ],
        "notices": [],
        "evidence": [],
        "actors": [{"actor": "cli:a", "events": 1, "types": {"incident.opened": 1}}],
        "timeline": [
            {
                "seq": 1,
                "ts": "2026-12-01T11:00:00.000000Z",
                "actor": "cli:a",
                "type": "incident.opened",
                "payload": {},
            }
        ],
        "proof": {
            "first_seq": 1,
            "last_seq": 1,
            "first_hash": "a" * 64,
            "last_hash": "a" * 64,
            "included_events": 1,
            "linked_events": 0,
            "anchor": None,
            "verification_at_export": {
                "ok": True,
                "chain": "audit chain intact: 1 events, head #1",
                "problems": [],
            },
            "verify_offline": "irflow audit verify-package FILE.zip",
        },
        "hhs": {
            "form": "HHS OCR breach portal",
            "known_fields": {"breach.individuals_affected": 3},
            "to_complete": ["covered_entity.name"],
        },
    }


def test_html_and_pdf_render_the_same_sections() -> None:
    doc = _doc()
    titles = [section.title for section in sections(doc)]
    html = render_html(doc)
    assert all(escape(title) in html for title in titles)
    assert report_pdf.render_pdf(doc) == report_pdf.render_pdf(doc)


def test_without_a_unicode_font_the_core_font_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_pdf, "FONT_DIRS", ())
    data = report_pdf.render_pdf(_doc())
    assert data.startswith(b"%PDF-") and b"Helvetica" in data
    text = b"".join(
        zlib.decompress(m.group(1))
        for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S)
        if m.group(1)[:1] == b"x"
    )
    assert b"Audit chain proof" in text and "Zürich ? ??".encode("latin-1") in text  # the rest becomes "?"
