"""The one error shape of the API: ``{"error": {"code", "message"}}`` with a 4xx/5xx status."""

from __future__ import annotations

from pydantic import BaseModel

from irflow.redaction import redact_text


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def payload(code: str, message: str) -> dict[str, dict[str, str]]:
    """The error body of every API error. A message may quote what the caller sent (an id, a parameter's
    value): it is redacted, as the CLI's are, so a pasted SSN or key never comes back in an answer."""
    return {"error": {"code": code, "message": redact_text(message)}}


DESCRIPTIONS = {
    400: "Malformed request: a body that is not JSON, or nested deeper than the limit",
    401: "No bearer token, or an unknown, expired or revoked one",
    403: "The caller's role does not allow this",
    404: "No such resource",
    409: "The current state does not allow this",
    413: "Request body larger than the limit",
    415: "The body is not application/json",
    422: "The request does not match its schema (unknown fields, values out of range)",
    429: "Too many refused (401) requests from this address: retry after the Retry-After seconds",
    503: "A part this needs is unavailable (the engine in this process, the identity provider)",
}
AUTH = (401, 403, 429, 503)


def responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI entries for the error statuses a route may answer, all with the one error body."""
    return {status: {"model": ErrorResponse, "description": DESCRIPTIONS[status]} for status in statuses}
