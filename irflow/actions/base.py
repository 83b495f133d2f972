"""Actions: the only code that changes Azure.

An action is a class registered by name, with a pydantic ``Params`` model, the Azure RBAC ``permissions`` it
needs, a docstring with a YAML example, and three methods:

- ``plan(ctx)``: the exact diff it would make; reads only.
- ``apply(ctx)``: makes Azure match the target state; a no-op (``changed=False``) when it already does.
- ``verify(ctx)``: re-reads Azure and says whether the target state holds.

Idempotency comes from Azure-side state, never from local memory. Actions never see the database: they
meet the engine through :class:`StepContext`.

Reads are made once where the engine allows it (``ctx.observations`` is a dict, not None): what ``plan``
read is what ``apply`` diffs against when both run in one engine step under the target's lock (nothing of
irflow's changes the resource in between), and ``verify`` checks the resource Azure returned from the write
itself (an ARM PUT/PATCH answers with the resource as stored) instead of reading it once more. See
:meth:`StepContext.read_once` and :meth:`StepContext.remember`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from pydantic import BaseModel, ConfigDict, Field

from irflow.redaction import redact_text


class ActionError(Exception):
    """An action could not do its work; the message is safe to show and to audit."""

    retryable: ClassVar[bool] = False


class PermissionDenied(ActionError):
    pass


class ResourceMissing(ActionError):
    pass


class NetworkRefused(ActionError):
    """The resource's firewall refused irflow's origin: a network path is missing, not a permission."""


class AzureCallFailed(ActionError):
    """A call Azure answered with an error that may pass (5xx, 429, 409 conflicts...).

    ``retry_after``: the seconds Azure asked the caller to wait before the next request (``Retry-After``),
    when it said so; the engine does not retry the step sooner."""

    retryable = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# Azure never needs longer; a larger (or hostile) value would park a step for good.
MAX_RETRY_AFTER_S = 600.0


def retry_after_of(exc: BaseException) -> float | None:
    """The wait an Azure error answer asked for, in seconds: ``retry-after-ms`` / ``x-ms-retry-after-ms``
    (milliseconds) or ``Retry-After`` (seconds or an HTTP date), as azure-core's RetryPolicy reads them
    (https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling:
    "the number of seconds your application should wait (or sleep) before sending the next request")."""
    if isinstance(exc, AzureCallFailed):
        return exc.retry_after
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    from azure.core.pipeline.policies._utils import parse_retry_after

    for name, scale in (("retry-after-ms", 0.001), ("x-ms-retry-after-ms", 0.001), ("Retry-After", 1.0)):
        value = headers.get(name)
        if not value:
            continue
        try:
            seconds = float(value) * scale if scale != 1.0 else parse_retry_after(value)
        except (TypeError, ValueError):
            continue
        return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)
    return None


class Change(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: str
    before: Any = None
    after: Any = None


class Plan(BaseModel):
    action: str
    target: str | None = None
    changes: list[Change] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    @property
    def is_noop(self) -> bool:
        return not self.changes


class Result(BaseModel):
    changed: bool
    changes: list[Change] = Field(default_factory=list)
    prior_state: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


T = TypeVar("T")


@dataclass
class StepContext:
    """What an action may see: its validated params, the target, a bound logger and Azure clients.

    ``reference_time`` is the incident's containment epoch (when irflow opened it): Azure-side facts newer
    than it (a key created after it, say) count as already done by this incident's response.
    """

    params: BaseModel
    target: str | None
    log: Any
    clients: Any
    reference_time: datetime
    first_attempt_at: datetime | None = None
    # What notify.* actions need: the incident's summary (no PHI) and the engine's outbox port.
    incident: dict[str, Any] = field(default_factory=dict)
    notifier: Any = None
    # What forensics.* actions need: the engine's evidence port (records a capture with its audit event).
    evidence: Any = None
    # Reads handed from plan to apply and from a write's answer to verify (None: every call reads Azure).
    observations: dict[str, Any] | None = None

    def read_once(self, key: str, read: Callable[[], T]) -> T:
        """``read()``, unless an earlier call of this target left what it saw under ``key`` (taken once)."""
        if self.observations is not None and key in self.observations:
            value: T = self.observations.pop(key)
            return value
        value = read()
        if self.observations is not None:
            self.observations[key] = value
        return value

    def remember(self, key: str, value: Any) -> None:
        """What Azure answered to a write (the resource as stored): the next ``read_once(key)`` uses it."""
        if self.observations is not None:
            self.observations[key] = value

    def forget(self, key: str) -> None:
        if self.observations is not None:
            self.observations.pop(key, None)


class Action(ABC):
    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]]
    permissions: ClassVar[tuple[str, ...]]
    target_param: ClassVar[str | None] = None

    @abstractmethod
    def plan(self, ctx: StepContext) -> Plan: ...

    @abstractmethod
    def apply(self, ctx: StepContext) -> Result: ...

    @abstractmethod
    def verify(self, ctx: StepContext) -> bool: ...

    @classmethod
    def example(cls) -> str:
        """The YAML example of the docstring (the block after ``Example::``)."""
        doc = cls.__doc__ or ""
        marker = "Example::"
        if marker not in doc:
            return ""
        block = doc.split(marker, 1)[1]
        lines = [line for line in block.splitlines()]
        indents = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
        cut = min(indents) if indents else 0
        return "\n".join(line[cut:] for line in lines).strip() + "\n"

    @classmethod
    def summary(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


REGISTRY: dict[str, type[Action]] = {}


def register(cls: type[Action]) -> type[Action]:
    """Class decorator: add an action to the registry, refusing incomplete ones at import time."""
    for attribute in ("name", "Params"):
        if not getattr(cls, attribute, None):
            raise TypeError(f"action {cls.__qualname__} has no {attribute}")
    if not isinstance(getattr(cls, "permissions", None), tuple):
        raise TypeError(
            f"action {cls.__qualname__} must declare its Azure permissions (a tuple, empty if none)"
        )
    if not cls.example():
        raise TypeError(f"action {cls.name} has no 'Example::' YAML block in its docstring")
    if cls.name in REGISTRY:
        raise TypeError(f"action name {cls.name} registered twice")
    REGISTRY[cls.name] = cls
    return cls


def get_action(name: str) -> type[Action]:
    _load_builtin_actions()
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise KeyError(f"unknown action {name!r}; known actions: {known}") from None


def all_actions() -> dict[str, type[Action]]:
    _load_builtin_actions()
    return dict(sorted(REGISTRY.items()))


def required_permissions(actions: dict[str, type[Action]] | None = None) -> dict[str, list[str]]:
    """Every Azure RBAC permission the given actions need (default: all), with the actions needing each."""
    needed: dict[str, list[str]] = {}
    for name, action in (actions or all_actions()).items():
        for permission in action.permissions:
            needed.setdefault(permission, []).append(name)
    return dict(sorted(needed.items(), key=lambda item: item[0].lower()))


def is_directory_permission(permission: str) -> bool:
    """Microsoft Entra (directory) permissions are granted by an Entra role, not an Azure RBAC role."""
    return permission.lower().startswith("microsoft.directory/")


def entra_role_definition(name: str = "irflow incident responder (directory)") -> dict[str, Any]:
    """A least-privilege Microsoft Entra custom role (a Graph ``unifiedRoleDefinition``)."""
    allowed = [p for p in required_permissions() if is_directory_permission(p)]
    return {
        "displayName": name,
        "description": "Lets irflow revoke sessions and disable service principals during an incident.",
        "isEnabled": True,
        "rolePermissions": [{"allowedResourceActions": allowed}],
    }


# What `irflow doctor` reads besides the actions' own calls: the caller's permissions at a scope
# (GET {scope}/providers/Microsoft.Authorization/permissions).
DOCTOR_PERMISSIONS = ("Microsoft.Authorization/permissions/read",)


def azure_role_definition(scopes: list[str], name: str = "irflow incident responder") -> dict[str, Any]:
    """A least-privilege Azure custom role covering exactly the registered actions' Azure permissions, and
    the permission list `irflow doctor` reads."""
    needed = [p for p in required_permissions() if not is_directory_permission(p)]
    permissions = sorted(set(needed) | set(DOCTOR_PERMISSIONS), key=str.lower)
    data = [p for p in permissions if is_data_action(p)]
    return {
        "Name": name,
        "IsCustom": True,
        "Description": "Lets irflow run its containment, revocation and forensics actions; nothing else.",
        "Actions": [p for p in permissions if p not in data],
        "NotActions": [],
        "DataActions": data,
        "NotDataActions": [],
        "AssignableScopes": scopes,
    }


def is_data_action(permission: str) -> bool:
    """Data-plane permissions (blob contents, key operations) belong in a role's DataActions."""
    lowered = permission.lower()
    return "/blobservices/containers/blobs/" in lowered or lowered.startswith(
        "microsoft.keyvault/vaults/keys/"
    )


