"""32 threads of official SDK clients against the HTTPS mount: the model stays consistent and the journal
complete (one entry per request, seq without gaps, journal order = the order state changed)."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from sim_helpers import PHI_RG, Sim

from irflow.sim import Tenant
from irflow.sim.arm import format_time
from irflow.sim.server import SimServer

THREADS = 32
ROUNDS = 3
ACCOUNT = "phipatientexports"
CONTAINER = "patient-exports"
HOLD_TAGS = ("case1", "case2", "case3", "case4")


class SteppingClock:
    """Each reading is one millisecond after the previous one: every change gets its own timestamp."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            self._now += timedelta(milliseconds=1)
            return self._now


def test_many_threads_leave_a_consistent_model_and_a_complete_journal() -> None:
    tenant = Tenant.demo(clock=SteppingClock(datetime(2026, 3, 2, 9, 30, tzinfo=UTC)))
    failures: list[BaseException] = []
    calls = Counter[str]()
    calls_lock = threading.Lock()
    rotations: list[tuple[str, datetime, str]] = []  # (key name, creation time, value) as answered
    patches: list[dict[str, str]] = []  # the metadata each PATCH answered
    start = threading.Barrier(THREADS)

    with SimServer(tenant) as server:
        sim = Sim("server", tenant, server.endpoint, server.ca_file)

        def work(index: int) -> None:
            client = sim.client(retry_total=0)
            key_name = f"key{index % 2 + 1}"

            def count(name: str) -> None:
                with calls_lock:
                    calls[name] += 1

            try:
                start.wait(timeout=30)
                for round_ in range(ROUNDS):
                    client.storage_accounts.get_properties(PHI_RG, ACCOUNT)
                    count("get")
                    keys = client.storage_accounts.regenerate_key(PHI_RG, ACCOUNT, {"keyName": key_name})
                    count("regenerate")
                    key = next(k for k in keys.keys_property if k.key_name == key_name)
                    with calls_lock:
                        rotations.append((key_name, key.creation_time, key.value))
                    metadata = {"writer": f"t{index}", "round": str(round_)}
                    answer = client.blob_containers.update(
                        PHI_RG, ACCOUNT, CONTAINER, {"properties": {"metadata": metadata}}
                    )
                    count("patch")
                    with calls_lock:
                        patches.append(dict(answer.metadata))
                    assert answer.metadata == metadata  # no other writer's change leaked into this answer
                    client.blob_containers.set_legal_hold(
                        PHI_RG, ACCOUNT, CONTAINER, {"tags": [HOLD_TAGS[(index + round_) % len(HOLD_TAGS)]]}
                    )
                    count("hold")
                    list(client.blob_containers.list(PHI_RG, ACCOUNT))
                    count("list")
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads)

    assert failures == []
    requests_made = sum(calls.values())
    assert requests_made == THREADS * ROUNDS * 5

    # The journal: one entry per request, seq 1..n without gaps, times in seq order, all answered 200.
    entries = tenant.journal.entries()
    assert len(entries) == requests_made
    assert [e.seq for e in entries] == list(range(1, requests_made + 1))
    assert all(a.time < b.time for a, b in zip(entries, entries[1:], strict=False))
    assert {e.status for e in entries} == {200}
    routes = Counter(e.route for e in entries)
    assert routes["storage.accounts.regenerate_key"] == calls["regenerate"]
    assert routes["storage.containers.update"] == calls["patch"]
    assert routes["storage.containers.set_legal_hold"] == calls["hold"]

    # Keys: every rotation produced a new value; the current key is the one with the latest creation time.
    account = tenant.storage_account(ACCOUNT)
    assert len({value for _, _, value in rotations}) == len(rotations) == calls["regenerate"]
    for key_name in ("key1", "key2"):
        mine = [r for r in rotations if r[0] == key_name]
        assert len({when for _, when, _ in mine}) == len(mine)  # one creation time per rotation
        _, latest_time, latest_value = max(mine, key=lambda r: r[1])
        assert account.key_value(key_name) == latest_value
        assert account.key_times[key_name] == latest_time
        # ... and it is the last rotation of that key in journal order.
        last = [
            e
            for e in entries
            if e.route == "storage.accounts.regenerate_key" and e.body["keyName"] == key_name
        ]
        answered = _key(last[-1].response, key_name)
        assert answered["creationTime"] == format_time(latest_time)

    # Container: the metadata left is the one of the last PATCH in journal order; the holds are the union.
    container = account.container(CONTAINER)
    last_patch = [e for e in entries if e.route == "storage.containers.update"][-1]
    assert container.metadata == last_patch.body["properties"]["metadata"]
    assert container.metadata in patches
    assert sorted(container.legal_hold_tags) == sorted(HOLD_TAGS)


def _key(response: dict[str, Any], key_name: str) -> dict[str, Any]:
    return next(k for k in response["keys"] if k["keyName"] == key_name)
