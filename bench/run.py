"""Benchmarks: each prints a ratio against a baseline measured in the same run, on the same machine.

    python bench/run.py            # all
    python bench/run.py audit      # one

- audit: cost of a hash-chained audit append (head row lock, canonical JSON, redaction, SHA-256) relative to a
  plain insert of the same row into the same SQLite database.
- fanout: wall time of a containment run over N storage accounts at concurrency 1 (the baseline) vs. the
  playbook's fan-out concurrency, against the HTTPS simulator with per-call latency.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import insert

REPO = Path(__file__).resolve().parents[1]


def bench_audit(events: int = 2000) -> None:
    from irflow.audit import AuditChain
    from irflow.store.db import Database, upgrade
    from irflow.store.models import AuditEvent

    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{tmp}/bench.db")
        upgrade(db.engine)
        chain = AuditChain()
        payload = {
            "run_id": "r",
            "step": "isolate",
            "target": "/subscriptions/x/resourceGroups/y",
            "changed": True,
        }

        start = time.perf_counter()
        for index in range(events):
            with db.transaction() as session:
                session.execute(
                    insert(AuditEvent).values(
                        seq=-(index + 1),
                        ts=time_now(),
                        actor="bench",
                        incident_id=None,
                        type="bench.plain",
                        payload="{}",
                        prev_hash="0" * 64,
                        hash=f"{index:064d}",
                    )
                )
        plain = time.perf_counter() - start

        start = time.perf_counter()
        for _ in range(events):
            with db.transaction() as session:
                chain.append(session, actor="bench", type="bench.chained", payload=payload)
        chained = time.perf_counter() - start
        db.dispose()
    print(
        f"audit: {events} appends; plain insert {plain / events * 1e6:.0f} µs, "
        f"chained append {chained / events * 1e6:.0f} µs; ratio chained/plain = {chained / plain:.2f}"
    )


def time_now():  # type: ignore[no-untyped-def]
    from irflow import clock

    return clock.now()


def bench_fanout(accounts: int = 24, latency_ms: int = 40) -> None:
    from irflow.engine import runtime
    from irflow.engine.runs import submit_run
    from irflow.settings import Settings
    from irflow.sim.models import Tenant
    from irflow.sim.server import SimServer

    timings = {}
    for concurrency in (1, 16):
        tenant = Tenant()
        sub = "00000000-0000-4000-8000-000000000001"
        tenant.add_subscription(sub)
        tenant.add_resource_group(sub, "rg-bench")
        ids = [
            tenant.add_storage_account(
                sub,
                "rg-bench",
                f"phibench{n:03d}",
                properties={"publicNetworkAccess": "Enabled", "networkAcls": {"defaultAction": "Allow"}},
            ).id
            for n in range(accounts)
        ]
        tenant.faults.latency_ms = latency_ms
        tenant.set_caller_origin(ip="192.0.2.10")  # irflow's egress IP, as a deployment configures it
        playbook = (REPO / "playbooks" / "storage-sas-exfiltration.yaml").read_text()
        playbook = playbook.replace("concurrency: 16", f"concurrency: {concurrency}")
        with tempfile.TemporaryDirectory() as tmp, SimServer(tenant) as server:
            path = Path(tmp) / "storage-sas-exfiltration.yaml"
            path.write_text(playbook)
            settings = Settings(
                database_url=f"sqlite:///{tmp}/bench.db",
                azure_cloud="custom",
                arm_endpoint=server.endpoint,
                azure_ca_bundle=Path(server.ca_file),
                azure_token=SecretStr(server.token),
                queue_polling_interval=0.05,
                playbooks_dir=Path(tmp),
                oncall_recipients="soc-oncall@example.org",
                egress_ips="192.0.2.10",
            )
            svc = runtime.launch(settings)
            try:
                start = time.perf_counter()
                submitted = submit_run(
                    svc, str(path), {"storage_accounts": ",".join(ids)}, actor="bench", auto_approve=True
                )
                status = submitted.handle.get_result()
                timings[concurrency] = time.perf_counter() - start
            finally:
                runtime.shutdown()
            assert status == "succeeded", status
    print(
        f"fanout: {accounts} accounts, {latency_ms} ms per Azure call; concurrency 1 {timings[1]:.2f} s, "
        f"concurrency 16 {timings[16]:.2f} s; speed-up = {timings[1] / timings[16]:.2f}x"
    )


BENCHES = {"audit": bench_audit, "fanout": bench_fanout}

if __name__ == "__main__":
    from irflow.logs import configure_logging

    configure_logging(level="WARNING")
    chosen = sys.argv[1:] or list(BENCHES)
    for name in chosen:
        BENCHES[name]()