def _load_builtin_actions() -> None:
    """Import every module of this package once: each registers its actions."""
    import importlib
    import pkgutil

    import irflow.actions as package

    for module in pkgutil.iter_modules(package.__path__):
        if module.name != "base":
            importlib.import_module(f"irflow.actions.{module.name}")


@contextmanager
def azure_errors(*, permission: str, scope: str) -> Iterator[None]:
    """Turn SDK errors into action errors that name the missing permission and scope, or the resource."""
    try:
        yield
    except ResourceNotFoundError as exc:
        raise ResourceMissing(f"not found: {scope} ({_arm_message(exc)})") from None
    except ClientAuthenticationError as exc:
        if exc.status_code == 403 and _network_refusal(exc):
            raise NetworkRefused(_refused(scope, exc)) from None
        if exc.status_code == 403:
            raise PermissionDenied(_denied(permission, scope, exc)) from None
        raise PermissionDenied(f"authentication to Azure failed for {scope}: {_arm_message(exc)}") from None
    except HttpResponseError as exc:
        if exc.status_code == 403 and _network_refusal(exc):
            raise NetworkRefused(_refused(scope, exc)) from None
        if exc.status_code == 403:
            raise PermissionDenied(_denied(permission, scope, exc)) from None
        raise AzureCallFailed(
            f"Azure answered {exc.status_code} for {scope}: {_arm_message(exc)}", retry_after_of(exc)
        ) from None


