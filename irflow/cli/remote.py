"""The CLI against a remote irflow (``IRFLOW_URL`` with ``IRFLOW_TOKEN``): the same views, read through
the HTTP API, so an on-call laptop needs no database access.

Each method returns the view in the shape the local command builds, so both print the same output.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx

from irflow.settings import Settings

T = TypeVar("T")
PAGE = 200
# pydantic writes UTC as "Z"; the local views use datetime.isoformat() ("+00:00").
_UTC_Z = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z$")
_LOCAL_DEADLINE_KEYS = ("kind", "jurisdiction", "due", "basis", "notes", "status")
_LOCAL_NOTICE_KEYS = ("id", "status", "channel", "template", "recipient", "subject", "attempts", "created_at")


class RemoteError(Exception):
    """The remote irflow refused (its message) or could not be reached."""


TIME_KEYS = ("created_at", "started_at", "finished_at", "detected_at", "discovered_at", "sent_at")


def _local_times(view: dict[str, Any]) -> dict[str, Any]:
    """The view's own timestamps as the local views write them (plans and results are left as Azure wrote)."""
    for key in TIME_KEYS:
        value = view.get(key)
        if isinstance(value, str) and (match := _UTC_Z.match(value)):
            view[key] = f"{match.group(1)}+00:00"
    return view


class RemoteApi:
    def __init__(self, url: str, token: str, *, timeout: float = 30.0, verify: bool | str = True) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise RemoteError(f"IRFLOW_URL must be an http(s) URL, got {url!r}")
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise RemoteError("IRFLOW_URL must use https (the token would cross the network in clear text)")
        self._http = httpx.Client(
            base_url=url.rstrip("/") + "/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            verify=verify,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> RemoteApi | None:
        if not settings.url:
            return None
        if settings.token is None:
            raise RemoteError("IRFLOW_URL is set but IRFLOW_TOKEN is not: the remote API needs a token")
        return cls(settings.url, settings.token.get_secret_value())

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str, **params: Any) -> Any:
        try:
            response = self._http.get(path, params=params or None)
        except httpx.HTTPError as exc:
            raise RemoteError(f"cannot reach {self._http.base_url}: {type(exc).__name__}") from None
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = f"HTTP {response.status_code}"
            raise RemoteError(message)
        return response.json()

    def run(self, run_id: str) -> dict[str, Any]:
        return _local_times(self._get(f"/runs/{quote(run_id, safe='')}"))

    def incidents(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = self._get("/incidents", limit=PAGE, offset=len(items))
            items.extend(_local_times(item) for item in page["items"])
            if not page["items"] or len(items) >= page["total"]:
                return items

    def incident(self, incident_id: str) -> dict[str, Any]:
        view = self._get(f"/incidents/{quote(incident_id, safe='')}")
        view["deadlines"] = [{k: d[k] for k in _LOCAL_DEADLINE_KEYS} for d in view["deadlines"]]
        _local_times(view["facts"])
        return _local_times(view)

    def notices(self, incident_id: str) -> list[dict[str, Any]]:
        notices = self._get(f"/incidents/{quote(incident_id, safe='')}/notices")
        return [_local_times({k: n[k] for k in _LOCAL_NOTICE_KEYS}) for n in notices["notifications"]]

    def notification(self, notification_id: str) -> dict[str, Any]:
        return _local_times(self._get(f"/notices/{quote(notification_id, safe='')}"))


def remote_read(read: Callable[[RemoteApi], T]) -> T | None:
    """*read* through the API when ``IRFLOW_URL`` is set; None when the CLI works on the local database."""
    from irflow.cli.common import fail, load_settings

    try:
        api = RemoteApi.from_settings(load_settings())
    except RemoteError as exc:
        fail(str(exc))
    if api is None:
        return None
    try:
        return read(api)
    except RemoteError as exc:
        fail(str(exc))
    finally:
        api.close()
