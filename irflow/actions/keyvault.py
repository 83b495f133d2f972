"""Key Vault containment actions (``azure-mgmt-keyvault`` for the vault, ``azure-keyvault-keys`` for keys).

Vault settings are changed with ``PATCH …/vaults/{v}`` (``vaults.update``), never with the long-running
``begin_create_or_update`` PUT; access policies with ``PUT …/accessPolicies/remove``.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal

from azure.core.exceptions import HttpResponseError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from irflow.actions.base import (
    Action,
    ActionError,
    Change,
    NetworkRefused,
    PermissionDenied,
    Plan,
    ResourceMissing,
    Result,
    StepContext,
    azure_errors,
    register,
)
from irflow.domain import ip_rules
from irflow.domain.resource_id import DirectoryObjectId, KeyVaultId, ResourceId

READ = "Microsoft.KeyVault/vaults/read"
WRITE = "Microsoft.KeyVault/vaults/write"
ACCESS_POLICIES_WRITE = "Microsoft.KeyVault/vaults/accessPolicies/write"
KEYS_READ = "Microsoft.KeyVault/vaults/keys/read"
KEYS_ROTATE = "Microsoft.KeyVault/vaults/keys/rotate/action"

_KEY_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_NETWORK_REFUSALS = ("ForbiddenByConnection", "ForbiddenByFirewall")
# An access-policy vault's refusal: ForbiddenByPolicy today, AccessDenied in older answers
# (https://learn.microsoft.com/azure/key-vault/general/troubleshooting-access-issues).
_POLICY_REFUSALS = ("ForbiddenByPolicy", "AccessDenied")


# --------------------------------------------------------------------------------------------- helpers
def _get_vault(ctx: StepContext, vault_id: str) -> dict[str, Any]:
    """The vault as ARM shows it (wire names: ``properties.networkAcls`` …)."""
    rid = ResourceId.parse(vault_id)
    with azure_errors(permission=READ, scope=vault_id):
        vault = ctx.clients.keyvault_mgmt(rid.subscription_id).vaults.get(rid.resource_group, rid.name)
    return vault.as_dict()


def _properties(ctx: StepContext, vault_id: str) -> dict[str, Any]:
    return _get_vault(ctx, vault_id).get("properties") or {}


def _patch(ctx: StepContext, vault_id: str, properties: dict[str, Any]) -> None:
    rid = ResourceId.parse(vault_id)
    with azure_errors(permission=WRITE, scope=vault_id):
        ctx.clients.keyvault_mgmt(rid.subscription_id).vaults.update(
            rid.resource_group, rid.name, {"properties": properties}
        )


def self_object_id(ctx: StepContext) -> str:
    """irflow's own object id (configured, or its token's ``oid``): containment never removes its access."""
    try:
        with azure_errors(permission="(sign-in)", scope="irflow's own identity"):
            return str(ctx.clients.self_object_id()).lower()
    except ValueError as exc:  # SelfIdentityUnknown: no oid in the token and none configured
        raise ActionError(
            f"{exc}. Revocation refuses to run without it: it could remove irflow's own access."
        ) from None


def uses_rbac(props: dict[str, Any]) -> bool:
    """Whether the vault uses the Azure RBAC permission model (access policies then grant nothing)."""
    return bool(props.get("enableRbacAuthorization"))


def _cidr(value: str) -> str:
    """A public IPv4 address or range in canonical CIDR form (``203.0.113.7`` → ``203.0.113.7/32``).

    Key Vault IP rules take public IPv4 addresses only; the check and its sources are in
    :mod:`irflow.domain.ip_rules`. A private range would never match irflow's calls anyway: the vault
    firewall sees irflow's public egress address."""
    problem = ip_rules.refusal(value)
    if problem is not None:
        if "IPv6" in problem:
            raise ValueError(f"Key Vault IP rules are IPv4 only: {value!r}")
        if "not an IPv4" in problem:
            ipaddress.ip_network(str(value).strip(), strict=False)  # pydantic shows ipaddress's own message
        raise ValueError(
            f"Key Vault IP rules take public IPv4 addresses only: {value!r} {problem.removeprefix('is ')}"
            " (IRFLOW_EGRESS_IPS)"
        )
    return str(ipaddress.ip_network(str(value).strip(), strict=False))


