"""Shared CLI plumbing: settings, logging, the engine, and turning known failures into clean exits."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from irflow.settings import Settings, get_settings

# Rich wraps at 80 columns when stdout is not a terminal; logs and CI captures read better wider.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
errors = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 140)

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_WAITING = 3


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    errors.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


def load_settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"IRFLOW_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        fail(f"invalid configuration: {problems}")


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


@contextmanager
def engine(settings: Settings) -> Iterator:
    """Launch the engine for this command (resuming unfinished runs) and shut it down afterwards."""
    from irflow.engine import runtime
    from irflow.store.db import SchemaOutOfDate

    try:
        svc = runtime.launch(settings)
    except (SchemaOutOfDate, runtime.EngineBusy) as exc:
        fail(str(exc))
    try:
        yield svc
    finally:
        runtime.shutdown()


def is_tty() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()
