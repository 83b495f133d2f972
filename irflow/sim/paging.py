"""ARM list paging: ``{"value": [...], "nextLink": "<absolute url>"}`` with an opaque ``$skipToken``."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from irflow.sim import errors
from irflow.sim.http import SimRequest

T = TypeVar("T")


def _encode(position: list[str]) -> str:
    raw = json.dumps(position, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode(token: str) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        position = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.invalid_values("$skipToken") from exc
    if not isinstance(position, list) or not all(isinstance(p, str) for p in position):
        raise errors.invalid_values("$skipToken")
    return position


def page(
    request: SimRequest,
    items: Sequence[T],
    *,
    sort_key: Callable[[T], list[str]],
    render: Callable[[T], Any],
    page_size: int,
) -> dict[str, Any]:
    """One page of ``items`` (already in ``sort_key`` order) after the request's ``$skipToken``.

    The token names the last item served rather than an offset, so items added or removed between pages
    neither repeat nor vanish. ``nextLink`` keeps the request's own query (``api-version`` included).
    """
    token = request.query_param("$skipToken")
    remaining = list(items)
    if token:
        after = _decode(token)
        remaining = [item for item in remaining if sort_key(item) > after]
    current, rest = remaining[:page_size], remaining[page_size:]
    body: dict[str, Any] = {"value": [render(item) for item in current]}
    if rest:
        query = {k: v for k, v in request.query.items() if k.lower() != "$skiptoken"}
        query["$skipToken"] = _encode(sort_key(current[-1]))
        body["nextLink"] = f"{request.base_url}{request.path}?{urlencode(query, safe='$')}"
    return body
