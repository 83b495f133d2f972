"""Scenario files: the starting state of a simulated tenant, in YAML.

A scenario names subscriptions, their resource groups and storage accounts. Times are relative to the
tenant clock (``created_days_ago``, ``keys_created_days_ago``) or absolute (``created_at``,
``keys_created_at``); key values are always random and never written in a scenario. Example::

    tenant_id: 3b5c2d1e-8a4f-4c6b-9d2e-7f1a0b3c4d5e
    page_size: 100                     # optional: list page size (nextLink beyond it)
    subscriptions:
      - id: 9b2f6c1d-4e8a-4f3b-a1c7-2d5e8f0a6b3c
        display_name: PHI Production
        resource_groups:
          - name: rg-phi-prod
            location: eastus
            storage_accounts:
              - name: phipatientexports
                sku: Standard_GRS
                tags: {data-classification: phi}
                created_days_ago: 540
                keys_created_days_ago: 63          # or {key1: 63, key2: 120}
                properties:                        # ARM properties over Azure's defaults
                  publicNetworkAccess: Enabled
                  allowBlobPublicAccess: true
                  networkAcls: {defaultAction: Allow, bypass: AzureServices}
                blob_service:                      # blobServices/default properties over Azure's defaults
                  deleteRetentionPolicy: {enabled: true, days: 7}
                  isVersioningEnabled: false
                containers:
                  - name: patient-exports
                    public_access: Container       # None (default), Blob or Container
                    metadata: {owner: analytics}
                    legal_hold_tags: [case2026]    # optional
                    immutability_days: 30          # optional: an unlocked time-based retention policy
                    blobs: 1840                    # optional: how many blobs it holds (a count only), or
                    # blobs:                       # the blobs themselves (data plane: list, get, copy …)
                    #   - {name: export-0001.csv, content: "SYNTHETIC,ROW\n", content_type: text/csv}
                    #   - {name: export-0002.bin, size: 2048}    # deterministic synthetic bytes
                    stored_access_policies:        # optional, at most 5 (Get / Set Container ACL)
                      - {id: partner-export, permission: rl, start: 2025-06-01T00:00:00Z,
                         expiry: 2031-01-01T00:00:00Z}
            key_vaults:
              - name: kv-phi-prod
                properties: {enableRbacAuthorization: false,   # access policies (default: Azure RBAC)
                             publicNetworkAccess: Enabled, enablePurgeProtection: false}
                access_policies:                   # tenantId defaults to the scenario's tenant
                  - objectId: 6f1c2b3a-0d4e-4f5a-8b9c-1d2e3f4a5b6c
                    permissions: {keys: [get, decrypt, unwrapKey], secrets: [get]}
                keys:                              # data plane: RSA keys, one version per age
                  - {name: phi-records-kek, kty: RSA, versions_days_ago: [400, 120]}
    relax: [activity_log_delay]            # optional: rules relaxed, by name (irflow.sim.strictness)
    activity_log_delay_s: 300              # optional: Activity Log ingestion delay (tenant clock seconds)
    faults:                                # optional: the knobs of ``tenant.fault_knobs()``
      latency_ms: 0
      error_rate: 0.0
      timeout_rate: 0.0                    # share of calls that hang timeout_s, then answer nothing
      timeout_s: 30
      reset_rate: 0.0                      # share of calls answered with a TCP reset
      burst_rate: 0.0                      # share of ARM calls opening a 429 burst on their subscription
      burst_retry_after: 2                 # the burst's length: the Retry-After (s) it announces
      lro: {duration_s: 20, retry_after: 1, failure_rate: 0.1}   # also failure: {code, message}
      throttle: true
      throttle_limits:                     # optional: ARM's limits unless given (burst / tokens per second)
        writes: {burst: 200, per_second: 10}
    principal_id: 5d7e9f1a-2b3c-4d5e-8f6a-7b8c9d0e1f2a   # optional: the token holder's object id (irflow)
    role_assignments:                      # optional: built-in roles at scopes (default principal: irflow)
      - {role: Key Vault Crypto Officer, scope: /subscriptions/9b2f6c1d-4e8a-4f3b-a1c7-2d5e8f0a6b3c}
      - {role: Key Vault Secrets User, scope: /subscriptions/…/vaults/kv-phi-prod,
         principal_id: 6f1c2b3a-0d4e-4f5a-8b9c-1d2e3f4a5b6c, principal_type: Group}
    rbac:                                  # optional: permissions the principal lacks (``tenant.deny``)
      deny:
        - permission: Microsoft.Storage/storageAccounts/regeneratekey/action
          scope: /subscriptions/9b2f6c1d-4e8a-4f3b-a1c7-2d5e8f0a6b3c/resourceGroups/rg-phi-prod
    caller:                                # optional: data-plane callers' origin (irflow.sim.firewall)
      ip: 198.51.100.7                     # as storage / Key Vault ipRules see it
      subnet_id: /subscriptions/…/virtualNetworks/vnet-ops/subnets/irflow   # as virtualNetworkRules see it

Packaged scenarios live in ``irflow/sim/scenarios/`` and load by name (``load_scenario("demo")``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from irflow.sim.errors import ArmError
from irflow.sim.models import FaultSettings, Tenant
from irflow.sim.monitor import scenario as monitoring
from irflow.sim.network import scenario as network
from irflow.sim.network.lro import Lro
from irflow.sim.throttle import BucketLimit, ThrottleLimits


def _packaged_dir() -> Traversable:
    """``irflow/sim/scenarios/``: a plain data directory shipped inside the package."""
    return resources.files("irflow.sim").joinpath("scenarios")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class StoredAccessPolicySpec(_Strict):
    id: str = Field(min_length=1, max_length=64)
    permission: str | None = None
    start: datetime | None = None
    expiry: datetime | None = None


MAX_SCENARIO_BLOB_BYTES = 4 * 1024 * 1024


class BlobSpec(_Strict):
    """A block blob: ``content`` (text) or ``size`` (deterministic synthetic bytes), never real data."""

    name: str = Field(min_length=1, max_length=1024)
    content: str | None = None
    size: int | None = Field(default=None, ge=0, le=MAX_SCENARIO_BLOB_BYTES)
    content_type: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _content_or_size(self) -> BlobSpec:
        if (self.content is None) == (self.size is None):
            raise ValueError(f"blob {self.name}: give content or size, not both or neither")
        return self


class ContainerSpec(_Strict):
    name: str = Field(min_length=3, max_length=63)  # checked as Azure does when the container is added
    public_access: str = Field(default="None", alias="publicAccess")
    metadata: dict[str, str] = Field(default_factory=dict)
    legal_hold_tags: list[str] = Field(default_factory=list)
    immutability_days: int | None = Field(default=None, ge=1)
    blobs: int | list[BlobSpec] = Field(default=0)  # a count, or the blobs themselves

    @model_validator(mode="after")
    def _blobs(self) -> ContainerSpec:
        if isinstance(self.blobs, int) and self.blobs < 0:
            raise ValueError("blobs must be >= 0")
        if isinstance(self.blobs, list) and len({b.name for b in self.blobs}) != len(self.blobs):
            raise ValueError(f"container {self.name}: blob names must be unique")
        return self

    @property
    def blob_count(self) -> int:
        return self.blobs if isinstance(self.blobs, int) else len(self.blobs)

    stored_access_policies: list[StoredAccessPolicySpec] = Field(default_factory=list, max_length=5)


class StorageAccountSpec(_Strict):
    name: str = Field(pattern=r"^[a-z0-9]{3,24}$")
    location: str | None = None
    kind: str = "StorageV2"
    sku: str = "Standard_LRS"
    tags: dict[str, str] = Field(default_factory=dict)
    properties: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    created_days_ago: float | None = Field(default=None, ge=0)
    keys_created_at: datetime | dict[str, datetime] | None = None
    keys_created_days_ago: float | dict[str, float] | None = None
    blob_service: dict[str, Any] = Field(default_factory=dict)
    containers: list[ContainerSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_way_to_say_when(self) -> StorageAccountSpec:
        if self.created_at is not None and self.created_days_ago is not None:
            raise ValueError("give created_at or created_days_ago, not both")
        if self.keys_created_at is not None and self.keys_created_days_ago is not None:
            raise ValueError("give keys_created_at or keys_created_days_ago, not both")
        for field in ("keys_created_at", "keys_created_days_ago"):
            value = getattr(self, field)
            if isinstance(value, dict) and not set(value) <= {"key1", "key2"}:
                raise ValueError(f"{field} may only name key1 and key2")
        return self


class VaultKeySpec(_Strict):
    name: str = Field(pattern=r"^[a-zA-Z0-9-]{1,127}$")
    kty: str = "RSA"
    key_size: int = 2048
    versions_days_ago: list[float] = Field(default_factory=lambda: [0.0], min_length=1)


class KeyVaultSpec(_Strict):
    name: str = Field(pattern=r"^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$")
    location: str | None = None
    sku: str = "standard"
    tags: dict[str, str] = Field(default_factory=dict)
    properties: dict[str, Any] = Field(default_factory=dict)
    access_policies: list[dict[str, Any]] = Field(default_factory=list)
    created_days_ago: float | None = Field(default=None, ge=0)
    keys: list[VaultKeySpec] = Field(default_factory=list)  # data plane: keys with their versions' ages


class ResourceGroupSpec(_Strict):
    name: str = Field(min_length=1, max_length=90)
    location: str = "eastus"
    tags: dict[str, str] = Field(default_factory=dict)
    storage_accounts: list[StorageAccountSpec] = Field(default_factory=list)
    key_vaults: list[KeyVaultSpec] = Field(default_factory=list)
    network_security_groups: list[network.NetworkSecurityGroupSpec] = Field(default_factory=list)
    virtual_networks: list[network.VirtualNetworkSpec] = Field(default_factory=list)


class SubscriptionSpec(_Strict):
    id: str = Field(pattern=r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
    display_name: str | None = None
    resource_groups: list[ResourceGroupSpec] = Field(default_factory=list)


class BucketSpec(_Strict):
    burst: int = Field(ge=1)
    per_second: float = Field(gt=0)


class ThrottleLimitsSpec(_Strict):
    reads: BucketSpec | None = None
    writes: BucketSpec | None = None
    deletes: BucketSpec | None = None

    def limits(self) -> ThrottleLimits:
        limits = ThrottleLimits()
        for kind in ("reads", "writes", "deletes"):
            spec = getattr(self, kind)
            if spec is not None:
                setattr(limits, kind, BucketLimit(spec.burst, spec.per_second))
        return limits


class LroFailureSpec(_Strict):
    code: str = Field(min_length=1)
    message: str | None = None


class LroSpec(_Strict):
    """``tenant.lro``'s knobs (:mod:`irflow.sim.network.lro`)."""

    duration_s: float = Field(default=0.0, ge=0)
    retry_after: int = Field(default=1, ge=0)
    failure_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    failure: LroFailureSpec | None = None

    def apply(self, lro: Lro) -> None:
        lro.duration_s, lro.retry_after = self.duration_s, self.retry_after
        lro.failure_rate = self.failure_rate
        if self.failure is None:
            lro.clear_failure()
        else:
            lro.fail_with(self.failure.code, self.failure.message)


