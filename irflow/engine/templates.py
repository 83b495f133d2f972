"""``{{ … }}`` expressions in playbook params, rendered with Jinja2 keeping native types.

A string that is one expression (``"{{ inputs.accounts }}"``) becomes the value itself (a list stays a list);
anything else renders to text. Undefined names are errors, never empty strings.

Playbooks are untrusted input, so rendering is bounded as well as sandboxed:

- only ``{{ expressions }}`` (no ``{% statements %}``: no loops whose iterations multiply) and no ``~``;
- every value a template builds (operators, filters, calls, the output) holds at most ``MAX_VALUE_SIZE``
  characters and list items, checked *before* the work where an operator or filter could amplify
  (``'B' * 200000000``, ``join``, ``replace``), and integers stay under ``MAX_INT_BITS`` bits;
- ``range`` gives at most ``MAX_RANGE`` numbers; only filters and methods that cannot amplify are offered;
- any exception while compiling or rendering becomes one :class:`TemplateProblem` whose message names the
  template and the cause but never an input value (inputs may hold PHI or secrets).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from itertools import chain
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, Undefined, meta, nodes
from jinja2.filters import FILTERS
from jinja2.nativetypes import NativeEnvironment, NativeTemplate, native_concat
from jinja2.sandbox import ImmutableSandboxedEnvironment

from irflow.redaction import redact_text

MAX_VALUE_SIZE = 1_000_000
MAX_RANGE = 10_000
MAX_INT_BITS = 4096
MAX_SOURCE_CHARS = 16_384

TEMPLATE_NAMES = ("inputs", "steps", "incident", "item")

# Filters that take a value to one of linear size; ``join`` and ``replace`` are checked before they run.
_FILTERS = [
    "abs",
    "attr",
    "capitalize",
    "count",
    "d",
    "default",
    "dictsort",
    "first",
    "float",
    "int",
    "items",
    "join",
    "last",
    "length",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "select",
    "selectattr",
    "sort",
    "string",
    "sum",
    "title",
    "tojson",
    "trim",
    "unique",
    "upper",
]
_METHODS: dict[type, frozenset[str]] = {
    str: frozenset(
        [
            "lower",
            "upper",
            "strip",
            "lstrip",
            "rstrip",
            "split",
            "rsplit",
            "partition",
            "rpartition",
            "splitlines",
            "startswith",
            "endswith",
            "title",
            "capitalize",
            "casefold",
            "count",
            "find",
            "rfind",
            "index",
            "rindex",
            "removeprefix",
            "removesuffix",
            "isdigit",
            "isalpha",
            "isalnum",
            "isspace",
            "islower",
            "isupper",
        ]
    ),
    dict: frozenset({"get", "keys", "values", "items"}),
    list: frozenset({"index", "count"}),
    tuple: frozenset({"index", "count"}),
}
_STATEMENTS_REFUSED = "only {{ expressions }} are allowed in playbook params, not {% statements %}"


class TemplateProblem(ValueError):
    """A template that cannot be compiled or rendered; the message is safe to show, log and audit."""


class TemplateLimit(TemplateProblem):
    """A template that would exceed a size or iteration limit."""


def size_of(value: Any, budget: int = MAX_VALUE_SIZE) -> int:
    """Characters plus list items in ``value``, counting shared parts at every use; stops past ``budget``."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item) + 1
        elif isinstance(item, dict):
            total += 1
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += 1
            stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            total += item.bit_length() // 3 + 1
        else:
            total += 1
        if total > budget:
            return total
    return total


def _limit(what: str, size: int) -> TemplateLimit:
    return TemplateLimit(f"{what} would hold more than {MAX_VALUE_SIZE:,} characters or items ({size:,})")


def _check(value: Any, what: str = "a value") -> Any:
    size = size_of(value)
    if size > MAX_VALUE_SIZE:
        raise _limit(what, size)
    return value


def _materialise(value: Any) -> Any:
    """An iterator (``map``, ``select`` …) drawn into a list, stopping once it exceeds the size limit."""
    if not isinstance(value, Iterator):
        return value
    items: list[Any] = []
    size = 1
    for item in value:
        size += size_of(item, MAX_VALUE_SIZE - size + 1)
        if size > MAX_VALUE_SIZE:
            raise _limit("a list", size)
        items.append(item)
    return items


