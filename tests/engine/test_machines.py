from __future__ import annotations

import pytest

from irflow.engine.machines import INCIDENT, RUN, STEP, IllegalTransition


def test_step_happy_path() -> None:
    state = "pending"
    for trigger, expected in [("plan", "planned"), ("start", "running"), ("succeed", "succeeded")]:
        state = STEP.next_state(state, trigger)
        assert state == expected


def test_step_retry_and_approval_paths() -> None:
    assert STEP.next_state("running", "retry_later") == "planned"
    assert STEP.next_state("planned", "request_approval") == "awaiting_approval"
    assert STEP.next_state("awaiting_approval", "approve") == "planned"
    assert STEP.next_state("awaiting_approval", "skip") == "skipped"


@pytest.mark.parametrize(
    ("machine", "state", "trigger"),
    [
        (STEP, "succeeded", "start"),
        (STEP, "pending", "succeed"),
        (STEP, "failed", "plan"),
        (RUN, "succeeded", "fail"),
        (RUN, "pending", "succeed"),
        (INCIDENT, "closed", "begin_containment"),
        (STEP, "pending", "no_such_trigger"),
    ],
)
def test_illegal_transitions_are_refused(machine, state: str, trigger: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IllegalTransition, match=f"cannot {trigger} from {state}"):
        machine.next_state(state, trigger)


def test_terminal_run_states_have_no_way_out() -> None:
    for state in ("succeeded", "cancelled"):
        assert RUN.triggers(state) == []
    assert RUN.triggers("failed") == ["retry"]  # only an operator's retry, back to pending
    assert RUN.next_state("failed", "retry") == "pending"
