"""Identity actions (revoke a user's sessions, disable a service principal) through an azure-core Graph
pipeline against the simulated tenant (in-process mount)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from irflow.actions.base import PermissionDenied, ResourceMissing
from irflow.actions.identity import (
    DisableServicePrincipal,
    RevokeUserSessions,
    RevokeUserSessionsParams,
)
from irflow.sim.models import Tenant

USER = "7f2a4c6e-8b0d-4e2f-a4c6-e8b0d2f4a6c8"
SP = "4b7d2e19-3a6c-4f8e-9d15-7c2a0e6b8f31"
MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(autouse=True)
def _directory(tenant: Tenant) -> None:
    tenant.directory.add_user("avery@contoso.example", id=USER)
    tenant.directory.add_service_principal("nightly-etl", id=SP)


def _writes(tenant: Tenant) -> list:  # type: ignore[type-arg]
    return tenant.journal.writes()


class TestRevokeUserSessions:
    def test_plan_writes_nothing(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        plan = RevokeUserSessions().plan(make_context("identity.revoke_user_sessions", user=USER))
        assert [(c.field, c.before) for c in plan.changes] == [("signInSessionsValidFromDateTime", None)]
        assert _writes(tenant) == []

    def test_apply_twice_revokes_once_and_verifies(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        ctx = make_context("identity.revoke_user_sessions", user=USER)
        action = RevokeUserSessions()
        assert action.verify(ctx) is False
        first = action.apply(ctx)
        assert first.changed and first.prior_state["signInSessionsValidFromDateTime"] is None
        writes = _writes(tenant)
        assert [(w.method, w.route) for w in writes] == [("POST", "graph.users.revoke_sign_in_sessions")]
        assert not action.apply(ctx).changed
        assert _writes(tenant) == writes
        assert action.verify(ctx)
        assert len(tenant.directory.user(USER).revocations) == 1

    def test_an_older_revocation_does_not_count_a_newer_one_does(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        user = tenant.directory.user(USER)
        user.sign_in_sessions_valid_from = datetime.now(UTC) - timedelta(days=3)
        ctx = make_context("identity.revoke_user_sessions", user=USER)
        assert RevokeUserSessions().plan(ctx).changes
        # revoked by someone else after the incident opened: nothing left to do
        user.sign_in_sessions_valid_from = datetime.now(UTC)
        assert not RevokeUserSessions().apply(ctx).changed
        assert _writes(tenant) == []

    def test_denied_revoke_names_permission_and_scope(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        tenant.deny("microsoft.directory/users/invalidateAllRefreshTokens", f"/users/{USER}")
        with pytest.raises(PermissionDenied) as caught:
            RevokeUserSessions().apply(make_context("identity.revoke_user_sessions", user=USER))
        assert "microsoft.directory/users/invalidateAllRefreshTokens" in str(caught.value)
        assert f"/users/{USER}" in str(caught.value)
        assert tenant.directory.user(USER).revocations == []

    def test_missing_user_is_named(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        with pytest.raises(ResourceMissing, match=MISSING):
            RevokeUserSessions().plan(make_context("identity.revoke_user_sessions", user=MISSING))

    def test_params_are_validated(self) -> None:
        with pytest.raises(ValidationError, match="object id"):
            RevokeUserSessionsParams(user="avery@contoso.example")


class TestDisableServicePrincipal:
    def test_plan_writes_nothing(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        ctx = make_context("identity.disable_service_principal", service_principal=SP)
        plan = DisableServicePrincipal().plan(ctx)
        assert [(c.field, c.before, c.after) for c in plan.changes] == [("accountEnabled", True, False)]
        assert _writes(tenant) == []

    def test_apply_twice_disables_once_and_verifies(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        ctx = make_context("identity.disable_service_principal", service_principal=SP)
        action = DisableServicePrincipal()
        assert action.verify(ctx) is False
        first = action.apply(ctx)
        assert first.changed and first.prior_state["accountEnabled"] is True
        writes = _writes(tenant)
        assert [(w.method, w.body) for w in writes] == [("PATCH", {"accountEnabled": False})]
        assert not action.apply(ctx).changed
        assert _writes(tenant) == writes
        assert action.verify(ctx)
        assert tenant.directory.service_principal(SP).account_enabled is False

    def test_denied_disable_names_permission_and_scope(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        tenant.deny("microsoft.directory/servicePrincipals/disable", "/servicePrincipals")
        ctx = make_context("identity.disable_service_principal", service_principal=SP)
        with pytest.raises(PermissionDenied, match=f"servicePrincipals/disable on /servicePrincipals/{SP}"):
            DisableServicePrincipal().apply(ctx)
        assert tenant.directory.service_principal(SP).account_enabled is True

    def test_missing_service_principal_is_named(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        ctx = make_context("identity.disable_service_principal", service_principal=MISSING)
        with pytest.raises(ResourceMissing, match=MISSING):
            DisableServicePrincipal().plan(ctx)


class TestEnableServicePrincipal:
    @staticmethod
    def _disabled(make_context) -> dict:  # type: ignore[no-untyped-def, type-arg]
        ctx = make_context("identity.disable_service_principal", service_principal=SP)
        return DisableServicePrincipal().apply(ctx).prior_state

    def test_plan_writes_nothing(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        from irflow.actions.identity import EnableServicePrincipal

        prior = self._disabled(make_context)
        writes = _writes(tenant)
        ctx = make_context("identity.enable_service_principal", service_principal=SP, prior=prior)
        plan = EnableServicePrincipal().plan(ctx)
        assert [(c.field, c.before, c.after) for c in plan.changes] == [("accountEnabled", False, True)]
        assert _writes(tenant) == writes

    def test_apply_twice_enables_once_and_verifies(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        from irflow.actions.identity import EnableServicePrincipal

        prior = self._disabled(make_context)
        before = len(_writes(tenant))
        ctx = make_context("identity.enable_service_principal", service_principal=SP, prior=prior)
        action = EnableServicePrincipal()
        assert action.verify(ctx) is False
        first = action.apply(ctx)
        assert first.changed and first.prior_state["accountEnabled"] is False
        writes = _writes(tenant)
        assert len(writes) == before + 1
        assert (writes[-1].method, writes[-1].body) == ("PATCH", {"accountEnabled": True})
        assert not action.apply(ctx).changed
        assert _writes(tenant) == writes
        assert action.verify(ctx)
        assert tenant.directory.service_principal(SP).account_enabled is True

    def test_one_disabled_before_containment_stays_disabled(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        from irflow.actions.identity import EnableServicePrincipal

        tenant.directory.service_principal(SP).account_enabled = False
        prior = self._disabled(make_context)
        assert prior["accountEnabled"] is False
        ctx = make_context("identity.enable_service_principal", service_principal=SP, prior=prior)
        plan = EnableServicePrincipal().plan(ctx)
        assert plan.changes == [] and "disabled before containment" in plan.notes[0]
        assert not EnableServicePrincipal().apply(ctx).changed
        assert EnableServicePrincipal().verify(ctx)
        assert _writes(tenant) == []
        assert tenant.directory.service_principal(SP).account_enabled is False

    def test_denied_enable_names_permission_and_scope(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        from irflow.actions.identity import EnableServicePrincipal

        prior = self._disabled(make_context)
        before = len([w for w in _writes(tenant) if w.status < 400])
        # Entra authorises the re-enabling PATCH with servicePrincipals/enable (not disable).
        tenant.deny("microsoft.directory/servicePrincipals/enable", "/servicePrincipals")
        ctx = make_context("identity.enable_service_principal", service_principal=SP, prior=prior)
        with pytest.raises(PermissionDenied, match=f"servicePrincipals/enable on /servicePrincipals/{SP}"):
            EnableServicePrincipal().apply(ctx)
        assert len([w for w in _writes(tenant) if w.status < 400]) == before
        assert tenant.directory.service_principal(SP).account_enabled is False

    def test_missing_service_principal_is_named(self, tenant: Tenant, make_context) -> None:  # type: ignore[no-untyped-def]
        from irflow.actions.identity import EnableServicePrincipal

        ctx = make_context(
            "identity.enable_service_principal", service_principal=MISSING, prior={"accountEnabled": True}
        )
        with pytest.raises(ResourceMissing, match=MISSING):
            EnableServicePrincipal().plan(ctx)
        with pytest.raises(ResourceMissing, match=MISSING):
            EnableServicePrincipal().apply(ctx)
        assert _writes(tenant) == []

    def test_prior_state_is_validated(self) -> None:
        from irflow.actions.identity import EnableServicePrincipalParams

        with pytest.raises(ValidationError, match="accountEnabled"):
            EnableServicePrincipalParams(service_principal=SP, prior={})


@pytest.mark.parametrize("name", ["identity.revoke_user_sessions", "identity.disable_service_principal"])
def test_docs_state_what_revocation_leaves_valid(name: str) -> None:
    """What an on-call engineer reads (``irflow actions list``) must not overstate containment: issued access
    tokens live 60-90 minutes by default and CAE tokens up to 28 hours, with the Microsoft Learn sources."""
    from irflow.actions.base import get_action

    doc = " ".join((get_action(name).__doc__ or "").split())
    assert "60-90 minutes" in doc and "28 hours" in doc
    assert "learn.microsoft.com/entra/identity-platform/access-tokens#token-lifetime" in doc
    assert "an hour at most" not in doc
