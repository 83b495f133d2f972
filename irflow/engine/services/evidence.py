"""The evidence package of one incident, as bytes for a download."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import select

from irflow.azure.clients import ConfigurationError
from irflow.engine.anchor import AnchorConfig, AnchorError, AnchorStore
from irflow.engine.export import build_evidence_package
from irflow.engine.runtime import Services
from irflow.engine.services.errors import NotFound, Unavailable
from irflow.store.db import Database
from irflow.store.models import Evidence, Incident


@dataclass(frozen=True)
class Package:
    file_name: str
    data: bytes


def evidence_package(svc: Services, incident_id: str) -> Package:
    """What `irflow audit export` writes, with the covering anchor when anchoring is configured."""
    file_name = f"evidence-{incident_id}.zip"
    try:
        config = AnchorConfig.from_settings(svc.settings)
        anchors = None if config is None else AnchorStore(svc.clients, config)
        data = build_evidence_package(svc.db, incident_id, anchors=anchors, package_name=file_name)
    except LookupError:
        raise NotFound(f"no incident {incident_id}") from None
    except (ConfigurationError, AnchorError) as exc:
        raise Unavailable(f"could not read the audit anchors: {exc}") from None
    return Package(file_name=file_name, data=data)


class EvidenceItemView(BaseModel):
    """One forensic item as the manifest lists it: what, from where, where the bytes are, their SHA-256."""

    id: str
    kind: str
    source: str
    location: str
    sha256: str
    size: int
    captured_at: datetime


def evidence_items(db: Database, incident_id: str) -> list[EvidenceItemView]:
    with db.transaction() as session:
        if session.get(Incident, incident_id) is None:
            raise NotFound(f"no incident {incident_id}")
        rows = session.execute(
            select(Evidence)
            .where(Evidence.incident_id == incident_id)
            .order_by(Evidence.captured_at, Evidence.id)
        ).scalars()
        return [
            EvidenceItemView(
                id=e.id,
                kind=e.kind,
                source=e.source,
                location=e.location,
                sha256=e.sha256,
                size=e.size,
                captured_at=e.captured_at,
            )
            for e in rows
        ]
