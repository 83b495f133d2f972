"""The evidence package of one incident, as bytes for a download."""

from __future__ import annotations

from dataclasses import dataclass

from irflow.azure.clients import ConfigurationError
from irflow.engine.anchor import AnchorConfig, AnchorError, AnchorStore
from irflow.engine.export import build_evidence_package
from irflow.engine.runtime import Services
from irflow.engine.services.errors import NotFound, Unavailable


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
