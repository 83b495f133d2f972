"""What a Sentinel webhook delivery says, read from its raw body within hard limits.

Two shapes are accepted:

- the Microsoft Sentinel incident as an automation rule hands it to a playbook (the Logic App
  "Microsoft Sentinel incident" trigger): ``objectSchemaType``, ``objectEventType`` (Create / Update),
  ``workspaceInfo``, ``object`` with the incident's ARM ``id`` and ``properties`` (``title``, ``severity``,
  ``status``, ``incidentNumber``, ``relatedEntities``, ``alerts``, ``additionalData``, ...).
  https://learn.microsoft.com/en-us/azure/sentinel/automation/playbook-triggers-actions and the resource:
  https://learn.microsoft.com/en-us/rest/api/securityinsights/incidents/get
- the Azure Monitor common alert schema (``schemaId: azureMonitorCommonAlertSchema``, ``data.essentials``).
  https://learn.microsoft.com/en-us/azure/azure-monitor/alerts/alerts-common-schema

Fields irflow does not use are ignored, not refused: Microsoft adds fields to both schemas, and refusing them
would drop real incidents. Every field irflow uses is typed and bounded.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from irflow.engine.sentinel_entities import Entity, azure_resource, entity_from_sentinel

MAX_BODY_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_STRING = 32 * 1024
MAX_KEY = 256
MAX_ENTITIES = 1000

# /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.OperationalInsights/workspaces/{ws}
#   /providers/Microsoft.SecurityInsights/Incidents/{incidentId}
_INCIDENT_ID = re.compile(
    r"^/subscriptions/[0-9a-f-]{36}/resourceGroups/[-\w._()]{1,90}/providers/Microsoft\.OperationalInsights"
    r"/workspaces/[-\w]{1,63}/providers/Microsoft\.SecurityInsights/Incidents/[-\w]{1,128}$",
    re.IGNORECASE,
)
_ALERT_ID = re.compile(
    r"^/subscriptions/[0-9a-f-]{36}/providers/Microsoft\.AlertsManagement/alerts/[-\w]{1,128}$",
    re.IGNORECASE,
)
# Common alert schema severities: Sev0 critical, Sev1 error, Sev2 warning, Sev3 informational, Sev4 verbose
# (alerts-common-schema, "Essentials fields").
_MONITOR_SEVERITY = {"Sev0": "high", "Sev1": "high", "Sev2": "medium", "Sev3": "low", "Sev4": "informational"}


class DeliveryRejected(ValueError):
    """The body is not a delivery irflow takes; ``code`` and the message go back to the sender (no body)."""

    def __init__(self, code: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True)
class Delivery:
    schema: Literal["sentinel_incident", "azure_monitor_alert"]
    external_ref: str
    event_type: Literal["Create", "Update"]
    title: str
    severity: str
    status: str
    number: int | None
    entities: tuple[Entity, ...]


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class _RelatedEntity(_Loose):
    kind: str = Field(min_length=1, max_length=64)
    properties: dict[str, Any] = Field(default_factory=dict)


class _IncidentProperties(_Loose):
    title: str = Field(min_length=1, max_length=500)
    severity: Literal["High", "Medium", "Low", "Informational"]
    status: Literal["New", "Active", "Closed"]
    incidentNumber: int = Field(ge=0)
    relatedEntities: list[_RelatedEntity] = Field(default_factory=list, max_length=MAX_ENTITIES)
    alerts: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_ENTITIES)
    additionalData: dict[str, Any] = Field(default_factory=dict)


class _IncidentObject(_Loose):
    id: str = Field(max_length=600)
    properties: _IncidentProperties


class _WorkspaceInfo(_Loose):
    SubscriptionId: str = Field(max_length=64)
    ResourceGroupName: str = Field(max_length=90)
    WorkspaceName: str = Field(max_length=63)


class _SentinelIncident(_Loose):
    objectSchemaType: Literal["Incident"]
    objectEventType: Literal["Create", "Update"]
    workspaceInfo: _WorkspaceInfo
    object: _IncidentObject


class _Essentials(_Loose):
    alertId: str = Field(max_length=600)
    alertRule: str = Field(min_length=1, max_length=500)
    severity: Literal["Sev0", "Sev1", "Sev2", "Sev3", "Sev4"]
    monitorCondition: Literal["Fired", "Resolved"]
    alertTargetIDs: list[str] = Field(default_factory=list, max_length=MAX_ENTITIES)


class _AlertData(_Loose):
    essentials: _Essentials


class _CommonAlert(_Loose):
    schemaId: Literal["azureMonitorCommonAlertSchema"]
    data: _AlertData


def parse_delivery(body: bytes) -> Delivery:
    """The delivery in *body*; :class:`DeliveryRejected` naming the first problem otherwise."""
    if len(body) > MAX_BODY_BYTES:
        raise DeliveryRejected("body_too_large", f"the body exceeds {MAX_BODY_BYTES} bytes", 413)
    document = _load_json(body)
    if not isinstance(document, dict):
        raise DeliveryRejected("invalid_payload", "the body must be a JSON object")
    if "schemaId" in document:
        return _from_common_alert(_validate(_CommonAlert, document))
    if "objectSchemaType" in document:
        return _from_incident(_validate(_SentinelIncident, document))
    raise DeliveryRejected(
        "unsupported_schema",
        "not a Microsoft Sentinel incident (objectSchemaType) nor an Azure Monitor common alert (schemaId)",
    )


def _load_json(body: bytes) -> Any:
    try:
        document = json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except UnicodeDecodeError:
        raise DeliveryRejected("invalid_json", "the body is not UTF-8", 400) from None
    except RecursionError:
        raise DeliveryRejected("too_deep", f"JSON nesting deeper than {MAX_DEPTH}", 400) from None
    except ValueError as exc:
        raise DeliveryRejected("invalid_json", f"the body is not JSON: {str(exc)[:200]}", 400) from None
    _check_shape(document)
    return document


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key[:80]!r}")
        result[key] = value
    return result


def _check_shape(document: Any) -> None:
    """Depth, string and key lengths, iteratively (a hostile body cannot exhaust the stack here)."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list) and depth > MAX_DEPTH:
            raise DeliveryRejected("too_deep", f"JSON nesting deeper than {MAX_DEPTH}", 400)
        if isinstance(value, dict):
            for key, item in value.items():
                if len(key) > MAX_KEY:
                    raise DeliveryRejected("field_too_long", f"a key is longer than {MAX_KEY} characters")
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str) and len(value) > MAX_STRING:
            raise DeliveryRejected("field_too_long", f"a string is longer than {MAX_STRING} characters")


