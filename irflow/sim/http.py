"""Transport-neutral request and response shapes, shared by both mounts (``responses``, HTTPS server)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from irflow.sim import errors

JSON_CONTENT_TYPE = "application/json; charset=utf-8"


class Headers:
    """Case-insensitive, read-only view of request headers."""

    def __init__(self, items: Any = ()) -> None:
        pairs = items.items() if hasattr(items, "items") else items
        self._items = {str(k).lower(): str(v) for k, v in pairs}

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._items.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items


@dataclass
class SimRequest:
    """One HTTP request as the router sees it.

    ``base_url`` is the scheme and authority the client used (``https://management.azure.com`` in the mock,
    ``https://127.0.0.1:PORT`` on the server): links the simulator hands out (``nextLink``, data-plane
    endpoints) are built from it so they always point back at the simulator.
    """

    method: str
    base_url: str
    path: str
    query: dict[str, str]
    headers: Headers
    body: bytes = b""
    params: dict[str, str] = field(default_factory=dict)  # path parameters, filled by the router
    peer: str | None = None  # the connection's remote address (HTTPS server only; see irflow.sim.firewall)

    @classmethod
    def from_url(
        cls,
        method: str,
        url: str,
        headers: Any = (),
        body: bytes | str | None = None,
        peer: str | None = None,
    ) -> SimRequest:
        parts = urlsplit(url)
        raw = body.encode("utf-8") if isinstance(body, str) else (body or b"")
        return cls(
            method=method.upper(),
            base_url=f"{parts.scheme}://{parts.netloc}",
            path=unquote(parts.path) or "/",
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers=Headers(headers),
            body=raw,
            peer=peer,
        )

    def query_param(self, name: str) -> str | None:
        """Query parameters are matched case-insensitively, as ARM does."""
        lowered = name.lower()
        for key, value in self.query.items():
            if key.lower() == lowered:
                return value
        return None

    def json(self) -> Any:
        """The body parsed as JSON (``None`` when empty); malformed JSON is an ARM 400."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise errors.invalid_request_content(str(exc)) from exc

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object; anything else is an ARM 400."""
        value = self.json()
        if not isinstance(value, dict):
            raise errors.invalid_request_content("the request body must be a JSON object")
        return value


@dataclass
class SimResponse:
    """An answer. ``body`` is sent as JSON, unless ``raw`` is given: then ``raw`` goes on the wire as is (the
    blob service's XML, with its own ``Content-Type`` header) and ``body`` is only what the journal
    records."""

    status: int
    body: Any = None  # a JSON-serialisable value, or None for an empty body
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None

    def encoded(self) -> bytes:
        if self.raw is not None:
            return self.raw
        if self.body is None:
            return b""
        return json.dumps(self.body, separators=(",", ":")).encode("utf-8")

    def wire_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.body is not None and self.raw is None:
            headers.setdefault("Content-Type", JSON_CONTENT_TYPE)
        return headers
