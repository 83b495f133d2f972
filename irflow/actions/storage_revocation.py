"""Revoking a storage account's user delegation keys (``azure-mgmt-storage``), idempotent through the
Azure Activity Log in Log Analytics (``azure-monitor-query``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from irflow.actions.base import Action, Change, Plan, Result, StepContext, azure_errors, register
from irflow.actions.monitor import QUERY_READ, run_query
from irflow.domain.resource_id import ResourceId, StorageAccountId, WorkspaceGuid

READ = "Microsoft.Storage/storageAccounts/read"
REVOKE_USER_DELEGATION_KEYS = "Microsoft.Storage/storageAccounts/revokeUserDelegationKeys/action"
REVOKE_OPERATION = "MICROSOFT.STORAGE/STORAGEACCOUNTS/REVOKEUSERDELEGATIONKEYS/ACTION"


class RevokeUserDelegationKeysParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: StorageAccountId = Field(description="Resource id of the storage account.")
    workspace_id: WorkspaceGuid = Field(
        description="The Log Analytics workspace (GUID) that receives the subscription's Azure Activity Log: "
        "where an earlier revocation is looked up."
    )
    revoked_since: datetime | None = Field(
        default=None,
        description="A successful revocation logged at or after this time counts as done. "
        "Default: the incident's containment epoch (when irflow opened the incident).",
    )


@register
class RevokeUserDelegationKeys(Action):
    """Revoke every user delegation key of a storage account, invalidating all user-delegation SAS.

    A user-delegation SAS is signed with a key obtained through Microsoft Entra ID, so neither key rotation
    nor removing stored access policies stops it; ``revokeUserDelegationKeys`` does. Azure keeps no property
    saying when keys were last revoked, so the step is made idempotent by another Azure-side fact: the
    Activity Log, exported to ``workspace_id``, records every successful
    ``MICROSOFT.STORAGE/STORAGEACCOUNTS/REVOKEUSERDELEGATIONKEYS/ACTION``. The step skips the call when a
    successful revocation of this account is logged at or after ``revoked_since`` (by default the incident's
    containment epoch).

    Caveat: Activity Log events reach Log Analytics minutes after the call (ingestion delay). A re-run
    within that delay, and the verification right after the call, do not see the revocation yet: the engine
    then retries and the keys may be revoked twice, which is harmless (a revocation only invalidates SAS
    tokens; a second one invalidates nothing more). Nothing secret is read or returned.

    Example::

        - id: revoke-user-delegation-sas
          action: storage.revoke_user_delegation_keys
          for_each: "{{ inputs.storage_accounts }}"
          with: {account: "{{ item }}", workspace_id: "{{ inputs.workspace_id }}"}
          retry: {max_attempts: 5, backoff: exponential}
    """

    name = "storage.revoke_user_delegation_keys"
    Params = RevokeUserDelegationKeysParams
    permissions = (READ, REVOKE_USER_DELEGATION_KEYS, QUERY_READ)
    target_param = "account"

    @staticmethod
    def _since(ctx: StepContext) -> datetime:
        params: RevokeUserDelegationKeysParams = ctx.params  # type: ignore[assignment]
        since = params.revoked_since or ctx.reference_time
        return since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)

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

    def _state(self, ctx: StepContext) -> dict[str, Any]:
        """The account must exist; then what the Activity Log says about revocations since the epoch."""
        params: RevokeUserDelegationKeysParams = ctx.params  # type: ignore[assignment]
        rid = ResourceId.parse(params.account)
        with azure_errors(permission=READ, scope=params.account):
            ctx.clients.storage(rid.subscription_id).storage_accounts.get_properties(
                rid.resource_group, rid.name
            )
        since = self._since(ctx)
        # The time filter is in the query itself; timespan=None lets it reach back as far as it says.
        rows, partial = run_query(ctx, params.workspace_id, self.query(params.account, since), None)
        row = rows[0] if rows else {}
        count = int(row.get("Revocations") or 0)
        last: Any = row.get("LastRevoked") if count else None
        if isinstance(last, datetime):
            last = last.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return {
            "revoked_since": since.isoformat().replace("+00:00", "Z"),
            "revocations_logged": count,
            "last_revoked_at": last,
            "partial": partial,
        }

    @staticmethod
    def _changes(state: dict[str, Any]) -> list[Change]:
        if state["revocations_logged"]:
            return []
        return [
            Change(
                field="userDelegationKeys",
                before=f"not revoked since {state['revoked_since']} (per the Activity Log)",
                after="revoked",
            )
        ]

    def plan(self, ctx: StepContext) -> Plan:
        params: RevokeUserDelegationKeysParams = ctx.params  # type: ignore[assignment]
        state = self._state(ctx)
        notes = (
            [f"Activity Log: revoked at {state['last_revoked_at']}"] if state["revocations_logged"] else []
        )
        return Plan(action=self.name, target=params.account, changes=self._changes(state), notes=notes)

    def apply(self, ctx: StepContext) -> Result:
        params: RevokeUserDelegationKeysParams = ctx.params  # type: ignore[assignment]
        state = self._state(ctx)
        changes = self._changes(state)
        if not changes:
            return Result(
                changed=False,
                prior_state=state,
                notes=[f"user delegation keys already revoked at {state['last_revoked_at']}"],
            )
        rid = ResourceId.parse(params.account)
        with azure_errors(permission=REVOKE_USER_DELEGATION_KEYS, scope=params.account):
            ctx.clients.storage(rid.subscription_id).storage_accounts.revoke_user_delegation_keys(
                rid.resource_group, rid.name
            )
        ctx.log.info("user delegation keys revoked")
        return Result(changed=True, changes=changes, prior_state=state)

    def verify(self, ctx: StepContext) -> bool:
        return not self._changes(self._state(ctx))
