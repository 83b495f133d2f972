"""What a service refuses, independent of how the caller reports it (HTTP status, CLI exit code)."""

from __future__ import annotations

from pydantic import ValidationError


class ServiceError(Exception):
    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ServiceError, LookupError):
    code = "not_found"


class Conflict(ServiceError):
    """The request is valid but the current state does not allow it (a finished run cannot be cancelled)."""

    code = "conflict"


class Invalid(ServiceError, ValueError):
    """The request itself is wrong (an unknown playbook, a parameter the playbook does not take)."""

    code = "invalid"


class Unavailable(ServiceError):
    """A part this needs is not running here (the engine in a process started without workers)."""

    code = "unavailable"


def problems(exc: ValidationError) -> str:
    """Pydantic's errors as ``field: message`` pairs, without echoing the input (it may hold PHI)."""
    return "; ".join(
        f"{'.'.join(str(part) for part in err['loc']) or 'value'}: {err['msg']}" for err in exc.errors()
    )
