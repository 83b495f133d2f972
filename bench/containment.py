"""Containment speed: the shipped SAS playbook on N storage accounts vs a sequential SDK loop, same run.

    python bench/containment.py [--accounts 100] [--latency-ms 100] [--subscriptions 10] [--no-throttle]
                                [--database-url postgresql+psycopg://…/empty]

Both talk to the HTTPS simulator (``irflow.sim``, in a process of its own, as Azure is: in irflow's process
it would take irflow's interpreter lock and its garbage collections would walk the tenant's whole state)
with ``latency_ms`` added to every Azure call and ARM's
documented throttling enforced (token buckets per subscription: reads 250 / 25 per s, writes 200 / 10 per
s, https://learn.microsoft.com/en-us/azure/azure-resource-manager/management/request-limits-and-throttling).
The accounts are spread over ``--subscriptions`` subscriptions (one subscription makes ARM's write budget,
not irflow, the floor: its bound is printed as well).

Printed, from the simulator's journal of the irflow run:

- time until every account is isolated (its firewall write answered) and time to full containment (the run
  ended), each vs its critical-path bound ``max(chain × latency, calls × latency / concurrency)``, where
  ``chain`` is the longest per-account sequence of calls up to that point, ``calls`` the calls made up to it
  and ``concurrency`` the playbook's fan-out concurrency (target: at most 1.5x the bound);
- the same containment done by a plain one-account-at-a-time SDK loop over the same calls (the ones a script
  needs: read, firewall, soft delete, stored policies, both keys, user delegation keys, read), measured in the
  same run on a twin tenant (target: irflow at least 20x faster);
- calls per account, reads and writes, irflow vs the loop.
"""

from __future__ import annotations

import argparse
import multiprocessing
import re
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pydantic import SecretStr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PLAYBOOK = REPO / "playbooks" / "storage-sas-exfiltration.yaml"
EGRESS_IP = "192.0.2.10"
CONTAINER = "phi-records"


def build_tenant(accounts: int, subscriptions: int, latency_ms: int, throttle: bool) -> tuple[Any, list[str]]:
    from irflow.sim.models import Tenant

    tenant = Tenant()
    subs = [f"00000000-0000-4000-8000-{n + 1:012d}" for n in range(subscriptions)]
    for sub in subs:
        tenant.add_subscription(sub)
        tenant.add_resource_group(sub, "rg-phi")
    old = datetime.now(UTC) - timedelta(days=120)
    ids = []
    for n in range(accounts):
        name = f"phibench{n:04d}"
        account = tenant.add_storage_account(
            subs[n % subscriptions],
            "rg-phi",
            name,
            properties={"publicNetworkAccess": "Enabled", "networkAcls": {"defaultAction": "Allow"}},
            keys_created_at=old,
        )
        tenant.add_container(
            name,
            CONTAINER,
            stored_access_policies=[
                {"id": "exfil", "permission": "rl", "start": old, "expiry": old + timedelta(days=3650)}
            ],
        )
        ids.append(account.id)
    tenant.set_caller_origin(ip=EGRESS_IP)  # irflow's egress IP, as a deployment configures it
    tenant.faults.latency_ms = latency_ms
    tenant.faults.throttle = throttle
    return tenant, ids


def _serve_tenant(conn: Any, accounts: int, subscriptions: int, latency_ms: int, throttle: bool) -> None:
    """The simulator's process: serves one tenant until the bench says stop."""
    from irflow.logs import configure_logging
    from irflow.sim.server import SimServer

    configure_logging(level="WARNING")
    tenant, ids = build_tenant(accounts, subscriptions, latency_ms, throttle)
    with SimServer(tenant) as server:
        conn.send({"endpoint": server.endpoint, "token": server.token, "ca_file": server.ca_file, "ids": ids})
        conn.recv()


class SimProcess:
    """A tenant served by the simulator in a process of its own; its journal read over the admin API."""

    def __init__(self, accounts: int, subscriptions: int, latency_ms: int, throttle: bool) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve_tenant, args=(child, accounts, subscriptions, latency_ms, throttle), daemon=True
        )

    def __enter__(self) -> tuple[Any, list[str]]:
        self._process.start()
        info = self._conn.recv()
        self.server = SimpleNamespace(endpoint=info["endpoint"], token=info["token"], ca_file=info["ca_file"])
        return self.server, info["ids"]

    def __exit__(self, *_: Any) -> None:
        self._conn.send("stop")
        self._process.join(timeout=30)

    def journal(self) -> list[Any]:
        import httpx

        answer = httpx.get(
            f"{self.server.endpoint}/_sim/journal",
            headers={"Authorization": f"Bearer {self.server.token}"},
            verify=self.server.ca_file,
            timeout=60,
        )
        answer.raise_for_status()
        return [
            SimpleNamespace(**{**entry, "time": datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))})
            for entry in answer.json()
        ]


