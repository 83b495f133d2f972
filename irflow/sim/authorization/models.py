"""Role assignments (``Microsoft.Authorization/roleAssignments``) of a simulated tenant, at any scope.

Wire format and rules from the authorization REST spec (``azure-rest-api-specs``,
``specification/authorization/resource-manager/Microsoft.Authorization/stable/2022-04-01/
authorization-RoleAssignmentsCalls.json`` and its ``x-ms-examples``) and Microsoft Learn ("Assign Azure roles
using the REST API", https://learn.microsoft.com/azure/role-based-access-control/role-assignments-rest):

- An assignment's name is a GUID (400 ``InvalidRoleAssignmentId`` otherwise); its role definition must exist
  (400 ``RoleDefinitionDoesNotExist``).
- One assignment per (principal, role, scope): a second one under another name is 409
  ``RoleAssignmentExists``; an existing assignment's principal, role or scope cannot change
  (400 ``RoleAssignmentUpdateNotPermitted``).
- List at a scope: no filter → assignments at, above and below it; ``atScope()`` → at or above it;
  ``principalId eq '{id}'`` → that principal's at, above and below it.
- Delete answers 200 with the deleted assignment, 204 when there is none.
"""

from __future__ import annotations

import copy
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from irflow.sim import arm, errors
from irflow.sim.authorization import roles
from irflow.sim.rbac import scope_covers

ROLE_ASSIGNMENT_TYPE = "Microsoft.Authorization/roleAssignments"
PRINCIPAL_TYPES = ("User", "Group", "ServicePrincipal", "ForeignGroup", "Device")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def normalise_scope(scope: str) -> str:
    return "/" + scope.strip().strip("/")


@dataclass
class RoleAssignment:
    name: str
    scope: str
    role: roles.RoleDefinition
    principal_id: str
    principal_type: str
    created: datetime
    created_by: str
    description: str | None = None
    condition: str | None = None
    condition_version: str | None = None

    @property
    def id(self) -> str:
        prefix = "" if self.scope == "/" else self.scope
        return f"{prefix}/providers/{ROLE_ASSIGNMENT_TYPE}/{self.name}"

    def role_definition_id(self) -> str:
        subscription = (
            "/".join(self.scope.split("/")[:3]) if self.scope.lower().startswith("/subscriptions/") else ""
        )
        return f"{subscription}/providers/{roles.ROLE_DEFINITION_TYPE}/{self.role.id}"

    def to_arm(self) -> dict[str, Any]:
        when = arm.format_time(self.created)
        return {
            "id": self.id,
            "name": self.name,
            "type": ROLE_ASSIGNMENT_TYPE,
            "properties": {
                "roleDefinitionId": self.role_definition_id(),
                "principalId": self.principal_id,
                "principalType": self.principal_type,
                "scope": self.scope,
                "condition": self.condition,
                "conditionVersion": self.condition_version,
                "description": self.description,
                "createdOn": when,
                "updatedOn": when,
                "createdBy": self.created_by,
                "updatedBy": self.created_by,
                "delegatedManagedIdentityResourceId": None,
            },
        }


def _bad(code: str, message: str) -> errors.ArmError:
    return errors.ArmError(400, code, message)


