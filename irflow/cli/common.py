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


EXIT_INTERRUPTED = 130


class _Options:
    """Global flags of this invocation (set by the root callback)."""

    debug = False


options = _Options()


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    _say(message)
    raise typer.Exit(code)


def _say(message: str) -> None:
    from irflow.redaction import redact_text

    errors.print(f"[bold red]error:[/] {escape(redact_text(message))}", markup=True, soft_wrap=True)


def run_cli(app: typer.Typer) -> int:
    """Run the command line and return its exit code. Every failure ends as one redacted ``error:`` line
    and a non-zero code; ``--debug`` adds the traceback."""
    try:
        result = app(standalone_mode=False)
    except typer.TyperException as exc:  # usage errors: their message may quote what was typed
        if type(exc).__name__ == "NoArgsIsHelpError":  # the message is the help text
            errors.print(exc.format_message(), markup=False, soft_wrap=True)
        else:
            _say(exc.format_message())
            context = getattr(exc, "ctx", None)
            if context is not None:
                errors.print(f"see: {context.command_path} --help", markup=False)
        return exc.exit_code
    except typer.Abort:
        _say("aborted")
        return EXIT_FAILED
    except typer.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        _say("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 — the one place where any failure becomes a message
        if options.debug:
            errors.print_exception()
        _say(describe_failure(exc))
        return EXIT_FAILED
    return result if isinstance(result, int) else 0


def describe_failure(exc: BaseException) -> str:
    """What went wrong, for a person: the kind of failure and its first line, without values."""
    from sqlalchemy import exc as sa

    detail = _first_line(exc)
    if isinstance(exc, sa.OperationalError | sa.InterfaceError):
        return f"cannot use the database {_database()}: {_first_line(exc.orig) if exc.orig else detail}"
    if isinstance(exc, sa.DataError | sa.IntegrityError):
        return f"the database refused a value: {_first_line(exc.orig) if exc.orig else detail}"
    if isinstance(exc, OverflowError):
        if "int" in detail:
            return f"a number is out of range (at most {2**63 - 1}): {detail}"
        return f"a date or number is out of range: {detail}"
    hint = "" if options.debug else " (run with --debug for the traceback)"
    return f"unexpected {type(exc).__name__}: {detail}{hint}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _database() -> str:
    """The configured database URL with its password hidden."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(get_settings().database_url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 — the URL may be what is broken
        return "(the configured IRFLOW_DATABASE_URL)"


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
def engine(settings: Settings, *, kind: str = "run", ephemeral: bool | None = None) -> Iterator:
    """Launch the engine for this command (resuming unfinished runs) and shut it down afterwards.

    A command's own worker (*kind* ``run``) takes a per-process executor id on PostgreSQL unless told
    otherwise (``irflow runs resume`` resumes under the configured one)."""
    from irflow.engine import runtime
    from irflow.engine.replicas import ExecutorIdInUse
    from irflow.store.db import SchemaOutOfDate

    try:
        svc = runtime.launch(settings, kind=kind, ephemeral=kind == "run" if ephemeral is None else ephemeral)
    except (SchemaOutOfDate, runtime.EngineBusy, ExecutorIdInUse) as exc:
        fail(str(exc))
    try:
        yield svc
    finally:
        runtime.shutdown()


@contextmanager
def reader() -> Iterator:
    """Services for commands that only read or write records: the database, no engine."""
    from irflow.engine.runtime import Services, open_database
    from irflow.engine.state import StateStore
    from irflow.store.db import SchemaOutOfDate

    settings = load_settings()
    try:
        db = open_database(settings)
    except SchemaOutOfDate as exc:
        fail(str(exc))
    try:
        yield Services(settings=settings, db=db, state=StateStore(db))
    finally:
        db.dispose()


def is_tty() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()