# The 403 codes Azure's data planes give for a network refusal (the firewall, not a role):
# storage: x-ms-error-code AuthorizationFailure
#   (https://learn.microsoft.com/en-us/azure/storage/common/storage-network-security);
# Key Vault: inner error ForbiddenByFirewall / ForbiddenByConnection
#   (https://learn.microsoft.com/en-us/azure/key-vault/general/rest-error-codes).
NETWORK_REFUSAL_CODES = frozenset({"authorizationfailure", "forbiddenbyfirewall", "forbiddenbyconnection"})


def _error_codes(exc: HttpResponseError) -> set[str]:
    codes = {getattr(exc, "error_code", None)}
    error = getattr(exc, "error", None)
    codes.add(getattr(error, "code", None))
    inner = getattr(error, "innererror", None)
    codes.add(inner.get("code") if isinstance(inner, dict) else getattr(inner, "code", None))
    response = getattr(exc, "response", None)
    if response is not None:
        codes.add(response.headers.get("x-ms-error-code"))
        try:
            body = response.json()
        except (ValueError, AttributeError, TypeError):
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            codes.add(body["error"].get("code"))
            inner_body = body["error"].get("innererror")
            if isinstance(inner_body, dict):
                codes.add(inner_body.get("code"))
    return {str(getattr(code, "value", code)).lower() for code in codes if code}  # SDK enums by value


def _network_refusal(exc: HttpResponseError) -> bool:
    return bool(_error_codes(exc) & NETWORK_REFUSAL_CODES)


def _refusal_code(exc: HttpResponseError) -> str:
    spelled = {"authorizationfailure": "AuthorizationFailure", "forbiddenbyfirewall": "ForbiddenByFirewall"}
    found = sorted(_error_codes(exc) & NETWORK_REFUSAL_CODES)
    return spelled.get(found[0], "ForbiddenByConnection") if found else "403"


def _refused(scope: str, exc: HttpResponseError) -> str:
    return (
        f"network refusal: the firewall of {scope} refused irflow's network origin "
        f"({_refusal_code(exc)}: {_arm_message(exc)}); "
        "this is not a missing permission. Set IRFLOW_EGRESS_IPS (irflow's public egress IPs) and/or "
        "IRFLOW_SUBNET_ID (the subnet irflow runs in) and keep that origin in the resource's allow-list "
        "(isolation does so when the origin is configured), or reach the resource through a private endpoint"
    )


def _denied(permission: str, scope: str, exc: HttpResponseError) -> str:
    return f"permission denied: the irflow identity needs {permission} on {scope} ({_arm_message(exc)})"


def _arm_message(exc: HttpResponseError) -> str:
    error = getattr(exc, "error", None)
    if error is not None and getattr(error, "code", None):
        text = f"{error.code}: {error.message}"
    else:
        text = (exc.message or str(exc)).splitlines()[0]
    return redact_text(text)[:500]
