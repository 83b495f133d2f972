"""HTML forms to the engine's typed commands (the same ones the API takes), and back to pre-filled values.

A form sends every field; each fact field has a hidden twin with the value the page showed, and only the
fields the user changed become part of the command (so a time shown to the minute is not sent back as a
change of seconds). Shapes only: every rule is the command's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from irflow.compliance.models import zone
from irflow.engine.services.views import Facts

FACT_FIELDS = (
    "role",
    "discovered_at",
    "discovery_reason",
    "affected_total",
    "affected_by_state",
    "breach_start",
    "breach_end",
    "ba_contract_days",
    "le_written_given_on",
    "le_written_until",
    "le_oral_given_on",
)
DELAY_FIELDS = ("le_written_given_on", "le_written_until", "le_oral_given_on")
ORIGINAL = "orig_"


class FormError(ValueError):
    """A field that cannot be read; the message names the field, never its value."""


def fact_values(facts: Facts, default_zone: str) -> dict[str, str]:
    """The facts as the form's fields show them (times in the incident's time zone, to the minute)."""
    values = dict.fromkeys(FACT_FIELDS, "")
    values["role"] = facts.role or ""
    if facts.discovered_at is not None:
        local = facts.discovered_at.astimezone(zone(facts.timezone or default_zone))
        values["discovered_at"] = local.strftime("%Y-%m-%dT%H:%M")
    values["discovery_reason"] = facts.discovery_reason or ""
    values["affected_total"] = "" if facts.affected_total is None else str(facts.affected_total)
    values["affected_by_state"] = ", ".join(f"{k}={v}" for k, v in sorted(facts.affected_by_state.items()))
    values["breach_start"] = facts.breach_start.isoformat() if facts.breach_start else ""
    values["breach_end"] = facts.breach_end.isoformat() if facts.breach_end else ""
    values["ba_contract_days"] = "" if facts.ba_contract_days is None else str(facts.ba_contract_days)
    delay = facts.law_enforcement_delay or {}
    written, oral = delay.get("written") or {}, delay.get("oral") or {}
    values["le_written_given_on"] = str(written.get("given_on") or "")
    values["le_written_until"] = str(written.get("until") or "")
    values["le_oral_given_on"] = str(oral.get("given_on") or "")
    return values


def _int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise FormError(f"{name}: give a whole number") from None


def _states(raw: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for part in (p.strip() for p in raw.replace(";", ",").split(",")):
        if not part:
            continue
        code, sep, count = part.partition("=")
        if not sep:
            raise FormError(
                "affected by state: write CODE=COUNT pairs separated by commas, e.g. CA=120, TX=40"
            )
        counts[code.strip()] = _int("affected by state", count.strip())
    return counts


def facts_update(form: dict[str, str]) -> dict[str, Any]:
    """The changed facts as a ``FactsUpdate`` body (validated by the command, not here)."""
    changed = {
        name for name in FACT_FIELDS if form.get(name, "").strip() != form.get(ORIGINAL + name, "").strip()
    }
    body: dict[str, Any] = {}
    for name in changed - set(DELAY_FIELDS):
        raw = form.get(name, "").strip()
        if name in ("affected_total", "ba_contract_days"):
            body[name] = _int(name.replace("_", " "), raw) if raw else None
        elif name == "affected_by_state":
            body[name] = _states(raw)
        elif name == "discovered_at":
            body[name] = _local_time(raw) if raw else None
        else:
            body[name] = raw or None
    if changed & set(DELAY_FIELDS):
        given, until, oral = (form.get(n, "").strip() for n in DELAY_FIELDS)
        delay: dict[str, Any] = {}
        if given or until:
            delay["written"] = {"given_on": given or None, "until": until or None}
        if oral:
            delay["oral"] = {"given_on": oral}
        body["law_enforcement_delay"] = delay or None
    return body


def _local_time(raw: str) -> datetime:
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        raise FormError("discovered at: give a date and time (YYYY-MM-DDTHH:MM)") from None
