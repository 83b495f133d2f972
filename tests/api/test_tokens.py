"""API tokens: shown once, stored as a digest, expiring, revocable, audited."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from irflow import clock
from irflow.audit import AuditChain
from irflow.engine.services.errors import Conflict, NotFound
from irflow.engine.services.tokens import (
    TokenCreate,
    TokenRefused,
    authenticate,
    create_token,
    digest,
    list_tokens,
    revoke_token,
)
from irflow.store.db import Database
from irflow.store.models import ApiToken, AuditEvent


@pytest.fixture
def frozen() -> clock.FrozenClock:
    frozen = clock.FrozenClock(datetime(2026, 3, 1, 12, tzinfo=UTC))
    previous = clock.install(frozen)
    yield frozen
    clock.install(previous)


def test_a_token_is_stored_only_as_its_digest_and_authenticates(database: Database) -> None:
    created = create_token(database, TokenCreate(name="soc bot", role="responder"), actor="cli:alice")
    assert created.token.startswith("irf_") and len(created.token) > 40
    with database.transaction() as session:
        row = session.execute(select(ApiToken)).scalar_one()
        assert row.token_sha256 == digest(created.token)
        stored = " ".join(str(v) for v in vars(row).values())
        events = list(session.execute(select(AuditEvent)).scalars())
    assert created.token not in stored
    assert [e.type for e in events] == ["token.created"] and created.token not in events[0].payload
    principal = authenticate(database, created.token)
    assert principal.kind == "token" and principal.roles == {"responder"}
    assert principal.actor == f"token/soc bot#{created.id}"
    with pytest.raises(TokenRefused, match="unknown"):
        authenticate(database, created.token + "x")
    with pytest.raises(TokenRefused, match="not an irflow API token"):
        authenticate(database, "Bearer-something")


def test_expiry_and_revocation(database: Database, frozen: clock.FrozenClock) -> None:
    short = create_token(database, TokenCreate(name="short", role="viewer", expires_days=1), actor="cli:a")
    other = create_token(database, TokenCreate(name="other", role="admin"), actor="cli:a")
    assert short.expires_at == frozen() + timedelta(days=1)
    frozen.advance(timedelta(days=1))
    with pytest.raises(TokenRefused, match="expired"):
        authenticate(database, short.token)
    revoked = revoke_token(database, other.id, actor="cli:a")
    assert revoked.revoked_at == frozen() and not revoked.active
    with pytest.raises(TokenRefused, match="revoked"):
        authenticate(database, other.token)
    with pytest.raises(Conflict, match="already revoked"):
        revoke_token(database, other.id, actor="cli:a")
    with pytest.raises(NotFound):
        revoke_token(database, "nope", actor="cli:a")
    assert sorted((t.name, t.active) for t in list_tokens(database)) == [("other", False), ("short", False)]
    with database.transaction() as session:
        assert AuditChain().verify(session).ok


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "", "role": "viewer"},
        {"name": "x", "role": "root"},
        {"name": "x", "role": "viewer", "expires_days": 0},
        {"name": "x", "role": "viewer", "expires_days": 100000},
        {"name": "<script>", "role": "viewer"},
        {"name": "x", "role": "viewer", "extra": 1},
    ],
)
def test_bad_token_requests_are_refused(bad: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationError):
        TokenCreate.model_validate(bad)


def _irflow(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "irflow", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_cli_prints_the_token_once_alone_on_the_last_line(tmp_path: Path) -> None:
    created = _irflow(
        "tokens", "create", "--role", "approver", "--name", "pager", "--expires", "7", cwd=tmp_path
    )
    assert created.returncode == 0, created.stderr
    token = created.stdout.splitlines()[-1]
    assert token.startswith("irf_") and token.strip() == token
    db = Database(f"sqlite:///{tmp_path / 'irflow.db'}")
    try:
        principal = authenticate(db, token)
    finally:
        db.dispose()
    listed = _irflow("tokens", "list", cwd=tmp_path)
    assert "active" in listed.stdout and "approver" in listed.stdout and token not in listed.stdout
    assert _irflow("tokens", "revoke", principal.id, cwd=tmp_path).returncode == 0
    assert "revoked" in _irflow("tokens", "list", cwd=tmp_path).stdout
    refused = _irflow("tokens", "create", "--role", "superuser", "--name", "x", cwd=tmp_path)
    assert refused.returncode == 2 and "--role" in refused.stderr and "Traceback" not in refused.stderr
    again = _irflow("tokens", "revoke", principal.id, cwd=tmp_path)
    assert again.returncode == 2 and "already revoked" in again.stderr
