"""The request guard's JSON depth check agrees with a byte-by-byte walk of the raw text, and stays linear on
bodies built to make a string-matching regex backtrack."""

from __future__ import annotations

import json
import random

import pytest
from sentinel_helpers import body_of, incident

from irflow.api.guard import MAX_JSON_DEPTH, _too_deep


def _walked_too_deep(body: bytes) -> bool:
    """The reference: walk every byte, skipping strings (an unterminated one runs to the end)."""
    depth = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x7B, 0x5B):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif byte in (0x7D, 0x5D):
            depth -= 1
    return False


def test_agrees_with_a_byte_walk_on_random_bodies() -> None:
    rng = random.Random(12)
    alphabet = b'[]{}"\\ab,:\n'
    deep = 0
    for _ in range(20_000):
        body = bytes(rng.choice(alphabet) for _ in range(rng.randrange(90)))
        if rng.random() < 0.5:
            body = b"[" * rng.randrange(MAX_JSON_DEPTH - 2, MAX_JSON_DEPTH + 4) + body
        assert _too_deep(body) == _walked_too_deep(body), body
        deep += _walked_too_deep(body)
    assert 1000 < deep < 19_000  # both answers were exercised


@pytest.mark.parametrize(
    ("body", "too_deep"),
    [
        (body_of(incident()), False),
        (json.dumps({"s": "[" * 100 + '\\"' + "{" * 100}).encode(), False),
        (b'["' + b"[" * 100, False),  # brackets inside an unterminated string
        (b'"a\\' + b"\n" + b'"' + b"[" * 40, True),  # an escaped newline does not end the string
        (b'"' + b'a\\"' * 300_000, False),  # unterminated, escaped quotes: a backtracking regex is quadratic
        (b'["\\' * 300_000, True),  # [ "\[" \ [ ...: every other bracket is outside a string
        (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), True),
        (b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH, False),
    ],
)
def test_cases(body: bytes, too_deep: bool) -> None:
    assert _too_deep(body) is too_deep
    if len(body) < 10_000:
        assert _walked_too_deep(body) is too_deep
