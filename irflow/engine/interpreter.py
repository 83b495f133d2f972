"""The playbook interpreter: a DBOS workflow per run; a step's targets run in lanes (or a child workflow per
target where the target waits for a human or has a timeout of its own).

Determinism: the workflow reads the playbook from the copy pinned in the run (content and hash), renders
params from inputs and earlier outputs only, and touches the clock, the database and Azure only inside
DBOS steps. Every state change with its audit event is one step; every Azure action call is one step. A
killed process resumes from the last completed step; the step in flight is re-run, which is safe because
actions are idempotent and state changes recognise a replay.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from dbos import DBOS, SetWorkflowTimeout
from dbos._error import DBOSAwaitedWorkflowCancelledError
from pydantic import ValidationError

from irflow import clock
from irflow.actions.base import ActionError, StepContext, get_action, retry_after_of
from irflow.engine.evidence import EvidenceRecorder
from irflow.engine.machines import STEP_TERMINAL, IllegalTransition
from irflow.engine.notifier import OutboxNotifier
from irflow.engine.playbook import PlaybookError, StepSpec, parse_playbook, pipeline_chain

# DBOS registers and replays these module-level workflows and steps by name, so they reach the process's
# engine through runtime.services() rather than being handed one (entry points get theirs explicitly).
from irflow.engine.runtime import FANOUT_QUEUE, services
from irflow.engine.sealing import unseal
from irflow.engine.state import ENGINE_ACTOR
from irflow.engine.templates import TemplateProblem, render
from irflow.logs import bind_context, get_logger
from irflow.redaction import fingerprint, redact_text

APPROVAL_TOPIC = "approval"

log = get_logger("irflow.engine")

F = TypeVar("F", bound=Callable[..., Any])


class StepCrashed(RuntimeError):
    """An unexpected error inside a DBOS step, reduced to its redacted text.

    DBOS records a step's exception in its system database (pickled): the original may hold PHI in its
    message and may not pickle at all (Azure SDK errors keep their traceback), which crashed resumes with
    ``cannot pickle 'traceback' object``. Only this plain, redacted copy leaves a step.
    """


def _portable(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StepCrashed:
            raise
        except Exception as exc:
            raise StepCrashed(_safe_error(exc)) from None

    return wrapper  # type: ignore[return-value]


# --- steps: each one a DBOS step (recorded once completed) ---------------------------------------------
@DBOS.step()
@_portable
def load_run(run_id: str) -> dict[str, Any]:
    return services().state.run_snapshot(run_id)


@DBOS.step()
@_portable
def change_run(
    run_id: str,
    trigger: str,
    error: str | None = None,
    actor: str = ENGINE_ACTOR,
    payload: dict[str, Any] | None = None,
) -> str:
    return services().state.transition_run(run_id, trigger, error=error, actor=actor, payload=payload)


@DBOS.step()
@_portable
def note_step_without_targets(run_id: str, step_key: str) -> None:
    services().state.note_run_event(run_id, "run.step_without_targets", {"step": step_key})


@DBOS.step()
@_portable
def reset_for_retry(run_id: str, actor: str) -> dict[str, Any]:
    return services().state.reset_for_retry(run_id, actor=actor)


@DBOS.step()
@_portable
def read_step_states(step_ids: list[str]) -> list[dict[str, Any]]:
    return services().state.step_states(step_ids)


@DBOS.step()
@_portable
def note_run_event(run_id: str, type: str, payload: dict[str, Any]) -> None:
    services().state.note_run_event(run_id, type, payload)


@DBOS.step()
@_portable
def escalate_failure(run_id: str, step_key: str, error: str) -> str:
    """``on_failure: escalate``: queue the internal escalation to on-call (once per run and step), audited."""
    svc = services()
    notifier = OutboxNotifier(svc.db, svc.settings)
    snapshot = svc.state.run_snapshot(run_id)
    addresses = notifier.oncall_recipients()
    if not addresses:
        svc.state.note_run_event(
            run_id, "run.escalation_impossible", {"step": step_key, "reason": "no on-call recipients"}
        )
        return "escalation impossible: IRFLOW_ONCALL_RECIPIENTS is not set"
    incident = svc.state.incident_summary(snapshot["incident_id"])
    context = {
        "incident": incident,
        "reason": redact_text(error)[:500],
        "step": step_key,
        "actions": [f"Look at the failed run: irflow runs show {run_id}"],
    }
    queued = [
        notifier.queue(
            channel="email",
            template="internal-escalation",
            recipient=address,
            context=context,
            incident_id=incident["id"],
            dedupe_key=notifier.dedupe_key(run_id, step_key, "on_failure", address),
        )
        for address in addresses
        if not notifier.exists(notifier.dedupe_key(run_id, step_key, "on_failure", address))
    ]
    svc.state.note_run_event(run_id, "run.escalated", {"step": step_key, "notifications": queued})
    return f"on-call escalated ({len(addresses)} recipient(s))"


@DBOS.step()
@_portable
def time_out_target(step_id: str, timeout: float) -> dict[str, Any]:
    """A target whose workflow DBOS cancelled at the step's timeout: it fails as timed out, unless it ended.

    A call in flight at that moment may still complete on Azure; a retry of the step re-reads Azure first.
    """
    error = f"timed out after {timeout:g} s"
    try:
        state = services().state.transition_step(
            step_id, "fail", payload={"error": error, "outcome": "timeout"}, error=error
        )
    except IllegalTransition:  # it ended just before the timeout fired
        state = services().state.step_row(step_id)["state"]
    return {"state": state, "error": error if state == "failed" else None}


@DBOS.step()
@_portable
def note_step(step_id: str, type: str, payload: dict[str, Any]) -> None:
    services().state.note_step_event(step_id, type, payload)


@DBOS.step()
@_portable
def create_steps(run_id: str, position: int, spec: dict[str, Any], items: list[dict[str, Any]]) -> list[str]:
    return services().state.ensure_steps(
        run_id,
        position=position,
        step_key=spec["id"],
        action=spec["action"],
        requires_approval=spec["requires_approval"],
        max_attempts=spec["retry"]["max_attempts"],
        items=items,
    )


@DBOS.step()
@_portable
def change_step(
    step_id: str, trigger: str, fields: dict[str, Any] | None = None, payload: dict[str, Any] | None = None
) -> str:
    return services().state.transition_step(step_id, trigger, payload=payload, **(fields or {}))


@DBOS.step()
@_portable
def deliver_outbox() -> dict[str, int]:
    """One delivery pass of the outbox (what notify.* steps queued); failures are retried by later passes."""
    try:
        report = OutboxNotifier(services().db, services().settings).deliver_pending()
    except ValueError as exc:  # a channel configured incompletely: the messages wait in the outbox
        log.warning("outbox not delivered", reason=str(exc))
        return {"sent": 0, "failed": 0}
    return {"sent": len(report.sent), "failed": len(report.failed)}


@DBOS.step()
@_portable
def plan_target(step_id: str, then_apply: bool = False) -> dict[str, Any]:
    """Compute the step's plan (reads only) and record it.

    ``then_apply`` (no approval gate, not a dry run): the first attempt runs in this same step, under the
    target's lock taken before the plan's reads, so plan and apply share one read of Azure (nothing of
    irflow's changes the resource in between) and the outcome comes back as ``applied``. A replay of this
    step after a crash reads Azure again; the state transitions recognise what was already recorded.
    """
    return _plan(services().state.step_row(step_id), then_apply)


@DBOS.step()
@_portable
def claim_and_run(run_id: str, chain: list[tuple[str, int, bool]], token: str) -> dict[str, Any] | None:
    """A lane's next target, claimed, and its first attempt: plan and apply in one step (as
    ``plan_target(then_apply=True)``), with its success recorded here too. None when nothing is claimable.

    A replay after a crash claims the same target again (same token). If the target already ended, its
    recorded outcome comes back without a call to Azure; otherwise the attempt runs again, which is safe as
    for ``plan_target`` (the plan reads what Azure holds now and the write changes only what differs).
    """
    claimed = services().state.claim_target(run_id, [tuple(link) for link in chain], token)  # type: ignore[misc]
    if claimed is None:
        return None
    step_id, step_key = claimed
    row = services().state.step_row(step_id)
    if row["state"] in STEP_TERMINAL:  # ended before a crash cut this step short
        planned = {"ok": True, "plan": row["plan"] or {}, "ended": row["state"], "error": row["error"]}
    else:
        planned = _plan(row, then_apply=True, record_success=True)
    return {"step_id": step_id, "step_key": step_key, "planned": planned}


def _plan(row: dict[str, Any], then_apply: bool, record_success: bool = False) -> dict[str, Any]:
    step_id = row["id"]
    with bind_context(incident_id=row["incident_id"], run_id=row["run_id"], step_id=row["step_key"]):
        try:
            action, ctx = _context(row)
            if not then_apply:
                plan = action.plan(ctx).model_dump(mode="json")
                _record_plan(step_id, row, plan)
                return {"ok": True, "plan": plan}
            with services().target_locks.hold(row["action"], row["target"]):
                plan = action.plan(ctx).model_dump(mode="json")
                _record_plan(step_id, row, plan, then_start=True)
                ctx.first_attempt_at = row["first_attempt_at"] or clock.now()  # what "start" just recorded
                applied = _apply_and_verify(action, ctx, row)
            if record_success and applied["ok"]:
                _record_success(step_id, applied["result"])
                applied["recorded"] = True
            return {"ok": True, "plan": plan, "applied": applied}
        except ActionError as exc:
            return _failure(exc, exc.retryable)
        except (ValidationError, KeyError) as exc:  # params that can never be valid: no retry
            return _failure(exc, False)
        except Exception as exc:  # an SDK or transport failure (a connection error): the retry policy decides
            log.warning("plan raised", action=row["action"], error_type=type(exc).__name__)
            return _failure(exc, True)


def _record_success(step_id: str, result: dict[str, Any]) -> None:
    services().state.transition_step(
        step_id,
        "succeed",
        payload={
            "changed": result["changed"],
            "changes": result["changes"],
            "prior_state": result["prior_state"],
        },
        result=result,
        error=None,
    )


def _record_plan(step_id: str, row: dict[str, Any], plan: dict[str, Any], then_start: bool = False) -> None:
    """The plan recorded (a target still ``pending``), then ``start`` when asked: one transaction."""
    Change = tuple[str, dict[str, Any], dict[str, Any] | None]
    planned: Change = ("plan", {"plan": plan}, {"changes": plan["changes"], "notes": plan["notes"]})
    started: Change = ("start", {}, None)
    changes = ([planned] if row["state"] == "pending" else []) + ([started] if then_start else [])
    if changes:
        services().state.transition_step_many(step_id, changes)


@DBOS.step()
@_portable
def apply_target(step_id: str) -> dict[str, Any]:
    """Make Azure match the target state, then verify it. Returns, never raises, for action errors."""
    row = services().state.step_row(step_id)
    with bind_context(incident_id=row["incident_id"], run_id=row["run_id"], step_id=row["step_key"]):
        try:
            action, ctx = _context(row)
            with services().target_locks.hold(row["action"], row["target"]):
                return _apply_and_verify(action, ctx, row)
        except Exception as exc:  # the target's lock not taken in time: retry it
            return _failure(exc, True)


def _apply_and_verify(action: Any, ctx: StepContext, row: dict[str, Any]) -> dict[str, Any]:
    """Apply, then verify (from the write's own answer where the action kept it). Never raises."""
    try:
        result = action.apply(ctx)
        verified = action.verify(ctx)
    except ActionError as exc:
        return _failure(exc, exc.retryable)
    except Exception as exc:  # an SDK or transport failure we did not classify, in apply or verify: retry
        log.warning("action raised", action=row["action"], error_type=type(exc).__name__)
        return _failure(exc, True)
    outcome = result.model_dump(mode="json")
    if not verified:
        return {
            "ok": False,
            "error": f"{row['action']}: applied, but Azure does not show the target state",
            "retryable": True,
            "result": outcome,
        }
    return {"ok": True, "result": outcome}


def _failure(exc: BaseException, retryable: bool) -> dict[str, Any]:
    """A failed plan or apply as a step's plain result: the redacted reason, whether the retry policy may try
    again, and how long Azure asked to wait first (``Retry-After``), if it did."""
    error = _safe_error(exc)
    return {"ok": False, "error": error, "retryable": retryable, "retry_after": retry_after_of(exc)}


def _retry_delay(step: StepSpec, attempt: int, failed: dict[str, Any]) -> float:
    """The policy's backoff before ``attempt``, never shorter than the ``Retry-After`` Azure last gave: ARM
    does not process a request sent before it elapsed
    (https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling)."""
    return max(step.retry.delay_before(attempt), float(failed.get("retry_after") or 0.0))


def _context(row: dict[str, Any]) -> tuple[Any, StepContext]:
    action_cls = get_action(row["action"])
    params = action_cls.Params.model_validate(unseal(row["params"]))
    ctx = StepContext(
        params=params,
        target=row["target"],
        log=get_logger("irflow.action").bind(action=row["action"], target=row["target"]),
        clients=services().clients,
        reference_time=row["reference_time"],
        first_attempt_at=row["first_attempt_at"],
        incident=row["incident"],
        notifier=OutboxNotifier(services().db, services().settings),
        evidence=EvidenceRecorder(services().db),
        observations={},  # one target's reads, shared by its plan, apply and verify in one step
    )
    return action_cls(), ctx


def _safe_error(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return redact_text(f"invalid params: {problems}")[:1000]
    text = (
        str(exc) if isinstance(exc, ActionError | KeyError | StepCrashed) else f"{type(exc).__name__}: {exc}"
    )
    return redact_text(text)[:1000]


# --- workflows -------------------------------------------------------------------------------------------
@DBOS.workflow()
def target_workflow(step_id: str, spec: dict[str, Any], dry_run: bool, auto_approve: bool) -> dict[str, Any]:
    """One step on one target: plan, (approval), then attempts of apply+verify with backoff.

    Never raises for a failure of the step itself: whatever goes wrong ends as the step's failure with its
    reason. Only a cancellation (DBOS's own, a BaseException) passes through.
    """
    return _settled_target(step_id, StepSpec.model_validate(spec), dry_run, auto_approve)


@DBOS.workflow()
def lane_workflow(run_id: str, specs: list[dict[str, Any]], auto_approve: bool) -> int:
    """One lane of a fan-out: claims the next target of the given steps, runs it, and claims again until
    nothing is left to claim. A step's ``concurrency`` lanes replace a child workflow per target: one claim
    step per target instead of a workflow's start, queueing, status and result records, with the same
    steps per target (a replay resumes the claimed target at its last completed step). Returns how many
    targets this lane ran."""
    steps = {spec["id"]: StepSpec.model_validate(spec) for spec in specs}
    chain = [(key, step.concurrency, step.on_failure == "continue") for key, step in steps.items()]
    ran = 0
    while True:
        claimed = claim_and_run(run_id, chain, f"{DBOS.workflow_id}#{ran}")
        if claimed is None:
            return ran
        step_id, step = claimed["step_id"], steps[claimed["step_key"]]
        _settled_target(step_id, step, False, auto_approve, claimed["planned"])
        ran += 1


def _settled_target(
    step_id: str, step: StepSpec, dry_run: bool, auto_approve: bool, planned: dict[str, Any] | None = None
) -> dict[str, Any]:
    try:
        return _run_target(step_id, step, dry_run, auto_approve, planned)
    except Exception as exc:
        error = _safe_error(exc)
        change_step(step_id, "fail", {"error": error}, {"error": error})
        return {"state": "failed", "error": error}


def _run_target(
    step_id: str, step: StepSpec, dry_run: bool, auto_approve: bool, planned: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``planned``: the first plan attempt a lane already made (``claim_and_run``)."""
    gated = step.requires_approval and not auto_approve
    if planned is not None and "ended" in planned:  # ended before a crash: nothing more to do
        return {"state": planned["ended"], "error": planned["error"]}
    # Without a gate the first attempt runs in the plan's step: one read of Azure serves plan and apply.
    planned = _plan_with_retries(step_id, step, then_apply=not dry_run and not gated, first=planned)
    if not planned["ok"]:
        change_step(step_id, "fail", {"error": planned["error"]}, {"error": planned["error"]})
        return {"state": "failed", "error": planned["error"]}
    if dry_run:
        return {"state": "planned", "plan": planned["plan"]}
    if gated:
        change_step(step_id, "request_approval", {"workflow_id": DBOS.workflow_id})
        decision = DBOS.recv(APPROVAL_TOPIC, timeout_seconds=step.approval_timeout) or {}
        actor = str(decision.get("actor", "irflow-engine" if not decision else "unknown"))[:200]
        # The comment is free text: sealed in the step row, only its keyed fingerprint in the audit trail.
        comment = str(decision.get("comment", ""))[:500]
        noted = {"decision_comment": comment} if comment else None
        said = {"comment_fingerprint": fingerprint(comment)} if comment else {}
        if not decision.get("approved"):
            reason = "rejected" if decision else "approval timed out"
            change_step(
                step_id, "skip", noted, {"reason": reason, "by": actor, "on_reject": step.on_reject, **said}
            )
            return {"state": "skipped", "error": reason, "rejected_by": actor}
        change_step(step_id, "approve", noted, {"by": actor, **said})
    outcome: dict[str, Any] = {}
    for attempt in range(1, step.retry.max_attempts + 1):
        if attempt > 1:
            delay = _retry_delay(step, attempt, outcome)
            change_step(step_id, "retry_later", payload={"error": outcome["error"], "delay_s": delay})
            DBOS.sleep(delay)
        if attempt == 1 and "applied" in planned:
            outcome = planned["applied"]
        else:
            change_step(step_id, "start")
            outcome = apply_target(step_id)
        if outcome["ok"] and outcome.get("recorded"):
            return {"state": "succeeded", "result": outcome["result"]}
        if outcome["ok"]:
            result = outcome["result"]
            change_step(
                step_id,
                "succeed",
                {"result": result, "error": None},
                {
                    "changed": result["changed"],
                    "changes": result["changes"],
                    "prior_state": result["prior_state"],
                },
            )
            return {"state": "succeeded", "result": result}
        if not outcome.get("retryable"):
            break
    last_error = outcome["error"]
    change_step(step_id, "fail", {"error": last_error}, {"error": last_error})
    return {"state": "failed", "error": last_error}


def _plan_with_retries(
    step_id: str, step: StepSpec, then_apply: bool = False, first: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Plan under the step's retry policy: a read that fails for a transient reason is tried again.
    ``first``: the outcome of a first attempt already made."""
    planned: dict[str, Any] = first or {}
    for attempt in range(1, step.retry.max_attempts + 1):
        if attempt == 1 and first is not None:
            if planned["ok"] or not planned.get("retryable"):
                return planned
            continue
        if attempt > 1:
            delay = _retry_delay(step, attempt, planned)
            note_step(step_id, "step.plan_retrying", {"error": planned["error"], "delay_s": delay})
            DBOS.sleep(delay)
        planned = plan_target(step_id, then_apply)
        if planned["ok"] or not planned.get("retryable"):
            return planned
    return planned


@DBOS.workflow()
def retry_workflow(run_id: str, actor: str) -> str:
    """A failed run again: its failed targets start over, what succeeded is reused (a new workflow id)."""
    reset_for_retry(run_id, actor)
    return _drive(run_id)


@DBOS.workflow()
def playbook_workflow(run_id: str) -> str:
    """The run, step by step; a failure of the workflow itself still ends the run ``failed``, with why."""
    return _drive(run_id)


def _drive(run_id: str) -> str:
    run = load_run(run_id)
    if run["status"] in ("succeeded", "failed", "cancelled"):
        return run["status"]
    try:
        return _run_playbook(run_id, run)
    except Exception as exc:
        log.error("run failed unexpectedly", run_id=run_id, error_type=type(exc).__name__)
        return change_run(run_id, "fail", error=f"the run stopped on an internal error: {_safe_error(exc)}")


def _run_playbook(run_id: str, run: dict[str, Any]) -> str:
    try:
        playbook = parse_playbook(run["content"], f"run {run_id}").spec
    except PlaybookError as exc:
        change_run(run_id, "start")
        return change_run(run_id, "fail", error=f"pinned playbook no longer loads: {exc}")
    change_run(run_id, "start")
    outputs: dict[str, Any] = {}
    queue = DBOS.retrieve_queue(FANOUT_QUEUE)
    position = 0
    while position < len(playbook.steps):
        chain = pipeline_chain(playbook.steps, position)  # one step, or a pipeline of for_each steps
        first = position
        position += len(chain)
        context = {
            "inputs": unseal(run["params"]),  # in memory only; stored sealed
            "steps": outputs,
            "incident": {"id": run["incident_id"], "prior_state": run["prior_states"]},
        }
        prepared: list[_Prepared] = []
        for offset, step in enumerate(chain):
            condition = _condition(step, context)
            if condition is False:
                note_run_event(run_id, "run.step_skipped", {"step": step.id, "when": step.when})
                outputs[step.id] = {"states": [], "outputs": [], "skipped": True}
                continue
            items = _expand(step, context) if condition is True else [_error_item(condition)]
            if not items:  # an optional list input left empty: nothing to do, and the trail says so
                note_step_without_targets(run_id, step.id)
                outputs[step.id] = {"states": [], "outputs": []}
                continue
            spec = step.model_dump(mode="json", by_alias=True)
            step_ids = create_steps(run_id, first + offset, spec, [_row_of(item) for item in items])
            prepared.append(_Prepared(step, spec, step_ids, items, read_step_states(step_ids)))
        if len(prepared) > 1 and _aligned(prepared):
            results = _run_pipeline(prepared, run, queue)
        else:  # a single step, or targets that do not pair up item by item: one step after the other
            for member in prepared:
                verdict = _conclude(
                    run_id, run, playbook, member.step, _run_step(member, run, queue), outputs, position
                )
                if isinstance(verdict, str):
                    return verdict
                if isinstance(verdict, int):  # on_reject: goto (never inside a pipeline)
                    position = verdict
                    break
            continue
        for member, done in zip(prepared, results, strict=True):
            verdict = _conclude(run_id, run, playbook, member.step, done, outputs, position)
            if isinstance(verdict, str):
                return verdict
    return change_run(run_id, "succeed")


class _Prepared:
    """One step of a run ready to fan out: its spec, target rows and their items, and what is already done."""

    def __init__(
        self,
        step: StepSpec,
        spec: dict[str, Any],
        step_ids: list[str],
        items: list[dict[str, Any]],
        known: list[dict[str, Any]],
    ) -> None:
        self.step, self.spec, self.step_ids, self.items, self.known = step, spec, step_ids, items, known

    def settled(self, index: int) -> dict[str, Any] | None:
        """The outcome of a target settled before it runs: done before a retry, or its params unrenderable."""
        known = self.known[index]
        if known["state"] in ("succeeded", "skipped"):  # done before this run was retried
            return {"state": known["state"], "result": known["result"] or {}}
        item = self.items[index]
        if "error" in item:  # its params could not be rendered: a failure of this target alone
            change_step(self.step_ids[index], "fail", {"error": item["error"]}, {"error": item["error"]})
            return {"state": "failed", "error": item["error"]}
        return None


def _run_step(member: _Prepared, run: dict[str, Any], queue: Any) -> list[dict[str, Any]]:
    """Every target of one step through the fan-out queue, at most ``concurrency`` at once; a slot frees as
    soon as any target ends (not the oldest)."""
    if _lanes_fit([member], run):
        return _run_lanes([member], run, queue)[0]
    step, spec = member.step, member.spec
    outcomes: list[dict[str, Any] | None] = [None] * len(member.step_ids)
    window: dict[int, Any] = {}
    for index, step_id in enumerate(member.step_ids):
        outcomes[index] = member.settled(index)
        if outcomes[index] is not None:
            continue
        if len(window) >= step.concurrency:
            waited = _first_done(window)
            outcomes[waited] = _outcome(window.pop(waited), member.step_ids[waited], step.timeout)
        # DBOS cancels a workflow past its timeout (counted from when a worker dequeues it).
        with SetWorkflowTimeout(step.timeout):
            window[index] = queue.enqueue(target_workflow, step_id, spec, run["dry_run"], run["auto_approve"])
    while window:
        waited = _first_done(window)
        outcomes[waited] = _outcome(window.pop(waited), member.step_ids[waited], step.timeout)
    return [o for o in outcomes if o is not None]


def _run_pipeline(members: list[_Prepared], run: dict[str, Any], queue: Any) -> list[list[dict[str, Any]]]:
    """A pipeline: an item moves on to the next step as soon as its target of this step ended, so item A
    may be at step 3 while item B is still at step 1. Each step keeps its own window of ``concurrency``
    (isolating the last account never waits for another account's later steps), and a slot frees as soon
    as any of its targets ends. A target failing under ``on_failure: stop`` or ``escalate`` ends its item's
    chain: the item's later steps stay ``pending`` (not run; a retry of the run runs them)."""
    if _lanes_fit(members, run):
        return _run_lanes(members, run, queue)
    count = len(members[0].step_ids)
    outcomes: list[list[dict[str, Any] | None]] = [[None] * count for _ in members]
    ready: list[list[int]] = [[] for _ in members]  # items waiting for a slot, per step
    running = [0] * len(members)
    in_flight: dict[str, tuple[int, int, Any]] = {}  # workflow id → (step, item, handle)

    def stop(position: int, item: int, reason: str) -> None:
        for later in range(position, len(members)):
            outcomes[later][item] = {"state": "pending", "error": reason}
            note_step(members[later].step_ids[item], "step.not_run", {"reason": reason})

    def advance(position: int, item: int) -> None:
        """The item is ready for ``position``: queue it there, after settling what is already done."""
        while position < len(members):
            member = members[position]
            settled = member.settled(item)
            if settled is None:
                ready[position].append(item)
                return
            outcomes[position][item] = settled
            if settled["state"] == "failed" and member.step.on_failure != "continue":
                return stop(position + 1, item, f"not run: {member.step.id} failed for this target")
            position += 1

    for item in range(count):
        advance(0, item)
    while True:
        for position, member in enumerate(members):
            while ready[position] and running[position] < member.step.concurrency:
                item = ready[position].pop(0)
                step_id = member.step_ids[item]
                with SetWorkflowTimeout(member.step.timeout):
                    handle = queue.enqueue(
                        target_workflow, step_id, member.spec, run["dry_run"], run["auto_approve"]
                    )
                in_flight[handle.workflow_id] = (position, item, handle)
                running[position] += 1
        if not in_flight:
            break
        handles = [handle for _, _, handle in in_flight.values()]
        done = DBOS.wait_first(handles, polling_interval_sec=WAIT_POLL_S)
        position, item, handle = in_flight.pop(done.workflow_id)
        running[position] -= 1
        member = members[position]
        outcome = _outcome(handle, member.step_ids[item], member.step.timeout)
        outcomes[position][item] = outcome
        if outcome["state"] == "failed" and member.step.on_failure != "continue":
            stop(position + 1, item, f"not run: {member.step.id} failed for this target")
        else:
            advance(position + 1, item)
    return [[o for o in column if o is not None] for column in outcomes]


def _lanes_fit(members: list[_Prepared], run: dict[str, Any]) -> bool:
    """Lanes run targets that need neither a human nor a deadline of their own: a gate waits for a message
    to its target's own workflow, and a ``timeout`` is a workflow timeout; a dry run stops at the plan."""
    return not run["dry_run"] and all(
        member.step.timeout is None and not (member.step.requires_approval and not run["auto_approve"])
        for member in members
    )


def _run_lanes(members: list[_Prepared], run: dict[str, Any], queue: Any) -> list[list[dict[str, Any]]]:
    """The targets of one step, or of a pipeline of steps, through lanes on the fan-out queue: as many
    lanes as the steps' concurrencies add up to, each claiming targets until none is left (a slot frees as
    soon as a target ends; a target of a later step is claimable once its item's earlier target let it go
    on, so the pipeline's item A may rotate keys while item B is still being isolated).

    Afterwards the targets' recorded states are the outcomes. A target stopped by its item's failure
    earlier in the pipeline stays ``pending`` (not run; a retry of the run runs it). One that a lane
    claimed but did not end (the lane itself stopped on an internal error) fails with that reason."""
    outcomes = [[member.settled(index) for index in range(len(member.step_ids))] for member in members]
    todo = sum(outcome is None for column in outcomes for outcome in column)
    if todo:
        lanes = min(todo, sum(member.step.concurrency for member in members))
        specs = [member.spec for member in members]
        handles = [queue.enqueue(lane_workflow, run["id"], specs, run["auto_approve"]) for _ in range(lanes)]
        for handle in handles:
            try:
                handle.get_result(polling_interval_sec=LANE_POLL_S)
            except Exception as exc:  # cancelled with the run, or an internal error: the states tell
                log.warning("lane ended early", run_id=run["id"], error_type=type(exc).__name__)
    known = iter(read_step_states([step_id for member in members for step_id in member.step_ids]))
    stopped: dict[int, str] = {}  # item → why its later targets did not run
    for position, member in enumerate(members):
        for index, step_id in enumerate(member.step_ids):
            row = next(known)
            outcome = outcomes[position][index]
            if outcome is None:
                outcome = _lane_outcome(step_id, row, stopped.get(index))
                outcomes[position][index] = outcome
            if index in stopped:
                continue
            if outcome["state"] == "failed" and member.step.on_failure != "continue":
                stopped[index] = f"not run: {member.step.id} failed for this target"
            elif outcome["state"] == "pending":
                stopped[index] = outcome["error"]
    return [[outcome for outcome in column if outcome is not None] for column in outcomes]


def _lane_outcome(step_id: str, row: dict[str, Any], stopped: str | None) -> dict[str, Any]:
    state = row["state"]
    if state == "succeeded":
        return {"state": state, "result": row["result"] or {}}
    if state in ("failed", "skipped", "cancelled"):
        return {"state": state, "error": row["error"] or state}
    if state == "pending" and stopped is not None:
        note_step(step_id, "step.not_run", {"reason": stopped})
        return {"state": "pending", "error": stopped}
    error = "not run to its end: the lane running it stopped on an internal error"
    change_step(step_id, "fail", {"error": error}, {"error": error})
    return {"state": "failed", "error": error}


def _aligned(members: list[_Prepared]) -> bool:
    """The steps' targets pair up item by item (a for_each that could not render has one error target)."""
    indexes = [[item["item_index"] for item in member.items] for member in members]
    return all(each == indexes[0] for each in indexes) and -1 not in indexes[0]


# How often a step waits for the first of its targets to end: one query over the whole window.
WAIT_POLL_S = 0.02
# How often a step looks whether its lanes ended: each lane runs many targets, and its end only closes the
# step (a target's own end moves its item on within the lanes, without waiting for this).
LANE_POLL_S = 0.1


def _first_done(window: dict[int, Any]) -> int:
    """The index of the first target of the window to end (recorded: a replay waits for the same one)."""
    by_id = {handle.workflow_id: index for index, handle in window.items()}
    done = DBOS.wait_first(list(window.values()), polling_interval_sec=WAIT_POLL_S)
    return by_id[done.workflow_id]


def _conclude(
    run_id: str,
    run: dict[str, Any],
    playbook: Any,
    step: StepSpec,
    done: list[dict[str, Any]],
    outputs: dict[str, Any],
    position: int,
) -> str | int | None:
    """After a step's targets ended: its outputs, then what the run does next. A string is the run's final
    status (stopped by a rejection or a failure), an int the position to go on at (``on_reject: goto``)."""
    if step.action.startswith("notify.") and not run["dry_run"]:
        deliver_outbox()
    outputs[step.id] = {
        "states": [o["state"] for o in done],
        "outputs": [o.get("result", {}).get("outputs", {}) for o in done],
    }
    jump: int | None = None
    rejected = [o for o in done if o.get("rejected_by")]
    if rejected and step.on_reject == "stop":
        by = rejected[0]["rejected_by"]
        why = f"step {step.id}: {rejected[0]['error']} by {by} (on_reject: stop)"
        return change_run(run_id, "cancel", error=why, actor=by, payload={"reason": why})
    if rejected and step.on_reject.startswith("goto "):
        target = step.on_reject.removeprefix("goto ")
        jump = next(i for i, s in enumerate(playbook.steps) if s.id == target)
        for jumped in playbook.steps[position:jump]:
            note_run_event(
                run_id,
                "run.step_skipped",
                {"step": jumped.id, "reason": f"{step.id} rejected: goto {target}"},
            )
            outputs[jumped.id] = {"states": [], "outputs": [], "skipped": True}
    failed = [o for o in done if o["state"] == "failed"]
    if failed and step.on_failure != "continue":
        error = (
            f"step {step.id}: {len(failed)} of {len(done)} "
            f"targets failed; first error: {failed[0].get('error', '')}"
        )
        if step.on_failure == "escalate" and not run["dry_run"]:
            escalation = escalate_failure(run_id, step.id, error)
            deliver_outbox()
            error = f"{error} ({escalation})"
        return change_run(run_id, "fail", error=error)
    return jump


def _condition(step: StepSpec, context: dict[str, Any]) -> bool | str:
    """True or False for the step's ``when:``; the error text when it cannot be rendered."""
    if step.when is None:
        return True
    try:
        value = render(step.when, context)
    except Exception as exc:
        return _render_error(exc)
    if not isinstance(value, bool):  # "false" as text is truthy: a condition must say true or false
        return f"when: must give true or false, not {type(value).__name__} {str(value)[:80]!r}"
    return value


def _error_item(error: Any) -> dict[str, Any]:
    return {"item_index": -1, "target": None, "params": {}, "error": str(error)}


def _outcome(handle: Any, step_id: str, timeout: float | None) -> dict[str, Any]:
    """A target's outcome; a target workflow that ended in an error (or was cancelled) counts as failed."""
    try:
        return handle.get_result(polling_interval_sec=WAIT_POLL_S)
    except DBOSAwaitedWorkflowCancelledError as exc:
        if timeout is not None:  # past its timeout (an operator's cancel stops this workflow too)
            return time_out_target(step_id, timeout)
        return {"state": "failed", "error": _safe_error(exc)}
    except Exception as exc:
        return {"state": "failed", "error": _safe_error(exc)}


def _row_of(item: dict[str, Any]) -> dict[str, Any]:
    return {key: item[key] for key in ("item_index", "target", "params")}


def _expand(step: StepSpec, context: dict[str, Any]) -> list[dict[str, Any]]:
    """The step's targets with their rendered params (``item`` bound for ``for_each``).

    Rendering is untrusted code: any exception it raises becomes the failure of the target it was for (of
    the whole step when ``for_each`` itself cannot be rendered), never an error of the workflow.
    """
    action = get_action(step.action)
    if step.for_each is None:
        try:
            params = render(step.with_, context)
        except Exception as exc:
            return [_error_item(_render_error(exc))]
        target = params.get(action.target_param) if action.target_param else None
        return [{"item_index": -1, "target": _as_target(target), "params": params}]
    try:
        items = render(step.for_each, context)
        if not isinstance(items, list):
            raise TemplateProblem(f"for_each must give a list, not {type(items).__name__}")
    except Exception as exc:
        return [_error_item(_render_error(exc))]
    expanded: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            params = render(step.with_, {**context, "item": item})
        except Exception as exc:
            expanded.append(
                {"item_index": index, "target": _as_target(item), "params": {}, "error": _render_error(exc)}
            )
            continue
        if action.target_param and action.target_param not in params:
            params[action.target_param] = item
        target = params.get(action.target_param) if action.target_param else item
        expanded.append({"item_index": index, "target": _as_target(target), "params": params})
    return expanded


def _render_error(exc: Exception) -> str:
    if isinstance(exc, TemplateProblem):
        return redact_text(str(exc))[:1000]
    return redact_text(f"cannot render the step's params: {type(exc).__name__}: {exc}")[:1000]


def _as_target(value: Any) -> str | None:
    return None if value is None else str(value)[:600]


# --- starting ------------------------------------------------------------------------------------------
def start_run_workflow(run_id: str) -> Any:
    """Queue (or find) the run's workflow on the runs queue; the workflow id is the run id, so a second
    start is a no-op. Any worker of the database may dequeue it."""
    from irflow.engine.runtime import run_handle, submit

    settings = services().settings
    return run_handle(settings, submit(settings, run_id))


RETRY_SUFFIX = "-retry-"


def current_workflow_id(run_id: str, workflow_ids: list[str]) -> str:
    """The workflow now driving a run: its latest retry's, else the run's first (whose id is the run id)."""
    retries = [
        int(wid.removeprefix(run_id + RETRY_SUFFIX))
        for wid in workflow_ids
        if wid.startswith(run_id + RETRY_SUFFIX) and wid.removeprefix(run_id + RETRY_SUFFIX).isdigit()
    ]
    return f"{run_id}{RETRY_SUFFIX}{max(retries)}" if retries else run_id


def next_retry_id(run_id: str, existing: list[str]) -> str:
    """The workflow id of the run's next retry; the same retry number twice is one workflow."""
    latest = current_workflow_id(run_id, existing)
    number = int(latest.removeprefix(run_id + RETRY_SUFFIX)) + 1 if latest != run_id else 1
    return f"{run_id}{RETRY_SUFFIX}{number}"


def start_retry_workflow(run_id: str, actor: str, existing: list[str]) -> Any:
    """Queue the next retry of a run on the runs queue (any worker executes it)."""
    from irflow.engine.runtime import run_handle, submit_retry

    settings = services().settings
    return run_handle(settings, submit_retry(settings, run_id, actor, next_retry_id(run_id, existing)))


def start_orphaned_runs() -> list[str]:
    """Runs committed as pending whose workflow never started (the process died in between)."""
    from sqlalchemy import select

    from irflow.engine.runtime import submit
    from irflow.store.models import Run

    with services().db.transaction() as session:
        pending = list(session.execute(select(Run.id).where(Run.status == "pending")).scalars())
    started = []
    for run_id in pending:
        if DBOS.get_workflow_status(run_id) is None:
            submit(services().settings, run_id)
            started.append(run_id)
    return started


def decide(
    step_workflow_id: str, *, approved: bool, actor: str, comment: str = "", settings: Any = None
) -> None:
    """Deliver a human decision to a step waiting for approval (durably: it survives restarts).

    Through the DBOS client when this process is not a worker (*settings* name the database)."""
    message = {"approved": approved, "actor": actor, "comment": comment[:500]}
    if settings is not None:
        from irflow.engine.runtime import dbos_client

        dbos_client(settings).send(step_workflow_id, message, APPROVAL_TOPIC)
        return
    DBOS.send(step_workflow_id, message, APPROVAL_TOPIC)
