"""Sign in with Microsoft: the OAuth 2.0 authorization code flow with PKCE and OpenID Connect against the
tenant of ``IRFLOW_ENTRA_TENANT_ID``, as the Microsoft identity platform documents it
(https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow and
https://learn.microsoft.com/en-us/entra/identity-platform/v2-protocols-oidc).

1. :meth:`EntraSignIn.authorize_url`: the browser goes to the tenant's ``authorization_endpoint`` (read from
   its v2.0 metadata) with ``response_type=code``, ``response_mode=query``, ``scope`` = irflow's API scope
   plus ``openid``, a random ``state`` and ``nonce``, and ``code_challenge`` = BASE64URL(SHA256(verifier))
   with ``code_challenge_method=S256`` (RFC 7636 section 4.2).
2. The tenant redirects back to ``/ui/auth/callback?code=...&state=...``; the route checks ``state`` against
   the short-lived signed cookie set at step 1 (``irflow/ui/session.py``, ``PendingSignIn``).
3. :meth:`EntraSignIn.redeem` posts the code with the verifier (and the client secret of a confidential
   client) to the ``token_endpoint``; the access token is validated exactly as the API validates bearer
   tokens (:class:`irflow.api.entra.EntraValidator`: signature, issuer, audience = irflow's app id URI,
   tenant, expiry), the ID token is validated for the dashboard's client id and must carry the nonce of
   step 1 and the same user (``oid``) as the access token.

The verifier is never sent to the browser: it is derived on the server from the state with the session
key (HMAC-SHA256), so a code intercepted on its way back cannot be redeemed without this server.
Neither token is kept: the session cookie names the user's object id and roles, as a pasted token's does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from irflow.api.entra import EntraClaims, EntraTokenError, EntraValidator
from irflow.settings import Settings

CALLBACK_PATH = "/ui/auth/callback"


class SignInFailed(Exception):
    """The redirect sign-in cannot complete: shown as an HTML page with this status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class EntraSignIn:
    validator: EntraValidator
    client_id: str
    client_secret: str | None
    scope: str
    redirect_uri: str | None
    timeout: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings, validator: EntraValidator | None) -> EntraSignIn | None:
        """Configured when Entra ID tokens are (tenant and audience) and the dashboard has a client id."""
        if validator is None or not settings.ui_client_id:
            return None
        scope = settings.ui_scope or f"{validator.audiences[0].rstrip('/')}/.default"
        secret = settings.ui_client_secret.get_secret_value() if settings.ui_client_secret else None
        return cls(
            validator=validator,
            client_id=settings.ui_client_id,
            client_secret=secret or None,
            scope=scope,
            redirect_uri=settings.ui_redirect_uri,
        )

    @staticmethod
    def verifier(key: bytes, state: str) -> str:
        """The PKCE code verifier of *state*: 43 characters of [A-Za-z0-9_-] (RFC 7636 section 4.1)."""
        return _b64url(hmac.new(key, b"irflow.ui.pkce\0" + state.encode(), hashlib.sha256).digest())

    def authorize_url(self, *, redirect_uri: str, state: str, nonce: str, verifier: str) -> str:
        authorize, _token = self._endpoints()
        challenge = _b64url(hashlib.sha256(verifier.encode()).digest())
        query = {
            "client_id": self.client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            # query, not form_post: the way back is then a top-level GET, which carries a SameSite=Lax cookie.
            "response_mode": "query",
            "scope": f"openid {self.scope}",
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        return f"{authorize}?{urlencode(query)}"

    def redeem(self, *, code: str, redirect_uri: str, verifier: str, nonce: str) -> EntraClaims:
        """The access token's claims once the code is redeemed and both tokens check out."""
        _authorize, token_endpoint = self._endpoints()
        form = {
            "client_id": self.client_id,
            "grant_type": "authorization_code",
            "scope": f"openid {self.scope}",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        if self.client_secret:
            form["client_secret"] = self.client_secret
        body = self._post(token_endpoint, form)
        access, id_token = body.get("access_token"), body.get("id_token")
        if not isinstance(access, str) or not isinstance(id_token, str):
            raise SignInFailed(502, "Microsoft Entra ID answered without an access token and an ID token.")
        try:
            claims = self.validator.validate(access)
            identity = self.validator.validate_id_token(id_token, self.client_id)
        except EntraTokenError as exc:
            if exc.unavailable:
                raise SignInFailed(
                    503, f"Entra ID cannot be reached to check the token: {exc.message}."
                ) from None
            raise SignInFailed(401, f"Sign-in refused: {exc.message}.") from None
        if not hmac.compare_digest(str(identity.get("nonce", "")).encode(), nonce.encode()):
            raise SignInFailed(401, "Sign-in refused: the ID token's nonce is not the one this sign-in sent.")
        if identity.get("oid") != claims.oid:
            raise SignInFailed(
                401, "Sign-in refused: the ID token and the access token name different users."
            )
        return claims

    def _endpoints(self) -> tuple[str, str]:
        try:
            return self.validator.endpoints()
        except EntraTokenError as exc:
            raise SignInFailed(503, f"Entra ID cannot be reached: {exc.message}.") from None

    def _post(self, url: str, form: dict[str, str]) -> dict[str, Any]:
        try:
            with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:
                response = client.post(url, data=form, headers={"Accept": "application/json"})
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SignInFailed(
                503, f"Entra ID's token endpoint cannot be reached ({type(exc).__name__})."
            ) from None
        if not isinstance(body, dict):
            raise SignInFailed(502, "Entra ID's token endpoint answered something other than a JSON object.")
        if response.status_code != 200:
            # The error code only (invalid_grant, invalid_client...): the description may quote the request.
            error = body.get("error")
            code = error if isinstance(error, str) and error.isascii() and len(error) < 64 else "an error"
            raise SignInFailed(
                401, f"Microsoft Entra ID refused to redeem the sign-in code ({code}). Start again."
            )
        return body
