"""The simulator is as strict as Azure by default. A scenario (or a test) may relax a rule only by naming it:
``relax: [activity_log_delay]`` in a scenario file, ``tenant.relax("activity_log_delay")`` in Python. Names
not listed here are refused, so a typo cannot silently relax nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

RULES: dict[str, str] = {
    "activity_log_delay": (
        "Activity Log rows reach Log Analytics only after the ingestion delay "
        "(tenant.activity_log_delay, default 5 minutes of tenant clock)"
    ),
    "activity_log_export": (
        "Activity Log rows reach a workspace only when the subscription has a diagnostic setting exporting "
        "its Administrative category there"
    ),
}


def check_names(names: Iterable[str]) -> list[str]:
    """The names, each checked to be a rule the simulator knows (``ValueError`` naming an unknown one)."""
    checked = []
    for name in names:
        if name not in RULES:
            raise ValueError(f"unknown strictness rule {name!r} (known: {', '.join(sorted(RULES))})")
        checked.append(name)
    return checked
