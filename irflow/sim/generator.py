"""Large tenants for benchmarks: hundreds of storage accounts across subscriptions and resource groups,
deterministic by seed (the same seed gives the same scenario document, names and ids included).

    document = generate_scenario(seed=7, subscriptions=3, resource_groups=4, storage_accounts=600)
    tenant = generate_tenant(seed=7, storage_accounts=600, clock=clock)

About a fifth of the accounts are tagged PHI; some of those are left open (public network access, blob
public access, a public container), so a benchmark has findings to act on.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from irflow.sim.models import Tenant
from irflow.sim.scenario import load_scenario

_LOCATIONS = ("eastus", "eastus2", "westus2", "centralus", "northeurope", "westeurope")
_WORKLOADS = ("exports", "imaging", "claims", "billing", "web", "logs", "backup", "analytics")


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def generate_scenario(
    seed: int = 0,
    *,
    subscriptions: int = 3,
    resource_groups: int = 4,
    storage_accounts: int = 300,
    containers_per_account: int = 2,
    phi_ratio: float = 0.2,
) -> dict[str, Any]:
    """A scenario document (a dict for :func:`irflow.sim.load_scenario`) with ``storage_accounts`` accounts
    spread round-robin over ``subscriptions`` × ``resource_groups`` groups."""
    if subscriptions < 1 or resource_groups < 1 or storage_accounts < 0 or containers_per_account < 0:
        raise ValueError("counts must be positive (storage_accounts and containers_per_account may be 0)")
    if not 0.0 <= phi_ratio <= 1.0:
        raise ValueError("phi_ratio must be between 0 and 1")
    rng = random.Random(seed)
    subs: list[dict[str, Any]] = []
    groups: list[dict[str, Any]] = []
    for s in range(subscriptions):
        sub_groups: list[dict[str, Any]] = []
        sub = {"id": _uuid(rng), "display_name": f"Bench subscription {s:02d}", "resource_groups": sub_groups}
        for g in range(resource_groups):
            group: dict[str, Any] = {
                "name": f"rg-bench-{s:02d}-{g:02d}",
                "location": rng.choice(_LOCATIONS),
                "storage_accounts": [],
            }
            sub_groups.append(group)
            groups.append(group)
        subs.append(sub)
    for i in range(storage_accounts):
        group = groups[i % len(groups)]
        phi = rng.random() < phi_ratio
        workload = rng.choice(_WORKLOADS)
        exposed = phi and rng.random() < 0.5
        name = f"{'phi' if phi else 'st'}{workload[:6]}{i:05d}{seed % 1000:03d}"[:24]
        account: dict[str, Any] = {
            "name": name,
            "sku": rng.choice(("Standard_LRS", "Standard_GRS", "Standard_RAGRS")),
            "tags": {"data-classification": "phi" if phi else "internal", "workload": workload},
            "created_days_ago": rng.randint(30, 1500),
            "keys_created_days_ago": {"key1": rng.randint(0, 400), "key2": rng.randint(0, 400)},
            "properties": {
                "publicNetworkAccess": "Enabled" if exposed or rng.random() < 0.3 else "Disabled",
                "allowBlobPublicAccess": exposed,
                "networkAcls": {"defaultAction": "Allow" if exposed else "Deny", "bypass": "AzureServices"},
            },
            "containers": [
                {
                    "name": f"{workload}-{c:02d}",
                    "public_access": "Container" if exposed and c == 0 else "None",
                    "blobs": rng.randint(0, 5000),
                }
                for c in range(containers_per_account)
            ],
        }
        group["storage_accounts"].append(account)
    return {
        "name": f"generated-{seed}",
        "description": f"Generated benchmark tenant: seed {seed}, {storage_accounts} storage accounts.",
        "tenant_id": _uuid(rng),
        "subscriptions": subs,
    }


def generate_tenant(
    seed: int = 0,
    *,
    subscriptions: int = 3,
    resource_groups: int = 4,
    storage_accounts: int = 300,
    containers_per_account: int = 2,
    phi_ratio: float = 0.2,
    **tenant_kwargs: Any,
) -> Tenant:
    """A :class:`Tenant` loaded from :func:`generate_scenario` (``tenant_kwargs`` go to the tenant)."""
    document = generate_scenario(
        seed,
        subscriptions=subscriptions,
        resource_groups=resource_groups,
        storage_accounts=storage_accounts,
        containers_per_account=containers_per_account,
        phi_ratio=phi_ratio,
    )
    return load_scenario(document, **tenant_kwargs)
