"""Templates: each renders from its placeholder context and keeps every required content element."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from irflow.notify.render import RenderError, list_templates, longdate, render
from irflow.notify.samples import REQUIRED_SECTIONS, sample_context, sample_templates

NOTICE_TEMPLATES = ["individual-notice.txt", "individual-notice.html", "media-notice.txt"]


def _text(body: str) -> str:
    """Tags stripped and whitespace collapsed, so text and HTML bodies are checked alike."""
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


def _heading(body: str, heading: str) -> int:
    """Where a heading line (plain text, or an HTML ``<h2>``) starts; fails when it is missing."""
    match = re.search(rf"(?im)^[ \t]*(?:<h2[^>]*>)?{re.escape(heading)}(?:</h2>)?[ \t]*$", body)
    assert match, f"missing heading {heading!r}"
    return match.start()


def test_every_template_has_a_sample_and_renders() -> None:
    names = list_templates()
    assert {n.split(".")[0] for n in names} == set(sample_templates())
    for name in names:
        rendered = render(name, sample_context(name))
        assert rendered.subject and "\n" not in rendered.subject
        assert rendered.body.strip()
        for heading in REQUIRED_SECTIONS[name.split(".")[0]]:
            if heading in ("ESCALATION", "DEADLINE REMINDER"):
                assert rendered.body.startswith(heading)
            else:
                _heading(rendered.body, heading)


@pytest.mark.parametrize("name", NOTICE_TEMPLATES)
def test_notice_carries_every_element_of_164_404_c(name: str) -> None:
    ctx = sample_context(name)
    rendered = render(name, ctx)
    body = rendered.body
    headings = REQUIRED_SECTIONS[name.split(".")[0]]
    positions = [_heading(body, h) for h in headings]
    assert positions == sorted(positions), "the five sections keep their order"

    def section(index: int) -> str:
        end = positions[index + 1] if index + 1 < len(positions) else len(body)
        return _text(body[positions[index] : end])

    # (A) what happened, with the date of the breach and the date of discovery
    a = section(0)
    assert ctx["breach"]["description"].split(".")[0] in a
    assert "February 10, 2025" in a and "February 17, 2025" in a
    assert re.search(r"discovered the breach on February 17, 2025", a)
    # (B) the types of unsecured PHI
    b = section(1)
    assert all(kind in b for kind in ctx["phi_types"])
    # (C) steps individuals should take to protect themselves
    c = section(2)
    assert all(step.split(";")[0] in c for step in ctx["protective_steps"])
    # (D) investigating, mitigating harm, protecting against further breaches
    d = section(3)
    for key, label in (
        ("investigation", "investigate"),
        ("mitigation", "harm"),
        ("prevention", "further breaches"),
    ):
        assert label in d and ctx["response"][key] in d
    # (E) contact procedures: toll-free number, and e-mail, web site and postal address
    e = section(4)
    entity = ctx["entity"]
    assert "toll-free" in e and entity["toll_free_phone"] in e
    for key in ("email", "website", "postal_address"):
        assert entity[key] in e


def test_unknown_breach_date_is_said_plainly() -> None:
    ctx = sample_context("individual-notice")
    ctx["breach"]["date"] = None
    body = render("individual-notice", ctx).body
    assert "We do not yet know the exact date of the breach." in body
    assert "We discovered the breach on February 17, 2025." in body


def test_ba_to_ce_notice_identifies_each_individual_and_the_164_404_c_information() -> None:
    ctx = sample_context("ba-to-ce-notice")
    body = render("ba-to-ce-notice", ctx).body
    for person in ctx["individuals"]:
        assert person["identifier"] in body and person["name"] in body
    assert "Individuals affected: 2" in body
    assert "February 10, 2025" in body and "Date of discovery: February 17, 2025" in body
    assert all(kind in body for kind in ctx["phi_types"])
    assert all(ctx["response"][k] in body for k in ("investigation", "mitigation", "prevention"))
    assert ctx["business_associate"]["contact_phone"] in body
    ctx.update(identification_complete=False, pending_information=["Remaining identities"])
    partial = render("ba-to-ce-notice", ctx).body
    assert "Identification is not yet complete" in partial and "Remaining identities" in partial


def test_media_notice_names_the_jurisdiction_and_count() -> None:
    body = render("media-notice", sample_context("media-notice")).body
    assert "1,234 residents" in body and "the State of Example" in body
    assert "Media contact: Media Relations" in body


@pytest.mark.parametrize(
    ("days", "phrase"),
    [(7, "Due in 7 days"), (1, "Due in 1 day:"), (0, "DUE TODAY"), (-2, "OVERDUE by 2 days")],
)
def test_deadline_reminder_subject(days: int, phrase: str) -> None:
    ctx = sample_context("deadline-reminder")
    ctx["days_left"] = days
    rendered = render("deadline-reminder", ctx)
    assert phrase in rendered.subject
    assert "45 CFR 164.404(b)" in rendered.body and "April 18, 2025" in rendered.body


@pytest.mark.parametrize("name", list_templates())
def test_strict_undefined_refuses_a_missing_placeholder(name: str) -> None:
    ctx = sample_context(name)
    first = next(iter(ctx))
    del ctx[first]
    if first == "recipient_name":  # optional: the greeting falls back to "Patient"
        assert "Dear Patient" in render(name, ctx).body
        del ctx["entity"]
    with pytest.raises(RenderError, match="undefined"):
        render(name, ctx)


def test_missing_nested_placeholder_is_refused() -> None:
    ctx = sample_context("individual-notice")
    del ctx["entity"]["toll_free_phone"]
    with pytest.raises(RenderError, match="toll_free_phone"):
        render("individual-notice", ctx)


def test_html_is_autoescaped_and_text_is_not() -> None:
    ctx = sample_context("individual-notice")
    ctx["recipient_name"] = "<script>alert(1)</script> & Co"
    ctx["entity"]["name"] = "A & B Clinic"
    html = render("individual-notice.html", ctx)
    assert "<script>" not in html.body and "&lt;script&gt;" in html.body
    assert html.subject.endswith("A & B Clinic")  # the subject header is plain text
    assert html.content_type == "text/html"
    text = render("individual-notice", ctx)
    assert text.template == "individual-notice.txt" and "<script>" in text.body


def test_unknown_or_unsafe_template_names_are_refused() -> None:
    with pytest.raises(RenderError, match="no notification template"):
        render("no-such-notice", {})
    for name in ("../etc/passwd", "_contact.txt", "Individual-Notice", "x/y"):
        with pytest.raises(RenderError):
            render(name, {})


def test_configured_directory_overrides_the_shipped_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "internal-escalation.txt").write_text(
        "{% block subject %}Custom {{ incident.title }}{% endblock %}{% block body %}Body{% endblock %}"
    )
    (tmp_path / "broken.txt").write_text("{% block body %}no subject{% endblock %}")
    monkeypatch.setenv("IRFLOW_TEMPLATES_DIR", str(tmp_path))
    from irflow.settings import reset_settings_cache

    reset_settings_cache()
    assert render("internal-escalation", {"incident": {"title": "T"}}).subject == "Custom T"
    assert (
        render("individual-notice", sample_context("individual-notice")).template == "individual-notice.txt"
    )
    with pytest.raises(RenderError, match="block subject"):
        render("broken", {})


def test_longdate() -> None:
    assert longdate("2025-03-03") == "March 3, 2025"
    assert longdate("2025-03-03T10:00:00Z") == "March 3, 2025"
    assert longdate("soon") == "soon"
