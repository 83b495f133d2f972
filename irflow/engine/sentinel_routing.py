"""Which playbook a Sentinel delivery starts: the playbooks' ``triggers.sentinel`` rules, in name order.

A rule matches when every condition it gives holds (title contains, entity kinds present, an AzureResource of
a listed ARM type, a listed severity) and the playbook's required inputs can be filled from the delivery's
entities (``from_entities``). The first match wins; the others are named in the audit trail.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from irflow.engine.playbook import (
    LoadedPlaybook,
    PlaybookError,
    SentinelMatch,
    coerce_inputs,
    list_playbooks,
    load_playbook,
)
from irflow.engine.sentinel_entities import parse_entity_selector, select_entities
from irflow.engine.sentinel_payload import Delivery


@dataclass(frozen=True)
class Route:
    playbook: str
    auto_start: bool
    # The inputs taken from entities, as submit_run takes raw parameters (already checked to coerce).
    params: dict[str, Any]
    also_matched: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class NoRoute:
    reasons: list[str]


def route(delivery: Delivery, playbooks_dir: Path) -> Route | NoRoute:
    matches: list[Route] = []
    reasons: list[str] = []
    for loaded in _routable_playbooks(playbooks_dir):
        for rule in loaded.spec.triggers.sentinel:
            if not _matches(rule.match, delivery):
                continue
            try:
                params = _inputs_from_entities(loaded, delivery)
            except ValueError as exc:
                reasons.append(f"{loaded.spec.name}: rule matched but inputs are incomplete: {exc}")
                continue
            matches.append(Route(loaded.spec.name, rule.auto_start, params))
            break
    if not matches:
        return NoRoute(reasons or ["no playbook's triggers.sentinel rule matches this incident"])
    first = matches[0]
    return Route(first.playbook, first.auto_start, first.params, [m.playbook for m in matches[1:]])


_cache_lock = threading.Lock()
_cache: dict[Path, tuple[tuple[tuple[str, int], ...], list[LoadedPlaybook]]] = {}


def _routable_playbooks(playbooks_dir: Path) -> list[LoadedPlaybook]:
    """The valid playbooks with Sentinel rules, parsed once per change of the files (name, mtime)."""
    paths = list_playbooks(playbooks_dir)
    stamp = tuple((str(path), path.stat().st_mtime_ns) for path in paths)
    with _cache_lock:
        cached = _cache.get(playbooks_dir)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    loaded = []
    for path in paths:
        try:
            playbook = load_playbook(path)
        except PlaybookError:
            continue  # `irflow playbooks validate` reports it; a broken file never routes
        if playbook.spec.triggers.sentinel:
            loaded.append(playbook)
    with _cache_lock:
        _cache[playbooks_dir] = (stamp, loaded)
    return loaded


def _matches(match: SentinelMatch, delivery: Delivery) -> bool:
    if match.title_contains and match.title_contains.lower() not in delivery.title.lower():
        return False
    kinds = {entity.kind for entity in delivery.entities}
    if any(parse_entity_selector(kind)[0] not in kinds for kind in match.entity_types):
        return False
    if match.resource_types:
        wanted = {t.lower() for t in match.resource_types}
        if not any(entity.resource_type in wanted for entity in delivery.entities):
            return False
    return not match.severities or delivery.severity in match.severities


def _inputs_from_entities(loaded: LoadedPlaybook, delivery: Delivery) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for name, spec in loaded.spec.inputs.items():
        if spec.from_entities is None:
            continue
        values = select_entities(delivery.entities, spec.from_entities)
        if not values:
            continue  # coerce_inputs says whether the input was required
        raw[name] = values if spec.type.startswith("list[") else values[0]
    coerce_inputs(loaded.spec, raw)  # raises ValueError naming the input that cannot be filled
    return raw
