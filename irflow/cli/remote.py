"""The CLI against a remote irflow (``IRFLOW_URL`` with ``IRFLOW_TOKEN``): the engine's services reached
through the HTTP API, returning the same pydantic views as :class:`~irflow.cli.backend.LocalBackend`, so a
command prints the same thing either way and an on-call laptop needs no database access.
"""

from __future__ import annotations

import time
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel

from irflow.engine.incidents import FactsUpdate, RiskAssessmentInput
from irflow.engine.services.deadlines import (
    DeadlineFilter,
    IncidentNotices,
    NoticeRecord,
    NoticeRecordedView,
    NotificationDetail,
)
from irflow.engine.services.errors import ServiceError
from irflow.engine.services.incidents import FactsResult, IncidentFilter
from irflow.engine.services.runs import (
    Cancelled,
    Decided,
    RetryStarted,
    RunCancel,
    RunDecision,
    RunFilter,
    RunList,
    RunStart,
    RunStarted,
)
from irflow.engine.services.views import DeadlineView, IncidentDetail, IncidentSummary, Page, RunView
from irflow.settings import Settings

M = TypeVar("M", bound=BaseModel)
PAGE = 200
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class RemoteError(ServiceError):
    """The remote irflow refused (its code and message) or could not be reached."""

    def __init__(self, message: str, code: str = "remote", status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def _q(value: str) -> str:
    return quote(value, safe="")


class RemoteBackend:
    """The engine's services over ``/api/v1``; every call raises :class:`RemoteError` on a refusal."""

    def __init__(self, url: str, token: str, *, timeout: float = 30.0, verify: bool | str = True) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise RemoteError(f"IRFLOW_URL must be an http(s) URL, got {url!r}")
        if parts.scheme == "http" and parts.hostname not in LOOPBACK:
            raise RemoteError("IRFLOW_URL must use https (the token would cross the network in clear text)")
        self._http = httpx.Client(
            base_url=url.rstrip("/") + "/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            verify=verify,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> RemoteBackend | None:
        if not settings.url:
            return None
        if settings.token is None:
            raise RemoteError("IRFLOW_URL is set but IRFLOW_TOKEN is not: the remote API needs a token")
        return cls(settings.url, settings.token.get_secret_value())

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, *, body: BaseModel | None = None, **params: Any) -> Any:
        content = None if body is None else body.model_dump_json(exclude_unset=True)
        headers = {"Content-Type": "application/json"} if content is not None else None
        query = {k: v for k, v in params.items() if v is not None} or None
        try:
            response = self._http.request(method, path, content=content, headers=headers, params=query)
        except httpx.HTTPError as exc:
            raise RemoteError(f"cannot reach {self._http.base_url}: {type(exc).__name__}") from None
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                message, code = str(error["message"]), str(error["code"])
            except (ValueError, KeyError, TypeError):
                message, code = f"HTTP {response.status_code}", "http_error"
            raise RemoteError(message, code, response.status_code)
        try:
            return response.json()
        except ValueError:
            raise RemoteError(f"{self._http.base_url} answered with something that is not JSON") from None

    def _get(self, model: type[M], path: str, **params: Any) -> M:
        return model.model_validate(self._call("GET", path, **params))

    # runs
    def show_run(self, run_id: str) -> RunView:
        return self._get(RunView, f"/runs/{_q(run_id)}")

    def list_runs(self, query: RunFilter) -> RunList:
        return self._get(RunList, "/runs", all=str(query.all).lower(), limit=query.limit)

    def start_run(self, command: RunStart) -> RunStarted:
        return RunStarted.model_validate(self._call("POST", "/runs", body=command))

    def decide(self, run_id: str, command: RunDecision, *, approved: bool) -> Decided:
        verb = "approve" if approved else "reject"
        return Decided.model_validate(self._call("POST", f"/runs/{_q(run_id)}/{verb}", body=command))

    def cancel(self, run_id: str, command: RunCancel) -> Cancelled:
        return Cancelled.model_validate(self._call("POST", f"/runs/{_q(run_id)}/cancel", body=command))

    def retry(self, run_id: str) -> RetryStarted:
        return RetryStarted.model_validate(self._call("POST", f"/runs/{_q(run_id)}/retry"))

    # incidents
    def list_incidents(self) -> list[IncidentSummary]:
        items: list[IncidentSummary] = []
        while True:
            page = self._get(
                Page[IncidentSummary], "/incidents", limit=IncidentFilter(limit=PAGE).limit, offset=len(items)
            )
            items.extend(page.items)
            if not page.items or len(items) >= page.total:
                return items

    def show_incident(self, incident_id: str) -> IncidentDetail:
        return self._get(IncidentDetail, f"/incidents/{_q(incident_id)}")

    def change_facts(self, incident_id: str, command: FactsUpdate) -> FactsResult:
        return FactsResult.model_validate(
            self._call("PATCH", f"/incidents/{_q(incident_id)}/facts", body=command)
        )

    def assess_risk(self, incident_id: str, command: RiskAssessmentInput) -> FactsResult:
        return FactsResult.model_validate(
            self._call("POST", f"/incidents/{_q(incident_id)}/risk-assessment", body=command)
        )

    def record_notice(self, incident_id: str, command: NoticeRecord) -> NoticeRecordedView:
        return NoticeRecordedView.model_validate(
            self._call("POST", f"/incidents/{_q(incident_id)}/notices/sent", body=command)
        )

    # deadlines and notices
    def list_deadlines(self, query: DeadlineFilter) -> Page[DeadlineView]:
        params = query.model_dump(mode="json", exclude_none=True)
        return self._get(Page[DeadlineView], "/deadlines", **params)

    def notices(self, incident_id: str) -> IncidentNotices:
        return self._get(IncidentNotices, f"/incidents/{_q(incident_id)}/notices")

    def notification(self, notification_id: str) -> NotificationDetail:
        return self._get(NotificationDetail, f"/notices/{_q(notification_id)}")


def wait_for(check: Any, *, timeout_s: float, interval_s: float = 0.25) -> bool:
    """Poll *check* until it is true or *timeout_s* passes; whether it became true."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval_s)
    return True
