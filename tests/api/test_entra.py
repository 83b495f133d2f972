"""Entra ID bearer tokens: the production validator against a tenant on loopback."""

from __future__ import annotations

import socket
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from irflow.api.entra import EntraTokenError, EntraValidator, irflow_roles
from irflow.settings import Settings


def _validator(oidc) -> EntraValidator:  # type: ignore[no-untyped-def]
    return EntraValidator(tenant_id=oidc.tenant_id, audience=oidc.audience, authority=oidc.authority)


def _refusal(validator: EntraValidator, token: str) -> str:
    with pytest.raises(EntraTokenError) as refused:
        validator.validate(token)
    assert not refused.value.unavailable
    return refused.value.message


def test_a_v2_token_is_accepted_and_its_app_roles_map_to_irflow_roles(oidc) -> None:  # type: ignore[no-untyped-def]
    oid = str(uuid.uuid4())
    claims = _validator(oidc).validate(oidc.token(oid=oid, roles=["irflow.approver", "Viewer", "Other.Role"]))
    assert claims.oid == oid and claims.tid == oidc.tenant_id
    assert claims.irflow_roles == {"approver", "viewer"}
    assert claims.roles == ("irflow.approver", "Viewer", "Other.Role")
    principal = claims.principal()
    assert principal.actor == f"entra:{oid}" and principal.may("approver") and not principal.may("admin")


def test_a_v1_token_of_a_managed_identity_is_accepted(oidc) -> None:  # type: ignore[no-untyped-def]
    claims = _validator(oidc).validate(oidc.token(issuer=oidc.issuer_v1, appid="logic-app", ver="1.0"))
    assert claims.issuer == oidc.issuer_v1 and claims.app_id == "logic-app" and claims.irflow_roles == set()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"audience": "api://someone-else"}, "another audience"),
        ({"issuer": "https://login.microsoftonline.com/evil/v2.0"}, "another issuer"),
        ({"expires_in": -3600}, "expired"),
        (
            {"key": rsa.generate_private_key(public_exponent=65537, key_size=2048)},
            "signature does not verify",
        ),
        ({"kid": "unpublished"}, "key the tenant does not publish"),
        ({"tenant_id": str(uuid.uuid4())}, "another tenant"),
        ({"drop": ("oid",)}, "'oid' claim"),
        ({"oid": ""}, "malformed oid"),
        ({"drop": ("exp",)}, "'exp' claim"),
    ],
)
def test_tokens_that_must_be_refused(oidc, change, message) -> None:  # type: ignore[no-untyped-def]
    assert message in _refusal(_validator(oidc), oidc.token(**change))


def test_unsigned_and_symmetric_tokens_are_refused(oidc) -> None:  # type: ignore[no-untyped-def]
    validator = _validator(oidc)
    claims = {"aud": oidc.audience, "iss": oidc.issuer_v2, "exp": 2**31, "oid": "x", "tid": oidc.tenant_id}
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": oidc.kid})
    assert "RS256" in _refusal(validator, unsigned)
    # HS256 with the public key as the secret: the classic algorithm-confusion forgery.
    hmac = jwt.encode(claims, "secret-known-to-anyone", algorithm="HS256", headers={"kid": oidc.kid})
    assert "RS256" in _refusal(validator, hmac)
    assert "not a JWT" in _refusal(validator, "not-a-token")


def test_unknown_key_ids_do_not_hammer_the_metadata_endpoint(oidc) -> None:  # type: ignore[no-untyped-def]
    validator = _validator(oidc)
    validator.validate(oidc.token())
    for _ in range(20):
        _refusal(validator, oidc.token(kid=f"forged-{uuid.uuid4().hex}"))
    assert oidc.metadata_requests == 1


def test_an_unreachable_tenant_is_reported_as_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    validator = EntraValidator(tenant_id="t", audience="a", authority=f"http://127.0.0.1:{port}", timeout=2)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(EntraTokenError) as failure:
        validator.validate(jwt.encode({"aud": "a"}, key, algorithm="RS256", headers={"kid": "k"}))
    assert failure.value.unavailable and "unreachable" in failure.value.message


def test_plain_http_authority_is_refused_unless_loopback() -> None:
    with pytest.raises(ValueError, match="https"):
        EntraValidator(tenant_id="t", audience="a", authority="http://login.example.org")


def test_from_settings_needs_tenant_and_audience() -> None:
    assert EntraValidator.from_settings(Settings(entra_tenant_id="t")) is None
    validator = EntraValidator.from_settings(Settings(entra_tenant_id="t", entra_audience="api://irflow, x"))
    assert validator is not None
    assert validator.authority == "https://login.microsoftonline.com" and validator.audiences == [
        "api://irflow",
        "x",
    ]
    assert irflow_roles(["ADMIN", "irflow.Compliance", "reader"]) == {"admin", "compliance"}
