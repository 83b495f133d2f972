"""YAML from an untrusted author, loaded within fixed bounds.

A playbook may come from anyone who can write to the playbooks directory or call the API, so loading it must
end quickly and in little memory whatever it holds. Each limit below is checked before the work it guards:

- size and encoding on the raw bytes (UTF-8 only, no NUL), before parsing;
- nesting depth on the parser's event stream (an iterative parser), before the recursive composer runs;
- the node count with every alias expanded (the "billion laughs" bomb), computed once per distinct node,
  before anything walks the document as a tree;
- tags (the core schema only), duplicate keys, integers and floats, on the composed nodes, before any
  Python object is built.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

MAX_BYTES = 256 * 1024
MAX_DEPTH = 32
MAX_NODES = 20_000
MAX_SCALAR_CHARS = 64 * 1024
INT_LIMIT = 2**63  # what a BIGINT column and a JSON consumer can hold

_CORE = "tag:yaml.org,2002:"
ALLOWED_TAGS = frozenset(
    f"{_CORE}{name}" for name in ("str", "int", "float", "bool", "null", "seq", "map", "timestamp", "merge")
)


class UnsafeYaml(ValueError):
    """A document refused before or while loading; ``line`` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def decode(raw: bytes) -> str:
    """UTF-8 text of a document of at most ``MAX_BYTES``, with no NUL byte."""
    if len(raw) > MAX_BYTES:
        raise UnsafeYaml(1, f"file is larger than {MAX_BYTES // 1024} KiB ({len(raw)} bytes)")
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise UnsafeYaml(raw.count(b"\n", 0, nul) + 1, "NUL byte in the file (is it UTF-16 or binary?)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise UnsafeYaml(line, f"not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None


def check_text(text: str) -> None:
    """The byte limits of :func:`decode`, for text that arrives as a string (API bodies, pinned copies)."""
    try:
        decode(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        line = text.count("\n", 0, exc.start) + 1
        raise UnsafeYaml(line, "text holds a lone surrogate (not encodable as UTF-8)") from None


def compose(text: str) -> yaml.Node | None:
    """The document's node graph, after the depth, alias-expansion, tag, key and number checks."""
    check_text(text)
    _check_depth(text)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:  # unreachable with the depth bound; kept so no input can turn into a traceback
        raise UnsafeYaml(1, f"nested more than {MAX_DEPTH} levels deep") from None
    if node is not None:
        _Checker().walk(node)
    return node


def construct(node: yaml.Node) -> Any:
    """Python data of a node graph accepted by :func:`compose`."""
    return yaml.constructor.SafeConstructor().construct_document(node)


def _check_depth(text: str) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise UnsafeYaml(event.start_mark.line + 1, f"nested more than {MAX_DEPTH} levels deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


class _Checker:
    """One pass over the node graph; every distinct node is checked once, aliases are counted where used."""

    def __init__(self) -> None:
        self.seen: dict[int, tuple[int, int]] = {}  # node -> (expanded size, expanded height)
        self.open: set[int] = set()

    def walk(self, node: yaml.Node) -> None:
        self._visit(node, 1)

    def _visit(self, node: yaml.Node, level: int) -> tuple[int, int]:
        line = node.start_mark.line + 1
        key = id(node)
        if key in self.open:
            raise UnsafeYaml(line, "an alias refers to a node that contains it")
        if key not in self.seen:
            if level > MAX_DEPTH:
                raise UnsafeYaml(line, f"nested more than {MAX_DEPTH} levels deep (aliases included)")
            self.open.add(key)
            self.seen[key] = self._measure(node, line, level)
            self.open.discard(key)
        size, height = self.seen[key]
        if level + height - 1 > MAX_DEPTH:
            raise UnsafeYaml(line, f"nested more than {MAX_DEPTH} levels deep (aliases included)")
        return size, height

    def _measure(self, node: yaml.Node, line: int, level: int) -> tuple[int, int]:
        if node.tag not in ALLOWED_TAGS:
            raise UnsafeYaml(line, f"tag {node.tag!r} is not allowed (plain YAML data only)")
        if isinstance(node, yaml.ScalarNode):
            _check_scalar(node, line)
            return 1, 1
        if isinstance(node, yaml.MappingNode):
            _check_keys(node)
            children = [item for pair in node.value for item in pair]
        else:
            children = list(node.value)
        size, height = 1, 1
        for child in children:
            child_size, child_height = self._visit(child, level + 1)
            size += child_size
            height = max(height, child_height + 1)
            if size > MAX_NODES:
                raise UnsafeYaml(
                    child.start_mark.line + 1,
                    f"expands to more than {MAX_NODES} nodes (aliases count at every use)",
                )
        return size, height


def _check_keys(node: yaml.MappingNode) -> None:
    seen: dict[tuple[str, str], int] = {}
    for key_node, _ in node.value:
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            raise UnsafeYaml(line, "a mapping key must be a plain value, not a list or mapping")
        if key_node.tag == f"{_CORE}merge":
            continue
        identity = (key_node.tag, key_node.value)
        if identity in seen:
            raise UnsafeYaml(line, f"duplicate key {key_node.value!r} (first on line {seen[identity]})")
        seen[identity] = line


_SCALARS = yaml.constructor.SafeConstructor()


def _check_scalar(node: yaml.ScalarNode, line: int) -> None:
    value = node.value
    if len(value) > MAX_SCALAR_CHARS:
        raise UnsafeYaml(line, f"a value longer than {MAX_SCALAR_CHARS} characters")
    if "\x00" in value:
        raise UnsafeYaml(line, "a value holds a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeYaml(line, "a value holds a lone surrogate (not encodable as UTF-8)") from None
    if node.tag == f"{_CORE}int":
        out_of_range = "integer out of range (a whole number between -2^63 and 2^63-1)"
        if len(value) > 80:
            raise UnsafeYaml(line, out_of_range)
        if not -INT_LIMIT <= _SCALARS.construct_yaml_int(node) < INT_LIMIT:
            raise UnsafeYaml(line, out_of_range)
    elif node.tag == f"{_CORE}float" and not math.isfinite(_SCALARS.construct_yaml_float(node)):
        raise UnsafeYaml(line, f"{value!r} is not a finite number")
