"""Small ARM wire helpers: timestamps, resource ids, JSON merge-patch."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any


def format_time(value: datetime) -> str:
    """ARM's round-trip timestamp: UTC, seven fractional digits, ``Z`` (``2021-03-18T04:42:22.4322836Z``)."""
    value = value.astimezone(UTC)
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond:06d}0Z"


def resource_group_id(subscription_id: str, resource_group: str) -> str:
    return f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"


def resource_id(subscription_id: str, resource_group: str, resource_type: str, name: str) -> str:
    return f"{resource_group_id(subscription_id, resource_group)}/providers/{resource_type}/{name}"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge-patch: objects merge recursively, ``null`` deletes, anything else replaces.

    Returns a new value; ``target`` is left untouched.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