def sequential_loop(server: Any, ids: list[str]) -> float:
    """What a one-account-at-a-time script does with the same SDKs: the containment calls, nothing else."""
    from azure.mgmt.storage import StorageManagementClient
    from azure.storage.blob import BlobServiceClient

    from irflow.azure.clients import StaticTokenCredential
    from irflow.domain.resource_id import ResourceId

    credential = StaticTokenCredential(server.token)
    common = {
        "base_url": server.endpoint,
        "credential_scopes": [server.endpoint + "/.default"],
        "connection_verify": server.ca_file,
    }
    clients: dict[str, Any] = {}
    blobs: dict[str, Any] = {}
    acls = {
        "defaultAction": "Deny",
        "bypass": "None",
        "ipRules": [{"value": EGRESS_IP, "action": "Allow"}],
        "virtualNetworkRules": [],
    }
    start = time.perf_counter()
    for account_id in ids:
        rid = ResourceId.parse(account_id)
        sub, group, name = rid.subscription_id, rid.resource_group, rid.name
        client = clients.get(sub) or clients.setdefault(
            sub, StorageManagementClient(credential, sub, **common)
        )
        account = client.storage_accounts.get_properties(group, name)  # the state before
        client.storage_accounts.update(
            group, name, {"properties": {"allowBlobPublicAccess": False, "networkAcls": acls}}
        )
        service = client.blob_services.get_service_properties(group, name).as_dict().get("properties", {})
        service.update(
            deleteRetentionPolicy={"enabled": True, "days": 30},
            containerDeleteRetentionPolicy={"enabled": True, "days": 30},
            isVersioningEnabled=True,
        )
        client.blob_services.set_service_properties(group, name, {"properties": service})
        endpoint = account.primary_endpoints.blob
        blob = blobs.get(endpoint) or blobs.setdefault(
            endpoint, BlobServiceClient(endpoint, credential=credential, connection_verify=server.ca_file)
        )
        for container in client.blob_containers.list(group, name):
            blob.get_container_client(container.name).set_container_access_policy(signed_identifiers={})
        for key in ("key1", "key2"):
            client.storage_accounts.regenerate_key(group, name, {"keyName": key})
        client.storage_accounts.revoke_user_delegation_keys(group, name)
        client.storage_accounts.get_properties(group, name)  # the state after
    elapsed = time.perf_counter() - start
    for each in [*clients.values(), *blobs.values()]:
        each.close()
    return elapsed


def run_irflow(
    server: Any, ids: list[str], workdir: Path, database_url: str | None = None
) -> tuple[float, datetime, str]:
    from irflow.engine import runtime
    from irflow.engine.runs import submit_run
    from irflow.settings import Settings

    settings = Settings(
        database_url=database_url or f"sqlite:///{workdir / 'bench.db'}",
        azure_cloud="custom",
        arm_endpoint=server.endpoint,
        azure_ca_bundle=Path(server.ca_file),
        azure_token=SecretStr(server.token),
        playbooks_dir=workdir,
        oncall_recipients="soc-oncall@example.org",
        egress_ips=EGRESS_IP,
    )
    svc = runtime.launch(settings)
    try:
        began = datetime.now(UTC)
        start = time.perf_counter()
        submitted = submit_run(
            svc, str(PLAYBOOK), {"storage_accounts": ",".join(ids)}, actor="bench", auto_approve=True
        )
        status = submitted.handle.get_result()
        elapsed = time.perf_counter() - start
        if status != "succeeded":
            from irflow.engine.runs import run_view

            raise SystemExit(f"the bench run {status}: {run_view(svc, submitted.run_id)['error']}")
    finally:
        runtime.shutdown()
    return elapsed, began, status


# ARM paths name the account; the simulator's blob data plane is {base}/_data/{account}/blob/.
_ACCOUNT = re.compile(r"/(?:storageaccounts|_data)/([a-z0-9]+)", re.IGNORECASE)


def account_of(entry: Any) -> str | None:
    found = _ACCOUNT.search(entry.path)
    return found.group(1).lower() if found else None


