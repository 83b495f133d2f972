"""Redaction on adversarial inputs: linear growth from 1 KB to 1 MB, against plain ``str.replace``.

    python bench/redaction.py            # every input family, 1 KB .. 1 MB
    python bench/redaction.py born url   # some families

For each family of hostile text (a label followed by a long run that almost matches, runs of separators,
half-formed addresses …) it prints, per size, the time of ``redact_text`` and of ``str.replace`` over the
same string (the baseline: one linear pass over the same bytes), their ratio, and the growth factor of
``redact_text`` from one size to the next (x10 in size: about 10 is linear, about 100 quadratic). Timings are
the best of a few runs, measured in this run on this machine; nothing here asserts a wall-clock threshold.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from irflow.redaction import redact_text  # noqa: E402

SIZES = (1_000, 10_000, 100_000, 1_000_000)
REPEATS = 3


def _fill(prefix: str, unit: str) -> Callable[[int], str]:
    return lambda n: prefix + unit * max(1, (n - len(prefix)) // len(unit))


FAMILIES: dict[str, Callable[[int], str]] = {
    "born": _fill("born", " "),  # the 59 s case of the issue: a DOB label and a run of blanks
    "date-of-birth": _fill("date of birth", " \t"),
    "phone-label": _fill("phone", " "),
    "password-prose": _fill("password", " is"),
    "ssn-ish": _fill("", "1-2 "),
    "digits": _fill("", "7"),
    "hex-run": _fill("key ", "a1"),
    "base64-pad": _fill("", "Ab9+/"),
    "email-ish": _fill("x", "@a."),
    "percent-at": _fill("", "a%40"),
    "url-userinfo": _fill("a://", "b:"),
    "jwt-ish": _fill("eyJ", "a."),
    "names": _fill("Patient: ", "Ann "),
    "mrn": _fill("MR# ", "a-"),
    "prose": _fill("", "the quick brown fox jumps over the lazy dog "),
    "password-word": _fill("", "Aa1!"),  # one endless password-shaped word
    "password-words": _fill("", "P@ssw0rd!2026 "),  # a password-shaped word after another
}


def _best(function: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def bench(names: list[str]) -> None:
    columns = ("size", "redact ms", "replace ms", "ratio", "growth", "MB/s")
    widths = (9, 10, 11, 7, 7, 7)
    print(f"{'family':15} " + " ".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True)))
    for name in names:
        previous: float | None = None
        for size in SIZES:
            text = FAMILIES[name](size)
            redact = _best(lambda text=text: redact_text(text))
            baseline = _best(lambda text=text: text.replace("\x00", "\x01"))
            growth = f"x{redact / previous:5.1f}" if previous else "      "
            print(
                f"{name:15} {len(text):>9} {redact * 1e3:>10.2f} {baseline * 1e3:>11.3f} "
                f"{redact / max(baseline, 1e-9):>7.0f} {growth:>7} {len(text) / redact / 1e6:>7.1f}",
                flush=True,
            )
            previous = redact


if __name__ == "__main__":
    chosen = sys.argv[1:] or list(FAMILIES)
    unknown = sorted(set(chosen) - set(FAMILIES))
    if unknown:
        sys.exit(f"unknown families: {', '.join(unknown)} (known: {', '.join(FAMILIES)})")
    bench(chosen)
