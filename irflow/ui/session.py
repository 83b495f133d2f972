"""Dashboard sessions: a signed cookie carrying who signed in, until when, and the session's CSRF token.

The cookie is HttpOnly, Secure and SameSite=Strict. It is signed (HMAC-SHA256 through ``itsdangerous``), not
encrypted: it holds no secret, only the principal's id, name and roles, an expiry and a random CSRF token.
Never the API token or the Entra ID token that was presented at sign-in. An API-token session is re-checked
against the token on every request (a revoked or expired token ends it); an Entra ID session ends when the
presented token would have expired. Every form carries the CSRF token; a POST without the matching one is
refused with 403 (synchroniser token pattern, OWASP CSRF Prevention Cheat Sheet). Signing in issues a new
CSRF token, so a token planted before sign-in is worthless after it.

``Secure`` holds over plain http on loopback too: RFC 6265bis leaves "secure connection" to the user agent
(httpwg/http-extensions PR 2759, "Support potentially trustworthy origins"), and Chromium lets potentially
trustworthy origins such as http://127.0.0.1 and http://localhost set and receive Secure cookies (Chromium
change 4545013, "Warn when secure cookies are allowed access via trustworthy urls").
tests/api/test_dashboard.py checks it in Chromium.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from irflow.engine.services.principals import ROLES, Principal

COOKIE = "irflow_session"
COOKIE_PATH = "/ui"
CSRF_FIELD = "csrf_token"
_SALT = "irflow.ui.session.v1"
MAX_COOKIE_CHARS = 4000

# The redirect sign-in's pending state (irflow/ui/entra_sign_in.py): its own cookie, only on /ui/auth, for ten
# minutes, and SameSite=Lax rather than Strict. The tenant sends the browser back to /ui/auth/callback from
# login.microsoftonline.com: a cross-site navigation, on which browsers withhold SameSite=Strict cookies and
# send SameSite=Lax ones only for a top-level GET (RFC 6265bis section 5.6.7.1; hence response_mode=query).
# With Strict the state could never be checked. What the cookie holds is not a credential: a random state,
# a nonce and the page to return to.
PENDING_COOKIE = "irflow_sign_in"
PENDING_PATH = "/ui/auth"
PENDING_SECONDS = 600
_PENDING_SALT = "irflow.ui.sign-in.v1"


@dataclass
class Session:
    """What the cookie says. ``principal`` is None before sign-in; ``expired`` marks a signed-in session
    whose time is up (the page then says so on the sign-in form)."""

    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    principal: Principal | None = None
    expires_at: float = 0.0
    expired: bool = False
    changed: bool = True

    def csrf_matches(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf.encode(), str(presented).encode())


class SessionCodec:
    def __init__(self, key: bytes) -> None:
        self._serializer = URLSafeSerializer(key, salt=_SALT, signer_kwargs={"digest_method": _sha256()})

    def dumps(self, session: Session) -> str:
        body: dict[str, Any] = {"csrf": session.csrf}
        if session.principal is not None:
            p = session.principal
            body.update(kind=p.kind, id=p.id, name=p.name, roles=sorted(p.roles), exp=int(session.expires_at))
        return self._serializer.dumps(body)

    def loads(self, value: str | None, *, now: float | None = None) -> Session:
        """The session in *value*; a fresh anonymous one when it is missing, forged or malformed."""
        if not value or len(value) > MAX_COOKIE_CHARS:
            return Session()
        try:
            body = self._serializer.loads(value)
        except BadSignature:
            return Session()
        if not isinstance(body, dict) or not isinstance(body.get("csrf"), str):
            return Session()
        if "id" not in body:
            return Session(csrf=body["csrf"], changed=False)
        try:
            roles = frozenset(r for r in body["roles"] if r in ROLES)
            principal = Principal(kind=body["kind"], id=body["id"], name=body["name"], roles=roles)
            expires_at = float(body["exp"])
        except (KeyError, TypeError, ValueError):
            return Session()
        if expires_at <= (time.time() if now is None else now):
            return Session(expired=True)
        return Session(csrf=body["csrf"], principal=principal, expires_at=expires_at, changed=False)


@dataclass(frozen=True)
class PendingSignIn:
    state: str
    nonce: str
    next: str

    @classmethod
    def new(cls, next_path: str) -> PendingSignIn:
        return cls(state=secrets.token_urlsafe(32), nonce=secrets.token_urlsafe(32), next=next_path)

    def state_matches(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.state.encode(), str(presented).encode())


class PendingCodec:
    """The pending sign-in cookie: signed and timestamped, refused after PENDING_SECONDS."""

    def __init__(self, key: bytes) -> None:
        self._serializer = URLSafeTimedSerializer(
            key, salt=_PENDING_SALT, signer_kwargs={"digest_method": _sha256()}
        )

    def dumps(self, pending: PendingSignIn) -> str:
        return self._serializer.dumps({"state": pending.state, "nonce": pending.nonce, "next": pending.next})

    def loads(self, value: str | None) -> PendingSignIn | None:
        if not value or len(value) > MAX_COOKIE_CHARS:
            return None
        try:
            body = self._serializer.loads(value, max_age=PENDING_SECONDS)
        except (SignatureExpired, BadSignature):
            return None
        if not isinstance(body, dict) or not all(
            isinstance(body.get(k), str) for k in ("state", "nonce", "next")
        ):
            return None
        return PendingSignIn(state=body["state"], nonce=body["nonce"], next=body["next"])


def _sha256() -> Any:
    import hashlib

    return hashlib.sha256
