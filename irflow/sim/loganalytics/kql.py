"""A small Kusto Query Language (KQL) interpreter: tokenizer → parser (AST) → evaluator over rows.

The subset (anything else is refused with :class:`KqlError`, which Log Analytics answers 400
``BadArgumentError``; the interpreter never guesses)::

    Table | where <expr> | project c1, c2 = <expr> | extend c = <expr>
          | summarize [n =] agg(...), ... [by c, bin(TimeGenerated, 1h), ...]
          | order by c [asc|desc], ... (also ``sort by``; desc by default, as in Kusto)
          | take N (also ``limit``) | top N by c [asc|desc] | count | distinct c1, c2

Expressions: literals (strings ``'…'`` / ``"…"`` / ``@'…'``, long, real, bool, timespans ``7d 1h 30m 10s
100ms``, ``datetime(2026-03-01T00:00:00Z)``), columns, ``and`` / ``or``, ``not(…)``, comparisons
``== != < > <= >= =~ !~``, ``in`` / ``!in`` ``(…)``, string operators ``has contains startswith endswith``
(case-insensitive, with ``!`` negations and ``_cs`` case-sensitive forms), ``+ - * / %``, and the functions
``ago now datetime bin floor tolower toupper strlen isempty isnotempty isnull isnotnull tostring toint tolong
todouble extract coalesce`` (``extract(regex, group, text)``: Python ``re`` syntax, which agrees with Kusto's
RE2 for ordinary patterns; ``coalesce`` skips nulls and, for strings, empty strings).
Aggregations: ``count() countif() dcount() sum() sumif() min() max() avg()``.

Types follow Kusto: ``string`` (never null: a missing string is ``""``), ``long``, ``real``, ``bool``,
``datetime`` (aware UTC), ``timespan``, ``dynamic``. Comparing values of incompatible types, or naming a
column the input does not have, is a semantic error, as in Kusto.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any


class KqlError(Exception):
    """A query the interpreter refuses: ``kind`` is ``SyntaxError`` or ``SemanticError``."""

    def __init__(self, message: str, kind: str = "SyntaxError") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


# ---------------------------------------------------------------------------------------------- tokenizer
@dataclass(frozen=True)
class Token:
    kind: str  # ident, string, number, timespan, datetime, op, end
    value: Any
    pos: int


_TIMESPAN_UNITS = {
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
    "ms": timedelta(milliseconds=1),
    "microsecond": timedelta(microseconds=1),
}
_NUMBER = re.compile(r"(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(ms|d|h|m|s)?(?![A-Za-z0-9_])")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = (
    "==",
    "!=",
    "<=",
    ">=",
    "=~",
    "!~",
    "<",
    ">",
    "=",
    "(",
    ")",
    ",",
    "|",
    "+",
    "-",
    "*",
    "/",
    "%",
    ".",
)
_DATETIME_ARG = re.compile(r"datetime\s*\(\s*([^)'\"]*?)\s*\)", re.IGNORECASE)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        # datetime(2026-03-01T00:00:00Z): the argument is an unquoted literal, read whole.
        found = _DATETIME_ARG.match(text, i)
        if found and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            raw = found.group(1)
            if raw.startswith(("'", '"')) or not raw:
                pass  # datetime('…') and datetime(): the ordinary call path below
            else:
                tokens.append(Token("datetime", parse_datetime(raw), i))
                i = found.end()
                continue
        if ch in "'\"" or (ch == "@" and i + 1 < n and text[i + 1] in "'\""):
            verbatim = ch == "@"
            if verbatim:
                i += 1
            quote, start, buf = text[i], i, []
            i += 1
            while True:
                if i >= n:
                    raise KqlError(f"unterminated string literal at position {start}")
                c = text[i]
                if c == quote:
                    i += 1
                    break
                if c == "\\" and not verbatim and i + 1 < n:
                    nxt = text[i + 1]
                    buf.append({"n": "\n", "t": "\t", "r": "\r"}.get(nxt, nxt))
                    i += 2
                    continue
                buf.append(c)
                i += 1
            tokens.append(Token("string", "".join(buf), start))
            continue
        if ch.isdigit():
            found = _NUMBER.match(text, i)
            if not found:
                raise KqlError(f"malformed number at position {i}")
            number, unit = found.group(1), found.group(2)
            if unit:
                tokens.append(Token("timespan", float(number) * _TIMESPAN_UNITS[unit], i))
            elif re.fullmatch(r"\d+", number):
                tokens.append(Token("number", int(number), i))
            else:
                tokens.append(Token("number", float(number), i))
            i = found.end()
            continue
        if ch == "!" and text.startswith(("!in", "!has", "!contains", "!startswith", "!endswith"), i):
            found = _IDENT.match(text, i + 1)
            assert found is not None
            tokens.append(Token("ident", "!" + found.group(0), i))
            i = found.end()
            continue
        found = _IDENT.match(text, i)
        if found:
            tokens.append(Token("ident", found.group(0), i))
            i = found.end()
            continue
        op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
        if op is None:
            raise KqlError(f"unexpected character {ch!r} at position {i}")
        tokens.append(Token("op", op, i))
        i += len(op)
    tokens.append(Token("end", None, n))
    return tokens


def parse_datetime(raw: str) -> datetime:
    text = raw.strip().replace(" ", "T", 1)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise KqlError(f"invalid datetime literal {raw!r}") from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# ---------------------------------------------------------------------------------------------- AST
@dataclass(frozen=True)
class Literal:
    value: Any
    type: str


@dataclass(frozen=True)
class Column:
    name: str


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Binary:
    op: str
    left: Any
    right: Any


@dataclass(frozen=True)
class InList:
    operand: Any
    items: tuple[Any, ...]
    negated: bool


@dataclass(frozen=True)
class Unary:
    op: str
    operand: Any


@dataclass(frozen=True)
class Assignment:
    name: str | None
    expr: Any


@dataclass
class Operator:
    kind: str  # where, project, extend, summarize, order, take, top, count, distinct
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Query:
    table: str
    operators: list[Operator]


_COMPARISONS = {"==", "!=", "<", ">", "<=", ">=", "=~", "!~"}
_STRING_OPS = {
    "has",
    "has_cs",
    "contains",
    "contains_cs",
    "startswith",
    "startswith_cs",
    "endswith",
    "endswith_cs",
    "!has",
    "!has_cs",
    "!contains",
    "!contains_cs",
    "!startswith",
    "!startswith_cs",
    "!endswith",
    "!endswith_cs",
}
_KEYWORDS = {"and", "or", "by", "asc", "desc", "in", "!in", "in~", *_STRING_OPS}
AGGREGATES = {"count", "countif", "dcount", "sum", "sumif", "min", "max", "avg"}
SCALAR_FUNCTIONS = {
    "ago",
    "now",
    "datetime",
    "bin",
    "floor",
    "tolower",
    "toupper",
    "strlen",
    "isempty",
    "isnotempty",
    "isnull",
    "isnotnull",
    "tostring",
    "toint",
    "tolong",
    "todouble",
    "not",
    "extract",
    "coalesce",
}


class Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    # -- token helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def at_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.value in ops

    def at_word(self, *words: str) -> bool:
        return self.tok.kind == "ident" and self.tok.value.lower() in words

    def expect_op(self, op: str) -> None:
        if not self.at_op(op):
            raise KqlError(f"expected '{op}' at position {self.tok.pos}, found {self._describe()}")
        self.advance()

    def expect_word(self, word: str) -> None:
        if not self.at_word(word):
            raise KqlError(f"expected '{word}' at position {self.tok.pos}, found {self._describe()}")
        self.advance()

    def ident(self) -> str:
        if self.tok.kind != "ident" or self.tok.value.lower() in _KEYWORDS:
            raise KqlError(f"expected a name at position {self.tok.pos}, found {self._describe()}")
        return self.advance().value

    def _describe(self) -> str:
        return "the end of the query" if self.tok.kind == "end" else repr(str(self.tok.value))

    # -- query
    def query(self) -> Query:
        if self.at_word("let", "union", "search", "print", "range", "datatable", "find"):
            raise KqlError(f"'{self.tok.value}' is not supported by the simulated workspace")
        table = self.ident()
        operators: list[Operator] = []
        while self.at_op("|"):
            self.advance()
            operators.append(self.operator())
        if self.tok.kind != "end":
            raise KqlError(f"unexpected {self._describe()} at position {self.tok.pos}")
        return Query(table, operators)

    def operator(self) -> Operator:
        if self.tok.kind != "ident":
            raise KqlError(f"expected a query operator at position {self.tok.pos}, found {self._describe()}")
        start = self.tok
        word = self.advance().value.lower()
        if word in ("project", "extend", "summarize", "top", "take", "limit", "order", "sort") and self.at_op(
            "-"
        ):
            raise KqlError(
                f"'{word}-{self.tokens[self.i + 1].value}' is not supported by the simulated workspace"
            )
        if word in ("where", "filter"):
            return Operator("where", {"predicate": self.expr()})
        if word == "project":
            return Operator("project", {"columns": self.assignments(require_name=False)})
        if word == "extend":
            return Operator("extend", {"columns": self.assignments(require_name=False)})
        if word == "summarize":
            aggregates: list[Assignment] = []
            if not self.at_word("by"):
                aggregates = self.assignments(require_name=False)
            groups: list[Assignment] = []
            if self.at_word("by"):
                self.advance()
                groups = self.assignments(require_name=False)
            if not aggregates and not groups:
                raise KqlError("summarize needs an aggregation or a by clause")
            return Operator("summarize", {"aggregates": aggregates, "groups": groups})
        if word in ("order", "sort"):
            self.expect_word("by")
            return Operator("order", {"keys": self.sort_keys()})
        if word in ("take", "limit"):
            return Operator("take", {"count": self.count_literal()})
        if word == "top":
            count = self.count_literal()
            self.expect_word("by")
            return Operator("top", {"count": count, "keys": self.sort_keys(single=True)})
        if word == "count":
            return Operator("count")
        if word == "distinct":
            return Operator("distinct", {"columns": [self.ident() for _ in self._comma_separated()]})
        raise KqlError(f"query operator '{start.value}' is not supported by the simulated workspace")

    def _comma_separated(self):  # type: ignore[no-untyped-def]
        yield None
        while self.at_op(","):
            self.advance()
            yield None

    def count_literal(self) -> int:
        if self.tok.kind != "number" or not isinstance(self.tok.value, int):
            raise KqlError(f"expected a row count at position {self.tok.pos}, found {self._describe()}")
        return self.advance().value

    def sort_keys(self, single: bool = False) -> list[tuple[Any, bool]]:
        keys = []
        while True:
            expr = self.expr()
            descending = True
            if self.at_word("asc", "desc"):
                descending = self.advance().value.lower() == "desc"
            if self.at_word("nulls"):
                raise KqlError("'nulls first|last' is not supported by the simulated workspace")
            keys.append((expr, descending))
            if single or not self.at_op(","):
                return keys
            self.advance()

    def assignments(self, require_name: bool) -> list[Assignment]:
        items = []
        while True:
            name = None
            if (
                self.tok.kind == "ident"
                and self.tokens[self.i + 1].kind == "op"
                and self.tokens[self.i + 1].value == "="
            ):
                name = self.ident()
                self.advance()
            elif require_name:
                raise KqlError(f"expected 'name = expression' at position {self.tok.pos}")
            items.append(Assignment(name, self.expr()))
            if not self.at_op(","):
                return items
            self.advance()

    # -- expressions (lowest to highest precedence)
    def expr(self) -> Any:
        left = self.and_expr()
        while self.at_word("or"):
            self.advance()
            left = Binary("or", left, self.and_expr())
        return left

    def and_expr(self) -> Any:
        left = self.comparison()
        while self.at_word("and"):
            self.advance()
            left = Binary("and", left, self.comparison())
        return left

    def comparison(self) -> Any:
        left = self.additive()
        if self.at_op(*_COMPARISONS):
            op = self.advance().value
            return Binary(op, left, self.additive())
        if self.tok.kind == "ident" and self.tok.value.lower() in _STRING_OPS:
            op = self.advance().value.lower()
            return Binary(op, left, self.additive())
        if self.at_word("in", "!in"):
            negated = self.advance().value.lower() == "!in"
            self.expect_op("(")
            items = [self.expr()]
            while self.at_op(","):
                self.advance()
                items.append(self.expr())
            self.expect_op(")")
            return InList(left, tuple(items), negated)
        if self.at_word("between", "matches", "has_any", "has_all", "in~", "like", "hasprefix", "hassuffix"):
            raise KqlError(f"operator '{self.tok.value}' is not supported by the simulated workspace")
        return left

    def additive(self) -> Any:
        left = self.multiplicative()
        while self.at_op("+", "-"):
            op = self.advance().value
            left = Binary(op, left, self.multiplicative())
        return left

    def multiplicative(self) -> Any:
        left = self.unary()
        while self.at_op("*", "/", "%"):
            op = self.advance().value
            left = Binary(op, left, self.unary())
        return left

    def unary(self) -> Any:
        if self.at_op("-"):
            self.advance()
            return Unary("-", self.unary())
        return self.primary()

    def primary(self) -> Any:
        token = self.tok
        if token.kind == "string":
            self.advance()
            return Literal(token.value, "string")
        if token.kind == "number":
            self.advance()
            return Literal(token.value, "long" if isinstance(token.value, int) else "real")
        if token.kind == "timespan":
            self.advance()
            return Literal(token.value, "timespan")
        if token.kind == "datetime":
            self.advance()
            return Literal(token.value, "datetime")
        if self.at_op("("):
            self.advance()
            inner = self.expr()
            self.expect_op(")")
            return inner
        if token.kind == "ident" and token.value.lower() not in _KEYWORDS:
            name = self.advance().value
            if name in ("true", "false"):
                return Literal(name == "true", "bool")
            if self.at_op("("):
                self.advance()
                args = []
                if not self.at_op(")"):
                    args.append(self.expr())
                    while self.at_op(","):
                        self.advance()
                        args.append(self.expr())
                self.expect_op(")")
                lowered = name.lower()
                if lowered not in SCALAR_FUNCTIONS and lowered not in AGGREGATES:
                    raise KqlError(f"function '{name}' is not supported by the simulated workspace")
                return Call(lowered, tuple(args))
            if self.at_op("."):
                raise KqlError(
                    "dotted names (dynamic member access) are not supported by the simulated workspace"
                )
            return Column(name)
        raise KqlError(f"unexpected {self._describe()} at position {token.pos}")


def parse(text: str) -> Query:
    if not isinstance(text, str) or not text.strip():
        raise KqlError("the query is empty")
    return Parser(text).query()


# ---------------------------------------------------------------------------------------------- evaluation
Schema = list[tuple[str, str]]  # ordered (column, type)
Row = dict[str, Any]


def _default_name(expr: Any) -> str | None:
    if isinstance(expr, Column):
        return expr.name
    if isinstance(expr, Call):
        if expr.name == "count" and not expr.args:
            return "count_"
        if expr.name == "countif":
            return "countif_"
        if expr.name in AGGREGATES and expr.args and isinstance(expr.args[0], Column):
            return f"{expr.name}_{expr.args[0].name}"
        if expr.name in ("bin", "floor") and expr.args and isinstance(expr.args[0], Column):
            return expr.args[0].name
    return None


class Evaluator:
    def __init__(self, now: datetime) -> None:
        self.now = now

    # -- static typing (resolves columns: an unknown one is a semantic error even on an empty table)
    def type_of(self, expr: Any, schema: dict[str, str], aggregate: bool = False) -> str:
        if isinstance(expr, Literal):
            return expr.type
        if isinstance(expr, Column):
            if expr.name not in schema:
                raise KqlError(f"Failed to resolve scalar expression named '{expr.name}'", "SemanticError")
            return schema[expr.name]
        if isinstance(expr, Unary):
            return self.type_of(expr.operand, schema, aggregate)
        if isinstance(expr, InList):
            self.type_of(expr.operand, schema, aggregate)
            for item in expr.items:
                self.type_of(item, schema, aggregate)
            return "bool"
        if isinstance(expr, Binary):
            left = self.type_of(expr.left, schema, aggregate)
            right = self.type_of(expr.right, schema, aggregate)
            if expr.op in ("and", "or") or expr.op in _COMPARISONS or expr.op in _STRING_OPS:
                if expr.op in _COMPARISONS and not _comparable(left, right):
                    raise KqlError(
                        f"Cannot compare values of types {left} and {right}. Try adding explicit casts",
                        "SemanticError",
                    )
                return "bool"
            if {left, right} == {"datetime"} and expr.op == "-":
                return "timespan"
            if "datetime" in (left, right):
                return "datetime"
            if left == right == "timespan":
                return "timespan"
            if left not in _NUMERIC or right not in _NUMERIC:
                raise KqlError(
                    f"operator '{expr.op}' cannot be applied to {left} and {right}", "SemanticError"
                )
            return "real" if "real" in (left, right) else "long"
        if isinstance(expr, Call):
            if expr.name in AGGREGATES:
                if not aggregate:
                    raise KqlError(
                        f"aggregation '{expr.name}()' is only allowed in summarize", "SemanticError"
                    )
                arg_types = [self.type_of(a, schema) for a in expr.args]
                _arity(
                    expr,
                    {"count": (0, 0), "countif": (1, 1), "dcount": (1, 2), "sumif": (2, 2)}.get(
                        expr.name, (1, 1)
                    ),
                )
                if expr.name in ("count", "countif", "dcount"):
                    return "long"
                if expr.name == "avg":
                    return "real"
                if expr.name == "sumif" and arg_types[1] != "bool":
                    raise KqlError("sumif() expects (expression, boolean predicate)", "SemanticError")
                return arg_types[0]
            arg_types = [self.type_of(a, schema, aggregate) for a in expr.args]
            name = expr.name
            if name == "now":
                _arity(expr, (0, 1))
                return "datetime"
            if name == "ago":
                _arity(expr, (1, 1))
                return "datetime"
            if name == "datetime":
                _arity(expr, (1, 1))
                return "datetime"
            if name in ("bin", "floor"):
                _arity(expr, (2, 2))
                return arg_types[0]
            if name in ("tolower", "toupper", "tostring"):
                _arity(expr, (1, 1))
                return "string"
            if name in ("strlen", "toint", "tolong"):
                _arity(expr, (1, 1))
                return "long"
            if name == "todouble":
                _arity(expr, (1, 1))
                return "real"
            if name == "extract":
                _arity(expr, (3, 3))
                if (
                    arg_types[0] != "string"
                    or arg_types[1] not in ("long", "int")
                    or arg_types[2] != "string"
                ):
                    raise KqlError(
                        "extract() expects (regex string, capture group number, string)", "SemanticError"
                    )
                return "string"
            if name == "coalesce":
                _arity(expr, (2, 64))
                if len({t for t in arg_types if t != "dynamic"}) > 1:
                    raise KqlError("coalesce() arguments must all be of one type", "SemanticError")
                return arg_types[0]
            _arity(expr, (1, 1))
            return "bool"  # isempty, isnotempty, isnull, isnotnull, not
        raise KqlError("unsupported expression", "SemanticError")  # pragma: no cover

    # -- values
    def value(self, expr: Any, row: Row, group: list[Row] | None = None) -> Any:
        if isinstance(expr, Literal):
            return expr.value
        if isinstance(expr, Column):
            return row.get(expr.name)
        if isinstance(expr, Unary):
            operand = self.value(expr.operand, row, group)
            return None if operand is None else -operand
        if isinstance(expr, InList):
            operand = self.value(expr.operand, row, group)
            found = any(_equal(operand, self.value(item, row, group)) for item in expr.items)
            return found != expr.negated
        if isinstance(expr, Binary):
            return self._binary(expr, row, group)
        if isinstance(expr, Call):
            if expr.name in AGGREGATES:
                assert group is not None
                return self._aggregate(expr, group)
            return self._call(expr, row, group)
        raise KqlError("unsupported expression", "SemanticError")  # pragma: no cover

    def _binary(self, expr: Binary, row: Row, group: list[Row] | None) -> Any:
        op = expr.op
        if op == "and":
            return bool(self.value(expr.left, row, group)) and bool(self.value(expr.right, row, group))
        if op == "or":
            return bool(self.value(expr.left, row, group)) or bool(self.value(expr.right, row, group))
        left, right = self.value(expr.left, row, group), self.value(expr.right, row, group)
        if op in _STRING_OPS:
            return _string_op(op, left, right)
        if op == "=~":
            return _text(left).lower() == _text(right).lower()
        if op == "!~":
            return _text(left).lower() != _text(right).lower()
        if op == "==":
            return _equal(left, right)
        if op == "!=":
            if isinstance(left, str) or isinstance(right, str):
                return _text(left) != _text(right)
            return left is not None and right is not None and not _equal(left, right)
        if left is None or right is None:
            return False if op in _COMPARISONS else None
        if op in ("<", ">", "<=", ">="):
            return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op]
        try:
            if op == "+":
                return left + right
            if op == "-":
                return left - right
            if op == "*":
                return left * right
            if op == "/":
                if isinstance(left, int) and isinstance(right, int):
                    return None if right == 0 else int(left / right)
                return None if right == 0 else left / right
            if op == "%":
                return None if right == 0 else left % right
        except TypeError as exc:
            raise KqlError(
                f"operator '{op}' cannot be applied to these operand types", "SemanticError"
            ) from exc
        raise KqlError(f"operator '{op}' is not supported", "SemanticError")  # pragma: no cover

    def _call(self, expr: Call, row: Row, group: list[Row] | None) -> Any:
        args = [self.value(a, row, group) for a in expr.args]
        name = expr.name
        if name == "now":
            return self.now + (args[0] if args else timedelta(0))
        if name == "ago":
            if not isinstance(args[0], timedelta):
                raise KqlError("ago() expects a timespan, such as ago(7d)", "SemanticError")
            return self.now - args[0]
        if name == "datetime":
            return parse_datetime(_text(args[0]))
        if name in ("bin", "floor"):
            return _bin(args[0], args[1])
        if name == "tolower":
            return _text(args[0]).lower()
        if name == "toupper":
            return _text(args[0]).upper()
        if name == "strlen":
            return len(_text(args[0]))
        if name == "tostring":
            return _to_string(args[0])
        if name in ("toint", "tolong"):
            try:
                return int(float(args[0])) if args[0] not in (None, "") else None
            except (TypeError, ValueError):
                return None
        if name == "todouble":
            try:
                return float(args[0]) if args[0] not in (None, "") else None
            except (TypeError, ValueError):
                return None
        if name == "isempty":
            return args[0] is None or args[0] == ""
        if name == "isnotempty":
            return not (args[0] is None or args[0] == "")
        if name == "isnull":
            return args[0] is None
        if name == "isnotnull":
            return args[0] is not None
        if name == "not":
            return not bool(args[0])
        if name == "extract":
            return _extract(args[0], args[1], args[2])
        if name == "coalesce":
            return next((a for a in args if a is not None and a != ""), args[-1])
        raise KqlError(f"function '{name}' is not supported", "SemanticError")  # pragma: no cover

    def _aggregate(self, expr: Call, group: list[Row]) -> Any:
        if expr.name == "count":
            return len(group)
        if expr.name == "countif":
            return sum(1 for row in group if self.value(expr.args[0], row))
        if expr.name == "sumif":
            group = [row for row in group if self.value(expr.args[1], row) is True]
        values = [self.value(expr.args[0], row) for row in group]
        present = [v for v in values if v is not None and v != ""] if expr.name != "dcount" else values
        if expr.name == "dcount":
            return len({_hashable(v) for v in values if v is not None})
        if not present:
            return 0 if expr.name == "sumif" else None  # Kusto: sumif over no matching row is 0
        if expr.name in ("sum", "sumif"):
            return sum(present)
        if expr.name == "min":
            return min(present)
        if expr.name == "max":
            return max(present)
        if expr.name == "avg":
            return float(sum(present)) / len(present)
        raise KqlError(f"aggregation '{expr.name}' is not supported", "SemanticError")  # pragma: no cover

    # -- operators
    def run(self, query: Query, schema: Schema, rows: list[Row]) -> tuple[Schema, list[Row]]:
        for op in query.operators:
            schema, rows = getattr(self, f"_op_{op.kind}")(op, schema, rows)
        return schema, rows

    def _op_where(self, op: Operator, schema: Schema, rows: list[Row]) -> tuple[Schema, list[Row]]:
        if self.type_of(op.args["predicate"], dict(schema)) != "bool":
            raise KqlError("the where predicate must be a boolean expression", "SemanticError")
        return schema, [r for r in rows if self.value(op.args["predicate"], r) is True]

    def _named(self, assignments: list[Assignment], types: dict[str, str], aggregate: bool = False):  # type: ignore[no-untyped-def]
        out = []
        for position, item in enumerate(assignments):
            kind = self.type_of(item.expr, types, aggregate)
            name = item.name or _default_name(item.expr) or f"Column{position + 1}"
            out.append((name, kind, item.expr))
        return out

    def _op_project(self, op: Operator, schema: Schema, rows: list[Row]) -> tuple[Schema, list[Row]]:
        named = self._named(op.args["columns"], dict(schema))
        return [(n, t) for n, t, _ in named], [{n: self.value(e, r) for n, _, e in named} for r in rows]

    def _op_extend(self, op: Operator, schema: Schema, rows: list[Row]) -> tuple[Schema, list[Row]]:
        named = self._named(op.args["columns"], dict(schema))
        out_schema = list(schema)
        for name, kind, _ in named:
            out_schema = [(n, t) for n, t in out_schema if n != name] + [(name, kind)]
        out_rows = []
        for row in rows:
            new = dict(row)
            for name, _, expr in named:
                new[name] = self.value(expr, row)
            out_rows.append(new)
        return out_schema, out_rows

    def _op_summarize(self, op: Operator, schema: Schema, rows: list[Row]) -> tuple[Schema, list[Row]]:
        types = dict(schema)
        groups = self._named(op.args["groups"], types)
        for _, _, expr in groups:
            if _contains_aggregate(expr):
                raise KqlError("an aggregation cannot appear in the by clause", "SemanticError")
        aggregates = self._named(op.args["aggregates"], types, aggregate=True)
        for _, _, expr in aggregates:
            if not _contains_aggregate(expr):
                raise KqlError("summarize expects aggregation functions such as count()", "SemanticError")
        buckets: dict[tuple[Any, ...], list[Row]] = {}
        keys: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        for row in rows:
            key = tuple(self.value(e, row) for _, _, e in groups)
            hashed = tuple(_hashable(k) for k in key)
            buckets.setdefault(hashed, []).append(row)
            keys.setdefault(hashed, key)
        if not groups and not buckets:
            buckets[()] = []
            keys[()] = ()
        out_schema = [(n, t) for n, t, _ in groups] + [(n, t) for n, t, _ in aggregates]
        out_rows = []
        for hashed, members in buckets.items():
            new = dict(zip([n for n, _, _ in groups], keys[hashed], strict=True))
            for name, _, expr in aggregates:
                new[name] = self.value(expr, members[0] if members else {}, members)
            out_rows.append(new)
        return out_schema, out_rows

    def _sort(self, keys: list[tuple[Any, bool]], schema: Schema, rows: list[Row]) -> list[Row]:
        types = dict(schema)
        for expr, _ in keys:
            self.type_of(expr, types)
        out = list(rows)
        for expr, descending in reversed(keys):
            present = [r for r in out if self.value(expr, r) is not None]
            missing = [r for r in out if self.value(expr, r) is None]
            present.sort(key=lambda r, e=expr: _sort_key(self.value(e, r)), reverse=descending)  # type: ignore[misc]
            # Kusto: nulls last when descending, first when ascending.
            out = present + missing if descending else missing + present
        return out

    def _op_order(self, op: Operator, schema: Schema, rows: list[Row]) -> tuple[Schema, list[Row]]:
        return schema, self._sort(op.args["keys"], schema, rows)

    def _op_take(self, op: Operator, schema: Schema, rows: list[Row]) -> tuple[Schema, list[Row]]:
        return schema, rows[: op.args["count"]]

    def _op_top(self, op: Operator, schema: Schema, rows: list[Row]) -> tuple[Schema, list[Row]]:
        return schema, self._sort(op.args["keys"], schema, rows)[: op.args["count"]]

    def _op_count(self, op: Operator, schema: Schema, rows: list[Row]) -> tuple[Schema, list[Row]]:
        return [("Count", "long")], [{"Count": len(rows)}]

    def _op_distinct(self, op: Operator, schema: Schema, rows: list[Row]) -> tuple[Schema, list[Row]]:
        types = dict(schema)
        for name in op.args["columns"]:
            self.type_of(Column(name), types)
        seen: dict[tuple[Any, ...], Row] = {}
        for row in rows:
            key = tuple(_hashable(row.get(n)) for n in op.args["columns"])
            seen.setdefault(key, {n: row.get(n) for n in op.args["columns"]})
        return [(n, types[n]) for n in op.args["columns"]], list(seen.values())


# ---------------------------------------------------------------------------------------------- helpers
_NUMERIC = {"long", "int", "real"}


def _comparable(left: str, right: str) -> bool:
    if left == right or "dynamic" in (left, right):
        return True
    return left in _NUMERIC and right in _NUMERIC


def _arity(expr: Call, bounds: tuple[int, int]) -> None:
    low, high = bounds
    if not low <= len(expr.args) <= high:
        raise KqlError(f"function '{expr.name}' got {len(expr.args)} arguments", "SemanticError")


def _contains_aggregate(expr: Any) -> bool:
    if isinstance(expr, Call):
        return expr.name in AGGREGATES or any(_contains_aggregate(a) for a in expr.args)
    if isinstance(expr, Binary):
        return _contains_aggregate(expr.left) or _contains_aggregate(expr.right)
    if isinstance(expr, Unary):
        return _contains_aggregate(expr.operand)
    return False


def _text(value: Any) -> str:
    return "" if value is None else _to_string(value)


def _to_string(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_datetime(value)
    return str(value)


def _equal(left: Any, right: Any) -> bool:
    if left is None or right is None:
        return False
    if isinstance(left, str) or isinstance(right, str):
        return _text(left) == _text(right)
    return bool(left == right)


_TERM = re.compile(r"[A-Za-z0-9]")


def _string_op(op: str, left: Any, right: Any) -> bool:
    negated = op.startswith("!")
    base = op.lstrip("!")
    sensitive = base.endswith("_cs")
    base = base.removesuffix("_cs")
    haystack, needle = _text(left), _text(right)
    if not sensitive:
        haystack, needle = haystack.lower(), needle.lower()
    if base == "contains":
        result = needle in haystack
    elif base == "startswith":
        result = haystack.startswith(needle)
    elif base == "endswith":
        result = haystack.endswith(needle)
    else:  # has: the needle as a whole term (bounded by non-alphanumerics)
        pattern = r"(?<![A-Za-z0-9])" + re.escape(needle) + r"(?![A-Za-z0-9])"
        result = bool(needle) and re.search(pattern, haystack) is not None
    return result != negated


def _extract(pattern: Any, group: Any, text: Any) -> str:
    """Kusto ``extract``: the capture group of the first match, or "" when there is none."""
    try:
        compiled = re.compile(_text(pattern))
    except re.error as exc:
        raise KqlError(f"extract(): invalid regular expression: {exc}", "SemanticError") from exc
    if not isinstance(group, int) or not 0 <= group <= compiled.groups:
        raise KqlError(f"extract(): the regex has no capture group {group}", "SemanticError")
    found = compiled.search(_text(text))
    return (found.group(group) or "") if found else ""


def _bin(value: Any, size: Any) -> Any:
    if value is None or size is None:
        return None
    if isinstance(value, datetime):
        if not isinstance(size, timedelta) or size <= timedelta(0):
            raise KqlError("bin() of a datetime needs a positive timespan, such as bin(TimeGenerated, 1h)")
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        return epoch + ((value - epoch) // size) * size
    if isinstance(value, timedelta):
        return (value // size) * size
    if isinstance(size, timedelta) or not size:
        raise KqlError("bin() needs a non-zero bin size of the value's type", "SemanticError")
    binned = math.floor(value / size) * size
    return int(binned) if isinstance(value, int) and isinstance(size, int) else binned


def _hashable(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return repr(value)
    return value


def _sort_key(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    return value


def format_datetime(value: datetime) -> str:
    value = value.astimezone(UTC)
    if value.microsecond:
        return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond:06d}Z"
    return f"{value:%Y-%m-%dT%H:%M:%S}Z"


def format_timespan(value: timedelta) -> str:
    total = int(value.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    prefix = f"{days}." if days else ""
    return f"{sign}{prefix}{hours:02d}:{minutes:02d}:{seconds:02d}"


def wire_value(value: Any, kind: str) -> Any:
    """A value as Log Analytics puts it in a result row."""
    if value is None:
        return "" if kind == "string" else None
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, timedelta):
        return format_timespan(value)
    if kind == "real" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def execute(
    text: str,
    tables: Callable[[str], tuple[Schema, list[Row]] | None],
    now: datetime,
) -> tuple[Schema, list[Row]]:
    """Parse and run ``text``; ``tables(name)`` gives a table's schema and rows (None: no such table)."""
    query = parse(text)
    found = tables(query.table)
    if found is None:
        raise KqlError(f"Failed to resolve table or column expression named '{query.table}'", "SemanticError")
    schema, rows = found
    return Evaluator(now).run(query, list(schema), list(rows))


__all__: Sequence[str] = ["KqlError", "execute", "parse", "tokenize", "wire_value"]