def _origin_rules(origin: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """irflow's own origin (``IRFLOW_EGRESS_IPS`` / ``IRFLOW_SUBNET_ID``) as Key Vault IP rules (CIDR; Key
    Vault takes /32, unlike storage) and virtual-network rules (the subnet needs the ``Microsoft.KeyVault``
    service endpoint: https://learn.microsoft.com/azure/key-vault/general/overview-vnet-service-endpoints)."""
    ips = [_cidr(entry) for entry in getattr(origin, "egress_ips", ()) or ()]
    subnet = getattr(origin, "subnet_id", None)
    return ips, ([{"id": subnet}] if subnet else [])


def _network_state(props: dict[str, Any]) -> dict[str, Any]:
    """The settings ``keyvault.isolate_vault`` changes, with Azure's defaults filled in."""
    acls = copy.deepcopy(props.get("networkAcls") or {})
    return {
        "publicNetworkAccess": props.get("publicNetworkAccess") or "Enabled",
        "networkAcls": {
            "bypass": acls.get("bypass") or "AzureServices",
            "defaultAction": acls.get("defaultAction") or "Allow",
            "ipRules": [{"value": rule["value"]} for rule in acls.get("ipRules") or [] if rule.get("value")],
            "virtualNetworkRules": [rule for rule in acls.get("virtualNetworkRules") or [] if rule.get("id")],
        },
    }


def _comparable(acls: dict[str, Any]) -> dict[str, Any]:
    """Network rules in a form where equal rule sets compare equal (order, case, /32 spelling)."""

    def ip(value: str) -> str:
        try:
            return _cidr(value)
        except ValueError:
            return value

    return {
        "bypass": str(acls.get("bypass") or "AzureServices").lower(),
        "defaultAction": str(acls.get("defaultAction") or "Allow").lower(),
        "ipRules": sorted({ip(r["value"]) for r in acls.get("ipRules") or [] if r.get("value")}),
        "virtualNetworkRules": sorted(
            {r["id"].lower() for r in acls.get("virtualNetworkRules") or [] if r.get("id")}
        ),
    }


# ------------------------------------------------------------------------------------- isolate vault
class IsolateVaultParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vault: KeyVaultId = Field(description="Resource id of the key vault to isolate.")
    allow_ip_rules: list[str] = Field(
        default_factory=list,
        max_length=127,
        description="Public IPv4 addresses or CIDR ranges that keep reaching the vault besides irflow's own "
        "origin (IRFLOW_EGRESS_IPS / IRFLOW_SUBNET_ID, always kept), e.g. the responders' network. Every "
        "other IP rule is removed.",
    )
    keep_virtual_network_rules: bool = Field(
        default=False, description="Keep the vault's existing virtual-network (subnet) rules."
    )
    bypass: Literal["None", "AzureServices"] = Field(
        default="None",
        description="Trusted Microsoft services bypass. None cuts them off too; keep AzureServices when a "
        "service such as Storage or SQL reads a customer-managed key from this vault.",
    )

    @field_validator("allow_ip_rules")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(_cidr(item) for item in value))