def _int_bits(value: Any) -> int:
    return value.bit_length() if isinstance(value, int) else 0


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise TemplateLimit(f"range() of {len(numbers):,} numbers (at most {MAX_RANGE:,})")
    return numbers


def _guard_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        args = tuple(_materialise(arg) for arg in args)
        for arg in chain(args, kwargs.values()):
            _check(arg, f"the input of |{name}")
        if name == "join":
            _precheck_join(args, kwargs)
        elif name == "replace":
            _precheck_replace(args)
        return _check(function(*args, **kwargs), f"the result of |{name}")

    guarded.__name__ = function.__name__
    for marker in ("jinja_pass_arg",):
        if hasattr(function, marker):
            setattr(guarded, marker, getattr(function, marker))
    return guarded


def _precheck_join(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    # args: (context or eval ctx, value, separator?, attribute?)
    values = next((a for a in args if isinstance(a, list | tuple | set | dict | str)), [])
    separator = kwargs.get("d", args[2] if len(args) > 2 and isinstance(args[2], str) else "")
    count = len(values)
    size = size_of(values) + len(str(separator)) * max(count - 1, 0)
    if size > MAX_VALUE_SIZE:
        raise _limit("the result of |join", size)


def _precheck_replace(args: tuple[Any, ...]) -> None:
    # args: (eval ctx, text, old, new, count?)
    if len(args) < 4:
        return
    text, old, new = (str(a) for a in args[1:4])
    occurrences = len(text) + 1 if old == "" else text.count(old)
    if len(args) > 4 and isinstance(args[4], int) and args[4] >= 0:
        occurrences = min(occurrences, args[4])
    size = len(text) + occurrences * max(len(new) - len(old), 0)
    if size > MAX_VALUE_SIZE:
        raise _limit("the result of |replace", size)


def _bounded_concat(values: Iterable[Any]) -> Any:
    items: list[Any] = []
    size = 0
    for value in values:
        size += size_of(value, MAX_VALUE_SIZE - size + 1)
        if size > MAX_VALUE_SIZE:
            raise _limit("the rendered text", size)
        items.append(value)
    return native_concat(items)


class _BoundedSandbox(ImmutableSandboxedEnvironment, NativeEnvironment):
    """Native types, no access to Python internals, and no way to build an oversized value."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    concat = staticmethod(_bounded_concat)  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False)
        self.globals = {"range": _bounded_range, "dict": dict}
        self.filters = {name: _guard_filter(name, FILTERS[name]) for name in _FILTERS}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            raise TemplateProblem("string formatting with % is not allowed in playbook params")
        if operator == "*":
            self._precheck_repeat(left, right)
        elif operator == "**":
            self._precheck_power(left, right)
        elif operator == "+":
            size = size_of(left) + size_of(right)
            if size > MAX_VALUE_SIZE:
                raise _limit("the result of +", size)
        result = self.binop_table[operator](left, right)
        if _int_bits(result) > MAX_INT_BITS:
            raise TemplateLimit(f"a number larger than 2^{MAX_INT_BITS}")
        return result

    @staticmethod
    def _precheck_repeat(left: Any, right: Any) -> None:
        for sequence, times in ((left, right), (right, left)):
            if isinstance(times, int) and isinstance(sequence, str | list | tuple):
                size = size_of(sequence) * max(times, 0)
                if size > MAX_VALUE_SIZE:
                    raise _limit("the result of *", size)
        if _int_bits(left) + _int_bits(right) > MAX_INT_BITS + 1:
            raise TemplateLimit(f"a number larger than 2^{MAX_INT_BITS}")

    @staticmethod
    def _precheck_power(base: Any, exponent: Any) -> None:
        ints = isinstance(base, int) and isinstance(exponent, int)
        if ints and abs(base) > 1 and exponent > 0 and exponent * math.log2(abs(base)) > MAX_INT_BITS:
            raise TemplateLimit(f"a number larger than 2^{MAX_INT_BITS}")

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        if not callable(value):
            return True
        allowed = next((names for kind, names in _METHODS.items() if isinstance(obj, kind)), frozenset())
        return attr in allowed

    def wrap_str_format(self, value: Any) -> None:
        return None  # str.format is refused with the other unlisted methods (widths amplify)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        for arg in chain(args, kwargs.values()):
            _check(arg, "an argument")
        return _check(super().call(__context, __obj, *args, **kwargs), "the result of a call")


class _BoundedTemplate(NativeTemplate):
    environment_class = _BoundedSandbox  # NativeTemplate.render concatenates with its environment_class


_BoundedSandbox.template_class = _BoundedTemplate
_ENV = _BoundedSandbox()


@lru_cache(maxsize=512)
def _compile(source: str) -> tuple[Any, nodes.Template]:
    if len(source) > MAX_SOURCE_CHARS:
        raise TemplateLimit(f"a template longer than {MAX_SOURCE_CHARS:,} characters")
    try:
        tree = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"syntax error: {exc.message}") from None
    for node in tree.body:
        if not isinstance(node, nodes.Output):
            raise TemplateProblem(_STATEMENTS_REFUSED)
    if any(True for _ in tree.find_all(nodes.Concat)):
        raise TemplateProblem("the ~ operator is not allowed in playbook params; use + on strings")
    return _ENV.from_string(tree), tree


def has_template(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value or "{%" in value or "{#" in value
    if isinstance(value, dict):
        return any(has_template(item) for item in value.values())
    if isinstance(value, list):
        return any(has_template(item) for item in value)
    return False


def render(value: Any, context: dict[str, Any]) -> Any:
    if isinstance(value, str):
        if not has_template(value):
            return value
        try:
            template, _ = _compile(value)
            rendered = template.render(**context)
            if isinstance(rendered, Undefined):
                str(rendered)  # a lone undefined expression comes back unrendered; this raises its error
            rendered = _check(_materialise(rendered), "the rendered value")
        except TemplateProblem as exc:
            raise TemplateProblem(f"cannot render {_shown(value)}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 — a playbook may raise anything; it must end as one error
            raise TemplateProblem(f"cannot render {_shown(value)}: {_cause(exc, value)}") from None
        return rendered
    if isinstance(value, dict):
        return {key: render(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, context) for item in value]
    return value


def references(source: str) -> Iterator[tuple[str, str | None]]:
    """``(name, attribute)`` for each top-level name a template reads (``inputs.x`` → ``("inputs", "x")``);
    raises :class:`TemplateProblem` when it does not compile."""
    try:
        _, tree = _compile(source)
    except TemplateProblem as exc:
        raise TemplateProblem(f"{_shown(source)}: {exc}") from None
    used: set[tuple[str, str | None]] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node.node, nodes.Name):
            if isinstance(node, nodes.Getattr):
                used.add((node.node.name, node.attr))
            elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                used.add((node.node.name, node.arg.value))
    for name in meta.find_undeclared_variables(tree):
        if not any(n == name for n, _ in used):
            used.add((name, None))
    yield from sorted(used, key=lambda pair: (pair[0], pair[1] or ""))


def is_constant(source: str) -> bool:
    """A template that reads no name: it renders the same at validation as at run time."""
    _, tree = _compile(source)
    return not meta.find_undeclared_variables(tree)


def _shown(source: str) -> str:
    return repr(source if len(source) <= 120 else source[:117] + "...")


_QUOTED = re.compile(r"'([^'\n]{0,400})'|\"([^\"\n]{0,400})\"")
_TYPE_NAMES = frozenset(
    kind.__name__ for kind in (str, int, float, bool, list, dict, tuple, set, type(None), range, bytes)
) | frozenset({"StrictUndefined", "generator", "map", "filter"})


def _cause(exc: BaseException, source: str) -> str:
    """The cause of a rendering failure without input values: a quoted part of the message is kept only
    when the template itself wrote it or it names a type (``'dict object' has no attribute 'x'``)."""
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, MemoryError):
        return "out of memory"

    def keep_if_safe(match: re.Match[str]) -> str:
        quoted = match.group(1) if match.group(1) is not None else match.group(2)
        safe = quoted in source or quoted.removesuffix(" object") in _TYPE_NAMES
        return match.group(0) if safe else "'…'"

    message = redact_text(_QUOTED.sub(keep_if_safe, str(exc)[:400]))
    if isinstance(exc, TemplateError):
        return message or type(exc).__name__
    return f"{type(exc).__name__}: {message}".rstrip(": ")


__all__ = [
    "MAX_RANGE",
    "MAX_VALUE_SIZE",
    "TEMPLATE_NAMES",
    "TemplateLimit",
    "TemplateProblem",
    "has_template",
    "is_constant",
    "references",
    "render",
    "size_of",
]
