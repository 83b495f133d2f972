"""Rendering runs, plans and timelines for the terminal."""

from __future__ import annotations

import json
from typing import Any

from rich.markup import escape
from rich.table import Table

STATE_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "running": "yellow",
    "planned": "cyan",
    "awaiting_approval": "magenta",
    "pending": "dim",
    "skipped": "dim",
    "cancelled": "dim",
}


def short_target(target: str | None) -> str:
    if not target:
        return "-"
    return target.rsplit("/", 1)[-1] if target.startswith("/subscriptions/") else target


def steps_table(view: dict[str, Any]) -> Table:
    table = Table(
        title=escape(f"run {view['id']} · {view['playbook']} v{view['version']} · {view['status']}")
    )
    for column in ("step", "target", "action", "state", "attempts", "changes"):
        table.add_column(column)
    for step in view["steps"]:
        style = STATE_STYLE.get(step["state"], "")
        changes = _change_summary(step)
        table.add_row(
            escape(step["step"]),
            escape(short_target(step["target"])),
            escape(step["action"]),
            f"[{style}]{step['state']}[/]" if style else escape(step["state"]),
            str(step["attempts"]),
            escape(changes),
        )
    return table


def _change_summary(step: dict[str, Any]) -> str:
    if step["state"] == "failed":
        return (step.get("error") or "")[:120]
    source = step.get("result") or step.get("plan") or {}
    changes = source.get("changes") or []
    if not changes:
        return "no change" if source else ""
    return ", ".join(change["field"].rsplit(".", 1)[-1] for change in changes)


def plan_lines(view: dict[str, Any]) -> list[str]:
    lines = []
    for step in view["steps"]:
        plan = step.get("plan") or {}
        head = f"{step['step']} [{step['action']}] {short_target(step['target'])}"
        if step["state"] == "failed":
            lines.append(f"{head}: cannot plan: {step.get('error')}")
            continue
        changes = plan.get("changes") or []
        if not changes:
            lines.append(f"{head}: no change" + "".join(f" ({n})" for n in plan.get("notes", [])))
        for change in changes:
            lines.append(
                f"{head}: {change['field']}: {json.dumps(change['before'])} -> {json.dumps(change['after'])}"
            )
    return lines


def timeline_table(events: list[dict[str, Any]]) -> Table:
    table = Table(title="audit timeline")
    for column in ("#", "time (UTC)", "actor", "event", "detail"):
        table.add_column(column)
    for event in events:
        payload = event["payload"]
        detail = " ".join(
            part
            for part in (
                payload.get("step", ""),
                short_target(payload.get("target")) if payload.get("target") else "",
                f"changed={payload['changed']}" if "changed" in payload else "",
                payload.get("error", ""),
            )
            if part
        )
        table.add_row(
            str(event["seq"]),
            event["ts"][11:23],
            escape(event["actor"]),
            escape(event["type"]),
            escape(detail[:90]),
        )
    return table
