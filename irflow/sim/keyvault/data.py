"""The Key Vault data plane at each vault's ``vaultUri`` (``{base}/_data/{vault}/vault/``): keys (get, list
versions, create, rotate) and secrets (set), as ``azure.keyvault.keys.KeyClient`` and
``azure.keyvault.secrets.SecretClient`` call them.

Pipeline (:func:`admit`): vault → authentication → ``api-version`` → network rules → route → RBAC → latency /
injected error.

- Authentication is Key Vault's challenge flow: a request without ``Authorization`` (the SDK's first one, sent
  with an empty body) answers 401 ``Unauthorized`` with ``WWW-Authenticate: Bearer
  authorization="https://login.microsoftonline.com/{tenant}", resource="https://vault.azure.net"``; the SDK
  then resends the request, body included, with its token. Clients need ``verify_challenge_resource=False``
  since the simulator's host is not ``*.vault.azure.net``.
- Network rules of the vault (management plane): ``publicNetworkAccess: Disabled`` → 403 ``Forbidden`` with
  inner error ``ForbiddenByConnection``; ``networkAcls.defaultAction: Deny`` → 403 ``ForbiddenByFirewall``
  unless an ``ipRules`` entry or a virtual-network rule covers the caller's origin
  (:mod:`irflow.sim.firewall`, shared with the blob service). Trusted-service bypass is not simulated
  (callers are never a trusted service).
- Authorization (:mod:`irflow.sim.keyvault.authorization`): the vault's permission model decides. RBAC vaults
  need a role assignment granting the route's data action (``Microsoft.KeyVault/vaults/keys/rotate/action``
  …) over ``{vault id}/keys/{name}`` (``/secrets/{name}``), else 403 ``Forbidden`` / ``ForbiddenByRbac``;
  access-policy vaults need the caller's policy entry to list the permission (``keys: [rotate]``), else 403
  ``Forbidden`` / ``ForbiddenByPolicy``. Deny rules (``tenant.deny``) refuse on both.
- Key material: only public JWK parts (``n``, ``e``) are returned; secret values go on the wire but never
  into the journal (registered with ``tenant.issue_secret``; the journal records a value-free summary).
"""

from __future__ import annotations

import hmac
import re
from typing import TYPE_CHECKING, Any

from irflow.sim import firewall, paging
from irflow.sim.http import SimRequest, SimResponse
from irflow.sim.keyvault import data_models as dm
from irflow.sim.keyvault.authorization import Permission, authorize
from irflow.sim.keyvault.data_models import KeyVaultError
from irflow.sim.router import DataPlane, Route

if TYPE_CHECKING:
    from irflow.sim.keyvault.models import KeyVault
    from irflow.sim.models import Tenant

VAULT_RESOURCE = "https://vault.azure.net"
DATA_PREFIX = "/_data/"
PATH_PATTERN = r"^/_data/[^/]+/vault(/|$)"
_VAULT_PATH = re.compile(r"^/_data/([^/]+)/vault(?:/|$)", re.IGNORECASE)

_OP = "Microsoft.KeyVault/vaults"
KEYS_READ = f"{_OP}/keys/read"
KEYS_CREATE = f"{_OP}/keys/create/action"
KEYS_ROTATE = f"{_OP}/keys/rotate/action"
SECRETS_SET = f"{_OP}/secrets/setSecret/action"

# Per route: the RBAC data action and the access-policy permission it needs (Microsoft's "Azure Key Vault
# data plane operations" mapping, https://learn.microsoft.com/azure/key-vault/general/rbac-guide and
# https://learn.microsoft.com/azure/key-vault/general/security-features#privileged-access).
PERMISSIONS = {
    "keyvault.data.get_key": Permission(KEYS_READ, "keys", "get"),
    "keyvault.data.list_key_versions": Permission(KEYS_READ, "keys", "list"),
    "keyvault.data.create_key": Permission(KEYS_CREATE, "keys", "create"),
    "keyvault.data.rotate_key": Permission(KEYS_ROTATE, "keys", "rotate"),
    "keyvault.data.set_secret": Permission(SECRETS_SET, "secrets", "set"),
}


def challenge_headers(tenant: Tenant) -> dict[str, str]:
    return {
        "WWW-Authenticate": (
            f'Bearer authorization="https://login.microsoftonline.com/{tenant.tenant_id}", '
            f'resource="{VAULT_RESOURCE}"'
        )
    }


def _vault_of(tenant: Tenant, request: SimRequest) -> KeyVault:
    found = _VAULT_PATH.match(request.path)
    vault = tenant.find_key_vault(found.group(1)) if found else None
    if vault is None:
        raise KeyVaultError(
            404, "VaultNotFound", "The vault does not exist (irflow.sim knows no such vault)."
        )
    return vault


