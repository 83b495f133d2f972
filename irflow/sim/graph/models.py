"""The directory: Microsoft Graph users and service principals.

A user can have its sign-in sessions revoked (``signInSessionsValidFromDateTime`` moves to now, as Graph
records it); a user or service principal can be disabled (``accountEnabled: false``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from irflow.sim import arm


@dataclass
class User:
    id: str
    user_principal_name: str
    display_name: str
    account_enabled: bool = True
    mail: str | None = None
    job_title: str | None = None
    department: str | None = None
    created: datetime | None = None
    sign_in_sessions_valid_from: datetime | None = None
    revocations: list[datetime] = field(default_factory=list)

    def to_graph(self) -> dict[str, Any]:
        return {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
            "id": self.id,
            "userPrincipalName": self.user_principal_name,
            "displayName": self.display_name,
            "mail": self.mail,
            "jobTitle": self.job_title,
            "department": self.department,
            "accountEnabled": self.account_enabled,
            "createdDateTime": _time(self.created),
            "signInSessionsValidFromDateTime": _time(self.sign_in_sessions_valid_from),
        }


@dataclass
class ServicePrincipal:
    id: str
    app_id: str
    display_name: str
    account_enabled: bool = True
    service_principal_type: str = "Application"
    tags: list[str] = field(default_factory=list)

    def to_graph(self) -> dict[str, Any]:
        return {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#servicePrincipals/$entity",
            "id": self.id,
            "appId": self.app_id,
            "displayName": self.display_name,
            "accountEnabled": self.account_enabled,
            "servicePrincipalType": self.service_principal_type,
            "tags": list(self.tags),
        }


def _time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return arm.format_time(value)[:19] + "Z"


class Directory:
    """Users and service principals of the tenant (guarded by the tenant lock)."""

    def __init__(self) -> None:
        self._users: dict[str, User] = {}
        self._service_principals: dict[str, ServicePrincipal] = {}

    def add_user(
        self,
        user_principal_name: str,
        *,
        id: str | None = None,  # noqa: A002 - Graph's name
        display_name: str | None = None,
        account_enabled: bool = True,
        mail: str | None = None,
        job_title: str | None = None,
        department: str | None = None,
        created: datetime | None = None,
    ) -> User:
        user_id = (
            str(uuid.UUID(id)) if id else str(uuid.uuid5(uuid.NAMESPACE_URL, f"user:{user_principal_name}"))
        )
        if self.find_user(user_id) or self.find_user(user_principal_name):
            raise ValueError(f"user {user_principal_name} ({user_id}) already exists")
        user = User(
            user_id,
            user_principal_name,
            display_name or user_principal_name.split("@")[0],
            account_enabled,
            mail,
            job_title,
            department,
            created,
        )
        self._users[user_id.lower()] = user
        return user

    def add_service_principal(
        self,
        display_name: str,
        *,
        id: str | None = None,  # noqa: A002 - Graph's name
        app_id: str | None = None,
        account_enabled: bool = True,
        service_principal_type: str = "Application",
        tags: list[str] | None = None,
    ) -> ServicePrincipal:
        sp_id = str(uuid.UUID(id)) if id else str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{display_name}"))
        if sp_id.lower() in self._service_principals:
            raise ValueError(f"service principal {display_name} ({sp_id}) already exists")
        principal = ServicePrincipal(
            sp_id,
            str(uuid.UUID(app_id)) if app_id else str(uuid.uuid5(uuid.NAMESPACE_URL, f"app:{display_name}")),
            display_name,
            account_enabled,
            service_principal_type,
            list(tags or []),
        )
        self._service_principals[sp_id.lower()] = principal
        return principal

    def find_user(self, id_or_upn: str) -> User | None:
        found = self._users.get(id_or_upn.lower())
        if found is not None:
            return found
        return next(
            (u for u in self._users.values() if u.user_principal_name.lower() == id_or_upn.lower()), None
        )

    def user(self, id_or_upn: str) -> User:
        found = self.find_user(id_or_upn)
        if found is None:
            raise KeyError(id_or_upn)
        return found

    def find_service_principal(self, id: str) -> ServicePrincipal | None:  # noqa: A002
        return self._service_principals.get(id.lower())

    def service_principal(self, id: str) -> ServicePrincipal:  # noqa: A002
        found = self.find_service_principal(id)
        if found is None:
            raise KeyError(id)
        return found

    @property
    def users(self) -> list[User]:
        return list(self._users.values())

    @property
    def service_principals(self) -> list[ServicePrincipal]:
        return list(self._service_principals.values())