@register
class IsolateVault(Action):
    """Cut a key vault off every network path except irflow's own and an explicit allow-list.

    Sets the firewall's default action to Deny and the trusted-services bypass to None (configurable),
    replaces the IP rules with irflow's own origin (``IRFLOW_EGRESS_IPS`` as IP rules, ``IRFLOW_SUBNET_ID``
    as a virtual-network rule: always kept, so containment never removes irflow's own path) plus
    ``allow_ip_rules``, and drops the other virtual-network rules unless ``keep_virtual_network_rules``.
    Azure ignores every firewall rule while public network access is Disabled, so with an allow-list public
    network access stays Enabled and the firewall admits only the allow-list: that is how irflow keeps
    reaching the vault's data plane (for ``keyvault.rotate_key``) from outside a private endpoint
    (https://learn.microsoft.com/azure/key-vault/general/network-security). With nothing allow-listed
    (irflow's origin not configured, no ``allow_ip_rules``), public network access is Disabled (private
    endpoints only). A vault already Disabled is never re-opened, as for storage accounts. The prior
    settings are recorded for ``keyvault.restore_vault_network``: also the evidence of what was open.

    Example::

        - id: isolate-vault
          action: keyvault.isolate_vault
          for_each: "{{ inputs.key_vaults }}"
          with: {vault: "{{ item }}", allow_ip_rules: ["198.51.100.10/32"]}
    """

    name = "keyvault.isolate_vault"
    Params = IsolateVaultParams
    permissions = (READ, WRITE)
    target_param = "vault"

    @staticmethod
    def _target(params: IsolateVaultParams, state: dict[str, Any], origin: Any) -> dict[str, Any]:
        origin_ips, origin_subnets = _origin_rules(origin)
        kept = state["networkAcls"]["virtualNetworkRules"] if params.keep_virtual_network_rules else []
        vnet_rules = copy.deepcopy(kept)
        known = {rule["id"].lower() for rule in vnet_rules}
        vnet_rules += [rule for rule in origin_subnets if rule["id"].lower() not in known]
        ips = list(dict.fromkeys([*origin_ips, *params.allow_ip_rules]))
        allow_listed = bool(ips or vnet_rules)
        already_closed = state["publicNetworkAccess"].lower() != "enabled"
        return {
            "publicNetworkAccess": "Enabled" if allow_listed and not already_closed else "Disabled",
            "networkAcls": {
                "bypass": params.bypass,
                "defaultAction": "Deny",
                "ipRules": [{"value": cidr} for cidr in ips],
                "virtualNetworkRules": vnet_rules,
            },
        }

    def _diff(self, ctx: StepContext) -> tuple[list[Change], dict[str, Any], dict[str, Any]]:
        params: IsolateVaultParams = ctx.params  # type: ignore[assignment]
        state = _network_state(_properties(ctx, params.vault))
        target = self._target(params, state, ctx.clients.origin)
        changes = []
        if state["publicNetworkAccess"].lower() != target["publicNetworkAccess"].lower():
            changes.append(
                Change(
                    field="properties.publicNetworkAccess",
                    before=state["publicNetworkAccess"],
                    after=target["publicNetworkAccess"],
                )
            )
        current, wanted = _comparable(state["networkAcls"]), _comparable(target["networkAcls"])
        for key in ("defaultAction", "bypass", "ipRules", "virtualNetworkRules"):
            if current[key] != wanted[key]:
                changes.append(
                    Change(
                        field=f"properties.networkAcls.{key}",
                        before=state["networkAcls"][key],
                        after=target["networkAcls"][key],
                    )
                )
        return changes, state, target

    @staticmethod
    def _notes(state: dict[str, Any], target: dict[str, Any], origin: Any) -> list[str]:
        notes = []
        if origin.configured:
            notes.append(
                f"irflow's own origin stays allowed ({origin.describe()}): containment keeps irflow's path "
                "to the vault's data plane (keyvault.rotate_key)"
            )
        else:
            notes.append(
                "irflow's network origin is not configured (IRFLOW_EGRESS_IPS / IRFLOW_SUBNET_ID): once "
                "isolated, the vault's firewall refuses irflow's own data-plane calls (keyvault.rotate_key) "
                "unless allow_ip_rules holds irflow's public egress address"
            )
        if state["publicNetworkAccess"].lower() != "enabled":
            notes.append(
                f"public network access is already {state['publicNetworkAccess']}: left as is; irflow "
                "reaches the data plane only through a private endpoint"
            )
        elif target["publicNetworkAccess"] == "Disabled":
            notes.append(
                "nothing allow-listed: only private endpoints reach the vault afterwards (irflow too, for "
                "keyvault.rotate_key)"
            )
        else:
            notes.append(
                "public network access stays Enabled because Azure ignores firewall rules while it is "
                "Disabled; the firewall denies every address but the allow-list"
            )
        return notes

    def plan(self, ctx: StepContext) -> Plan:
        params: IsolateVaultParams = ctx.params  # type: ignore[assignment]
        changes, state, target = self._diff(ctx)
        notes = self._notes(state, target, ctx.clients.origin)
        return Plan(action=self.name, target=params.vault, changes=changes, notes=notes)

    def apply(self, ctx: StepContext) -> Result:
        params: IsolateVaultParams = ctx.params  # type: ignore[assignment]
        changes, state, target = self._diff(ctx)
        notes = self._notes(state, target, ctx.clients.origin)
        if not changes:
            return Result(changed=False, prior_state=state, notes=["already isolated", *notes])
        _patch(ctx, params.vault, target)
        ctx.log.info(
            "key vault isolated", changes=len(changes), allow_listed=len(target["networkAcls"]["ipRules"])
        )
        return Result(changed=True, changes=changes, prior_state=state, notes=notes)

    def verify(self, ctx: StepContext) -> bool:
        changes, _, _ = self._diff(ctx)
        return not changes


# ----------------------------------------------------------------------------- restore vault network
class VaultNetworkState(BaseModel):
    """The vault settings ``keyvault.isolate_vault`` changes, as recorded in its step result."""

    model_config = ConfigDict(extra="ignore")

    publicNetworkAccess: Literal["Enabled", "Disabled"]  # noqa: N815 (ARM names)
    networkAcls: dict[str, Any]  # noqa: N815

    @field_validator("networkAcls")
    @classmethod
    def _acls(cls, value: dict[str, Any]) -> dict[str, Any]:
        missing = [key for key in ("defaultAction", "bypass") if not value.get(key)]
        if missing:
            raise ValueError(f"networkAcls needs {', '.join(missing)}")
        return _network_state({"networkAcls": value})["networkAcls"]


class RestoreVaultNetworkParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vault: KeyVaultId = Field(description="Resource id of the key vault to restore.")
    prior: VaultNetworkState = Field(
        description="The state before containment: the prior_state recorded by keyvault.isolate_vault "
        "(in a playbook: {{ incident.prior_state['keyvault.isolate_vault'][item] }})."
    )


@register
class RestoreVaultNetwork(Action):
    """Undo ``keyvault.isolate_vault``: put back the network settings recorded before containment.

    Restores public network access and the whole firewall (default action, trusted-services bypass, IP and
    virtual-network rules) exactly as they were. A no-op when the vault already matches.

    Example::

        - id: restore-vault-network
          action: keyvault.restore_vault_network
          for_each: "{{ inputs.key_vaults }}"
          with:
            vault: "{{ item }}"
            prior: "{{ incident.prior_state['keyvault.isolate_vault'][item] }}"
    """

    name = "keyvault.restore_vault_network"
    Params = RestoreVaultNetworkParams
    permissions = (READ, WRITE)
    target_param = "vault"

    def _diff(self, ctx: StepContext) -> tuple[list[Change], dict[str, Any]]:
        params: RestoreVaultNetworkParams = ctx.params  # type: ignore[assignment]
        current = _network_state(_properties(ctx, params.vault))
        target = params.prior.model_dump()
        changes = []
        if current["publicNetworkAccess"].lower() != target["publicNetworkAccess"].lower():
            changes.append(
                Change(
                    field="properties.publicNetworkAccess",
                    before=current["publicNetworkAccess"],
                    after=target["publicNetworkAccess"],
                )
            )
        if _comparable(current["networkAcls"]) != _comparable(target["networkAcls"]):
            changes.append(
                Change(
                    field="properties.networkAcls", before=current["networkAcls"], after=target["networkAcls"]
                )
            )
        return changes, current

    def plan(self, ctx: StepContext) -> Plan:
        params: RestoreVaultNetworkParams = ctx.params  # type: ignore[assignment]
        changes, _ = self._diff(ctx)
        return Plan(action=self.name, target=params.vault, changes=changes)

    def apply(self, ctx: StepContext) -> Result:
        params: RestoreVaultNetworkParams = ctx.params  # type: ignore[assignment]
        changes, current = self._diff(ctx)
        if not changes:
            return Result(changed=False, prior_state=current, notes=["already restored"])
        _patch(ctx, params.vault, {c.field.removeprefix("properties."): c.after for c in changes})
        ctx.log.info("key vault network restored", changes=len(changes))
        return Result(changed=True, changes=changes, prior_state=current)

    def verify(self, ctx: StepContext) -> bool:
        changes, _ = self._diff(ctx)
        return not changes


# ------------------------------------------------------------------------------ revoke access policies
_KINDS = ("keys", "secrets", "certificates")


class RevokeAccessPoliciesParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vault: KeyVaultId = Field(description="Resource id of the key vault.")
    keep_object_ids: list[DirectoryObjectId] = Field(
        default_factory=list,
        description="Object ids of principals whose access is left alone (the workloads that must keep "
        "running). irflow's own object id is always kept, listed or not.",
    )
    key_permissions: list[str] = Field(
        default=["decrypt", "unwrapKey", "get"], description="Key permissions taken from everyone else."
    )
    secret_permissions: list[str] = Field(
        default=["get"], description="Secret permissions taken from everyone else."
    )
    certificate_permissions: list[str] = Field(
        default_factory=list, description="Certificate permissions taken from everyone else."
    )


