"""API tokens: created with a role and an optional expiry, shown once, kept only as a SHA-256 digest.

A token is 256 random bits (``secrets``), so a plain SHA-256 of it cannot be brute-forced and needs no
salt or slow hash (those protect low-entropy passwords); lookups by digest stay one indexed read.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from irflow import clock
from irflow.audit import AuditChain
from irflow.engine.services.errors import Conflict, NotFound
from irflow.engine.services.principals import Principal, Role
from irflow.store.db import Database
from irflow.store.models import ApiToken

PREFIX = "irf_"
MAX_EXPIRY_DAYS = 3650


class TokenRefused(Exception):
    """The presented token is not a live API token; the message says why without echoing it."""


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._@:-]*$")
    role: Role
    expires_days: int | None = Field(default=None, ge=1, le=MAX_EXPIRY_DAYS)


class TokenView(BaseModel):
    id: str
    name: str
    role: Role
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    active: bool


class CreatedToken(TokenView):
    token: str = Field(description="The bearer token. Shown this once; irflow keeps only its SHA-256.")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _view(row: ApiToken, now: datetime) -> TokenView:
    active = row.revoked_at is None and (row.expires_at is None or row.expires_at > now)
    return TokenView(
        id=row.id,
        name=row.name,
        role=row.role,  # type: ignore[arg-type]
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        active=active,
    )


def create_token(db: Database, command: TokenCreate, *, actor: str) -> CreatedToken:
    token = PREFIX + secrets.token_urlsafe(32)
    now = clock.now()
    row = ApiToken(
        name=command.name,
        role=command.role,
        token_sha256=digest(token),
        created_by=actor,
        created_at=now,
        expires_at=now + timedelta(days=command.expires_days) if command.expires_days else None,
    )
    with db.transaction() as session:
        session.add(row)
        session.flush()
        AuditChain().append(
            session,
            actor=actor,
            type="token.created",
            payload={
                "token_id": row.id,
                "name": row.name,
                "role": row.role,
                "expires_at": row.expires_at.isoformat() if row.expires_at else None,
            },
        )
        view = _view(row, now)
    return CreatedToken(**view.model_dump(), token=token)


def list_tokens(db: Database) -> list[TokenView]:
    now = clock.now()
    with db.transaction() as session:
        rows = session.execute(select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)).scalars()
        return [_view(row, now) for row in rows]


def revoke_token(db: Database, token_id: str, *, actor: str) -> TokenView:
    now = clock.now()
    with db.transaction() as session:
        row = session.get(ApiToken, token_id)
        if row is None:
            raise NotFound(f"no API token {token_id}")
        if row.revoked_at is not None:
            raise Conflict(f"API token {token_id} was already revoked at {row.revoked_at.isoformat()}")
        row.revoked_at = now
        AuditChain().append(
            session, actor=actor, type="token.revoked", payload={"token_id": row.id, "name": row.name}
        )
        return _view(row, now)


def authenticate(db: Database, token: str) -> Principal:
    """The principal of a live API token; :class:`TokenRefused` for unknown, expired or revoked ones."""
    if not token.startswith(PREFIX) or len(token) > 200:
        raise TokenRefused("not an irflow API token")
    with db.transaction() as session:
        row = session.execute(
            select(ApiToken).where(ApiToken.token_sha256 == digest(token))
        ).scalar_one_or_none()
        if row is None:
            raise TokenRefused("unknown API token")
        if row.revoked_at is not None:
            raise TokenRefused("API token revoked")
        if row.expires_at is not None and row.expires_at <= clock.now():
            raise TokenRefused("API token expired")
        return Principal(kind="token", id=row.id, name=row.name, roles=frozenset({row.role}))  # type: ignore[arg-type]


def still_valid(db: Database, token_id: str) -> Principal:
    """The principal of the API token *token_id* if it is still live (a dashboard session re-checks it on
    every request, so revoking the token ends the session); :class:`TokenRefused` otherwise."""
    with db.transaction() as session:
        row = session.get(ApiToken, token_id)
        if row is None:
            raise TokenRefused("unknown API token")
        if row.revoked_at is not None:
            raise TokenRefused("API token revoked")
        if row.expires_at is not None and row.expires_at <= clock.now():
            raise TokenRefused("API token expired")
        return Principal(kind="token", id=row.id, name=row.name, roles=frozenset({row.role}))  # type: ignore[arg-type]


def expires_at(db: Database, token_id: str) -> datetime | None:
    with db.transaction() as session:
        row = session.get(ApiToken, token_id)
        return None if row is None else row.expires_at
