"""Microsoft Entra ID bearer tokens: users (app roles → irflow roles) and senders' managed identities.

The token is a JWT signed with one of the tenant's published keys. Validation follows Microsoft's
"Validate tokens" guidance (https://learn.microsoft.com/en-us/entra/identity-platform/access-tokens#validate-tokens):
the signing key comes from the ``jwks_uri`` of the tenant's OpenID Connect metadata
(https://learn.microsoft.com/en-us/entra/identity-platform/v2-protocols-oidc#find-your-apps-openid-configuration-document-uri),
the signature must verify with RS256, ``iss`` must be the tenant's issuer, ``aud`` irflow's app id URI
(``IRFLOW_ENTRA_AUDIENCE``), ``exp``/``nbf`` must hold, and ``tid`` must be the configured tenant.

Access tokens come in two versions with different issuers: v1.0 ``https://sts.windows.net/{tid}/`` (what a
managed identity gets unless the resource app asks for v2) and v2.0 ``{authority}/{tid}/v2.0``. Both
issuers are read from the tenant's two metadata documents rather than spelled here, so sovereign clouds
and a test tenant on loopback use the same code. Keys are re-read when a token names an unknown ``kid``
(key rollover, https://learn.microsoft.com/en-us/entra/identity-platform/signing-key-rollover), at most
once a minute so a flood of forged ``kid``s cannot make irflow hammer the metadata endpoint.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt

from irflow.engine.services.principals import ROLES, Principal, Role
from irflow.settings import Settings

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
# Clock skew tolerated on exp/nbf (seconds).
LEEWAY_S = 60
KEY_REFRESH_MIN_S = 60.0


class EntraTokenError(Exception):
    """The token is refused (``unavailable`` is False) or cannot be checked now (``unavailable`` True)."""

    def __init__(self, message: str, *, unavailable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.unavailable = unavailable


@dataclass(frozen=True)
class EntraClaims:
    oid: str
    tid: str
    subject: str
    app_id: str | None
    roles: tuple[str, ...]
    irflow_roles: frozenset[Role]
    issuer: str
    audience: str
    expires_at: datetime

    def principal(self) -> Principal:
        return Principal(kind="entra", id=self.oid, name=self.oid, roles=self.irflow_roles)


def irflow_roles(app_roles: Sequence[str]) -> frozenset[Role]:
    """App role values ``viewer`` … ``admin``, optionally ``irflow.``-prefixed, case-insensitive."""
    found: set[Role] = set()
    for value in app_roles:
        name = value.lower().removeprefix("irflow.")
        if name in ROLES:
            found.add(name)  # type: ignore[arg-type]
    return frozenset(found)


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS):
        return url.rstrip("/")
    raise ValueError(f"Entra ID authority must be an https URL, got {url!r}")


class EntraValidator:
    def __init__(
        self,
        *,
        tenant_id: str,
        audience: str | Sequence[str],
        authority: str = "https://login.microsoftonline.com",
        timeout: float = 5.0,
        verify: bool | str = True,
    ) -> None:
        if not tenant_id:
            raise ValueError("Entra ID tenant id is empty")
        self.tenant_id = tenant_id
        self.audiences = [audience] if isinstance(audience, str) else list(audience)
        if not self.audiences or not all(self.audiences):
            raise ValueError("Entra ID audience is empty")
        self.authority = _check_url(authority)
        self._http = httpx.Client(timeout=timeout, verify=verify, follow_redirects=False)
        self._lock = threading.Lock()
        self._issuers: list[str] = []
        self._keys: dict[str, Any] = {}
        self._loaded_at = float("-inf")
        self._endpoints: tuple[str, str] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> EntraValidator | None:
        """The validator for ``IRFLOW_ENTRA_*``; None when Entra ID tokens are not configured."""
        if not settings.entra_tenant_id or not settings.entra_audience:
            return None
        from irflow.azure.clients import CLOUDS

        cloud = CLOUDS.get(settings.azure_cloud, CLOUDS["public"])
        return cls(
            tenant_id=settings.entra_tenant_id,
            audience=[a.strip() for a in settings.entra_audience.split(",") if a.strip()],
            authority=settings.entra_authority or cloud.authority,
        )

    def close(self) -> None:
        self._http.close()

    def validate(self, token: str) -> EntraClaims:
        """An access token for irflow's audience: signature, issuer, audience, tenant, expiry."""
        claims = self._decode(token, self.audiences, ("exp", "iss", "aud", "oid", "tid"))
        if not isinstance(claims["oid"], str) or not claims["oid"]:
            raise EntraTokenError("Entra ID token has a malformed oid claim")
        roles = claims.get("roles") or []
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise EntraTokenError("Entra ID token has a malformed roles claim")
        aud = claims["aud"]
        return EntraClaims(
            oid=str(claims["oid"]),
            tid=str(claims["tid"]),
            subject=str(claims.get("sub", "")),
            app_id=claims.get("azp") or claims.get("appid"),
            roles=tuple(roles),
            irflow_roles=irflow_roles(roles),
            issuer=str(claims["iss"]),
            audience=aud if isinstance(aud, str) else str(aud[0]),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), tz=UTC),
        )

    def validate_id_token(self, token: str, client_id: str) -> dict[str, Any]:
        """The claims of an ID token issued to *client_id* (the dashboard's app registration): the same
        tenant keys, issuers and tenant check as access tokens; the caller compares the nonce
        (https://learn.microsoft.com/en-us/entra/identity-platform/id-tokens#validate-tokens)."""
        return self._decode(token, [client_id], ("exp", "iss", "aud", "oid", "tid", "nonce"))

    def endpoints(self) -> tuple[str, str]:
        """The tenant's authorization and token endpoints, from its v2.0 OpenID Connect metadata."""
        with self._lock:
            if self._endpoints is None and time.monotonic() - self._loaded_at >= KEY_REFRESH_MIN_S:
                self._load()
            if self._endpoints is None:
                raise EntraTokenError(
                    "Entra ID metadata lacks the authorization or token endpoint", unavailable=True
                )
            return self._endpoints

    def _decode(self, token: str, audiences: Sequence[str], required: Sequence[str]) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise EntraTokenError("bearer token is not a JWT") from None
        kid = header.get("kid")
        if header.get("alg") != "RS256" or not isinstance(kid, str):
            raise EntraTokenError("bearer token is not signed with an Entra ID RS256 key")
        key, issuers = self._key(kid)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=list(audiences),
                issuer=issuers,
                leeway=LEEWAY_S,
                options={"require": list(required)},
            )
        except jwt.ExpiredSignatureError:
            raise EntraTokenError("Entra ID token expired") from None
        except jwt.InvalidAudienceError:
            raise EntraTokenError("Entra ID token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise EntraTokenError("Entra ID token is from another issuer") from None
        except jwt.InvalidSignatureError:
            raise EntraTokenError("Entra ID token signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise EntraTokenError(f"Entra ID token lacks the {exc.claim!r} claim") from None
        except jwt.PyJWTError as exc:
            raise EntraTokenError(f"Entra ID token refused: {type(exc).__name__}") from None
        if claims["tid"] != self.tenant_id:
            raise EntraTokenError("Entra ID token is from another tenant")
        return claims

    def _key(self, kid: str) -> tuple[Any, list[str]]:
        with self._lock:
            if kid not in self._keys and time.monotonic() - self._loaded_at >= KEY_REFRESH_MIN_S:
                self._load()
            key = self._keys.get(kid)
            if key is None:
                raise EntraTokenError("Entra ID token is signed with a key the tenant does not publish")
            return key, list(self._issuers)

    def _load(self) -> None:
        base = f"{self.authority}/{self.tenant_id}"
        issuers: list[str] = []
        keys: dict[str, Any] = {}
        endpoints: tuple[str, str] | None = None
        for version in ("/v2.0", ""):
            metadata = self._get_json(f"{base}{version}/.well-known/openid-configuration")
            issuer, jwks_uri = metadata.get("issuer"), metadata.get("jwks_uri")
            if not isinstance(issuer, str) or not isinstance(jwks_uri, str):
                raise EntraTokenError("Entra ID metadata lacks issuer or jwks_uri", unavailable=True)
            authorize, token = metadata.get("authorization_endpoint"), metadata.get("token_endpoint")
            if version and isinstance(authorize, str) and isinstance(token, str):
                try:
                    endpoints = (_check_url(authorize), _check_url(token))
                except ValueError:
                    raise EntraTokenError(
                        "Entra ID metadata names a plain-http endpoint", unavailable=True
                    ) from None
            issuers.append(issuer.replace("{tenantid}", self.tenant_id))
            for jwk in self._get_json(_check_url(jwks_uri)).get("keys", []):
                signing = jwk.get("kty") == "RSA" and jwk.get("use", "sig") == "sig"
                if not signing or not isinstance(jwk.get("kid"), str):
                    continue
                try:
                    keys[jwk["kid"]] = jwt.PyJWK(jwk, algorithm="RS256").key
                except jwt.PyJWTError:
                    continue
        self._issuers, self._keys, self._loaded_at = issuers, keys, time.monotonic()
        self._endpoints = endpoints

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = self._http.get(url)
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            self._loaded_at = time.monotonic()
            raise EntraTokenError(
                f"Entra ID metadata unreachable ({type(exc).__name__})", unavailable=True
            ) from None
        if not isinstance(body, dict):
            raise EntraTokenError("Entra ID metadata is not a JSON object", unavailable=True)
        return body