@register
class RevokeAccessPolicies(Action):
    """Take the dangerous data-plane permissions away from every principal not on the keep list.

    For each access policy entry whose object id is not in ``keep_object_ids``, removes the listed key,
    secret and certificate permissions it holds (by default keys: decrypt, unwrapKey, get; secrets: get) with
    one ``accessPolicies/remove`` call; the legacy ``all`` permission counts as holding them. Permission
    names are sent exactly as the vault spells them (Azure's ``remove`` matches case-sensitively and answers
    200 when nothing matched). An entry left without any permission disappears (Azure's rule). Every entry's
    object id and permissions before the change are recorded (no tenant or application details).

    irflow's own object id (``IRFLOW_SELF_OBJECT_ID`` or its token's ``oid``) is always kept, so the key
    rotation that follows still works. A vault using the Azure RBAC permission model ignores access
    policies (https://learn.microsoft.com/azure/key-vault/general/rbac-access-policy): there this action
    changes nothing and says so; ``keyvault.revoke_role_assignments`` revokes access on such a vault.

    Example::

        - id: revoke-access-policies
          action: keyvault.revoke_access_policies
          for_each: "{{ inputs.key_vaults }}"
          with:
            vault: "{{ item }}"
            keep_object_ids: ["4b7d2e19-3a6c-4f8e-9d15-7c2a0e6b8f31"]
    """

    name = "keyvault.revoke_access_policies"
    Params = RevokeAccessPoliciesParams
    permissions = (READ, ACCESS_POLICIES_WRITE)
    target_param = "vault"

    def _dangerous(self, params: RevokeAccessPoliciesParams) -> dict[str, set[str]]:
        lists = {
            "keys": params.key_permissions,
            "secrets": params.secret_permissions,
            "certificates": params.certificate_permissions,
        }
        return {
            kind: ({p.lower() for p in items} | {"all"}) if items else set() for kind, items in lists.items()
        }

    def _survey(self, ctx: StepContext) -> tuple[list[dict[str, Any]], list[Change], dict[str, Any]]:
        """The ``remove`` entries to send, the changes they make and the recorded prior policies."""
        params: RevokeAccessPoliciesParams = ctx.params  # type: ignore[assignment]
        props = _properties(ctx, params.vault)
        policies = props.get("accessPolicies") or []
        keep = {oid.lower() for oid in params.keep_object_ids} | {self_object_id(ctx)}
        dangerous = self._dangerous(params)
        removals: list[dict[str, Any]] = []
        changes: list[Change] = []
        for policy in [] if uses_rbac(props) else policies:
            object_id = str(policy.get("objectId", ""))
            if object_id.lower() in keep:
                continue
            held = policy.get("permissions") or {}
            taken = {
                kind: [p for p in held.get(kind) or [] if p.lower() in dangerous[kind]] for kind in _KINDS
            }
            taken = {kind: items for kind, items in taken.items() if items}
            if not taken:
                continue
            entry: dict[str, Any] = {
                "tenantId": policy.get("tenantId") or props.get("tenantId"),
                "objectId": object_id,
                "permissions": taken,
            }
            if policy.get("applicationId"):
                entry["applicationId"] = policy["applicationId"]
            removals.append(entry)
            for kind, items in taken.items():
                before = list(held.get(kind) or [])
                changes.append(
                    Change(
                        field=f"accessPolicies.{object_id}.{kind}",
                        before=before,
                        after=[p for p in before if p not in items],
                    )
                )
        prior = {
            "accessPolicies": [
                {
                    "objectId": p.get("objectId"),
                    "permissions": {k: list(v or []) for k, v in (p.get("permissions") or {}).items()},
                }
                for p in policies
            ],
            "enableRbacAuthorization": bool(props.get("enableRbacAuthorization")),
        }
        return removals, changes, prior

    @staticmethod
    def _notes(prior: dict[str, Any]) -> list[str]:
        if prior["enableRbacAuthorization"]:
            return [
                "the vault uses the Azure RBAC permission model: Key Vault ignores its access policies, so "
                "removing them would revoke nothing; nothing is changed here. Revoke its data-plane role "
                "assignments with keyvault.revoke_role_assignments"
            ]
        return []

    def plan(self, ctx: StepContext) -> Plan:
        params: RevokeAccessPoliciesParams = ctx.params  # type: ignore[assignment]
        _, changes, prior = self._survey(ctx)
        return Plan(action=self.name, target=params.vault, changes=changes, notes=self._notes(prior))

    def apply(self, ctx: StepContext) -> Result:
        params: RevokeAccessPoliciesParams = ctx.params  # type: ignore[assignment]
        removals, changes, prior = self._survey(ctx)
        if not removals:
            notes = self._notes(prior) or ["no over-broad access policy"]
            return Result(changed=False, prior_state=prior, notes=notes)
        rid = ResourceId.parse(params.vault)
        with azure_errors(permission=ACCESS_POLICIES_WRITE, scope=f"{params.vault}/accessPolicies/remove"):
            ctx.clients.keyvault_mgmt(rid.subscription_id).vaults.update_access_policy(
                rid.resource_group, rid.name, "remove", {"properties": {"accessPolicies": removals}}
            )
        ctx.log.info("key vault access policies revoked", principals=len(removals))
        return Result(changed=True, changes=changes, prior_state=prior, notes=self._notes(prior))

    def verify(self, ctx: StepContext) -> bool:
        removals, _, _ = self._survey(ctx)
        return not removals


