"""RBAC denials: make the tenant's principal lack a permission, as a missing role assignment would.

Every route names the Azure RBAC operation it needs
(``Microsoft.Storage/storageAccounts/regeneratekey/action``; names from Microsoft's "Azure resource provider
operations" list). A deny rule names an operation and a scope; a request is refused when its operation
matches a rule and its scope (the resource id) lies within the rule's.

- Operations match case-insensitively; ``*`` is a wildcard, as in role definitions
  (``Microsoft.Storage/storageAccounts/*``, ``*/write``).
- Scopes match by prefix, case-insensitively, on path-segment boundaries: ``/`` covers everything,
  ``/subscriptions/S/resourceGroups/rg-phi-prod`` covers that group and what is in it (not ``rg-phi-prod2``).

ARM refuses with 403 ``AuthorizationFailed``; the blob service with 403 ``AuthorizationPermissionMismatch``.

Deny rules take permissions away; role assignments (:mod:`irflow.sim.authorization`) grant data-plane
permissions where Azure evaluates them (Key Vault vaults with ``enableRbacAuthorization``). Both match
operations and scopes with the helpers below, and a deny rule wins over any assignment. ARM management
calls are not checked against role assignments: the tenant's principal holds every management permission
unless a deny rule takes it away.
"""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import dataclass
from typing import Any


def _normalise_scope(scope: str) -> str:
    scope = "/" + scope.strip().strip("/")
    return scope.lower()


def operation_matches(pattern: str, operation: str) -> bool:
    """Whether a role-definition style ``pattern`` (``*`` wildcards, case-insensitive) covers ``operation``.
    Shared by deny rules and role assignments (:mod:`irflow.sim.authorization`)."""
    return fnmatch.fnmatchcase(operation.lower(), pattern.strip().lower())


def scope_covers(prefix: str, scope: str) -> bool:
    """Whether ``scope`` lies at or below ``prefix`` (path-segment boundaries, case-insensitive; ``/`` covers
    everything): a role assignment or deny rule at ``prefix`` applies to ``scope``."""
    prefix, target = _normalise_scope(prefix), _normalise_scope(scope)
    return prefix == "/" or target == prefix or target.startswith(prefix + "/")


@dataclass(frozen=True)
class DenyRule:
    permission: str
    scope: str = "/"

    def __post_init__(self) -> None:
        if not isinstance(self.permission, str) or not self.permission.strip():
            raise ValueError("a deny rule needs a permission (an Azure RBAC operation)")
        if not isinstance(self.scope, str) or not self.scope.strip().startswith("/"):
            raise ValueError(f"scope must be a resource id starting with '/', got {self.scope!r}")

    def matches(self, operation: str, scope: str) -> bool:
        return operation_matches(self.permission, operation) and scope_covers(self.scope, scope)

    def to_dict(self) -> dict[str, Any]:
        return {"permission": self.permission, "scope": self.scope}


class Rbac:
    """The deny rules of a tenant. Thread-safe; empty means every permission is granted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[DenyRule] = []

    def deny(self, permission: str, scope: str = "/") -> DenyRule:
        rule = DenyRule(permission.strip(), scope.strip())
        with self._lock:
            if rule not in self._rules:
                self._rules.append(rule)
        return rule

    def allow(self, permission: str, scope: str = "/") -> None:
        """Remove one rule given exactly as it was added (case-insensitively)."""
        with self._lock:
            self._rules = [
                r
                for r in self._rules
                if not (
                    r.permission.lower() == permission.strip().lower()
                    and _normalise_scope(r.scope) == _normalise_scope(scope)
                )
            ]

    def allow_all(self) -> None:
        with self._lock:
            self._rules.clear()

    def denial(self, operation: str | None, scope: str) -> DenyRule | None:
        """The first rule refusing ``operation`` over ``scope``, or None when it is allowed."""
        if not operation:
            return None
        with self._lock:
            rules = list(self._rules)
        return next((rule for rule in rules if rule.matches(operation, scope)), None)

    @property
    def rules(self) -> list[DenyRule]:
        with self._lock:
            return list(self._rules)

    def to_list(self) -> list[dict[str, Any]]:
        return [rule.to_dict() for rule in self.rules]
