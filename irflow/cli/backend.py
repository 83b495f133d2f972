"""Where a CLI command's service call goes: the local database (the engine's services in this process) or a
remote irflow's API (``IRFLOW_URL``). Both answer with the same pydantic views, which the commands render.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any, Protocol

from pydantic import BaseModel

from irflow.engine.incidents import FactsUpdate, RiskAssessmentInput
from irflow.engine.services import deadlines as deadline_services
from irflow.engine.services import incidents as incident_services
from irflow.engine.services import runs as run_services
from irflow.engine.services.deadlines import (
    DeadlineFilter,
    IncidentNotices,
    NoticeRecord,
    NoticeRecordedView,
    NotificationDetail,
)
from irflow.engine.services.incidents import FactsResult, IncidentFilter
from irflow.engine.services.principals import Principal
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

PAGE = 200


class Backend(Protocol):
    def show_run(self, run_id: str) -> RunView: ...
    def list_runs(self, query: RunFilter) -> RunList: ...
    def start_run(self, command: RunStart) -> RunStarted: ...
    def decide(self, run_id: str, command: RunDecision, *, approved: bool) -> Decided: ...
    def cancel(self, run_id: str, command: RunCancel) -> Cancelled: ...
    def retry(self, run_id: str) -> RetryStarted: ...
    def list_incidents(self) -> list[IncidentSummary]: ...
    def show_incident(self, incident_id: str) -> IncidentDetail: ...
    def change_facts(self, incident_id: str, command: FactsUpdate) -> FactsResult: ...
    def assess_risk(self, incident_id: str, command: RiskAssessmentInput) -> FactsResult: ...
    def record_notice(self, incident_id: str, command: NoticeRecord) -> NoticeRecordedView: ...
    def list_deadlines(self, query: DeadlineFilter) -> Page[DeadlineView]: ...
    def notices(self, incident_id: str) -> IncidentNotices: ...
    def notification(self, notification_id: str) -> NotificationDetail: ...


def cli_principal(actor: str) -> Principal:
    """Whoever runs the CLI on the database holds every role: the database access is the authority."""
    return Principal(kind="system", id=actor, name=actor, roles=frozenset({"admin"}))


class LocalBackend:
    """The engine's services over this process's database (and engine, for what needs it)."""

    def __init__(self, svc: Any, by: Principal) -> None:
        self.svc, self.by = svc, by

    def show_run(self, run_id: str) -> RunView:
        return run_services.show_run(self.svc, run_id)

    def list_runs(self, query: RunFilter) -> RunList:
        return run_services.list_runs(self.svc, query)

    def start_run(self, command: RunStart) -> RunStarted:
        return run_services.start_run(self.svc, command, by=self.by, source="cli")

    def decide(self, run_id: str, command: RunDecision, *, approved: bool) -> Decided:
        return run_services.decide(self.svc, run_id, command, approved=approved, by=self.by)

    def cancel(self, run_id: str, command: RunCancel) -> Cancelled:
        return run_services.cancel(self.svc, run_id, command, by=self.by)

    def retry(self, run_id: str) -> RetryStarted:
        return run_services.retry(self.svc, run_id, by=self.by)

    def list_incidents(self) -> list[IncidentSummary]:
        items: list[IncidentSummary] = []
        while True:
            page = incident_services.list_incidents(
                self.svc.db, IncidentFilter(limit=PAGE, offset=len(items))
            )
            items.extend(page.items)
            if not page.items or len(items) >= page.total:
                return items

    def show_incident(self, incident_id: str) -> IncidentDetail:
        return incident_services.show_incident(self.svc.db, incident_id)

    def change_facts(self, incident_id: str, command: FactsUpdate) -> FactsResult:
        return incident_services.change_facts(self.svc.db, incident_id, command, by=self.by)

    def assess_risk(self, incident_id: str, command: RiskAssessmentInput) -> FactsResult:
        return incident_services.assess_risk(self.svc.db, incident_id, command, by=self.by)

    def record_notice(self, incident_id: str, command: NoticeRecord) -> NoticeRecordedView:
        return deadline_services.record_notice(self.svc.db, incident_id, command, by=self.by)

    def list_deadlines(self, query: DeadlineFilter) -> Page[DeadlineView]:
        return deadline_services.list_deadlines(self.svc.db, query)

    def notices(self, incident_id: str) -> IncidentNotices:
        return deadline_services.incident_notices(self.svc.db, incident_id)

    def notification(self, notification_id: str) -> NotificationDetail:
        return deadline_services.show_notification(self.svc.db, notification_id)


def remote() -> Any:
    """The remote backend when ``IRFLOW_URL`` is set, else None (a bad configuration ends the CLI)."""
    from irflow.cli.common import fail, load_settings
    from irflow.cli.remote import RemoteBackend, RemoteError

    try:
        return RemoteBackend.from_settings(load_settings())
    except RemoteError as exc:
        fail(exc.message)


@contextmanager
def backend(actor: str) -> Iterator[Backend]:
    """The remote irflow when ``IRFLOW_URL`` is set, else the local database (no engine launched)."""
    api = remote()
    if api is not None:
        try:
            yield api
        finally:
            api.close()
        return
    from irflow.cli.common import reader

    with reader() as svc:
        yield LocalBackend(svc, cli_principal(actor))


def _iso(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def plain(view: BaseModel, **dump: Any) -> Any:
    """The view as the CLI prints it: JSON types, dates and times in ISO 8601 with ``+00:00`` for UTC."""
    return json.loads(json.dumps(view.model_dump(**dump), default=_iso))
