"""``{{ … }}`` expressions in playbook params, rendered with Jinja2 keeping native types.

A string that is one expression (``"{{ inputs.accounts }}"``) becomes the value itself (a list stays a list);
anything else renders to text. Undefined names are errors, never empty strings.
"""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined
from jinja2.nativetypes import NativeEnvironment
from jinja2.sandbox import SandboxedEnvironment


class _NativeSandbox(SandboxedEnvironment, NativeEnvironment):
    """Native types, and no access to Python internals from a playbook."""


_ENV = _NativeSandbox(undefined=StrictUndefined, autoescape=False)


class TemplateProblem(ValueError):
    pass


def render(value: Any, context: dict[str, Any]) -> Any:
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return value
        try:
            rendered = _ENV.from_string(value).render(**context)
            if isinstance(rendered, Undefined):
                str(rendered)  # a lone undefined expression comes back unrendered; this raises its error
        except TemplateError as exc:
            raise TemplateProblem(f"cannot render {value!r}: {exc}") from None
        return rendered
    if isinstance(value, dict):
        return {key: render(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, context) for item in value]
    return value