class FaultsSpec(_Strict):
    latency_ms: int = Field(default=0, ge=0)
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    throttle: bool = False
    throttle_limits: ThrottleLimitsSpec = Field(default_factory=ThrottleLimitsSpec)
    timeout_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    timeout_s: float = Field(default=30.0, ge=0)
    reset_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    burst_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    burst_retry_after: int = Field(default=2, ge=1, le=3600)
    lro: LroSpec = Field(default_factory=LroSpec)

    def settings(self) -> FaultSettings:
        return FaultSettings(
            latency_ms=self.latency_ms,
            error_rate=self.error_rate,
            throttle=self.throttle,
            throttle_limits=self.throttle_limits.limits(),
            timeout_rate=self.timeout_rate,
            timeout_s=self.timeout_s,
            reset_rate=self.reset_rate,
            burst_rate=self.burst_rate,
            burst_retry_after=self.burst_retry_after,
        )


# Named sets of fault knobs (``irflow sim serve --fault-profile NAME``), each a partial ``faults:`` section.
FAULT_PROFILES: dict[str, dict[str, Any]] = {
    # a loaded Azure: one call in ten answers 500, and now and then a subscription throttles for a second
    "flaky": {"error_rate": 0.1, "burst_rate": 0.03, "burst_retry_after": 1},
    # a bad network: half the calls hang 2 s and then lose their connection
    "timeouts": {"timeout_rate": 0.5, "timeout_s": 2.0},
    # connections reset at once, one call in five
    "resets": {"reset_rate": 0.2},
}