def journal_by_account(entries: list[Any]) -> dict[str, list[Any]]:
    """Every Azure call of the run, per account (ARM and blob data plane)."""
    per: dict[str, list[Any]] = defaultdict(list)
    for entry in entries:
        name = account_of(entry)
        if name is None:
            continue
        per[name].append(entry)
    return per


def is_isolation(entry: Any) -> bool:
    body = entry.body if isinstance(entry.body, dict) else {}
    acls = (body.get("properties") or {}).get("networkAcls") or {}
    return entry.method == "PATCH" and acls.get("defaultAction") == "Deny" and 200 <= entry.status < 300


def concurrency_of(step_id: str) -> int:
    from irflow.engine.playbook import load_playbook

    spec = load_playbook(PLAYBOOK).spec
    return next(step.concurrency for step in spec.steps if step.id == step_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--subscriptions", type=int, default=10)
    parser.add_argument("--no-throttle", action="store_true", help="do not enforce ARM's token buckets")
    parser.add_argument(
        "--database-url", default=None, help="irflow database (default: a new SQLite file); an empty one"
    )
    args = parser.parse_args()
    from irflow.logs import configure_logging

    configure_logging(level="WARNING")
    latency = args.latency_ms / 1000.0
    throttle = not args.no_throttle
    tenant = (args.accounts, args.subscriptions, args.latency_ms, throttle)

    loop_sim = SimProcess(*tenant)
    with loop_sim as (server, loop_ids):
        loop_s = sequential_loop(server, loop_ids)
        loop_calls = len(loop_sim.journal())

    sim = SimProcess(*tenant)
    with tempfile.TemporaryDirectory() as tmp, sim as (server, ids):
        full_s, began, _ = run_irflow(server, ids, Path(tmp), args.database_url)
        entries = sim.journal()
    first_call_s = (entries[0].time - began).total_seconds()
    throttled = sum(1 for e in entries if e.status == 429)
    per = journal_by_account(entries)
    isolated_at = []
    chain_iso = calls_iso = 0
    for name, calls in per.items():
        index = next((i for i, e in enumerate(calls) if is_isolation(e)), None)
        if index is None:
            raise SystemExit(f"account {name} was never isolated")
        isolated_at.append(calls[index].time)
        chain_iso = max(chain_iso, index + 1)
        calls_iso += index + 1
    iso_s = (max(isolated_at) - began).total_seconds()
    chain_full = max(len(calls) for calls in per.values())
    calls_full = len(entries)
    concurrency = concurrency_of("isolate")
    bound_iso = max(chain_iso * latency, calls_iso * latency / concurrency)
    bound_full = max(chain_full * latency, calls_full * latency / concurrency)
    writes = sum(1 for e in entries if e.method in ("PUT", "PATCH", "POST", "DELETE"))
    per_sub_writes = writes / args.subscriptions
    write_floor = max(0.0, (per_sub_writes - 200) / 10.0)
    n = args.accounts
    database = "PostgreSQL" if args.database_url and "postgres" in args.database_url else "SQLite"
    print(
        f"containment: {n} storage accounts over {args.subscriptions} subscription(s), {args.latency_ms} ms "
        f"per Azure call, ARM throttling {'enforced' if throttle else 'off'} ({throttled} answered 429), "
        f"irflow on {database}; first Azure call {first_call_s:.2f} s after submitting"
    )
    print(
        f"  isolated (every account):  {iso_s:6.2f} s; bound {bound_iso:5.2f} s "
        f"(chain {chain_iso} calls, {calls_iso} calls / concurrency {concurrency}); "
        f"{iso_s / bound_iso:.2f}x the bound (target <= 1.5x)"
    )
    print(
        f"  full containment:          {full_s:6.2f} s; bound {bound_full:5.2f} s "
        f"(chain {chain_full} calls, {calls_full} calls / concurrency {concurrency}); "
        f"{full_s / bound_full:.2f}x the bound (target <= 1.5x)"
        + (f"; ARM write budget floor {write_floor:.1f} s" if write_floor else "")
    )
    print(
        f"  sequential SDK loop:       {loop_s:6.2f} s; irflow {loop_s / full_s:.1f}x faster to full "
        f"containment, {loop_s / iso_s:.1f}x to every account isolated (target >= 20x)"
    )
    print(
        f"  calls per account: irflow {calls_full / n:.1f} ({(calls_full - writes) / n:.1f} reads, "
        f"{writes / n:.1f} writes); loop {loop_calls / n:.1f}"
    )


if __name__ == "__main__":
    main()