def _validate(model: type[_Loose], document: dict[str, Any]) -> Any:
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise DeliveryRejected(
            "invalid_payload", f"{where}: {first['msg']} ({exc.error_count()} problem(s))"
        ) from None


def _from_incident(incident: _SentinelIncident) -> Delivery:
    arm_id = incident.object.id
    if not _INCIDENT_ID.match(arm_id):
        raise DeliveryRejected(
            "invalid_payload",
            "object.id: not the ARM id of a Microsoft Sentinel incident "
            "(…/providers/Microsoft.SecurityInsights/Incidents/<id>)",
        )
    props = incident.object.properties
    entities = []
    for related in props.relatedEntities:
        entity = entity_from_sentinel(related.kind, related.properties)
        if entity is not None and entity not in entities:
            entities.append(entity)
    return Delivery(
        schema="sentinel_incident",
        # ARM ids are case-insensitive: one incident, one key, however Sentinel spells it.
        external_ref=arm_id.lower(),
        event_type=incident.objectEventType,
        title=props.title,
        severity=props.severity.lower(),
        status=props.status.lower(),
        number=props.incidentNumber,
        entities=tuple(entities),
    )


def _from_common_alert(alert: _CommonAlert) -> Delivery:
    essentials = alert.data.essentials
    if not _ALERT_ID.match(essentials.alertId):
        raise DeliveryRejected(
            "invalid_payload",
            "data.essentials.alertId: not the ARM id of an Azure Monitor alert "
            "(/subscriptions/<id>/providers/Microsoft.AlertsManagement/alerts/<id>)",
        )
    entities = []
    for target in essentials.alertTargetIDs:
        entity = azure_resource(target)
        if entity is not None and entity not in entities:
            entities.append(entity)
    return Delivery(
        schema="azure_monitor_alert",
        external_ref=essentials.alertId.lower(),
        event_type="Create" if essentials.monitorCondition == "Fired" else "Update",
        title=essentials.alertRule,
        severity=_MONITOR_SEVERITY[essentials.severity],
        status="new" if essentials.monitorCondition == "Fired" else "closed",
        number=None,
        entities=tuple(entities),
    )
