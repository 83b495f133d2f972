"""``irflow tokens``: API tokens for the HTTP API (admin work, done where the database is reachable)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from pydantic import ValidationError

from irflow.cli.common import cli_actor, console, fail, load_settings
from irflow.engine.services.errors import ServiceError
from irflow.engine.services.principals import ROLES
from irflow.engine.services.tokens import TokenCreate, create_token, list_tokens, revoke_token
from irflow.store.db import Database

tokens_app = typer.Typer(help="API tokens of the HTTP API.", no_args_is_help=True)


@contextmanager
def _database() -> Iterator[Database]:
    from irflow.engine.runtime import open_database
    from irflow.store.db import SchemaOutOfDate

    try:
        db = open_database(load_settings())
    except SchemaOutOfDate as exc:
        fail(str(exc))
    try:
        yield db
    finally:
        db.dispose()


@tokens_app.command("create")
def tokens_create(
    role: Annotated[str, typer.Option(help=f"One of {', '.join(ROLES)}.")],
    name: Annotated[str, typer.Option(help="Who or what uses it (shown in the audit trail).")],
    expires: Annotated[int | None, typer.Option(help="Days until it expires (default: never).")] = None,
) -> None:
    """Create a token and print it once, alone on the last line; irflow keeps only its SHA-256."""
    try:
        command = TokenCreate(name=name, role=role, expires_days=expires)  # type: ignore[arg-type]
    except ValidationError as exc:
        fail("; ".join(f"--{'-'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
    with _database() as db:
        created = create_token(db, command, actor=cli_actor())
    expiry = created.expires_at.isoformat() if created.expires_at else "never"
    console.print(
        f"token {created.id} {created.name!r} role {created.role}, expires {expiry}. "
        "Store it now: it is not shown again.",
        markup=False,
        soft_wrap=True,
    )
    # Alone on the last line, unwrapped, so scripts can take it with `tail -n 1`.
    print(created.token, flush=True)


@tokens_app.command("list")
def tokens_list() -> None:
    """Every token with its role, expiry and whether it is still usable (never the token itself)."""
    with _database() as db:
        tokens = list_tokens(db)
    for token in tokens:
        state = "active" if token.active else ("revoked" if token.revoked_at else "expired")
        expiry = token.expires_at.isoformat()[:19] if token.expires_at else "never"
        console.print(
            f"{token.id}  {state:<8} {token.role:<10} expires {expiry:<19}  {token.name}", markup=False
        )
    if not tokens:
        console.print("no API tokens")


@tokens_app.command("revoke")
def tokens_revoke(token_id: str) -> None:
    """Revoke a token: it is refused from now on."""
    with _database() as db:
        try:
            revoked = revoke_token(db, token_id, actor=cli_actor())
        except ServiceError as exc:
            fail(exc.message)
    console.print(f"revoked token {revoked.id} {revoked.name!r}", markup=False)
