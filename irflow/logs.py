"""Logging for irflow: structlog and the stdlib ``logging`` tree share one processor chain, redacted.

Every record, ours or a library's (dbos, azure-core's HTTP logging, urllib3, alembic, sqlalchemy …),
goes through the same handler on the root logger: context ids from :func:`bind_context`, level,
logger name and a UTC ISO timestamp are added, exceptions and stacks are rendered to text, then
everything, the event text and the traceback included, is passed through :func:`irflow.redaction.redact`
before the JSON or console renderer sees it. Logs go to stderr; stdout is for CLI output.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from irflow import clock
from irflow.redaction import mask, redact
from irflow.settings import get_settings

FORMATS = ("auto", "json", "console")
# Chatty below WARNING; their DEBUG output is only wanted when irflow itself runs at DEBUG.
NOISY_LOGGERS = ("dbos", "azure", "urllib3", "alembic", "sqlalchemy", "transitions")
# These print stored values (SQL parameters, result rows: notice bodies, names) below WARNING, which the
# redaction cannot recognise as PHI: they stay at WARNING whatever irflow's own level.
DATA_LOGGERS = ("sqlalchemy.engine", "sqlalchemy.pool", "sqlalchemy.orm")
# DBOS gives the `dbos` logger a console handler of its own (and stops propagation) unless it has one.
_DBOS_CONSOLE_HANDLER = "__dbos_console_log_handler__"
_FIRST_KEYS = ("timestamp", "level", "logger", "event")


def configure_logging(
    *, level: str | None = None, fmt: str | None = None, stream: TextIO | None = None
) -> None:
    """Configure structlog and the stdlib root logger for this process.

    *level* and *fmt* default to the settings (``IRFLOW_LOG_LEVEL``, ``IRFLOW_LOG_FORMAT``); *fmt* is
    ``json`` (one object per line), ``console`` (aligned, coloured on a TTY) or ``auto`` (console on a
    TTY, JSON otherwise). *stream* defaults to ``sys.stderr``. Calling it again replaces the previous
    configuration, so it is safe to call once per entry point and again in tests.
    """
    if level is None or fmt is None:
        settings = get_settings()
        level = level or settings.log_level
        fmt = fmt or settings.log_format
    numeric_level = _level_number(level)
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    stream = stream if stream is not None else sys.stderr

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: tests reconfigure, and structlog.testing.capture_logs must reach every logger.
        cache_logger_on_first_use=False,
    )
    handler = _Handler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_shared_processors(),
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact_event,
                _renderer(fmt, stream),
            ],
        )
    )
    _install(handler, numeric_level)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """A structlog logger; *name* defaults to the calling module's ``__name__``."""
    if name is None:
        name = sys._getframe(1).f_globals.get("__name__", "irflow")
    return structlog.stdlib.get_logger(name)


@contextlib.contextmanager
def bind_context(**ids: Any) -> Iterator[None]:
    """Bind ids (``incident_id``, ``run_id``, ``step_id``, ``target`` …) to every log line of this
    context (thread or task), restoring the previous values on exit."""
    with structlog.contextvars.bound_contextvars(**ids):
        yield


def redact_event(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Processor: redact the whole event dict; objects that are not plain data are logged as ``str()``."""
    redacted = redact(event_dict, default=_loggable)
    if not isinstance(redacted, dict):  # the event could not even be walked
        redacted = {"event": mask("unrepresentable")}
    first = {key: redacted.pop(key) for key in _FIRST_KEYS if key in redacted}
    return first | redacted


def _renderer(fmt: str, stream: TextIO) -> Processor:
    tty = _is_tty(stream)
    if fmt == "console" or (fmt == "auto" and tty):
        return structlog.dev.ConsoleRenderer(colors=tty)
    return structlog.processors.JSONRenderer(skipkeys=True)  # values are plain data after redact_event


def _shared_processors() -> list[Processor]:
    """What every record gets, from structlog or from a stdlib logger."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _add_timestamp,
    ]


def _add_timestamp(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    event_dict["timestamp"] = clock.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return event_dict


def _loggable(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def _level_number(level: str) -> int:
    number = logging.getLevelNamesMapping().get(str(level).upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}")
    return number


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that never prints a record it failed to render (logging's default does,
    unredacted, on stderr)."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        with contextlib.suppress(Exception):
            error = sys.exc_info()[0]
            self.stream.write(
                f"irflow.logs: a record of logger {record.name!r} could not be rendered "
                f"({error.__name__ if error else 'unknown error'})\n"
            )


def _install(handler: logging.Handler, level: int) -> None:
    """Put *handler* on the root and on `dbos`, in place of ours from before and of plain console ones."""
    root = logging.getLogger()
    dbos = logging.getLogger("dbos")
    for logger in (root, dbos):
        for old in list(logger.handlers):
            if isinstance(old, _Handler) or old.name == _DBOS_CONSOLE_HANDLER or _is_console_handler(old):
                logger.removeHandler(old)
        logger.addHandler(handler)
    dbos.propagate = False
    root.setLevel(level)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(
            logging.NOTSET if level <= logging.DEBUG else max(level, logging.WARNING)
        )
    for name in DATA_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def _is_console_handler(handler: logging.Handler) -> bool:
    """A bare StreamHandler on stdout/stderr (``logging.basicConfig``) would print records unredacted."""
    return type(handler) is logging.StreamHandler and getattr(handler, "stream", None) in (
        sys.stdout,
        sys.stderr,
    )
