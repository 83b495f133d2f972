"""The simulated tenant's state: subscriptions → resource groups → resources, in plain classes.

One re-entrant lock (``Tenant.lock``) guards the whole model; the router holds it while a handler runs,
and every public method here takes it too, so the Python API and both mounts can be used from many threads.
ARM names are case-insensitive and case-preserving: lookups go through lower-cased keys.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from irflow import clock as irflow_clock
from irflow.sim import arm, errors
from irflow.sim.authorization.models import RoleAssignment, RoleAssignments
from irflow.sim.firewall import CallerOrigin
from irflow.sim.graph.models import Directory
from irflow.sim.hooks import WriteHook
from irflow.sim.journal import Journal
from irflow.sim.keyvault.models import KEY_VAULT_TYPE, KeyVault
from irflow.sim.loganalytics.models import LogAnalytics
from irflow.sim.monitor.diagnostics import DiagnosticSettings
from irflow.sim.network.lro import Lro
from irflow.sim.network.models import NSG_TYPE, VNET_TYPE, NetworkSecurityGroup, VirtualNetwork
from irflow.sim.rbac import DenyRule, Rbac
from irflow.sim.storage.blob import Blob, BlobContainer, StoredAccessPolicy
from irflow.sim.storage.models import STORAGE_ACCOUNT_TYPE, StorageAccount
from irflow.sim.throttle import BucketLimit, ThrottleLimits, Throttler


@dataclass
class FaultSettings:
    """Knobs that make the tenant misbehave like a loaded Azure.

    ``latency_ms``: added to every Azure call. ``error_rate``: probability (0..1) that an Azure call answers
    500 ``InternalServerError`` without touching state. ``throttle``: enforce ARM's token buckets per
    subscription and principal (429 ``SubscriptionRequestsThrottled`` with ``Retry-After``) with the sizes and
    refill rates of ``throttle_limits`` (ARM's published ones unless changed). The remaining-quota headers
    are sent whether or not ``throttle`` is on. ``timeout_rate``: probability (0..1) that a call (any Azure
    path, ARM or data plane; never ``/_sim/``) hangs ``timeout_s`` seconds on the tenant's ``sleep`` and then
    answers nothing, without touching state (:class:`SimTimeout`: the HTTPS server closes the connection, the
    ``responses`` mount raises ``requests.exceptions.ReadTimeout``); the journal records it with status 0.
    ``reset_rate``: probability (0..1) that a call (same paths as the timeout knob) is read and then answered
    with a TCP reset, at once and without touching state (:class:`SimConnectionReset`); journal status 0.
    ``burst_rate``: probability (0..1) that an ARM call on a subscription opens a 429 burst of
    ``burst_retry_after`` seconds (tenant clock) on that subscription: that call and every call on the
    subscription until the window closes answer 429 ``TooManyRequests`` with ``Retry-After`` (the seconds
    left), without touching state. ARM documents that "the response includes a Retry-After value, which
    specifies the number of seconds your application should wait (or sleep) before sending the next request.
    If you send a request before the retry value has elapsed, your request isn't processed and a new retry
    value is returned", and that resource providers also answer 429 for temporary conditions
    (https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling).
    The LRO knobs live on ``tenant.lro``; :meth:`Tenant.configure_faults` sets both from one dict.
    Every draw comes from the tenant's seeded ``random`` and only when its knob is set, so a seed replays.
    """

    latency_ms: int = 0
    error_rate: float = 0.0
    throttle: bool = False
    throttle_limits: ThrottleLimits = field(default_factory=ThrottleLimits)
    timeout_rate: float = 0.0
    timeout_s: float = 30.0
    reset_rate: float = 0.0
    burst_rate: float = 0.0
    burst_retry_after: int = 2

    def __post_init__(self) -> None:
        if self.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError("error_rate must be between 0 and 1")
        if not 0.0 <= self.timeout_rate <= 1.0:
            raise ValueError("timeout_rate must be between 0 and 1")
        if self.timeout_s < 0:
            raise ValueError("timeout_s must be >= 0")
        if not 0.0 <= self.reset_rate <= 1.0:
            raise ValueError("reset_rate must be between 0 and 1")
        if not 0.0 <= self.burst_rate <= 1.0:
            raise ValueError("burst_rate must be between 0 and 1")
        if self.burst_retry_after < 1:
            raise ValueError("burst_retry_after must be >= 1 (seconds)")

    def draw_timeout(self, rng: random.Random) -> bool:
        """Whether this call times out (draws only when ``timeout_rate`` is set, so seeded drills without
        the knob see the same error-rate draws as before)."""
        return bool(self.timeout_rate) and rng.random() < self.timeout_rate

    def draw_reset(self, rng: random.Random) -> bool:
        """Whether this call's connection is reset (draws only when ``reset_rate`` is set)."""
        return bool(self.reset_rate) and rng.random() < self.reset_rate

    def draw_burst(self, rng: random.Random) -> bool:
        """Whether this call opens a 429 burst (draws only when ``burst_rate`` is set)."""
        return bool(self.burst_rate) and rng.random() < self.burst_rate

    def set_limit(self, kind: str, burst: int, per_second: float) -> None:
        """Change one bucket (``"reads"``, ``"writes"``, ``"deletes"``); takes effect on the next request."""
        if kind not in ("reads", "writes", "deletes"):
            raise ValueError(f"unknown throttle kind {kind!r}")
        setattr(self.throttle_limits, kind, BucketLimit(burst, per_second))

    def to_dict(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "error_rate": self.error_rate,
            "throttle": self.throttle,
            "throttle_limits": self.throttle_limits.to_dict(),
            "timeout_rate": self.timeout_rate,
            "timeout_s": self.timeout_s,
            "reset_rate": self.reset_rate,
            "burst_rate": self.burst_rate,
            "burst_retry_after": self.burst_retry_after,
        }


class SimTimeout(requests.exceptions.ReadTimeout, TimeoutError):
    """A call the timeout knob swallowed. Raised out of the router: the ``responses`` mount hands it to the
    caller as the ``requests.exceptions.ReadTimeout`` it is; the HTTPS server's request handler treats it as
    the ``TimeoutError`` it also is and closes the connection without an answer."""


class SimConnectionReset(requests.exceptions.ConnectionError, ConnectionResetError):
    """A call the reset knob refused. The ``responses`` mount hands it to the caller as the
    ``requests.exceptions.ConnectionError`` it is; the HTTPS server resets the TCP connection (RST)."""


_FAULT_FIELDS = (
    "latency_ms",
    "error_rate",
    "throttle",
    "throttle_limits",
    "timeout_rate",
    "timeout_s",
    "reset_rate",
    "burst_rate",
    "burst_retry_after",
)


def _merge(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``changes`` over ``base``, nested dicts merged key by key (a JSON merge, without deletions)."""
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass
class ResourceGroup:
    subscription_id: str
    name: str
    location: str
    tags: dict[str, str] = field(default_factory=dict)
    storage_accounts: dict[str, StorageAccount] = field(default_factory=dict)  # lower-cased name → account
    key_vaults: dict[str, KeyVault] = field(default_factory=dict)  # lower-cased name → vault
    network_security_groups: dict[str, NetworkSecurityGroup] = field(default_factory=dict)  # lower → NSG
    virtual_networks: dict[str, VirtualNetwork] = field(default_factory=dict)  # lower-cased name → VNet

    @property
    def id(self) -> str:
        return arm.resource_group_id(self.subscription_id, self.name)


@dataclass
class Subscription:
    subscription_id: str
    display_name: str
    resource_groups: dict[str, ResourceGroup] = field(default_factory=dict)  # lower-cased name → group


def access_token(tenant_id: str, object_id: str) -> str:
    """The tenant's bearer token, shaped as an Entra ID access token (a JWT) so that a client can read its
    ``oid`` claim as it does from a real one (:mod:`irflow.azure.principal`). Unsigned material: the simulator
    compares the whole token, it never validates a signature."""

    def part(value: dict[str, Any]) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode("utf-8")
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    header = part({"typ": "JWT", "alg": "none"})
    claims = part({"oid": object_id, "tid": tenant_id, "iss": f"https://sts.windows.net/{tenant_id}/"})
    return f"{header}.{claims}.{secrets.token_urlsafe(32)}"


def new_account_key() -> str:
    """A storage account key as Azure issues them: 64 random bytes, base64 (88 characters)."""
    return base64.b64encode(secrets.token_bytes(64)).decode("ascii")


class Tenant:
    """A simulated Azure tenant.

    ``token`` is the one bearer token its endpoints accept. ``journal`` records every request.
    ``page_size`` bounds list answers (the rest follows through ``nextLink``). ``faults`` holds the knobs.
    ``rbac`` holds deny rules (:meth:`deny`): permissions the principal lacks, answered 403.
    """

    def __init__(
        self,
        *,
        tenant_id: str | None = None,
        token: str | None = None,
        clock: Callable[[], datetime] | None = None,
        page_size: int = 100,
        faults: FaultSettings | None = None,
        seed: int | None = None,
        principal_id: str | None = None,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        self.tenant_id = tenant_id or str(uuid.uuid4())
        self._principal_id = (
            principal_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"irflow-sim:{self.tenant_id}:principal"))
        ).lower()
        self.token = token or access_token(self.tenant_id, self._principal_id)
        self.clock: Callable[[], datetime] = clock or irflow_clock.now
        self.page_size = page_size
        self.faults = faults or FaultSettings()
        self.random = random.Random(seed)  # fault injection draws; seed it for reproducible drills
        self.sleep: Callable[[float], None] = time.sleep  # the latency knob's wait; tests replace it
        self.lock = threading.RLock()
        self._subscriptions: dict[str, Subscription] = {}
        self._issued_secrets: set[str] = set()
        self.journal = Journal(clock=self.now, secrets=self.secret_values)
        self.throttler = Throttler(clock=self.now)
        self.rbac = Rbac()
        self.role_assignments = RoleAssignments()  # irflow.sim.authorization: roles granted at scopes
        self.write_hook = WriteHook()  # holds a chosen write's answer (crash tests; irflow.sim.hooks)
        self.lro = Lro(random=self.random)  # long-running operations and their knobs (irflow.sim.network.lro)
        self._baseline: tuple[dict[str, Subscription], set[str]] = ({}, set())
        self._authorization_baseline = RoleAssignments()
        # Log Analytics workspaces, Graph directory, diagnostic settings (reset with the baseline too).
        self.logs, self.directory = LogAnalytics(), Directory()
        self.diagnostic_settings = DiagnosticSettings()
        self._monitoring_baseline = copy.deepcopy((self.logs, self.directory, self.diagnostic_settings))
        # Strict by default; a rule is relaxed only by name (irflow.sim.strictness). Ingestion delay of the
        # Activity Log into Log Analytics (irflow.sim.loganalytics.activity), on the tenant clock.
        self.relaxed: set[str] = set()
        self.activity_log_delay = timedelta(minutes=5)
        # Where data-plane callers come from (irflow.sim.firewall); None: the peer address or the default.
        self.caller_origin: CallerOrigin | None = None

    def relax(self, *names: str) -> None:
        """Relax named strictness rules (``ValueError`` for a name the simulator does not know)."""
        from irflow.sim.strictness import check_names

        with self.lock:
            self.relaxed.update(check_names(names))

    def is_relaxed(self, name: str) -> bool:
        return name in self.relaxed

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_scenario(cls, source: str | Path | Mapping[str, Any], **kwargs: Any) -> Tenant:
        """A tenant loaded from a scenario: a packaged name (``"demo"``), a YAML file path, or a dict."""
        from irflow.sim.scenario import load_scenario

        return load_scenario(source, **kwargs)

    @classmethod
    def demo(cls, **kwargs: Any) -> Tenant:
        """The packaged ``demo`` scenario: a breached PHI resource group and one bystander account."""
        return cls.from_scenario("demo", **kwargs)

    def now(self) -> datetime:
        return self.clock()

    @property
    def principal_id(self) -> str:
        """The object id of the one principal the tenant knows: the holder of ``token`` (its ``oid``)."""
        return self._principal_id

    def assign_role(
        self, role: str, scope: str, principal_id: str | None = None, principal_type: str = "ServicePrincipal"
    ) -> RoleAssignment:
        """Assign a built-in role (by name or id) at a scope; the tenant's principal unless one is given."""
        from irflow.sim.authorization import roles

        definition = roles.find(role)
        if definition is None:
            raise ValueError(f"unknown role {role!r}")
        with self.lock:
            assignment, _ = self.role_assignments.create(
                scope,
                str(uuid.uuid5(uuid.NAMESPACE_URL, f"{scope.lower()}|{definition.id}|{principal_id or ''}")),
                {
                    "roleDefinitionId": definition.id,
                    "principalId": principal_id or self.principal_id,
                    "principalType": principal_type,
                },
                when=self.now(),
                created_by=self.principal_id,
            )
            return assignment

    def add_subscription(self, subscription_id: str, display_name: str | None = None) -> Subscription:
        with self.lock:
            if subscription_id.lower() in self._subscriptions:
                raise ValueError(f"subscription {subscription_id} already exists")
            subscription = Subscription(subscription_id, display_name or subscription_id)
            self._subscriptions[subscription_id.lower()] = subscription
            return subscription

    def add_resource_group(
        self, subscription_id: str, name: str, location: str = "eastus", tags: dict[str, str] | None = None
    ) -> ResourceGroup:
        with self.lock:
            subscription = self.subscription(subscription_id)
            if name.lower() in subscription.resource_groups:
                raise ValueError(f"resource group {name} already exists in {subscription_id}")
            group = ResourceGroup(subscription.subscription_id, name, location, dict(tags or {}))
            subscription.resource_groups[name.lower()] = group
            return group

    def add_storage_account(
        self,
        subscription_id: str,
        resource_group: str,
        name: str,
        *,
        location: str | None = None,
        kind: str = "StorageV2",
        sku: str = "Standard_LRS",
        tags: dict[str, str] | None = None,
        properties: dict[str, Any] | None = None,
        created_at: datetime | None = None,
        keys_created_at: datetime | dict[str, datetime] | None = None,
        blob_service_properties: dict[str, Any] | None = None,
    ) -> StorageAccount:
        """Add a storage account. ``properties`` are ARM properties merged over Azure's defaults
        (e.g. ``{"publicNetworkAccess": "Enabled", "networkAcls": {"defaultAction": "Allow"}}``)."""
        with self.lock:
            group = self.resource_group(subscription_id, resource_group)
            if self.find_storage_account(name) is not None:
                raise ValueError(f"storage account name {name!r} is already taken (names are global)")
            now = self.now()
            created = created_at or now
            if isinstance(keys_created_at, dict):
                key_times = {k: keys_created_at.get(k, created) for k in StorageAccount.KEY_NAMES}
            else:
                key_times = dict.fromkeys(StorageAccount.KEY_NAMES, keys_created_at or created)
            account = StorageAccount(
                subscription_id=group.subscription_id,
                resource_group=group.name,
                name=name,
                location=location or group.location,
                kind=kind,
                sku_name=sku,
                tags=dict(tags or {}),
                created=created,
                key_values={k: self.issue_secret(new_account_key()) for k in StorageAccount.ALL_KEY_NAMES},
                key_times={**key_times, **dict.fromkeys(StorageAccount.KERB_KEY_NAMES, created)},
                properties=properties or {},
                blob_service_properties=blob_service_properties,
            )
            group.storage_accounts[name.lower()] = account
            return account

    def add_container(
        self,
        account_name: str,
        name: str,
        *,
        public_access: str = "None",
        metadata: dict[str, str] | None = None,
        legal_hold_tags: list[str] | None = None,
        immutability_days: int | None = None,
        blob_count: int = 0,
        created_at: datetime | None = None,
        stored_access_policies: list[dict[str, Any]] | None = None,
    ) -> BlobContainer:
        """Add a container to an account (found by its global name). Public access needs the account's
        ``allowBlobPublicAccess``, as in Azure; legal hold tags are set by the tenant's principal.
        ``stored_access_policies``: ``[{"id", "permission", "start", "expiry"}]`` (at most 5; times aware)."""
        with self.lock:
            account = self.storage_account(account_name)
            when = created_at or self.now()
            container = BlobContainer(
                account.id, name, metadata=metadata, created=when, blob_count=blob_count
            )
            container.apply_update(
                {"properties": {"publicAccess": public_access}},
                public_access_allowed=account.allows_blob_public_access,
                when=when,
            )
            if legal_hold_tags:
                container.set_legal_hold(
                    {"tags": legal_hold_tags},
                    when=when,
                    principal=self.principal_id,
                    tenant_id=self.tenant_id,
                )
            if immutability_days is not None:
                container.put_immutability_policy(
                    {"properties": {"immutabilityPeriodSinceCreationInDays": immutability_days}},
                    if_match=None,
                    when=when,
                    principal=self.principal_id,
                    tenant_id=self.tenant_id,
                )
            if stored_access_policies:
                container.set_access_policies(
                    [StoredAccessPolicy(**p) for p in stored_access_policies],
                    public_access=container.public_access,
                    public_access_allowed=account.allows_blob_public_access,
                    when=when,
                )
            return account.blob_service.add_container(container)

    def add_blob(
        self,
        account_name: str,
        container_name: str,
        name: str,
        content: bytes | str | None = None,
        *,
        size: int | None = None,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        created_at: datetime | None = None,
    ) -> Blob:
        """Add a block blob (data plane) to a container: ``content`` (text is UTF-8 encoded) or ``size`` bytes
        of deterministic, obviously synthetic text (:func:`irflow.sim.storage.blob_data.synthetic_content`).
        ``content_type`` defaults to ``text/plain; charset=utf-8`` for text, else
        ``application/octet-stream``."""
        from irflow.sim.storage import blob_data

        with self.lock:
            container = self.storage_account(account_name).container(container_name)
            if (content is None) == (size is None):
                raise ValueError(f"blob {name!r}: give content or size, not both or neither")
            if not 1 <= len(name) <= 1024:
                raise ValueError(f"blob name {name!r} must have 1 to 1024 characters")
            if name in container.blobs:
                raise ValueError(f"blob {name!r} already exists in container {container_name!r}")
            if isinstance(content, str):
                data, default_type = content.encode("utf-8"), "text/plain; charset=utf-8"
            else:
                data = content if content is not None else blob_data.synthetic_content(name, size or 0)
                default_type = "application/octet-stream"
            when = created_at or self.now()
            blob = Blob(name, data, content_type or default_type, when, when, dict(metadata or {}))
            container.blobs[name] = blob
            return blob

    def add_key_vault(
        self,
        subscription_id: str,
        resource_group: str,
        name: str,
        *,
        location: str | None = None,
        tags: dict[str, str] | None = None,
        sku: str = "standard",
        properties: dict[str, Any] | None = None,
        access_policies: list[dict[str, Any]] | None = None,
        created_at: datetime | None = None,
    ) -> KeyVault:
        """Add a key vault. ``access_policies``: ``[{"objectId", "permissions": {"keys": [...], ...}}]``
        (``tenantId`` defaults to the tenant's); ``properties`` are ARM properties over Azure's defaults."""
        with self.lock:
            group = self.resource_group(subscription_id, resource_group)
            if self.find_key_vault(name) is not None:
                raise ValueError(f"key vault name {name!r} is already taken (names are global)")
            vault = KeyVault(
                subscription_id=group.subscription_id,
                resource_group=group.name,
                name=name,
                location=location or group.location,
                tenant_id=self.tenant_id,
                tags=tags,
                sku=sku,
                properties=properties,
                access_policies=[{"tenantId": self.tenant_id, **p} for p in access_policies or []],
                created=created_at or self.now(),
            )
            group.key_vaults[name.lower()] = vault
            return vault

    def get_key_vault(self, subscription_id: str, resource_group: str, name: str) -> KeyVault:
        with self.lock:
            found = self.resource_group(subscription_id, resource_group).key_vaults.get(name.lower())
            if found is None:
                raise errors.resource_not_found(KEY_VAULT_TYPE, name, resource_group)
            return found

    def key_vaults(self) -> list[KeyVault]:
        with self.lock:
            vaults = [
                v
                for s in self._subscriptions.values()
                for g in s.resource_groups.values()
                for v in g.key_vaults.values()
            ]
            return sorted(vaults, key=lambda v: (v.resource_group.lower(), v.name.lower()))

    def find_key_vault(self, name: str) -> KeyVault | None:
        with self.lock:
            return next((v for v in self.key_vaults() if v.name.lower() == name.lower()), None)

    def key_vault(self, name: str) -> KeyVault:
        """The vault with this name anywhere in the tenant; KeyError when there is none."""
        vault = self.find_key_vault(name)
        if vault is None:
            raise KeyError(name)
        return vault

    def add_vault_key(
        self,
        vault_name: str,
        key_name: str,
        *,
        kty: str = "RSA",
        key_size: int = 2048,
        versions_created_at: list[datetime] | None = None,
    ) -> Any:
        """Add a key (data plane) to a vault: one version per creation time (oldest first; default: one
        version created now). Only public JWK parts exist (see :mod:`irflow.sim.keyvault.data_models`)."""
        from irflow.sim.keyvault import data_models

        with self.lock:
            vault = self.key_vault(vault_name)
            key = None
            for when in sorted(versions_created_at or [self.now()]):
                version = data_models.make_key_version(kty=kty, key_size=key_size, when=when)
                key = data_models.add_key_version(vault, key_name, version)
            return key

    # ----------------------------------------------------------------- network (irflow.sim.network)
    def add_network_security_group(
        self,
        subscription_id: str,
        resource_group: str,
        name: str,
        *,
        location: str | None = None,
        tags: dict[str, str] | None = None,
        security_rules: list[dict[str, Any]] | None = None,
        flush_connection: bool = False,
    ) -> NetworkSecurityGroup:
        """Add an NSG. ``security_rules``: ``[{"name", <ARM rule properties>}]`` (``priority``, ``direction``,
        ``access``, ``protocol``, ``sourceAddressPrefix`` …), validated as a rule PUT is."""
        from irflow.sim.network.models import SecurityRule, validate_rule_properties

        with self.lock:
            group = self.resource_group(subscription_id, resource_group)
            if name.lower() in group.network_security_groups:
                raise ValueError(f"network security group {name} already exists in {resource_group}")
            nsg = NetworkSecurityGroup(
                group.subscription_id, group.name, name, location or group.location, dict(tags or {})
            )
            nsg.flush_connection = flush_connection
            for entry in security_rules or []:
                rule_name = str(entry.get("name") or "")
                given = {k: v for k, v in entry.items() if k != "name"}
                properties = validate_rule_properties(rule_name, given)
                nsg.check_priority(rule_name, properties)
                nsg.rules[rule_name.lower()] = SecurityRule(rule_name, properties)
            group.network_security_groups[name.lower()] = nsg
            return nsg

    def add_virtual_network(
        self,
        subscription_id: str,
        resource_group: str,
        name: str,
        address_prefixes: list[str],
        *,
        location: str | None = None,
        tags: dict[str, str] | None = None,
        subnets: list[dict[str, Any]] | None = None,
    ) -> VirtualNetwork:
        """Add a VNet. ``subnets``: ``[{"name", "address_prefix", "network_security_group": <NSG name in the
        same resource group, or an NSG id>, "private_endpoint_network_policies", "private_endpoints": [names],
        "established_flows": N}]`` (the last three optional)."""
        from irflow.sim.network.models import Subnet

        with self.lock:
            group = self.resource_group(subscription_id, resource_group)
            if name.lower() in group.virtual_networks:
                raise ValueError(f"virtual network {name} already exists in {resource_group}")
            vnet = VirtualNetwork(
                group.subscription_id,
                group.name,
                name,
                location or group.location,
                list(address_prefixes),
                dict(tags or {}),
            )
            for entry in subnets or []:
                nsg_ref = entry.get("network_security_group")
                nsg_id = None
                if nsg_ref and nsg_ref.startswith("/"):
                    nsg_id = nsg_ref
                elif nsg_ref:
                    nsg_id = self.get_network_security_group(group.subscription_id, group.name, nsg_ref).id
                vnet.subnets[entry["name"].lower()] = Subnet(
                    entry["name"],
                    entry["address_prefix"],
                    nsg_id,
                    private_endpoint_network_policies=entry.get("private_endpoint_network_policies")
                    or "Disabled",
                    private_endpoints=[
                        arm.resource_id(
                            group.subscription_id, group.name, "Microsoft.Network/privateEndpoints", n
                        )
                        for n in entry.get("private_endpoints") or []
                    ],
                    established_flows=int(entry.get("established_flows") or 0),
                )
            group.virtual_networks[name.lower()] = vnet
            return vnet

    def add_virtual_network_peering(
        self,
        subscription_id: str,
        resource_group: str,
        vnet_name: str,
        name: str,
        remote_virtual_network_id: str,
        **options: Any,
    ) -> Any:
        """Add a peering from a VNet to another (by id; the remote address space is looked up in the tenant).
        ``options``: ``allow_forwarded_traffic``, ``allow_virtual_network_access``, ``allow_gateway_transit``,
        ``use_remote_gateways``, ``peering_state``, ``peer_complete_vnets`` with ``local_subnet_names`` /
        ``remote_subnet_names`` (a subnet peering)."""
        from irflow.sim.network.models import Peering

        with self.lock:
            vnet = self.get_virtual_network(subscription_id, resource_group, vnet_name)
            wanted = remote_virtual_network_id.lower()
            remote = next((v for v in self._network("virtual_networks") if v.id.lower() == wanted), None)
            remote_id = remote.id if remote else remote_virtual_network_id
            prefixes = list(remote.address_prefixes) if remote else []
            if remote and not options.get("peer_complete_vnets", True):
                wanted_subnets = {n.lower() for n in options.get("remote_subnet_names") or []}
                prefixes = [sn.address_prefix for k, sn in remote.subnets.items() if k in wanted_subnets]
            peering = Peering(name, remote_id, prefixes, **options)
            vnet.peerings[name.lower()] = peering
            return peering

    def get_network_security_group(
        self, subscription_id: str, resource_group: str, name: str
    ) -> NetworkSecurityGroup:
        with self.lock:
            group = self.resource_group(subscription_id, resource_group)
            found = group.network_security_groups.get(name.lower())
            if found is None:
                raise errors.resource_not_found(NSG_TYPE, name, resource_group)
            return found

    def get_virtual_network(self, subscription_id: str, resource_group: str, name: str) -> VirtualNetwork:
        with self.lock:
            found = self.resource_group(subscription_id, resource_group).virtual_networks.get(name.lower())
            if found is None:
                raise errors.resource_not_found(VNET_TYPE, name, resource_group)
            return found

    def _network(self, kind: str) -> list[Any]:
        with self.lock:
            groups = [g for s in self._subscriptions.values() for g in s.resource_groups.values()]
            return [item for g in groups for item in getattr(g, kind).values()]

    def subnets_of_nsg(self, nsg_id: str) -> list[str]:
        """Ids of the subnets that reference an NSG."""
        return [
            f"{v.id}/subnets/{s.name}"
            for v in self._network("virtual_networks")
            for s in v.subnets.values()
            if (s.network_security_group_id or "").lower() == nsg_id.lower()
        ]

    def disconnect_peerings_to(self, vnet_id: str, remote_id: str) -> None:
        """After a peering is deleted, the remote network's peerings back to it become Disconnected."""
        for vnet in self._network("virtual_networks"):
            if vnet.id.lower() == remote_id.lower():
                for peering in vnet.peerings.values():
                    if peering.remote_virtual_network_id.lower() == vnet_id.lower():
                        peering.peering_state = "Disconnected"

    # ----------------------------------------------------------------- RBAC
    def deny(self, permission: str, scope: str = "/") -> DenyRule:
        """Take a permission away from the tenant's principal: calls needing the Azure RBAC operation
        ``permission`` (``*`` wildcards allowed, case-insensitive) over ``scope`` or below (a resource id
        prefix on segment boundaries; ``/`` is everywhere) answer 403 ``AuthorizationFailed`` and change
        nothing. Like the fault knobs, deny rules survive :meth:`reset`."""
        return self.rbac.deny(permission, scope)

    def allow_all(self) -> None:
        """Drop every deny rule: the principal holds every permission again."""
        self.rbac.allow_all()

    def set_caller_origin(self, ip: str | None = None, subnet_id: str | None = None) -> CallerOrigin | None:
        """Where data-plane callers come from, as storage and Key Vault firewalls see them
        (:mod:`irflow.sim.firewall`); both ``None`` goes back to the default. Survives :meth:`reset`."""
        self.caller_origin = None if ip is None and subnet_id is None else CallerOrigin(ip, subnet_id)
        return self.caller_origin

    # ----------------------------------------------------------------- fault knobs
    def fault_knobs(self) -> dict[str, Any]:
        """Every fault knob as one dict (``GET /_sim/faults``; the shape of a scenario's ``faults:``): the
        :class:`FaultSettings` fields and ``lro`` (``duration_s``, ``retry_after``, ``failure_rate``,
        ``failure``)."""
        with self.lock:
            return {**self.faults.to_dict(), "lro": self.lro.to_dict()}

    def configure_faults(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Change fault knobs from a (partial) dict shaped like :meth:`fault_knobs`, e.g.
        ``{"timeout_rate": 0.1, "lro": {"duration_s": 20, "failure_rate": 0.5}}``; nested dicts merge key by
        key. All or nothing: an unknown key or a bad value raises ``ValueError`` and changes no knob.
        Returns the knobs now in force. Like the other knobs, they survive :meth:`reset`."""
        from irflow.sim.scenario import FaultsSpec

        with self.lock:
            # pydantic's ValidationError is a ValueError
            spec = FaultsSpec.model_validate(_merge(self.fault_knobs(), changes))
            settings = spec.settings()
            for name in _FAULT_FIELDS:
                setattr(self.faults, name, getattr(settings, name))
            spec.lro.apply(self.lro)
            return self.fault_knobs()

    # ----------------------------------------------------------------- lookups (ARM errors when missing)
    @property
    def subscriptions(self) -> list[Subscription]:
        with self.lock:
            return list(self._subscriptions.values())

    @property
    def default_subscription_id(self) -> str | None:
        """The first subscription added (the scenario's first one), or None for an empty tenant."""
        with self.lock:
            first = next(iter(self._subscriptions.values()), None)
            return first.subscription_id if first else None

    def locations(self) -> list[str]:
        """The regions the tenant's resource groups are in (ARM names them in some refusals)."""
        with self.lock:
            return sorted(
                {g.location for s in self._subscriptions.values() for g in s.resource_groups.values()}
            )

    def subscription(self, subscription_id: str) -> Subscription:
        with self.lock:
            found = self._subscriptions.get(subscription_id.lower())
            if found is None:
                raise errors.subscription_not_found(subscription_id)
            return found

    def resource_group(self, subscription_id: str, name: str) -> ResourceGroup:
        with self.lock:
            found = self.subscription(subscription_id).resource_groups.get(name.lower())
            if found is None:
                raise errors.resource_group_not_found(name)
            return found

    def get_storage_account(self, subscription_id: str, resource_group: str, name: str) -> StorageAccount:
        with self.lock:
            found = self.resource_group(subscription_id, resource_group).storage_accounts.get(name.lower())
            if found is None:
                raise errors.resource_not_found(STORAGE_ACCOUNT_TYPE, name, resource_group)
            return found

    def find_storage_account(self, name: str) -> StorageAccount | None:
        """The account with this (globally unique) name anywhere in the tenant, or None."""
        with self.lock:
            for account in self.storage_accounts():
                if account.name.lower() == name.lower():
                    return account
            return None

    def storage_account(self, name: str) -> StorageAccount:
        """The account with this name anywhere in the tenant; KeyError when there is none."""
        account = self.find_storage_account(name)
        if account is None:
            raise KeyError(name)
        return account

    def storage_accounts(
        self, subscription_id: str | None = None, resource_group: str | None = None
    ) -> list[StorageAccount]:
        """Accounts in ARM list order (resource group, then name), optionally within one scope."""
        with self.lock:
            if resource_group is not None:
                if subscription_id is None:
                    raise ValueError("resource_group needs subscription_id")
                groups = [self.resource_group(subscription_id, resource_group)]
            elif subscription_id is not None:
                groups = list(self.subscription(subscription_id).resource_groups.values())
            else:
                groups = [g for s in self._subscriptions.values() for g in s.resource_groups.values()]
            accounts = [a for g in groups for a in g.storage_accounts.values()]
            return sorted(accounts, key=lambda a: (a.resource_group.lower(), a.name.lower()))

    # ----------------------------------------------------------------- secrets
    def issue_secret(self, value: str) -> str:
        """Register a secret value so the journal redacts it wherever it appears; returns it."""
        with self.lock:
            self._issued_secrets.add(value)
        return value

    def secret_values(self) -> frozenset[str]:
        with self.lock:
            return frozenset(self._issued_secrets) | {self.token}

    # ----------------------------------------------------------------- baseline and reset
    def set_baseline(self) -> None:
        """Make the current state the one :meth:`reset` returns to (scenario loading does this)."""
        with self.lock:
            self._baseline = (copy.deepcopy(self._subscriptions), set(self._issued_secrets))
            self._authorization_baseline = copy.deepcopy(self.role_assignments)
            self._monitoring_baseline = copy.deepcopy((self.logs, self.directory, self.diagnostic_settings))

    def reset(self) -> None:
        """Back to the baseline state (the loaded scenario, key values included) with an empty journal.

        The token, fault settings, RBAC deny rules and page size are kept, so running clients and servers
        stay usable.
        """
        with self.lock:
            subscriptions, issued = self._baseline
            self._subscriptions = copy.deepcopy(subscriptions)
            self.role_assignments = copy.deepcopy(self._authorization_baseline)
            self._issued_secrets |= issued
            self.logs, self.directory, self.diagnostic_settings = copy.deepcopy(self._monitoring_baseline)
            self.journal.clear()
            self.throttler.reset()
            self.lro.clear()

    # ----------------------------------------------------------------- views
    def state(self) -> dict[str, Any]:
        """A secret-free summary of the tenant (``GET /_sim/state``)."""
        with self.lock:
            return {
                "tenant_id": self.tenant_id,
                "default_subscription_id": self.default_subscription_id,
                "faults": self.faults.to_dict(),
                "rbac": {"deny": self.rbac.to_list()},
                "role_assignments": [a.to_arm() for a in self.role_assignments.all()],
                "subscriptions": [
                    {
                        "subscription_id": s.subscription_id,
                        "display_name": s.display_name,
                        "resource_groups": [
                            {"name": g.name, "location": g.location} for g in s.resource_groups.values()
                        ],
                    }
                    for s in self._subscriptions.values()
                ],
                "storage_accounts": [a.summary() for a in self.storage_accounts()],
                "key_vaults": [v.summary() for v in self.key_vaults()],
                "network_security_groups": [n.summary() for n in self._network("network_security_groups")],
                "virtual_networks": [v.summary() for v in self._network("virtual_networks")],
            }