class DenyRuleSpec(_Strict):
    permission: str = Field(min_length=1)
    scope: str = Field(default="/", pattern=r"^/")


class RbacSpec(_Strict):
    deny: list[DenyRuleSpec] = Field(default_factory=list)


class RoleAssignmentSpec(_Strict):
    """A role assignment (``Microsoft.Authorization/roleAssignments``): a built-in role by name or id, at a
    scope, to a principal (default: the tenant's own principal, the holder of its token)."""

    role: str = Field(min_length=1)
    scope: str = Field(pattern=r"^/")
    principal_id: str | None = Field(
        default=None, pattern=r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"
    )
    principal_type: str = "ServicePrincipal"


class CallerSpec(_Strict):
    """Where data-plane callers come from (irflow.sim.firewall): irflow's egress IP and/or subnet."""

    ip: str | None = None
    subnet_id: str | None = None


class ScenarioSpec(_Strict):
    name: str | None = None
    description: str | None = None
    tenant_id: str | None = None
    # the object id of the tenant's principal (the token holder: irflow); access policies may name it
    principal_id: str | None = Field(
        default=None, pattern=r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"
    )
    role_assignments: list[RoleAssignmentSpec] = Field(default_factory=list)
    page_size: int | None = Field(default=None, ge=1)
    faults: FaultsSpec | None = None
    rbac: RbacSpec | None = None
    caller: CallerSpec | None = None
    subscriptions: list[SubscriptionSpec] = Field(default_factory=list)
    # Log Analytics, Microsoft Graph, diagnostic settings: see irflow.sim.monitor.scenario
    workspaces: list[monitoring.WorkspaceSpec] = Field(default_factory=list)
    graph: monitoring.GraphSpec | None = None
    diagnostic_settings: list[monitoring.DiagnosticSettingSpec] = Field(default_factory=list)
    # strictness rules this scenario relaxes, each by name (irflow.sim.strictness); none by default
    relax: list[str] = Field(default_factory=list)
    activity_log_delay_s: float | None = Field(
        default=None, ge=0, description="Activity Log ingestion delay."
    )


