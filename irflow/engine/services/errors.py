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


class Forbidden(ServiceError):
    """The caller's role does not allow this part of the request (auto-approval needs an approver)."""

    code = "forbidden"


class Unavailable(ServiceError):
    """A part this needs is not running here (the engine in a process started without workers)."""

    code = "unavailable"


def problems(exc: ValidationError) -> str:
    """Pydantic's errors as ``field: message`` pairs, without echoing the input (it may hold PHI)."""
    return "; ".join(
        f"{'.'.join(str(part) for part in err['loc']) or 'value'}: {err['msg']}" for err in exc.errors()
    )


def messages(exc: ValidationError) -> str:
    """Pydantic's errors as ``where: message`` in the model's own words (no "Value error, " prefix), without
    echoing the input."""
    parts = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
