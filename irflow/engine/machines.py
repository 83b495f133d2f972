"""The legal states of incidents, runs and steps, as data for ``transitions``.

A stored object is restored into its machine with ``add_model(obj, initial=state)``, triggered, and removed;
the caller then persists the new state and its audit event in one transaction (``engine.state``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from transitions import Machine, MachineError

INCIDENT_STATES = ["open", "containing", "contained", "eradicated", "closed"]
INCIDENT_TRANSITIONS = [
    {"trigger": "begin_containment", "source": ["open", "containing"], "dest": "containing"},
    {"trigger": "contain", "source": ["open", "containing"], "dest": "contained"},
    {"trigger": "eradicate", "source": "contained", "dest": "eradicated"},
    {"trigger": "close", "source": ["contained", "eradicated"], "dest": "closed"},
]

RUN_STATES = ["pending", "running", "awaiting_approval", "succeeded", "failed", "cancelled"]
RUN_TERMINAL = {"succeeded", "failed", "cancelled"}
RUN_TRANSITIONS = [
    {"trigger": "start", "source": "pending", "dest": "running"},
    {"trigger": "await_approval", "source": "running", "dest": "awaiting_approval"},
    {"trigger": "resume", "source": "awaiting_approval", "dest": "running"},
    {"trigger": "succeed", "source": "running", "dest": "succeeded"},
    {"trigger": "fail", "source": ["running", "awaiting_approval"], "dest": "failed"},
    {"trigger": "cancel", "source": ["pending", "running", "awaiting_approval"], "dest": "cancelled"},
    {"trigger": "retry", "source": "failed", "dest": "pending"},
]

STEP_STATES = [
    "pending",
    "planned",
    "awaiting_approval",
    "running",
    "succeeded",
    "failed",
    "skipped",
    "cancelled",
]
STEP_TERMINAL = {"succeeded", "failed", "skipped", "cancelled"}
STEP_TRANSITIONS = [
    {"trigger": "plan", "source": "pending", "dest": "planned"},
    {"trigger": "request_approval", "source": "planned", "dest": "awaiting_approval"},
    {"trigger": "approve", "source": "awaiting_approval", "dest": "planned"},
    {"trigger": "start", "source": "planned", "dest": "running"},
    {"trigger": "retry_later", "source": "running", "dest": "planned"},
    {"trigger": "succeed", "source": "running", "dest": "succeeded"},
    {"trigger": "fail", "source": ["pending", "planned", "awaiting_approval", "running"], "dest": "failed"},
    {"trigger": "skip", "source": ["pending", "planned", "awaiting_approval"], "dest": "skipped"},
    {
        "trigger": "cancel",
        "source": ["pending", "planned", "awaiting_approval", "running"],
        "dest": "cancelled",
    },
    # retrying a failed run: its failed (and unfinished) targets start over from a new plan
    {"trigger": "retry", "source": ["failed", "planned", "awaiting_approval", "running"], "dest": "pending"},
]


class IllegalTransition(RuntimeError):
    pass


@dataclass
class _Subject:
    state: str
    extra: dict[str, Any] = field(default_factory=dict)


class StateMachine:
    """One ``transitions`` machine per kind, shared; stored objects pass through it one at a time."""

    def __init__(self, kind: str, states: list[str], transitions: list[dict[str, Any]]) -> None:
        self.kind = kind
        self._machine = Machine(
            model=None, states=states, transitions=transitions, auto_transitions=False, send_event=False
        )
        self._lock = threading.Lock()
        self._destinations = {t["trigger"]: t["dest"] for t in transitions}

    def next_state(self, current: str, trigger: str) -> str:
        """The state ``trigger`` leads to from ``current``; raises :class:`IllegalTransition` otherwise."""
        subject = _Subject(current)
        with self._lock:
            self._machine.add_model(subject, initial=current)
            try:
                getattr(subject, trigger)()
            except (MachineError, AttributeError) as exc:
                raise IllegalTransition(f"{self.kind}: cannot {trigger} from {current}") from exc
            finally:
                self._machine.remove_model(subject)
        return subject.state

    def destination(self, trigger: str) -> str:
        return self._destinations[trigger]

    def triggers(self, current: str) -> list[str]:
        return sorted(self._machine.get_triggers(current))


INCIDENT = StateMachine("incident", INCIDENT_STATES, INCIDENT_TRANSITIONS)
RUN = StateMachine("run", RUN_STATES, RUN_TRANSITIONS)
STEP = StateMachine("step", STEP_STATES, STEP_TRANSITIONS)
