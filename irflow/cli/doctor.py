"""Rendering of ``irflow doctor``'s report (the checks are in :mod:`irflow.doctor`)."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from irflow.cli.common import console
from irflow.doctor import Report

_STYLE = {"ok": "green", "missing": "bold red", "failed": "bold red", "skipped": "yellow"}


def print_doctor(report: Report) -> None:
    checks = Table(title="irflow doctor")
    checks.add_column("check", no_wrap=True)
    checks.add_column("status", no_wrap=True)
    checks.add_column("detail", overflow="fold")
    for check in report.checks:
        style = _STYLE.get(check.status, "")
        checks.add_row(check.name, f"[{style}]{check.status}[/]", escape(check.detail))
    console.print(checks)
    permissions = report.permissions
    if permissions is not None and permissions.missing:
        missing = Table(title=f"missing at {escape(permissions.scope)}")
        missing.add_column("permission", no_wrap=True)
        missing.add_column("needed by", overflow="fold")
        for permission, actions in permissions.missing.items():
            missing.add_row(escape(permission), escape(", ".join(actions)))
        console.print(missing)
    if permissions is not None and permissions.not_checked:
        console.print(
            "not checked (Microsoft Entra role permissions, not visible to ARM): "
            + escape(", ".join(permissions.not_checked))
        )
    console.print("[green]all checks passed[/]" if report.ok else "[bold red]something is missing[/]")
