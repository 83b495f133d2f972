"""API tokens (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from irflow.api.deps import Admin, Context
from irflow.api.errors import AUTH, responses
from irflow.engine.services import tokens

router = APIRouter(tags=["tokens"])


@router.post(
    "/tokens",
    status_code=201,
    summary="Create a token; the response is the only time it is shown",
    responses=responses(*AUTH, 400, 413, 415, 422),
)
def create_token(body: tokens.TokenCreate, caller: Admin, ctx: Context) -> tokens.CreatedToken:
    return tokens.create_token(ctx.services.db, body, actor=caller.actor)


@router.get("/tokens", summary="Every token (never the token itself)", responses=responses(*AUTH))
def list_tokens(caller: Admin, ctx: Context) -> list[tokens.TokenView]:
    return tokens.list_tokens(ctx.services.db)


@router.delete("/tokens/{token_id}", summary="Revoke a token", responses=responses(*AUTH, 404, 409, 422))
def revoke_token(
    token_id: Annotated[str, Path(min_length=1, max_length=36)], caller: Admin, ctx: Context
) -> tokens.TokenView:
    return tokens.revoke_token(ctx.services.db, token_id, actor=caller.actor)
