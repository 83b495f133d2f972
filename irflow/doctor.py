"""``irflow doctor``: check a live configuration, read-only, and say what is missing.

Checks, in order (each one ``ok``, ``missing``, ``failed`` or ``skipped``):

- ``settings``: the ``IRFLOW_*`` Azure settings resolve to endpoints and a credential;
- ``token:<audience>``: the credential gets a token for ARM, Log Analytics and Microsoft Graph;
- ``endpoint:<name>``: ARM, Log Analytics, Graph (and the Entra ID authority, for Entra ID credentials) answer
  over TLS (any HTTP status counts: only reachability and the certificate are checked; nothing is sent but a
  GET of the endpoint's root);
- ``object_id``: irflow's own object id (``IRFLOW_SELF_OBJECT_ID`` or its token's ``oid``), which containment
  always keeps in its allow-lists;
- ``origin``: irflow's network origin (``IRFLOW_EGRESS_IPS`` / ``IRFLOW_SUBNET_ID``), which isolation keeps
  allowed for the data-plane work that follows;
- ``permissions`` (with ``--scope``): ARM's list of the caller's effective permissions at the scope
  (``GET {scope}/providers/Microsoft.Authorization/permissions``,
  https://learn.microsoft.com/rest/api/authorization/permissions) against every Azure permission the
  registered actions declare. Entra ID (directory) permissions cannot be read from ARM: they are listed as
  not checked.

Every Azure call here is a read. No token, key or secret is printed; errors are shortened and redacted.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field
from typing import Any

import requests
from azure.core.credentials import TokenCredential

from irflow.actions.base import (
    DOCTOR_PERMISSIONS,
    is_data_action,
    is_directory_permission,
    required_permissions,
)
from irflow.azure.clients import AzureClients, ConfigurationError, StaticTokenCredential
from irflow.azure.principal import SelfIdentityUnknown
from irflow.domain.resource_id import validate_scope
from irflow.redaction import redact_text
from irflow.settings import Settings

PERMISSIONS_API_VERSION = "2022-04-01"
_TIMEOUT_S = 10


@dataclass
class Check:
    name: str
    status: str  # ok | missing | failed | skipped
    detail: str


@dataclass
class PermissionReport:
    scope: str
    present: list[str] = field(default_factory=list)
    missing: dict[str, list[str]] = field(default_factory=dict)  # permission → actions needing it
    not_checked: list[str] = field(default_factory=list)  # directory permissions (an Entra ID role)


@dataclass
class Report:
    checks: list[Check]
    permissions: PermissionReport | None

    @property
    def ok(self) -> bool:
        return all(c.status in ("ok", "skipped") for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [asdict(c) for c in self.checks],
            "permissions": asdict(self.permissions) if self.permissions else None,
        }


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return redact_text(f"{type(exc).__name__}: {text}")[:300]


def _arm_error(exc: Any) -> str:
    """``code: message`` of an ARM error body, shortened and redacted (the exception's text otherwise)."""
    try:
        error = exc.response.json().get("error") or {}
        text = f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
    except Exception:  # noqa: BLE001 (a body that is not ARM's JSON)
        text = ""
    return redact_text(text)[:300] if text else _short(exc)


def granted(permission: str, entries: list[dict[str, Any]]) -> bool:
    """Whether ARM's permission entries grant ``permission``: some entry's actions (or dataActions) match it
    and none of that entry's notActions (notDataActions) do (wildcards as in role definitions). An entry
    under an ABAC ``condition`` is not counted: whether it grants depends on the request, which doctor
    cannot know, so it reports the permission as missing rather than promise it."""
    data = is_data_action(permission)
    wanted = permission.lower()
    for entry in entries:
        if entry.get("condition"):
            continue
        allow = entry.get("dataActions" if data else "actions") or []
        deny = entry.get("notDataActions" if data else "notActions") or []
        if any(fnmatch.fnmatchcase(wanted, p.lower()) for p in allow) and not any(
            fnmatch.fnmatchcase(wanted, p.lower()) for p in deny
        ):
            return True
    return False


def _permissions(clients: AzureClients, scope: str) -> tuple[Check, PermissionReport]:
    report = PermissionReport(scope=scope)
    subscription_id = scope.split("/")[2]
    from azure.core.exceptions import HttpResponseError
    from azure.core.rest import HttpRequest

    entries: list[dict[str, Any]] = []
    url: str | None = (
        f"{scope}/providers/Microsoft.Authorization/permissions?api-version={PERMISSIONS_API_VERSION}"
    )
    client = clients.network(subscription_id)  # any ARM client: it carries the pipeline and credential
    try:
        while url:
            response = client.send_request(HttpRequest("GET", url))
            response.raise_for_status()
            body = response.json()
            entries += body.get("value") or []
            url = body.get("nextLink")
    except HttpResponseError as exc:
        detail = f"ARM answered {exc.status_code} for the permission list at {scope}: {_arm_error(exc)}"
        if exc.status_code == 403:
            detail += f" (irflow needs {DOCTOR_PERMISSIONS[0]} to list its permissions)"
        return Check("permissions", "failed", detail), report
    except Exception as exc:  # noqa: BLE001 (transport errors of every kind end as a failed check)
        return Check("permissions", "failed", f"could not list permissions at {scope}: {_short(exc)}"), report
    for permission, actions in required_permissions().items():
        if is_directory_permission(permission):
            report.not_checked.append(permission)
        elif granted(permission, entries):
            report.present.append(permission)
        else:
            report.missing[permission] = actions
    if report.missing:
        detail = f"{len(report.missing)} of {len(report.missing) + len(report.present)} missing at {scope}"
        return Check("permissions", "missing", detail), report
    return Check(
        "permissions", "ok", f"all {len(report.present)} Azure permissions present at {scope}"
    ), report


def _endpoint(name: str, url: str, verify: str | bool) -> Check:
    try:
        response = requests.get(url + "/", timeout=_TIMEOUT_S, verify=verify, allow_redirects=False)
    except requests.exceptions.SSLError as exc:
        return Check(
            f"endpoint:{name}", "failed", f"{url}: TLS failed ({_short(exc)}); see IRFLOW_AZURE_CA_BUNDLE"
        )
    except requests.exceptions.RequestException as exc:
        return Check(f"endpoint:{name}", "failed", f"{url}: no answer ({_short(exc)})")
    return Check(f"endpoint:{name}", "ok", f"{url} answers (HTTP {response.status_code})")


def run(settings: Settings, scope: str | None = None, credential: TokenCredential | None = None) -> Report:
    """Run every check (read-only) and return the report; never raises for what it finds. ``credential``
    replaces the one the settings would build (tests)."""
    checks: list[Check] = []
    if scope is not None:
        scope = validate_scope(scope)
    try:
        clients = AzureClients(settings, credential=credential)
    except (ConfigurationError, ValueError) as exc:
        checks.append(Check("settings", "failed", redact_text(str(exc))[:300]))
        return Report(checks, None)
    try:
        endpoints = clients.endpoints
        checks.append(
            Check(
                "settings", "ok", f"cloud {settings.azure_cloud}: ARM {endpoints.arm}, logs {endpoints.logs}"
            )
        )
        token_ok = True
        for audience, resource_scope in (
            ("arm", clients.arm_scope),
            ("logs", f"{endpoints.logs}/.default"),
            ("graph", f"{endpoints.graph}/.default"),
        ):
            try:
                token = clients.credential.get_token(resource_scope)
                checks.append(
                    Check(
                        f"token:{audience}", "ok", f"token for {resource_scope} (expires {token.expires_on})"
                    )
                )
            except Exception as exc:  # noqa: BLE001 (every credential failure is reported, none raised)
                token_ok = False
                checks.append(
                    Check(f"token:{audience}", "failed", f"no token for {resource_scope}: {_short(exc)}")
                )
        reachable = [("arm", endpoints.arm), ("logs", endpoints.logs), ("graph", endpoints.graph)]
        if not isinstance(
            clients.credential, StaticTokenCredential
        ):  # Entra ID credentials use the authority
            reachable.append(("authority", endpoints.authority))
        for name, url in reachable:
            checks.append(_endpoint(name, url, clients.verify))
        if settings.self_object_id:
            checks.append(Check("object_id", "ok", f"{settings.self_object_id} (IRFLOW_SELF_OBJECT_ID)"))
        elif not token_ok:
            checks.append(Check("object_id", "skipped", "no ARM token to read the oid claim from"))
        else:
            try:
                checks.append(
                    Check("object_id", "ok", f"{clients.self_object_id()} (the ARM token's oid claim)")
                )
            except SelfIdentityUnknown as exc:
                checks.append(Check("object_id", "missing", str(exc)))
        origin = clients.origin
        if origin.configured:
            checks.append(Check("origin", "ok", origin.describe()))
        else:
            checks.append(
                Check(
                    "origin",
                    "missing",
                    "IRFLOW_EGRESS_IPS / IRFLOW_SUBNET_ID not set: isolation cannot keep irflow's own path "
                    "to the storage and Key Vault data planes open",
                )
            )
        report = None
        if scope is None:
            checks.append(Check("permissions", "skipped", "pass --scope /subscriptions/<id> to check them"))
        elif not token_ok:
            checks.append(Check("permissions", "skipped", "no ARM token"))
        else:
            check, report = _permissions(clients, scope)
            checks.append(check)
        return Report(checks, report)
    finally:
        clients.close()