# ------------------------------------------------------------------------------------------ rotate key
@contextmanager
def _data_plane_errors(*, permission: str, policy: str, scope: str) -> Iterator[None]:
    """Like ``azure_errors``, but a refusal by the vault's network rules is named as such, not as RBAC, and
    a refusal by its access policies names the access-policy permission to grant (``keys rotate``), since
    on an access-policy vault no role assignment helps."""
    vault = scope.rsplit("/keys/", 1)[0]
    try:
        with azure_errors(permission=permission, scope=scope):
            try:
                yield
            except HttpResponseError as exc:
                inner = getattr(getattr(exc, "error", None), "innererror", None) or {}
                code = inner.get("code") if isinstance(inner, dict) else None
                if exc.status_code == 403 and code in _NETWORK_REFUSALS + _POLICY_REFUSALS:
                    raise _Refusal(code) from None
                raise
    except _Refusal as refusal:
        if refusal.code in _POLICY_REFUSALS:
            raise PermissionDenied(
                f"permission denied: the access policies of {vault} do not give irflow keys {policy} "
                f"({refusal.code}); add an access policy entry for irflow's object id with keys get and "
                "rotate"
            ) from None
        raise NetworkRefused(
            f"network refusal: the firewall of {vault} refuses irflow's network origin ({refusal.code}); "
            "this is not a missing permission. Set IRFLOW_EGRESS_IPS (irflow's public egress IPs) and/or "
            "IRFLOW_SUBNET_ID (the subnet irflow runs in) so that keyvault.isolate_vault keeps that origin "
            "allowed (or add it to allow_ip_rules), or reach the vault through a private endpoint"
        ) from None


