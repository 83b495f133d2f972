"""Long-running operations of the simulated tenant, timed on the tenant clock.

A write that Azure runs asynchronously (an NSG rule PUT / DELETE, a peering DELETE) registers an
:class:`Operation` whose deadline is ``now + duration_s``; its polling URLs answer "in progress" until the
tenant clock passes the deadline, then the operation settles: its ``complete`` step runs (e.g. the rule's
``provisioningState`` becomes ``Succeeded``, a deleted peering disappears), or, when it was started while
``failure`` was set, its ``rollback`` step runs (nothing changed) and it answers ``Failed`` with the error.

Knobs (``tenant.lro``): ``duration_s`` (tenant-clock seconds, default 0: done at the first poll),
``retry_after`` (the ``Retry-After`` seconds the answers carry, default 1; ``0`` lets a client's
``polling_interval`` decide, see AZURE_NOTES), ``failure`` (``{"code", "message"}``: operations started while
it is set fail), ``failure_rate`` (0..1: the share of operations, drawn at start from the tenant's seeded
``random``, that fail with ``InternalServerError`` when ``failure`` is not set). Settling is lazy: every
network request first settles the operations that are due. The knobs are settable from a scenario's
``faults: {lro: …}``, ``irflow sim serve --lro-seconds/--lro-fail-rate/--lro-retry-after`` and
``POST /_sim/faults`` (see ``Tenant.configure_faults``).
"""

from __future__ import annotations

import random as _random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any


@dataclass
class Operation:
    id: str
    subscription_id: str
    location: str
    deadline: datetime
    complete: Callable[[], None]
    rollback: Callable[[], None]
    failure: dict[str, Any] | None = None
    status: str = "InProgress"  # InProgress → Succeeded | Failed

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status}
        if self.status == "Failed" and self.failure is not None:
            body["error"] = {"code": self.failure["code"], "message": self.failure["message"]}
        return body


@dataclass
class Lro:
    duration_s: float = 0.0
    retry_after: int = 1
    failure: dict[str, Any] | None = None
    failure_rate: float = 0.0
    operations: dict[str, Operation] = field(default_factory=dict)
    random: _random.Random = field(default_factory=_random.Random, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def fail_with(self, code: str = "InternalServerError", message: str | None = None) -> None:
        """Make the operations started from now on fail (``None`` code: see :meth:`clear_failure`)."""
        self.failure = {
            "code": code,
            "message": message or "The operation failed (injected by the irflow.sim LRO failure knob).",
        }

    def clear_failure(self) -> None:
        self.failure = None

    def start(
        self,
        *,
        subscription_id: str,
        location: str,
        now: datetime,
        complete: Callable[[], None],
        rollback: Callable[[], None],
    ) -> Operation:
        if self.duration_s < 0:
            raise ValueError("duration_s must be >= 0")
        failure = dict(self.failure) if self.failure else None
        if failure is None and self.failure_rate and self.random.random() < self.failure_rate:
            failure = {
                "code": "InternalServerError",
                "message": "The operation failed (injected by the irflow.sim LRO failure-rate knob).",
            }
        operation = Operation(
            id=str(uuid.uuid4()),
            subscription_id=subscription_id,
            location=location,
            deadline=now + timedelta(seconds=self.duration_s),
            complete=complete,
            rollback=rollback,
            failure=failure,
        )
        with self._lock:
            self.operations[operation.id] = operation
        return operation

    def settle(self, now: datetime) -> None:
        """Finish every operation whose deadline has passed (in start order)."""
        with self._lock:
            for operation in list(self.operations.values()):
                if operation.status == "InProgress" and now >= operation.deadline:
                    if operation.failure is not None:
                        operation.rollback()
                        operation.status = "Failed"
                    else:
                        operation.complete()
                        operation.status = "Succeeded"

    def get(self, operation_id: str) -> Operation | None:
        with self._lock:
            return self.operations.get(operation_id.lower())

    def clear(self) -> None:
        with self._lock:
            self.operations.clear()

    def to_dict(self) -> dict[str, Any]:
        return {
            "duration_s": self.duration_s,
            "retry_after": self.retry_after,
            "failure_rate": self.failure_rate,
            "failure": dict(self.failure) if self.failure else None,
        }