def vault_uri(request: SimRequest, vault: KeyVault) -> str:
    return f"{request.base_url}/_data/{vault.name}/vault/"


def _network_refusal(refusal: firewall.Refusal, caller: str, vault: KeyVault) -> KeyVaultError:
    """Key Vault's own 403 shapes for a network refusal (rest-error-codes: ``ForbiddenByConnection`` when
    public network access is disabled, ``ForbiddenByFirewall`` when the caller is outside the allow-list)."""
    where = f"Vault: {vault.name};location={vault.location}"
    if refusal.reason == "public_network_access_disabled":
        return KeyVaultError(
            403,
            "Forbidden",
            "Public network access is disabled and request is not from a trusted service nor via an approved "
            f"private link.\r\nCaller: {caller}\r\n{where}",
            inner="ForbiddenByConnection",
        )
    return KeyVaultError(
        403,
        "Forbidden",
        "Client address is not authorized and caller is not a trusted service.\r\n"
        f"Client address: {refusal.caller.ip or refusal.caller.subnet_id}\r\nCaller: {caller}\r\n{where}",
        inner="ForbiddenByFirewall",
    )


def _scope(vault: KeyVault, request: SimRequest) -> str:
    if "secretName" in request.params:
        return f"{vault.id}/secrets/{request.params['secretName']}"
    return f"{vault.id}/keys/{request.params.get('keyName', '')}"


def admit(tenant: Tenant, request: SimRequest, route: Route | None) -> None:
    """Everything before a Key Vault data-plane handler; raises :class:`KeyVaultError` to refuse."""
    vault = _vault_of(tenant, request)
    header = request.headers.get("Authorization")
    if not header:
        raise KeyVaultError(
            401,
            "Unauthorized",
            "AKV10000: Request is missing a Bearer or PoP token.",
            challenge_headers(tenant),
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), tenant.token.encode()):
        raise KeyVaultError(
            401, "Unauthorized", "AKV10032: Invalid issuer or token.", challenge_headers(tenant)
        )
    if not request.query_param("api-version"):
        raise dm.bad_parameter("The request URI contains an invalid version: api-version is missing.")
    caller = f"appid=irflow-sim;oid={tenant.principal_id};iss=https://sts.windows.net/{tenant.tenant_id}/"
    refusal = firewall.check(tenant, request, vault.properties)  # the shared rule set (irflow.sim.firewall)
    if refusal is not None:
        raise _network_refusal(refusal, caller, vault)
    if route is None:
        raise KeyVaultError(
            501,
            "NotImplemented",
            f"The simulated Key Vault (irflow.sim) does not implement {request.method} {request.path}.",
        )
    authorize(tenant, vault, PERMISSIONS[route.name], _scope(vault, request))
    if route.method == "PUT" and "secretName" in request.params:
        # Register the value before anything is journaled, so the journal masks it even on a refusal below.
        body = _json(request)
        if isinstance(body.get("value"), str) and body["value"]:
            tenant.issue_secret(body["value"])
    faults = tenant.faults
    if faults.latency_ms:
        tenant.sleep(faults.latency_ms / 1000.0)
    if faults.error_rate and tenant.random.random() < faults.error_rate:
        raise KeyVaultError(500, "InternalServerError", "Internal server error (injected by irflow.sim).")


def _json(request: SimRequest) -> dict[str, Any]:
    try:
        body = request.json()
    except Exception as exc:  # noqa: BLE001 - the model's ARM 400, in Key Vault's words
        raise dm.bad_parameter("The request body is not valid JSON.") from exc
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise dm.bad_parameter("The request body must be a JSON object.")
    return body


def _key(tenant: Tenant, request: SimRequest) -> tuple[KeyVault, dm.VaultKey]:
    vault = _vault_of(tenant, request)
    name = request.params["keyName"]
    key = dm.vault_data(vault).keys.get(name.lower())
    if key is None:
        raise KeyVaultError(
            404,
            "KeyNotFound",
            f"A key with (name/id) {name} was not found in this key vault. If you recently deleted this key "
            "you may be able to recover it using the correct recovery command.",
        )
    return vault, key