class _Refusal(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class RotateKeyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vault: KeyVaultId = Field(description="Resource id of the key vault holding the key.")
    key: str = Field(description="Name of the key to rotate.")
    rotated_since: datetime | None = Field(
        default=None,
        description="A current key version Azure shows as created at or after this time counts as already "
        "rotated. Default: the incident's containment epoch (when irflow opened the incident).",
    )

    @field_validator("key")
    @classmethod
    def _key_name(cls, value: str) -> str:
        if not _KEY_NAME.match(value):
            raise ValueError(f"not a Key Vault key name: {value[:200]!r} (1-127 letters, digits and dashes)")
        return value


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@register
class RotateKey(Action):
    """Rotate a Key Vault key: a new current version, so new wraps and encryptions stop using the old one.

    Idempotent from Azure-side facts: when the key's current version was created at or after
    ``rotated_since`` (by default the incident's containment epoch; Key Vault keeps times to the second) the
    key counts as already rotated, so re-running the step, the playbook or a crashed attempt never rotates
    twice for one incident. Older versions stay enabled (data they wrap stays readable): revoking the
    principals' access is what stops their use. The result names the new version, never key material.
    irflow's identity needs keys get and rotate: on an access-policy vault an access policy entry, on an
    Azure RBAC vault a role such as Key Vault Crypto Officer at the vault or above (Key Vault refuses with
    ForbiddenByPolicy or ForbiddenByRbac; the error names which).

    Example::

        - id: rotate-key
          action: keyvault.rotate_key
          for_each: "{{ inputs.key_vaults }}"
          with: {vault: "{{ item }}", key: phi-records-kek}
          retry: {max_attempts: 5, backoff: exponential}
    """

    name = "keyvault.rotate_key"
    Params = RotateKeyParams
    permissions = (READ, KEYS_READ, KEYS_ROTATE)
    target_param = "vault"

    def _client(self, ctx: StepContext) -> Any:
        params: RotateKeyParams = ctx.params  # type: ignore[assignment]
        uri = _properties(ctx, params.vault).get("vaultUri")
        if not uri:
            raise ResourceMissing(f"not found: a vaultUri on {params.vault}")
        return ctx.clients.keys(uri)

    def _current(self, ctx: StepContext) -> tuple[Any, list[Change], dict[str, Any]]:
        params: RotateKeyParams = ctx.params  # type: ignore[assignment]
        # Azure keeps key times to the second: a version made in the epoch's second counts as rotated.
        since = _utc(params.rotated_since or ctx.reference_time).replace(microsecond=0)
        client = self._client(ctx)
        with _data_plane_errors(
            permission=KEYS_READ, policy="get", scope=f"{params.vault}/keys/{params.key}"
        ):
            key = client.get_key(params.key)
        created = key.properties.created_on
        current = {
            "version": key.properties.version,
            "created": created.isoformat() if created else None,
        }
        changes = []
        if created is None or _utc(created) < since:
            changes.append(Change(field=f"keys.{params.key}", before=current, after="rotate"))
        return client, changes, {"key": params.key, "current": current, "rotated_since": since.isoformat()}

    def plan(self, ctx: StepContext) -> Plan:
        params: RotateKeyParams = ctx.params  # type: ignore[assignment]
        _, changes, prior = self._current(ctx)
        notes = [] if changes else [f"{params.key} already rotated (created {prior['current']['created']})"]
        return Plan(action=self.name, target=params.vault, changes=changes, notes=notes)

    def apply(self, ctx: StepContext) -> Result:
        params: RotateKeyParams = ctx.params  # type: ignore[assignment]
        client, changes, prior = self._current(ctx)
        if not changes:
            return Result(
                changed=False,
                prior_state=prior,
                outputs={"key": params.key, "version": prior["current"]["version"]},
                notes=["key already rotated"],
            )
        with _data_plane_errors(
            permission=KEYS_ROTATE, policy="rotate", scope=f"{params.vault}/keys/{params.key}"
        ):
            rotated = client.rotate_key(params.key)
        ctx.log.info("key vault key rotated", key_name=params.key, version=rotated.properties.version)
        return Result(
            changed=True,
            changes=changes,
            prior_state=prior,
            outputs={"key": params.key, "version": rotated.properties.version, "key_id": rotated.id},
        )

    def verify(self, ctx: StepContext) -> bool:
        _, changes, _ = self._current(ctx)
        return not changes


# ------------------------------------------------------------------------------ enable purge protection
class EnablePurgeProtectionParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vault: KeyVaultId = Field(description="Resource id of the key vault.")


@register
class EnablePurgeProtection(Action):
    """Turn on soft delete and purge protection, so no one can destroy the vault's keys and secrets for good.

    IRREVERSIBLE: Azure never lets purge protection (or soft delete) be switched off again, and the vault's
    soft-delete retention can no longer be changed; a deleted vault, key or secret then stays recoverable and
    unpurgeable for the whole retention period. There is no restore counterpart. The prior settings are
    recorded.

    Example::

        - id: enable-purge-protection
          action: keyvault.enable_purge_protection
          for_each: "{{ inputs.key_vaults }}"
          with: {vault: "{{ item }}"}
    """

    name = "keyvault.enable_purge_protection"
    Params = EnablePurgeProtectionParams
    permissions = (READ, WRITE)
    target_param = "vault"

    NOTE = "irreversible: Azure never allows purge protection or soft delete to be turned off again"

    def _diff(self, ctx: StepContext) -> tuple[list[Change], dict[str, Any]]:
        params: EnablePurgeProtectionParams = ctx.params  # type: ignore[assignment]
        props = _properties(ctx, params.vault)
        current = {
            "enableSoftDelete": props.get("enableSoftDelete"),
            "enablePurgeProtection": props.get("enablePurgeProtection"),
            "softDeleteRetentionInDays": props.get("softDeleteRetentionInDays"),
        }
        changes = [
            Change(field=f"properties.{key}", before=current[key], after=True)
            for key in ("enableSoftDelete", "enablePurgeProtection")
            if current[key] is not True
        ]
        return changes, current

    def plan(self, ctx: StepContext) -> Plan:
        params: EnablePurgeProtectionParams = ctx.params  # type: ignore[assignment]
        changes, _ = self._diff(ctx)
        return Plan(
            action=self.name, target=params.vault, changes=changes, notes=[self.NOTE] if changes else []
        )

    def apply(self, ctx: StepContext) -> Result:
        params: EnablePurgeProtectionParams = ctx.params  # type: ignore[assignment]
        changes, current = self._diff(ctx)
        if not changes:
            return Result(changed=False, prior_state=current, notes=["purge protection already on"])
        _patch(ctx, params.vault, {c.field.removeprefix("properties."): True for c in changes})
        ctx.log.info("key vault purge protection enabled", changes=len(changes))
        return Result(changed=True, changes=changes, prior_state=current, notes=[self.NOTE])

    def verify(self, ctx: StepContext) -> bool:
        changes, _ = self._diff(ctx)
        return not changes


# ----------------------------------------------------------------------------- restore access policies
class RecordedAccessPolicy(BaseModel):
    """One access policy entry as ``keyvault.revoke_access_policies`` records it."""

    model_config = ConfigDict(extra="ignore")

    objectId: DirectoryObjectId  # noqa: N815 (ARM names)
    permissions: dict[Literal["keys", "secrets", "certificates", "storage"], list[str]] = Field(
        default_factory=dict
    )


class AccessPoliciesState(BaseModel):
    """What ``keyvault.revoke_access_policies`` records: every entry's object id and permissions before."""

    model_config = ConfigDict(extra="ignore")

    accessPolicies: list[RecordedAccessPolicy]  # noqa: N815 (ARM names)
    enableRbacAuthorization: bool = False  # noqa: N815


class RestoreAccessPoliciesParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vault: KeyVaultId = Field(description="Resource id of the key vault.")
    prior: AccessPoliciesState = Field(
        description="The state before containment: the prior_state recorded by "
        "keyvault.revoke_access_policies "
        "(in a playbook: {{ incident.prior_state['keyvault.revoke_access_policies'][item] }})."
    )


@register
class RestoreAccessPolicies(Action):
    """Undo ``keyvault.revoke_access_policies``: give back the permissions each principal held before.

    For every recorded entry, the key, secret and certificate permissions it held that the vault no longer
    shows are added back with one ``accessPolicies/add`` call (Azure merges them into the principal's entry,
    creating it when containment removed it). Permissions granted since are left alone, nothing is taken
    away, and nothing is written when every recorded permission is present. An entry whose recorded
    principal was a compound identity (object id plus application id) comes back as the object id alone.

    Example::

        - id: restore-access-policies
          action: keyvault.restore_access_policies
          for_each: "{{ inputs.key_vaults }}"
          with:
            vault: "{{ item }}"
            prior: "{{ incident.prior_state['keyvault.revoke_access_policies'][item] }}"
    """

    name = "keyvault.restore_access_policies"
    Params = RestoreAccessPoliciesParams
    permissions = (READ, ACCESS_POLICIES_WRITE)
    target_param = "vault"

    def _survey(self, ctx: StepContext) -> tuple[list[dict[str, Any]], list[Change], dict[str, Any]]:
        """The ``add`` entries to send, the changes they make and the vault's current policies."""
        params: RestoreAccessPoliciesParams = ctx.params  # type: ignore[assignment]
        props = _properties(ctx, params.vault)
        policies = props.get("accessPolicies") or []
        additions: list[dict[str, Any]] = []
        changes: list[Change] = []
        for recorded in params.prior.accessPolicies:
            same = [p for p in policies if str(p.get("objectId", "")).lower() == recorded.objectId.lower()]
            current = next((p for p in same if not p.get("applicationId")), same[0] if same else None)
            held = (current or {}).get("permissions") or {}
            missing: dict[str, list[str]] = {}
            for kind, items in recorded.permissions.items():
                have = {p.lower() for p in held.get(kind) or []}
                if "all" in have:
                    continue
                lacking = [p for p in items if p.lower() not in have]
                if lacking:
                    missing[kind] = lacking
            if not missing:
                continue
            additions.append(
                {
                    "tenantId": (current or {}).get("tenantId") or props.get("tenantId"),
                    "objectId": recorded.objectId,
                    "permissions": missing,
                }
            )
            for kind, items in missing.items():
                before = list(held.get(kind) or [])
                changes.append(
                    Change(
                        field=f"accessPolicies.{recorded.objectId}.{kind}",
                        before=before,
                        after=before + items,
                    )
                )
        current_state = {
            "accessPolicies": [
                {
                    "objectId": p.get("objectId"),
                    "permissions": {k: list(v or []) for k, v in (p.get("permissions") or {}).items()},
                }
                for p in policies
            ],
            "enableRbacAuthorization": bool(props.get("enableRbacAuthorization")),
        }
        return additions, changes, current_state

    def plan(self, ctx: StepContext) -> Plan:
        params: RestoreAccessPoliciesParams = ctx.params  # type: ignore[assignment]
        _, changes, current = self._survey(ctx)
        return Plan(
            action=self.name, target=params.vault, changes=changes, notes=RevokeAccessPolicies._notes(current)
        )

    def apply(self, ctx: StepContext) -> Result:
        params: RestoreAccessPoliciesParams = ctx.params  # type: ignore[assignment]
        additions, changes, current = self._survey(ctx)
        if not additions:
            return Result(changed=False, prior_state=current, notes=["access policies already restored"])
        rid = ResourceId.parse(params.vault)
        with azure_errors(permission=ACCESS_POLICIES_WRITE, scope=f"{params.vault}/accessPolicies/add"):
            ctx.clients.keyvault_mgmt(rid.subscription_id).vaults.update_access_policy(
                rid.resource_group, rid.name, "add", {"properties": {"accessPolicies": additions}}
            )
        ctx.log.info("key vault access policies restored", principals=len(additions))
        return Result(
            changed=True, changes=changes, prior_state=current, notes=RevokeAccessPolicies._notes(current)
        )

    def verify(self, ctx: StepContext) -> bool:
        additions, _, _ = self._survey(ctx)
        return not additions
