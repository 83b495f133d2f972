"""Rendering of the notice templates in ``notifications/`` (``IRFLOW_TEMPLATES_DIR``).

Convention: a template is ``<name>.txt`` (plain text) or ``<name>.html`` (HTML, autoescaped) and defines
two blocks, ``{% block subject %}`` (one line; whitespace is collapsed) and ``{% block body %}``.
``render("individual-notice", ctx)`` picks ``individual-notice.txt``, then ``individual-notice.html``;
``render("individual-notice.html", ctx)`` names one exactly. Undefined placeholders are errors
(StrictUndefined), never empty text. Templates run in Jinja2's sandbox.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, Template, TemplateError, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment

from irflow.settings import get_settings

SUFFIXES = (".txt", ".html")
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "notifications"
_BLANK_LINES = re.compile(r"\n{3,}")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*(\.txt|\.html)?$")


class RenderError(ValueError):
    """A template is missing, malformed, or needs a placeholder the context does not give."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str
    template: str  # the file rendered, e.g. ``individual-notice.txt``

    @property
    def content_type(self) -> str:
        return content_type_of(self.template)


def content_type_of(template: str) -> str:
    return "text/html" if template.endswith(".html") else "text/plain"


def template_dirs(configured: Path | None = None) -> list[Path]:
    """The configured directory (``IRFLOW_TEMPLATES_DIR``), then the one shipped beside the package."""
    first = Path(configured if configured is not None else get_settings().templates_dir)
    dirs = [first]
    if SHIPPED_DIR.is_dir() and (not first.is_dir() or SHIPPED_DIR.resolve() != first.resolve()):
        dirs.append(SHIPPED_DIR)
    return [d for d in dirs if d.is_dir()]


@lru_cache(maxsize=8)
def _environment(dirs: tuple[Path, ...]) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=FileSystemLoader([str(d) for d in dirs]),
        undefined=StrictUndefined,
        autoescape=lambda name: bool(name and name.endswith(".html")),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["longdate"] = longdate
    return env


def longdate(value: Any) -> str:
    """``2025-03-03`` (a date, datetime or ISO string) → ``March 3, 2025``; other text is kept as it is."""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value[:10])
        except ValueError:
            return value
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return f"{value:%B} {value.day}, {value.year}"
    return str(value)


def environment(templates_dir: Path | None = None) -> SandboxedEnvironment:
    return _environment(tuple(d.resolve() for d in template_dirs(templates_dir)))


def list_templates(templates_dir: Path | None = None) -> list[str]:
    """Every renderable template file name (``_``-prefixed partials excluded), sorted."""
    names: set[str] = set()
    for directory in template_dirs(templates_dir):
        names.update(
            p.name for p in directory.iterdir() if p.suffix in SUFFIXES and not p.name.startswith("_")
        )
    return sorted(names)


def resolve(name: str, templates_dir: Path | None = None) -> str:
    """The template file a name refers to (``individual-notice`` → ``individual-notice.txt``)."""
    if not _NAME.match(name):
        raise RenderError(f"invalid template name {name!r}")
    available = list_templates(templates_dir)
    candidates = [name] if name.endswith(SUFFIXES) else [name + suffix for suffix in SUFFIXES]
    for candidate in candidates:
        if candidate in available:
            return candidate
    known = ", ".join(available) or "none"
    raise RenderError(f"no notification template named {name!r} (known: {known})")


def render(template_name: str, context: Mapping[str, Any], *, templates_dir: Path | None = None) -> Rendered:
    """Render a template's ``subject`` and ``body`` blocks with *context*."""
    filename = resolve(template_name, templates_dir)
    try:
        template = environment(templates_dir).get_template(filename)
        subject = _block(template, "subject", context)
        body = _block(template, "body", context)
    except TemplateNotFound as exc:
        raise RenderError(f"template {filename!r} includes a missing template: {exc.name}") from None
    except TemplateError as exc:
        raise RenderError(f"cannot render {filename!r}: {exc}") from None
    if filename.endswith(".html"):
        subject = html.unescape(subject)
    subject = " ".join(subject.split())
    if not subject:
        raise RenderError(f"template {filename!r} renders an empty subject")
    body = _BLANK_LINES.sub("\n\n", body.strip()) + "\n"
    return Rendered(subject=subject, body=body, template=filename)


def _block(template: Template, name: str, context: Mapping[str, Any]) -> str:
    if name not in template.blocks:
        raise RenderError(f"template {template.name!r} has no {{% block {name} %}}")
    ctx = template.new_context(dict(context))
    return "".join(template.blocks[name](ctx))
