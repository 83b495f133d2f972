"""Identity containment actions through Microsoft Graph (an azure-core pipeline: ``ctx.clients.graph()``).

The permissions these actions declare are Microsoft Entra role permissions (``microsoft.directory/…``, as in
a custom directory role's ``allowedResourceActions``), not Azure RBAC operations: Graph is authorised by Entra
ID roles. An application identity can hold the Graph application permissions ``User.RevokeSessions.All`` and
``Application.ReadWrite.All`` instead.

What these actions cannot do: access tokens already issued stay valid until they expire. By default Entra ID
gives an access token a random lifetime of 60-90 minutes (75 on average)
(https://learn.microsoft.com/entra/identity-platform/access-tokens#token-lifetime); a token issued to a
client that supports continuous access evaluation (CAE) lives up to 28 hours, and only CAE-aware resources
(Graph, Exchange Online, SharePoint Online, Teams) reject it in near real time after a revocation event
(https://learn.microsoft.com/entra/identity/conditional-access/concept-continuous-access-evaluation,
https://learn.microsoft.com/entra/identity-platform/app-resilience-continuous-access-evaluation). A
resource that does not evaluate CAE keeps honouring a token already issued until it expires.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    map_error,
)
from azure.core.rest import HttpRequest
from pydantic import BaseModel, ConfigDict, Field

from irflow.actions.base import Action, Change, Plan, Result, StepContext, azure_errors, register
from irflow.domain.resource_id import DirectoryObjectId

USER_READ = "microsoft.directory/users/standard/read"
USER_REVOKE_SESSIONS = "microsoft.directory/users/invalidateAllRefreshTokens"
SP_READ = "microsoft.directory/servicePrincipals/standard/read"
SP_DISABLE = "microsoft.directory/servicePrincipals/disable"

_ERRORS = {401: ClientAuthenticationError, 404: ResourceNotFoundError}


def _graph(
    ctx: StepContext,
    method: str,
    path: str,
    *,
    permission: str,
    scope: str,
    body: dict[str, Any] | None = None,
) -> Any:
    """One Graph request; errors become action errors naming ``permission`` and ``scope``."""
    client = ctx.clients.graph()
    request = HttpRequest(method, client.format_url(path), json=body)
    with azure_errors(permission=permission, scope=scope):
        response = client.send_request(request)
        if response.status_code >= 400:
            map_error(status_code=response.status_code, response=response, error_map=_ERRORS)
            raise HttpResponseError(response=response)
    return response


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class RevokeUserSessionsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: DirectoryObjectId = Field(description="Object id of the Microsoft Entra user.")
    revoked_since: datetime | None = Field(
        default=None,
        description="Sessions Azure shows as revoked at or after this time count as already revoked. "
        "Default: the incident's containment epoch (when irflow opened the incident).",
    )


@register
class RevokeUserSessions(Action):
    """Revoke every refresh token and session cookie of a user (Graph ``revokeSignInSessions``).

    ``revokeSignInSessions`` invalidates the refresh tokens issued to applications for the user and the
    session cookies in their browser, so no new access token can be obtained without signing in again
    (https://learn.microsoft.com/graph/api/user-revokesigninsessions; it may take a few minutes, and it does
    not reach external (guest) users, who sign in through their home tenant). Access tokens already issued
    are NOT revoked: they stay valid until they expire, 60-90 minutes by default
    (https://learn.microsoft.com/entra/identity-platform/access-tokens#token-lifetime), and up to 28 hours
    for a CAE-capable client, where only CAE-aware resources cut them off in near real time
    (https://learn.microsoft.com/entra/identity/conditional-access/concept-continuous-access-evaluation).
    Contain the resources themselves (network isolation, key and SAS revocation) for that window.

    Idempotent from the directory's own record: a user whose ``signInSessionsValidFromDateTime`` is at or
    after ``revoked_since`` (by default the incident's containment epoch) is not revoked again. Graph keeps
    that time to the second, so the comparison is to the second.

    Example::

        - id: revoke-sessions
          action: identity.revoke_user_sessions
          for_each: "{{ inputs.users }}"
          with: {user: "{{ item }}"}
          retry: {max_attempts: 4, backoff: exponential, delay_s: 1}
    """

    name = "identity.revoke_user_sessions"
    Params = RevokeUserSessionsParams
    permissions = (USER_READ, USER_REVOKE_SESSIONS)
    target_param = "user"

    def _state(self, ctx: StepContext) -> tuple[list[Change], dict[str, Any]]:
        params: RevokeUserSessionsParams = ctx.params  # type: ignore[assignment]
        since = (params.revoked_since or ctx.reference_time).replace(microsecond=0)
        user = _graph(
            ctx,
            "GET",
            f"/v1.0/users/{params.user}?$select=id,accountEnabled,signInSessionsValidFromDateTime",
            permission=USER_READ,
            scope=f"/users/{params.user}",
        ).json()
        valid_from = user.get("signInSessionsValidFromDateTime")
        parsed = _parse_time(valid_from)
        prior = {"signInSessionsValidFromDateTime": valid_from, "revoked_since": since.isoformat()}
        if parsed is not None and parsed >= since:
            return [], prior
        change = Change(field="signInSessionsValidFromDateTime", before=valid_from, after="now (revoke)")
        return [change], prior

    def plan(self, ctx: StepContext) -> Plan:
        params: RevokeUserSessionsParams = ctx.params  # type: ignore[assignment]
        changes, prior = self._state(ctx)
        notes = [] if changes else [f"sessions already revoked at {prior['signInSessionsValidFromDateTime']}"]
        return Plan(action=self.name, target=params.user, changes=changes, notes=notes)

    def apply(self, ctx: StepContext) -> Result:
        params: RevokeUserSessionsParams = ctx.params  # type: ignore[assignment]
        changes, prior = self._state(ctx)
        if not changes:
            return Result(changed=False, prior_state=prior, notes=["sessions already revoked"])
        _graph(
            ctx,
            "POST",
            f"/v1.0/users/{params.user}/revokeSignInSessions",
            permission=USER_REVOKE_SESSIONS,
            scope=f"/users/{params.user}",
        )
        ctx.log.info("user sign-in sessions revoked")
        return Result(changed=True, changes=changes, prior_state=prior)

    def verify(self, ctx: StepContext) -> bool:
        changes, _ = self._state(ctx)
        return not changes


class DisableServicePrincipalParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service_principal: DirectoryObjectId = Field(description="Object id of the service principal.")


@register
class DisableServicePrincipal(Action):
    """Disable a service principal (``accountEnabled: false``): it can no longer get new tokens.

    Tokens it already holds stay valid until they expire: 60-90 minutes by default for access tokens
    (https://learn.microsoft.com/entra/identity-platform/access-tokens#token-lifetime), up to 28 hours for
    CAE tokens outside CAE-aware resources
    (https://learn.microsoft.com/entra/identity-platform/app-resilience-continuous-access-evaluation); a
    managed identity's tokens are cached by Azure for up to 24 hours
    (https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/managed-identity-best-practice-recommendations).
    Credentials are kept (for forensics and a later re-enable); the prior ``accountEnabled`` is recorded. A
    no-op when the directory already shows it disabled.

    Example::

        - id: disable-service-principals
          action: identity.disable_service_principal
          for_each: "{{ inputs.service_principals }}"
          with: {service_principal: "{{ item }}"}
    """

    name = "identity.disable_service_principal"
    Params = DisableServicePrincipalParams
    permissions = (SP_READ, SP_DISABLE)
    target_param = "service_principal"

    def _state(self, ctx: StepContext) -> tuple[list[Change], dict[str, Any]]:
        params: DisableServicePrincipalParams = ctx.params  # type: ignore[assignment]
        principal = _graph(
            ctx,
            "GET",
            f"/v1.0/servicePrincipals/{params.service_principal}?$select=id,appId,accountEnabled",
            permission=SP_READ,
            scope=f"/servicePrincipals/{params.service_principal}",
        ).json()
        enabled = principal.get("accountEnabled", True) is not False
        prior = {"accountEnabled": enabled, "appId": principal.get("appId")}
        changes = [Change(field="accountEnabled", before=True, after=False)] if enabled else []
        return changes, prior

    def plan(self, ctx: StepContext) -> Plan:
        params: DisableServicePrincipalParams = ctx.params  # type: ignore[assignment]
        changes, _ = self._state(ctx)
        notes = [] if changes else ["already disabled"]
        return Plan(action=self.name, target=params.service_principal, changes=changes, notes=notes)

    def apply(self, ctx: StepContext) -> Result:
        params: DisableServicePrincipalParams = ctx.params  # type: ignore[assignment]
        changes, prior = self._state(ctx)
        if not changes:
            return Result(changed=False, prior_state=prior, notes=["already disabled"])
        _graph(
            ctx,
            "PATCH",
            f"/v1.0/servicePrincipals/{params.service_principal}",
            permission=SP_DISABLE,
            scope=f"/servicePrincipals/{params.service_principal}",
            body={"accountEnabled": False},
        )
        ctx.log.info("service principal disabled")
        return Result(changed=True, changes=changes, prior_state=prior)

    def verify(self, ctx: StepContext) -> bool:
        changes, _ = self._state(ctx)
        return not changes


SP_ENABLE = "microsoft.directory/servicePrincipals/enable"


class ServicePrincipalState(BaseModel):
    """What ``identity.disable_service_principal`` records: ``accountEnabled`` (and ``appId``) before."""

    model_config = ConfigDict(extra="ignore")

    accountEnabled: bool  # noqa: N815 (Graph names)
    appId: str | None = None  # noqa: N815


class EnableServicePrincipalParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service_principal: DirectoryObjectId = Field(description="Object id of the service principal.")
    prior: ServicePrincipalState = Field(
        description="The state before containment: the prior_state recorded by "
        "identity.disable_service_principal "
        "(in a playbook: {{ incident.prior_state['identity.disable_service_principal'][item] }})."
    )


@register
class EnableServicePrincipal(Action):
    """Undo ``identity.disable_service_principal``: re-enable a service principal (``accountEnabled: true``).

    Only when the recorded prior state says it was enabled before containment: one that was already disabled
    stays disabled. A no-op when the directory already shows it enabled.

    Example::

        - id: enable-service-principals
          action: identity.enable_service_principal
          for_each: "{{ inputs.service_principals }}"
          with:
            service_principal: "{{ item }}"
            prior: "{{ incident.prior_state['identity.disable_service_principal'][item] }}"
    """

    name = "identity.enable_service_principal"
    Params = EnableServicePrincipalParams
    permissions = (SP_READ, SP_ENABLE)
    target_param = "service_principal"

    def _state(self, ctx: StepContext) -> tuple[list[Change], dict[str, Any], list[str]]:
        params: EnableServicePrincipalParams = ctx.params  # type: ignore[assignment]
        principal = _graph(
            ctx,
            "GET",
            f"/v1.0/servicePrincipals/{params.service_principal}?$select=id,appId,accountEnabled",
            permission=SP_READ,
            scope=f"/servicePrincipals/{params.service_principal}",
        ).json()
        enabled = principal.get("accountEnabled", True) is not False
        current = {"accountEnabled": enabled, "appId": principal.get("appId")}
        if not params.prior.accountEnabled:
            return [], current, ["disabled before containment: left as it is"]
        if enabled:
            return [], current, ["already enabled"]
        return [Change(field="accountEnabled", before=False, after=True)], current, []

    def plan(self, ctx: StepContext) -> Plan:
        params: EnableServicePrincipalParams = ctx.params  # type: ignore[assignment]
        changes, _, notes = self._state(ctx)
        return Plan(action=self.name, target=params.service_principal, changes=changes, notes=notes)

    def apply(self, ctx: StepContext) -> Result:
        params: EnableServicePrincipalParams = ctx.params  # type: ignore[assignment]
        changes, current, notes = self._state(ctx)
        if not changes:
            return Result(changed=False, prior_state=current, notes=notes)
        _graph(
            ctx,
            "PATCH",
            f"/v1.0/servicePrincipals/{params.service_principal}",
            permission=SP_ENABLE,
            scope=f"/servicePrincipals/{params.service_principal}",
            body={"accountEnabled": True},
        )
        ctx.log.info("service principal re-enabled")
        return Result(changed=True, changes=changes, prior_state=current)

    def verify(self, ctx: StepContext) -> bool:
        changes, _, _ = self._state(ctx)
        return not changes
