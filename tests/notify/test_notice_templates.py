"""The notices 45 CFR 164.404(d) adds: substitute notice, urgent telephone notice, next-of-kin notice."""

from __future__ import annotations

import re

from irflow.notify.render import render
from irflow.notify.samples import sample_context


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_substitute_notice_keeps_the_posting_and_the_toll_free_line_90_days() -> None:
    # 164.404(d)(2)(ii)(A),(B): posting for 90 days; a toll-free number active at least 90 days where an
    # individual can learn whether their unsecured PHI may be included
    body = _flat(render("substitute-notice", sample_context("substitute-notice")).body)
    assert "from March 10, 2025 until at least June 8, 2025" in body
    assert "toll-free at 1-800-555-0103 to learn whether your information may have been included" in body
    assert "answered until at least June 8, 2025" in body
    assert "We discovered the breach on February 17, 2025" in body  # 164.404(c)(1)(A)


def test_substitute_notice_in_the_media() -> None:
    ctx = sample_context("substitute-notice")
    ctx["substitute"]["form"] = "media"
    body = _flat(render("substitute-notice", ctx).body)
    assert "published in the media serving the areas" in body and "posted on our web site" not in body


def test_urgent_call_announces_the_written_notice() -> None:
    # 164.404(d)(3): by telephone "in addition to" the written notice
    rendered = render("urgent-notice", sample_context("urgent-notice"))
    body = _flat(rendered.body)
    assert body.startswith("URGENT CALL SCRIPT")
    assert "You will also receive a letter with the full details by April 18, 2025" in body
    assert "Change the password of your patient portal account today." in body


def test_next_of_kin_notice_is_addressed_to_the_next_of_kin_about_the_decedent() -> None:
    # 164.404(d)(1)(ii): to the next of kin or personal representative of a deceased individual
    rendered = render("next-of-kin-notice", sample_context("next-of-kin-notice"))
    assert "Pat Placeholder" in rendered.subject
    body = _flat(rendered.body)
    assert body.startswith("Dear Alex Placeholder,")
    assert "next of kin or personal representative of Pat Placeholder" in body
