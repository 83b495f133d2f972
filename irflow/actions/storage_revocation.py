"""Revoking a storage account's user delegation keys (``azure-mgmt-storage``).

Azure keeps no property saying when an account's user delegation keys were last revoked, and the Activity
Log reaches Log Analytics minutes after the call (and only where the subscription exports it). So the proof
of a revocation is Azure's own 2xx answer to ``revokeUserDelegationKeys``; irflow records it on the account
as the tag ``irflow-udk-revoked-at`` (the time of that answer), an Azure-side fact that makes the step
idempotent across re-runs and crashes without waiting for any log. The Activity Log, when a workspace is
given, is only a best-effort hint that an earlier revocation already happened.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from irflow import clock
from irflow.actions.base import (
    Action,
    ActionError,
    Change,
    Plan,
    Result,
    StepContext,
    azure_errors,
    register,
)
from irflow.actions.monitor import QUERY_READ, run_query
from irflow.actions.storage import account_key, get_account
from irflow.domain.resource_id import ResourceId, StorageAccountId, WorkspaceGuid

READ = "Microsoft.Storage/storageAccounts/read"
WRITE = "Microsoft.Storage/storageAccounts/write"
REVOKE_USER_DELEGATION_KEYS = "Microsoft.Storage/storageAccounts/revokeUserDelegationKeys/action"
REVOKE_OPERATION = "MICROSOFT.STORAGE/STORAGEACCOUNTS/REVOKEUSERDELEGATIONKEYS/ACTION"
MARKER_TAG = "irflow-udk-revoked-at"


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _stamp(value: datetime) -> str:
    return _utc(value).isoformat().replace("+00:00", "Z")


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return _utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


class RevokeUserDelegationKeysParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: StorageAccountId = Field(description="Resource id of the storage account.")
    workspace_id: WorkspaceGuid | None = Field(
        default=None,
        description="Optional: a Log Analytics workspace (GUID) receiving the subscription's Activity Log, "
        "asked (best effort) whether an earlier revocation already happened.",
    )
    revoked_since: datetime | None = Field(
        default=None,
        description="A revocation at or after this time counts as done. "
        "Default: the incident's containment epoch (when irflow opened the incident).",
    )

    @field_validator("workspace_id", mode="before")
    @classmethod
    def _no_workspace(cls, value: object) -> object:
        return None if value == "" else value  # a playbook's empty optional input: no hint


@register
class RevokeUserDelegationKeys(Action):
    """Revoke every user delegation key of a storage account, invalidating all user-delegation SAS.

    A user-delegation SAS is signed with a key obtained through Microsoft Entra ID, so neither key rotation
    nor removing stored access policies stops it; ``revokeUserDelegationKeys`` does. Verified from Azure's 2xx
    answer, which irflow records on the account as the tag ``irflow-udk-revoked-at`` (the existing tags are
    kept): a revocation tagged at or after ``revoked_since`` (default: the incident's containment epoch) is
    not repeated. The Activity Log (``workspace_id``, optional) is only a best-effort "already done" hint: it
    arrives minutes late, or never when the subscription does not export it. Should the tag write fail
    after the revocation (an Azure Policy denying tag changes, say), the revocation still stands, verified
    by Azure's answer; a later re-run would revoke once more, which invalidates nothing more.

    Example::

        - id: revoke-user-delegation-sas
          action: storage.revoke_user_delegation_keys
          for_each: "{{ inputs.storage_accounts }}"
          with: {account: "{{ item }}"}
          retry: {max_attempts: 5, backoff: exponential}
    """

    name = "storage.revoke_user_delegation_keys"
    Params = RevokeUserDelegationKeysParams
    permissions = (READ, WRITE, REVOKE_USER_DELEGATION_KEYS, QUERY_READ)
    target_param = "account"

    def __init__(self) -> None:
        # Azure's 2xx answers this instance received (account id → when): what verify checks after apply.
        self._answered: dict[str, datetime] = {}

    @staticmethod
    def _since(ctx: StepContext) -> datetime:
        params: RevokeUserDelegationKeysParams = ctx.params  # type: ignore[assignment]
        return _utc(params.revoked_since or ctx.reference_time)

    @staticmethod
    def query(account: str, since: datetime) -> str:
        # ``account`` is a validated resource id and ``since`` a datetime: nothing user-typed reaches the KQL.
        stamp = since.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return f"""AzureActivity
| where TimeGenerated >= datetime({stamp})
| where OperationNameValue =~ "{REVOKE_OPERATION}"
| where ActivityStatusValue =~ "Success"
| where _ResourceId =~ "{account.lower()}"
| summarize Revocations = count(), LastRevoked = max(TimeGenerated)"""

    def _logged(self, ctx: StepContext, since: datetime) -> tuple[datetime | None, str | None]:
        """The Activity Log hint: the last logged revocation since ``since``, or why there is no answer."""
        params: RevokeUserDelegationKeysParams = ctx.params  # type: ignore[assignment]
        if not params.workspace_id:
            return None, None
        try:
            rows, _ = run_query(ctx, params.workspace_id, self.query(params.account, since), None)
        except ActionError as exc:
            return None, f"Activity Log not consulted ({exc})"
        row = rows[0] if rows else {}
        last = row.get("LastRevoked") if int(row.get("Revocations") or 0) else None
        if isinstance(last, str):
            last = _parse(last)
        return (_utc(last) if isinstance(last, datetime) else None), None

    def _state(self, ctx: StepContext) -> dict[str, Any]:
        params: RevokeUserDelegationKeysParams = ctx.params  # type: ignore[assignment]
        account = get_account(ctx, params.account)
        since = self._since(ctx)
        tags = dict(account.tags or {})
        tagged = _parse(tags.get(MARKER_TAG))
        answered = self._answered.get(params.account.lower())
        evidence: dict[str, Any] = {"revoked_since": _stamp(since), "tags": tags}
        for source, when in (("azure_answer", answered), ("account_tag", tagged)):
            if when is not None and when >= since:
                evidence.update(revoked_at=_stamp(when), evidence=source)
                return evidence
        logged, problem = self._logged(ctx, since)
        if logged is not None:
            evidence.update(revoked_at=_stamp(logged), evidence="activity_log")
        elif problem:
            evidence["note"] = problem
        return evidence

    @staticmethod
    def _changes(state: dict[str, Any]) -> list[Change]:
        if state.get("revoked_at"):
            return []
        return [
            Change(
                field="userDelegationKeys",
                before=f"not revoked since {state['revoked_since']}",
                after="revoked",
            )
        ]

    @staticmethod
    def _notes(state: dict[str, Any]) -> list[str]:
        notes = [state["note"]] if state.get("note") else []
        if state.get("revoked_at"):
            notes.append(f"revoked at {state['revoked_at']} (per {state['evidence'].replace('_', ' ')})")
        return notes

    def plan(self, ctx: StepContext) -> Plan:
        params: RevokeUserDelegationKeysParams = ctx.params  # type: ignore[assignment]
        state = self._state(ctx)
        return Plan(
            action=self.name, target=params.account, changes=self._changes(state), notes=self._notes(state)
        )

    def apply(self, ctx: StepContext) -> Result:
        params: RevokeUserDelegationKeysParams = ctx.params  # type: ignore[assignment]
        state = self._state(ctx)
        changes = self._changes(state)
        prior = {k: v for k, v in state.items() if k != "tags"}
        if not changes:
            return Result(changed=False, prior_state=prior, notes=self._notes(state))
        rid = ResourceId.parse(params.account)
        client = ctx.clients.storage(rid.subscription_id)
        with azure_errors(permission=REVOKE_USER_DELEGATION_KEYS, scope=params.account):
            client.storage_accounts.revoke_user_delegation_keys(rid.resource_group, rid.name)
        answered = clock.now()  # the SDK raises on anything but 2xx: from here the keys are revoked
        self._answered[params.account.lower()] = answered
        ctx.log.info("user delegation keys revoked")
        notes = []
        tags = {**state["tags"], MARKER_TAG: _stamp(answered)}
        try:
            with azure_errors(permission=WRITE, scope=params.account):
                updated = client.storage_accounts.update(rid.resource_group, rid.name, {"tags": tags})
            ctx.remember(account_key(params.account), updated)  # verify reads the tag from the answer
        except ActionError as exc:
            notes.append(f"revoked (Azure answered 2xx), but the marker tag was not written: {exc}")
        return Result(
            changed=True,
            changes=changes,
            prior_state=prior,
            outputs={"revoked_at": _stamp(answered)},
            notes=notes,
        )

    def verify(self, ctx: StepContext) -> bool:
        return not self._changes(self._state(ctx))
