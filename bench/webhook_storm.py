"""Sentinel webhook storm: many signed deliveries, most of them duplicates, from many concurrent clients.

    python bench/webhook_storm.py                                   # SQLite
    python bench/webhook_storm.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres
    python bench/webhook_storm.py --deliveries 2000 --clients 32   # smaller

Starts ``irflow sim serve`` and ``irflow serve`` as real processes, then prints:

- throughput of deliveries as a ratio to the same server's no-op endpoint (``GET /healthz``) at the same
  concurrency, measured in the same run (target: at least 50 %);
- p50 / p99 latency of deliveries;
- incidents created vs distinct Sentinel incident ids sent (must be equal) and lost deliveries (must be 0:
  every delivery answered 202, and every answer for one Sentinel incident names the same irflow incident).

Deliveries route to ``compromised-identity`` (a rule without auto_start: the incident is recorded and on-call
is escalated through the outbox), so the storm measures the intake, not thousands of containments.
``--auto-start`` sends SAS incidents instead, which start a containment run each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "api"))

from sentinel_helpers import incident  # noqa: E402  (the recorded real-schema Sentinel incident)

from irflow.notify.channels import sign  # noqa: E402
from irflow.store.db import Database  # noqa: E402
from irflow.store.models import Incident  # noqa: E402

RETRIES = 2
retried: Counter[str] = Counter()
SECRET = "bench-sentinel-secret"  # noqa: S105  (a throw-away server's)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_sim() -> tuple[subprocess.Popen[str], dict[str, Any]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "irflow", "sim", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )
    assert process.stdout is not None
    return process, json.loads(process.stdout.readline())


def _start_serve(
    database_url: str, sim: dict[str, Any], workdir: Path
) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        **sim["env"],
        "PYTHONPATH": str(REPO),
        "IRFLOW_DATABASE_URL": database_url,
        "IRFLOW_SENTINEL_SECRET": SECRET,
        "IRFLOW_ONCALL_RECIPIENTS": "soc-oncall@example.org",
        "IRFLOW_PLAYBOOKS_DIR": str(REPO / "playbooks"),
        "IRFLOW_LOG_LEVEL": "WARNING",
    }
    log = (workdir / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "irflow", "serve", "--port", str(port)],
        env=env,
        cwd=workdir,
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit((workdir / "serve.log").read_text()[-3000:])
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("irflow serve did not become ready")


def _stop(process: subprocess.Popen[Any]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _plan(
    deliveries: int, duplicate_share: float, subscription: str, auto_start: bool
) -> list[dict[str, Any]]:
    """The deliveries in send order: each distinct incident at least once, the rest duplicates of them."""
    distinct = max(1, round(deliveries * (1 - duplicate_share)))
    title = "Mass blob download with a SAS" if auto_start else "Anomalous sign-in from a new country"
    documents = [
        incident(subscription, incident_name=str(uuid.uuid4()), incidentNumber=10_000 + i, title=title)
        for i in range(distinct)
    ]
    order = list(range(distinct)) + [random.randrange(distinct) for _ in range(deliveries - distinct)]
    random.shuffle(order)
    return [documents[i] for i in order]


async def _drive(
    base: str, clients: int, requests: list[Any], send: Any
) -> tuple[float, list[float], list[Any]]:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    latencies: list[float] = []
    answers: list[Any] = []
    retried.clear()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:

        async def worker() -> None:
            while not queue.empty():
                item = queue.get_nowait()
                started = time.perf_counter()
                answer: Any = None
                # A sender retries a delivery whose connection failed (the Logic App's HTTP action does, with
                # its retry policy); each retry is signed anew. Counted, and lost only if every try fails.
                for _attempt in range(RETRIES + 1):
                    try:
                        answer = await send(client, item)
                        break
                    except httpx.TransportError as exc:
                        answer = exc
                        retried[type(exc).__name__] += 1
                answers.append((item, answer))
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return time.perf_counter() - started, latencies, answers


async def _noop(client: httpx.AsyncClient, _item: Any) -> httpx.Response:
    return await client.get("/healthz")


async def _deliver(client: httpx.AsyncClient, document: dict[str, Any]) -> httpx.Response:
    body = json.dumps({**document, "eventUniqueId": str(uuid.uuid4())}).encode()
    headers = {"Content-Type": "application/json", "X-IRFlow-Signature": sign(SECRET, body, int(time.time()))}
    return await client.post("/api/v1/webhooks/sentinel", content=body, headers=headers)


def _cpu_seconds(process: subprocess.Popen[Any]) -> float | None:
    """CPU time (user + system) the process has used so far; None where /proc is not there."""
    try:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def storm(database_url: str, label: str, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sim_process, sim = _start_sim()
        serve, base = _start_serve(database_url, sim, Path(tmp))
        try:
            plan = _plan(args.deliveries, args.duplicates, sim["subscription_id"], args.auto_start)
            cpu_start = _cpu_seconds(serve)
            noop_s, _, _ = asyncio.run(_drive(base, args.clients, list(range(args.deliveries)), _noop))
            cpu_noop = _cpu_seconds(serve)
            storm_s, latencies, answers = asyncio.run(_drive(base, args.clients, plan, _deliver))
            cpu_storm = _cpu_seconds(serve)
        finally:
            _stop(serve)
            _stop(sim_process)
        db = Database(database_url)
        with db.transaction() as session:
            created = session.scalar(
                select(func.count()).select_from(Incident).where(Incident.source == "sentinel")
            )
        db.dispose()
        log_lines = (Path(tmp) / "serve.log").read_text(errors="replace").splitlines()
        server_errors = [line for line in log_lines if "Error" in line]
    sent_ids = {doc["object"]["id"].lower() for doc in plan}
    incident_of: dict[str, set[str]] = {}
    lost: Counter[str] = Counter()
    for document, answer in answers:
        if isinstance(answer, Exception):
            lost[type(answer).__name__] += 1
            continue
        if answer.status_code != 202:
            lost[f"{answer.status_code} {answer.json().get('error', {}).get('code')}"] += 1
            continue
        incident_of.setdefault(document["object"]["id"].lower(), set()).add(answer.json()["incident_id"])
    split = sum(1 for ids in incident_of.values() if len(ids) > 1)
    noop_rps, storm_rps = args.deliveries / noop_s, args.deliveries / storm_s
    print(f"[{label}] {args.deliveries} deliveries, {args.duplicates:.0%} duplicates, {args.clients} clients")
    print(f"  no-op GET /healthz: {noop_rps:8.1f} req/s")
    print(f"  webhook deliveries: {storm_rps:8.1f} req/s   ratio {storm_rps / noop_rps:.1%} (target >= 50%)")
    p50, p99 = statistics.median(latencies) * 1000, _percentile(latencies, 0.99) * 1000
    if cpu_start is not None and cpu_noop is not None and cpu_storm is not None:
        # Throughput on shared cores moves with the neighbours' load; the server's own CPU time per request
        # does much less, so the two ratios together say whether a change made the intake cheaper.
        noop_ms = (cpu_noop - cpu_start) / args.deliveries * 1000
        storm_ms = (cpu_storm - cpu_noop) / args.deliveries * 1000
        print(
            f"  server CPU per request: no-op {noop_ms:.2f} ms, delivery {storm_ms:.2f} ms   "
            f"ratio {noop_ms / storm_ms:.1%}"
        )
    print(f"  latency p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(f"  incidents created {created} vs distinct incident ids {len(sent_ids)} (must be equal)")
    print(
        f"  lost deliveries {sum(lost.values())} {dict(lost)} (must be 0); "
        f"Sentinel incidents answered with 2+ irflow incidents: {split}"
    )
    print(f"  transport errors retried by the sender: {sum(retried.values())} {dict(retried)}")
    for line in sorted(set(server_errors))[:5]:
        print(f"  server log: {line[:200]}")


def _postgres_database(admin_url: str) -> tuple[str, Any]:
    name = f"irflow_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--duplicates", type=float, default=0.7)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--postgres", metavar="ADMIN_URL", help="also run on PostgreSQL (a new database)")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--auto-start", action="store_true", help="SAS incidents: each starts containment")
    args = parser.parse_args()
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            storm(f"sqlite:///{tmp}/storm.db", "sqlite", args)
    if args.postgres:
        url, drop = _postgres_database(args.postgres)
        try:
            storm(url, "postgresql", args)
        finally:
            drop()


if __name__ == "__main__":
    main()