class RoleAssignments:
    """Every role assignment of the tenant. Thread-safe; deep-copied with the tenant's baseline."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, RoleAssignment] = {}  # lower-cased name → assignment

    def __deepcopy__(self, memo: dict[int, Any]) -> RoleAssignments:
        clone = RoleAssignments()
        with self._lock:
            clone._items = copy.deepcopy(self._items, memo)
        return clone

    def all(self) -> list[RoleAssignment]:
        with self._lock:
            return sorted(self._items.values(), key=lambda a: (a.scope.lower(), a.name.lower()))

    def create(
        self,
        scope: str,
        name: str,
        properties: dict[str, Any],
        *,
        when: datetime,
        created_by: str,
    ) -> tuple[RoleAssignment, bool]:
        """PUT: returns the assignment and whether it was created (False: the same one already existed)."""
        scope = normalise_scope(scope)
        if not _GUID.match(name):
            raise _bad(
                "InvalidRoleAssignmentId",
                f"The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID.",
            )
        if not isinstance(properties, dict):
            raise errors.invalid_request_content("properties must be a JSON object")
        definition_id = properties.get("roleDefinitionId")
        principal_id = properties.get("principalId")
        if not isinstance(definition_id, str) or not definition_id:
            raise _bad("InvalidRoleDefinitionId", "The role definition ID '' is not valid.")
        role = roles.find(definition_id) if "/" in definition_id or _GUID.match(definition_id) else None
        if role is None:
            raise _bad(
                "RoleDefinitionDoesNotExist",
                f"The specified role definition with ID '{definition_id.rsplit('/', 1)[-1]}' does not exist.",
            )
        if not isinstance(principal_id, str) or not _GUID.match(principal_id):
            raise _bad("InvalidPrincipalId", "A valid principal ID must be provided for role assignment.")
        principal_type = properties.get("principalType") or "User"
        if principal_type not in PRINCIPAL_TYPES:
            raise _bad("InvalidPrincipalType", f"The principal type '{principal_type}' is not valid.")
        description = properties.get("description")
        condition = properties.get("condition")
        condition_version = properties.get("conditionVersion")
        with self._lock:
            existing = self._items.get(name.lower())
            if existing is not None:
                same = (
                    existing.scope.lower() == scope.lower()
                    and existing.role.id == role.id
                    and existing.principal_id.lower() == principal_id.lower()
                )
                if not same:
                    raise _bad(
                        "RoleAssignmentUpdateNotPermitted",
                        "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
                    )
                existing.description, existing.condition = description, condition
                existing.condition_version = condition_version
                return existing, False
            for other in self._items.values():
                if (
                    other.scope.lower() == scope.lower()
                    and other.role.id == role.id
                    and other.principal_id.lower() == principal_id.lower()
                ):
                    raise errors.ArmError(409, "RoleAssignmentExists", "The role assignment already exists.")
            assignment = RoleAssignment(
                name=name.lower(),
                scope=scope,
                role=role,
                principal_id=principal_id.lower(),
                principal_type=principal_type,
                created=when,
                created_by=created_by,
                description=description if isinstance(description, str) else None,
                condition=condition if isinstance(condition, str) else None,
                condition_version=condition_version if isinstance(condition_version, str) else None,
            )
            self._items[assignment.name] = assignment
            return assignment, True

    def get(self, scope: str, name: str) -> RoleAssignment | None:
        with self._lock:
            found = self._items.get(name.lower())
        if found is None or found.scope.lower() != normalise_scope(scope).lower():
            return None
        return found

    def delete(self, scope: str, name: str) -> RoleAssignment | None:
        with self._lock:
            found = self._items.get(name.lower())
            if found is None or found.scope.lower() != normalise_scope(scope).lower():
                return None
            return self._items.pop(name.lower())

    def for_scope(self, scope: str, filter_text: str | None) -> list[RoleAssignment]:
        """``GET {scope}/providers/Microsoft.Authorization/roleAssignments?$filter=…``."""
        scope = normalise_scope(scope)
        at_or_above = [a for a in self.all() if scope_covers(a.scope, scope)]
        below = [a for a in self.all() if scope_covers(scope, a.scope) and a not in at_or_above]
        text = (filter_text or "").strip()
        if not text:
            return at_or_above + below
        if text.replace(" ", "").lower() == "atscope()":
            return at_or_above
        found = re.fullmatch(r"(?i)principalId\s+eq\s+'?([0-9a-fA-F-]{36})'?", text)
        if found:
            wanted = found.group(1).lower()
            return [a for a in at_or_above + below if a.principal_id == wanted]
        found = re.fullmatch(r"(?i)atScope\(\)\s+and\s+principalId\s+eq\s+'?([0-9a-fA-F-]{36})'?", text)
        if found:
            wanted = found.group(1).lower()
            return [a for a in at_or_above if a.principal_id == wanted]
        raise _bad("InvalidFilter", f"The filter '{text}' is not supported.")

    def effective_for(self, principal_id: str, scope: str) -> list[RoleAssignment]:
        """The principal's assignments that apply to ``scope`` (at it or above it)."""
        return [
            a for a in self.all() if a.principal_id == principal_id.lower() and scope_covers(a.scope, scope)
        ]


def new_name() -> str:
    return str(uuid.uuid4())
