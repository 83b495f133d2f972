"""Sentinel webhook test helpers: real-schema payloads (a recorded incident, common alerts), signatures."""

from __future__ import annotations

import copy
import json
import time
import uuid
from pathlib import Path
from typing import Any

from irflow.notify.channels import sign

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_SUBSCRIPTION = "9b2f6c1d-4e8a-4f3b-a1c7-2d5e8f0a6b3c"
SECRET = "test-sentinel-secret-7f3a"
STORAGE = "/subscriptions/{sub}/resourceGroups/rg-phi-prod/providers/Microsoft.Storage/storageAccounts/{name}"


def incident(subscription_id: str = FIXTURE_SUBSCRIPTION, **changes: Any) -> dict[str, Any]:
    """The recorded Sentinel incident (Create), in another subscription, with *changes* to its properties."""
    text = (FIXTURES / "sentinel_incident_create.json").read_text()
    document = json.loads(text.replace(FIXTURE_SUBSCRIPTION, subscription_id))
    event = changes.pop("objectEventType", None)
    if event:
        document["objectEventType"] = event
    incident_name = changes.pop("incident_name", None)
    if incident_name:
        document["object"]["id"] = document["object"]["id"].rsplit("/", 1)[0] + f"/{incident_name}"
        document["object"]["name"] = incident_name
    document["object"]["properties"].update(changes)
    return document


def common_alert(subscription_id: str, targets: list[str], *, rule: str, condition: str = "Fired") -> dict:  # type: ignore[type-arg]
    """An Azure Monitor common alert schema payload (log search alert), as in Microsoft's samples."""
    alert_guid = str(uuid.uuid5(uuid.NAMESPACE_URL, rule + subscription_id))
    return {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": {
                "alertId": (
                    f"/subscriptions/{subscription_id}/providers/Microsoft.AlertsManagement/alerts/{alert_guid}"
                ),
                "alertRule": rule,
                "severity": "Sev1",
                "signalType": "Log",
                "monitorCondition": condition,
                "monitoringService": "Log Alerts V2",
                "alertTargetIDs": [t.lower() for t in targets],
                "configurationItems": [t.rsplit("/", 1)[-1] for t in targets],
                "originAlertId": alert_guid,
                "firedDateTime": "2026-03-01T03:00:14.3920176Z",
                "description": "",
                "essentialsVersion": "1.0",
                "alertContextVersion": "1.0",
            },
            "alertContext": {"properties": None, "conditionType": "LogQueryCriteria"},
            "customProperties": None,
        },
    }


def body_of(document: Any) -> bytes:
    return json.dumps(document).encode("utf-8")


def signed_headers(body: bytes, *, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    stamp = int(time.time() if at is None else at)
    return {"Content-Type": "application/json", "X-IRFlow-Signature": sign(secret, body, stamp)}


def variant(document: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(document)
