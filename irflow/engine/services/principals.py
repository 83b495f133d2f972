"""Who is calling, and what each role may do.

Roles (INTERFACES.md): ``viewer`` reads; ``responder`` triggers, plans, cancels and retries; ``approver``
decides gated steps; ``compliance`` changes facts and records notices; ``admin`` may do everything,
tokens included. viewer < responder, approver, compliance < admin.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict

Role = Literal["viewer", "responder", "approver", "compliance", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)


def grants(held: Role, required: Role) -> bool:
    """Whether a holder of *held* may do what needs *required*."""
    return held == required or held == "admin" or required == "viewer"


class Principal(BaseModel):
    """An authenticated caller: an API token or an Entra ID identity (user or managed identity)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["token", "entra", "system"]
    id: str
    name: str
    roles: frozenset[Role]

    @property
    def actor(self) -> str:
        """How the audit trail names this caller (ids only: no e-mail address or display name)."""
        if self.kind == "token":
            # Not "token:…": the audit redaction masks a value labelled "token:" as a credential.
            return f"token/{self.name}#{self.id}"[:200]
        if self.kind == "entra":
            return f"entra:{self.id}"
        return self.name

    def may(self, required: Role) -> bool:
        return any(grants(role, required) for role in self.roles)