def packaged_scenarios() -> list[str]:
    """Names of the scenarios shipped in ``irflow/sim/scenarios/``."""
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in _packaged_dir().iterdir()
        if entry.name.endswith(".yaml")
    )


def read_scenario(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """The raw scenario document: a dict as given, a YAML file, or a packaged scenario by name."""
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        origin = str(path)
    else:
        name = str(source).removesuffix(".yaml")
        if name not in packaged_scenarios():
            raise FileNotFoundError(
                f"no scenario file {source!r} and no packaged scenario of that name "
                f"(packaged: {', '.join(packaged_scenarios())})"
            )
        text = _packaged_dir().joinpath(f"{name}.yaml").read_text(encoding="utf-8")
        origin = f"packaged scenario {name!r}"
    document = yaml.safe_load(text)
    if not isinstance(document, dict):
        raise ValueError(f"{origin}: a scenario must be a YAML mapping")
    return document


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _when(now: datetime, at: datetime | None, days_ago: float | None) -> datetime | None:
    if at is not None:
        return _aware(at)
    if days_ago is not None:
        return now - timedelta(days=days_ago)
    return None


def _key_times(now: datetime, spec: StorageAccountSpec) -> datetime | dict[str, datetime] | None:
    at, days = spec.keys_created_at, spec.keys_created_days_ago
    if isinstance(at, dict):
        return {k: _aware(v) for k, v in at.items()}
    if isinstance(days, dict):
        return {k: now - timedelta(days=v) for k, v in days.items()}
    return _when(now, at, days)


def load_scenario(source: str | Path | Mapping[str, Any], **tenant_kwargs: Any) -> Tenant:
    """A new :class:`Tenant` in the scenario's state (which also becomes its reset baseline).

    ``source``: a packaged name (``"demo"``), a YAML path, or an already-parsed dict. Extra keyword
    arguments go to :class:`Tenant` (``token``, ``clock``, ``faults``, ``seed``, ``page_size``); they win
    over the scenario's own ``page_size``, ``tenant_id`` and ``faults`` (a ``faults`` argument replaces the
    whole section, its ``lro`` knobs included).
    Raises ``ValueError`` naming the problem when the scenario is invalid.
    """
    document = read_scenario(source)
    try:
        spec = ScenarioSpec.model_validate(document)
    except ValidationError as exc:
        raise ValueError(f"invalid scenario: {exc}") from exc
    if spec.page_size is not None:
        tenant_kwargs.setdefault("page_size", spec.page_size)
    if spec.tenant_id is not None:
        tenant_kwargs.setdefault("tenant_id", spec.tenant_id)
    if spec.principal_id is not None:
        tenant_kwargs.setdefault("principal_id", spec.principal_id)
    scenario_faults = spec.faults if "faults" not in tenant_kwargs else None
    if scenario_faults is not None:
        tenant_kwargs["faults"] = scenario_faults.settings()
    tenant = Tenant(**tenant_kwargs)
    if scenario_faults is not None:
        scenario_faults.lro.apply(tenant.lro)
    now = tenant.now()
    for subscription in spec.subscriptions:
        tenant.add_subscription(subscription.id, subscription.display_name)
        for group in subscription.resource_groups:
            tenant.add_resource_group(subscription.id, group.name, group.location, group.tags)
            for account in group.storage_accounts:
                try:
                    tenant.add_storage_account(
                        subscription.id,
                        group.name,
                        account.name,
                        location=account.location,
                        kind=account.kind,
                        sku=account.sku,
                        tags=account.tags,
                        properties=account.properties,
                        created_at=_when(now, account.created_at, account.created_days_ago),
                        keys_created_at=_key_times(now, account),
                        blob_service_properties=account.blob_service,
                    )
                except ArmError as exc:
                    raise ValueError(
                        f"invalid scenario: storage account {account.name}: {exc.message}"
                    ) from exc
                for container in account.containers:
                    try:
                        tenant.add_container(
                            account.name,
                            container.name,
                            public_access=container.public_access,
                            metadata=container.metadata,
                            legal_hold_tags=container.legal_hold_tags,
                            immutability_days=container.immutability_days,
                            blob_count=container.blob_count,
                            stored_access_policies=[p.model_dump() for p in container.stored_access_policies],
                            created_at=_when(now, account.created_at, account.created_days_ago),
                        )
                    except (ArmError, ValueError) as exc:
                        reason = exc.message if isinstance(exc, ArmError) else str(exc)
                        raise ValueError(
                            f"invalid scenario: storage account {account.name}, container {container.name}: "
                            f"{reason}"
                        ) from exc
                    for blob in container.blobs if isinstance(container.blobs, list) else []:
                        try:
                            tenant.add_blob(
                                account.name,
                                container.name,
                                blob.name,
                                blob.content,
                                size=blob.size,
                                content_type=blob.content_type,
                                metadata=blob.metadata,
                                created_at=_when(now, account.created_at, account.created_days_ago),
                            )
                        except ValueError as exc:
                            raise ValueError(
                                f"invalid scenario: storage account {account.name}, container "
                                f"{container.name}: {exc}"
                            ) from exc
            for vault in group.key_vaults:
                try:
                    tenant.add_key_vault(
                        subscription.id,
                        group.name,
                        vault.name,
                        location=vault.location,
                        tags=vault.tags,
                        sku=vault.sku,
                        properties=vault.properties,
                        access_policies=vault.access_policies,
                        created_at=_when(now, None, vault.created_days_ago),
                    )
                    for key in vault.keys:
                        tenant.add_vault_key(
                            vault.name,
                            key.name,
                            kty=key.kty,
                            key_size=key.key_size,
                            versions_created_at=[now - timedelta(days=d) for d in key.versions_days_ago],
                        )
                except (ArmError, ValueError) as exc:
                    reason = exc.message if isinstance(exc, ArmError) else str(exc)
                    raise ValueError(f"invalid scenario: key vault {vault.name}: {reason}") from exc
    for subscription in spec.subscriptions:  # networks (irflow.sim.network), peerings once every VNet exists
        try:
            for group in subscription.resource_groups:
                network.load_group(tenant, subscription.id, group)
            network.load_peerings(tenant, subscription.id, subscription.resource_groups)
        except (ArmError, ValueError) as exc:
            reason = exc.message if isinstance(exc, ArmError) else str(exc)
            raise ValueError(f"invalid scenario: network: {reason}") from exc
    monitoring.apply(tenant, now, spec.workspaces, spec.graph, spec.diagnostic_settings)
    try:
        tenant.relax(*spec.relax)
    except ValueError as exc:
        raise ValueError(f"invalid scenario: relax: {exc}") from exc
    if spec.activity_log_delay_s is not None:
        tenant.activity_log_delay = timedelta(seconds=spec.activity_log_delay_s)
    if spec.rbac is not None:
        for rule in spec.rbac.deny:
            tenant.deny(rule.permission, rule.scope)
    for assignment in spec.role_assignments:
        try:
            tenant.assign_role(
                assignment.role, assignment.scope, assignment.principal_id, assignment.principal_type
            )
        except (ArmError, ValueError) as exc:
            reason = exc.message if isinstance(exc, ArmError) else str(exc)
            raise ValueError(
                f"invalid scenario: role assignment {assignment.role} at {assignment.scope}: {reason}"
            ) from exc
    if spec.caller is not None:
        try:
            tenant.set_caller_origin(spec.caller.ip, spec.caller.subnet_id)
        except ValueError as exc:
            raise ValueError(f"invalid scenario: caller: {exc}") from exc
    tenant.set_baseline()
    return tenant