def _tags(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise dm.bad_parameter("'tags' must be an object of strings.")
    return dict(value)


# ---------------------------------------------------------------------------------------------- handlers
def get_key(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``GET {vault}/keys/{name}/{version?}``: the KeyBundle (latest version when none is given)."""
    vault, key = _key(tenant, request)
    version = key.version(request.params.get("keyVersion", ""))
    if version is None:
        raise KeyVaultError(
            404,
            "KeyNotFound",
            f"A key with (name/id) {key.name}/{request.params['keyVersion']} was not found in this vault.",
        )
    return SimResponse(200, dm.key_bundle(vault, vault_uri(request, vault), key, version))


def list_key_versions(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``GET {vault}/keys/{name}/versions``: KeyItems, paged with ``nextLink``."""
    vault, key = _key(tenant, request)
    uri = vault_uri(request, vault)
    size = tenant.page_size
    maxresults = request.query_param("maxresults")
    if maxresults and maxresults.isdigit() and int(maxresults) > 0:
        size = min(size, int(maxresults))
    body = paging.page(
        request,
        key.versions,
        sort_key=lambda v: [v.created.isoformat(), v.version],
        render=lambda v: dm.key_item(vault, uri, key, v),
        page_size=size,
    )
    body.setdefault("nextLink", None)
    return SimResponse(200, body)


def create_key(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``POST {vault}/keys/{name}/create``: a new key, or a new version of an existing one."""
    vault = _vault_of(tenant, request)
    body = _json(request)
    if "kty" not in body:
        raise dm.bad_parameter("Property 'kty' is required.")
    attributes = body.get("attributes") or {}
    key_ops = body.get("key_ops")
    if key_ops is not None and (
        not isinstance(key_ops, list) or not all(isinstance(o, str) for o in key_ops)
    ):
        raise dm.bad_parameter("'key_ops' must be a list of operation names.")
    key_size = body.get("key_size")
    if key_size is not None and (not isinstance(key_size, int) or isinstance(key_size, bool)):
        raise dm.bad_parameter("'key_size' must be an integer.")
    version = dm.make_key_version(
        kty=body["kty"],
        key_size=key_size,
        key_ops=key_ops,
        when=tenant.now(),
        enabled=bool(attributes.get("enabled", True)),
        tags=_tags(body.get("tags")),
    )
    key = dm.add_key_version(vault, request.params["keyName"], version)
    return SimResponse(200, dm.key_bundle(vault, vault_uri(request, vault), key, version))


def rotate_key(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``POST {vault}/keys/{name}/rotate``: a new version with the current one's type, size and operations."""
    vault, key = _key(tenant, request)
    current = key.current
    version = dm.make_key_version(
        kty=current.kty,
        key_size=current.key_size,
        key_ops=current.key_ops,
        when=tenant.now(),
        tags=current.tags,
    )
    dm.add_key_version(vault, key.name, version)
    return SimResponse(200, dm.key_bundle(vault, vault_uri(request, vault), key, version))


def set_secret(tenant: Tenant, request: SimRequest) -> SimResponse:
    """``PUT {vault}/secrets/{name}``: a new secret version. The wire answer carries the value (as Azure's
    does); the journal records the bundle without it."""
    import json

    vault = _vault_of(tenant, request)
    name = request.params["secretName"]
    dm.check_key_name(name)
    body = _json(request)
    value = body.get("value")
    if not isinstance(value, str):
        raise dm.bad_parameter("Property 'value' is required and must be a string.")
    content_type = body.get("contentType")
    attributes = body.get("attributes") or {}
    now = tenant.now()
    version = dm.SecretVersion(
        version=dm.new_version(),
        value=tenant.issue_secret(value) if value else value,
        created=now,
        updated=now,
        content_type=content_type if isinstance(content_type, str) else None,
        enabled=bool(attributes.get("enabled", True)),
        tags=_tags(body.get("tags")),
    )
    data = dm.vault_data(vault)
    secret = data.secrets.get(name.lower())
    if secret is None:
        secret = data.secrets[name.lower()] = dm.VaultSecret(name)
    secret.versions.append(version)
    uri = vault_uri(request, vault)
    wire = dm.secret_bundle(vault, uri, secret, version, with_value=True)
    summary = dm.secret_bundle(vault, uri, secret, version, with_value=False)
    return SimResponse(
        200, summary, {"Content-Type": "application/json; charset=utf-8"}, json.dumps(wire).encode("utf-8")
    )


_VAULT = "/_data/{vaultName}/vault"
_KEY = _VAULT + "/keys/{keyName}"

ROUTES = [
    Route(
        "GET", _KEY + "/versions", list_key_versions, "keyvault.data.list_key_versions", operation=KEYS_READ
    ),
    Route("POST", _KEY + "/create", create_key, "keyvault.data.create_key", operation=KEYS_CREATE),
    Route("POST", _KEY + "/rotate", rotate_key, "keyvault.data.rotate_key", operation=KEYS_ROTATE),
    Route("GET", _KEY, get_key, "keyvault.data.get_key", operation=KEYS_READ),
    Route("GET", _KEY + "/{keyVersion}", get_key, "keyvault.data.get_key", operation=KEYS_READ),
    Route(
        "PUT", _VAULT + "/secrets/{secretName}", set_secret, "keyvault.data.set_secret", operation=SECRETS_SET
    ),
]

KEYVAULT_DATA_PLANE = DataPlane(DATA_PREFIX, ROUTES, admit, PATH_PATTERN)
