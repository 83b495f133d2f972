"""irflow's side of ARM's request budget (irflow.azure.ratelimit) against the simulator's ARM throttling."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from pydantic import SecretStr

from irflow.azure import AzureClients
from irflow.azure.ratelimit import ARM_BUDGETS, ArmRateLimiter, Budget, Throttled, kind_of, partition_of
from irflow.settings import Settings
from irflow.sim.mock import mount
from irflow.sim.models import Tenant

SUB_A = "00000000-0000-4000-8000-00000000000a"
SUB_B = "00000000-0000-4000-8000-00000000000b"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


# ------------------------------------------------------------------------------------------ the buckets
def test_budgets_are_arms_documented_ones() -> None:
    """Reads 250 / 25 per s, writes and deletes 200 / 10 per s (Microsoft Learn: "Understand how Azure
    Resource Manager throttles requests")."""
    documented = {"reads": Budget(250, 25.0), "writes": Budget(200, 10.0), "deletes": Budget(200, 10.0)}
    assert documented == ARM_BUDGETS
    assert [kind_of(m) for m in ("GET", "HEAD", "PUT", "PATCH", "POST", "DELETE")] == [
        "reads",
        "reads",
        "writes",
        "writes",
        "writes",
        "deletes",
    ]
    url = f"https://management.azure.com/subscriptions/{SUB_A.upper()}/resourceGroups/rg?api-version=1"
    assert partition_of(url) == SUB_A
    assert partition_of("https://management.azure.com/providers/Microsoft.Storage?api-version=1") == "tenant"


def test_a_burst_then_the_refill_rate_per_subscription_and_kind() -> None:
    clock = FakeClock()
    limiter = ArmRateLimiter(clock=clock, sleep=clock.sleep)
    waits = [limiter.reserve(SUB_A, "writes") for _ in range(202)]
    assert waits[:200] == [0.0] * 200  # the burst
    assert waits[200:] == pytest.approx([0.1, 0.2])  # then 10 per second, each behind the one before
    assert limiter.reserve(SUB_B, "writes") == 0.0  # another subscription has its own budget
    assert limiter.reserve(SUB_A, "reads") == 0.0  # and reads are another bucket
    clock.now += 1.0  # ten tokens more: the two reserved ahead are paid back, eight are left
    assert limiter.reserve(SUB_A, "writes") == 0.0
    assert limiter.snapshot()[f"{SUB_A}/writes"]["tokens"] == pytest.approx(7.0)


def test_a_wait_past_the_bound_fails_retryable_and_takes_nothing() -> None:
    clock = FakeClock()
    limiter = ArmRateLimiter(budgets={**ARM_BUDGETS, "writes": Budget(1, 1.0)}, max_wait_s=2.0, clock=clock)
    assert limiter.reserve(SUB_A, "writes") == 0.0
    assert limiter.reserve(SUB_A, "writes") == pytest.approx(1.0)
    assert limiter.reserve(SUB_A, "writes") == pytest.approx(2.0)
    with pytest.raises(Throttled, match="retry later"):
        limiter.reserve(SUB_A, "writes")
    clock.now += 3.0  # nothing was taken by the refused call: the next one is due at once
    assert limiter.reserve(SUB_A, "writes") == pytest.approx(0.0, abs=1e-9)


def test_retry_after_closes_only_its_partition() -> None:
    clock = FakeClock()
    limiter = ArmRateLimiter(clock=clock, sleep=clock.sleep)
    limiter.observe(SUB_A, "writes", remaining="0", retry_after=7.0)
    assert limiter.reserve(SUB_A, "writes") == pytest.approx(7.0)
    assert limiter.reserve(SUB_B, "writes") == 0.0
    assert limiter.reserve(SUB_A, "reads") == 0.0


# ------------------------------------------------------------------------------- against the simulator
@pytest.fixture
def tenant() -> Iterator[Tenant]:
    tenant = Tenant()
    for sub, name in ((SUB_A, "phiratea"), (SUB_B, "phirateb")):
        tenant.add_subscription(sub)
        tenant.add_resource_group(sub, "rg-phi")
        tenant.add_storage_account(sub, "rg-phi", name)
    with mount(tenant):
        yield tenant


def _clients(tenant: Tenant, limiter: ArmRateLimiter) -> AzureClients:
    return AzureClients(Settings(azure_token=SecretStr(tenant.token)), rate_limiter=limiter)


def _tag(clients: AzureClients, sub: str, name: str, value: str) -> None:
    clients.storage(sub).storage_accounts.update("rg-phi", name, {"tags": {"probe": value}})


def test_the_remaining_header_lowers_the_bucket_to_what_arm_says(tenant: Tenant) -> None:
    """Another client of the same principal spent most of the subscription's write budget: irflow's bucket
    follows ARM's x-ms-ratelimit-remaining-subscription-writes after one answer."""
    frozen = tenant.now()
    tenant.clock = lambda: frozen  # neither side refills while the test runs
    principal = tenant.throttler.principal_key(tenant.token)
    for _ in range(190):
        tenant.throttler.take(SUB_A, principal, "PATCH", tenant.faults.throttle_limits, enforce=True)
    clock = FakeClock()
    limiter = ArmRateLimiter(clock=clock, sleep=clock.sleep)
    clients = _clients(tenant, limiter)
    try:
        _tag(clients, SUB_A, "phiratea", "1")
        _tag(clients, SUB_B, "phirateb", "1")
    finally:
        clients.close()
    assert [e.status for e in tenant.journal.entries()] == [200, 200]
    # ARM said 9 writes are left in A (200 - 190 - 1); irflow's own count alone would be 199
    assert limiter.snapshot()[f"{SUB_A}/writes"]["tokens"] == 9.0
    assert limiter.snapshot()[f"{SUB_B}/writes"]["tokens"] == 199.0


def test_no_request_before_retry_after_and_other_subscriptions_go_on(tenant: Tenant) -> None:
    """ARM refuses a write of subscription A (its bucket is empty: 429 + Retry-After). No write to A is sent
    before that time has passed, not even another thread's, while a write to subscription B goes through."""
    tenant.faults.throttle = True
    tenant.faults.set_limit("writes", 2, 0.5)  # ARM's side: 2 writes, then one every 2 s
    limiter = ArmRateLimiter()  # irflow believes the documented 200: ARM's answers correct it
    clients = _clients(tenant, limiter)
    threads: list[threading.Thread] = []
    try:
        first = threading.Thread(target=lambda: [_tag(clients, SUB_A, "phiratea", str(n)) for n in range(3)])
        first.start()
        threads.append(first)
        while first.is_alive() and not [e for e in tenant.journal.entries() if e.status == 429]:
            time.sleep(0.01)
        # A refused: another thread's write to A now waits for the Retry-After; B's goes through at once
        threads += [
            threading.Thread(target=lambda: _tag(clients, SUB_A, "phiratea", "other")),
            threading.Thread(target=lambda: _tag(clients, SUB_B, "phirateb", "x")),
        ]
        for thread in threads[1:]:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        clients.close()
    assert not any(thread.is_alive() for thread in threads)
    entries = tenant.journal.entries()
    writes_a = [e for e in entries if e.method == "PATCH" and SUB_A in e.path.lower()]
    refused = [e for e in writes_a if e.status == 429]
    assert refused, "ARM's bucket was never exceeded: the test proves nothing"
    # Retry-After is at least 1 s (whole seconds): after the first refusal, no write to A for that long.
    later = [e for e in writes_a if e.seq > refused[0].seq]
    assert later and all(e.time - refused[0].time >= timedelta(milliseconds=950) for e in later)
    # Writes that waited for the same Retry-After go out together: ARM may refuse one and take another in
    # the same instant (both sent before either answer). Past that instant, a refusal is respected too.
    for entry in refused[1:]:
        after = [
            e for e in writes_a if e.seq > entry.seq and e.time - entry.time > timedelta(milliseconds=300)
        ]
        assert all(e.time - entry.time >= timedelta(milliseconds=950) for e in after)
    assert [e.status for e in writes_a].count(200) == 4  # every write made it in the end
    (write_b,) = [e for e in entries if e.method == "PATCH" and SUB_B in e.path.lower()]
    assert write_b.status == 200 and write_b.time - refused[0].time < timedelta(milliseconds=900)


def test_a_throttled_subscription_does_not_hold_up_another(tenant: Tenant) -> None:
    """While subscription A is closed for a long Retry-After, a call to subscription B is answered at once."""
    limiter = ArmRateLimiter()
    limiter.observe(SUB_A, "writes", remaining="0", retry_after=5.0)
    clients = _clients(tenant, limiter)
    blocked = threading.Thread(target=lambda: _tag(clients, SUB_A, "phiratea", "late"), daemon=True)
    try:
        blocked.start()
        finished = threading.Event()
        worker = threading.Thread(target=lambda: (_tag(clients, SUB_B, "phirateb", "now"), finished.set()))
        worker.start()
        worker.join(timeout=20)
        assert finished.is_set(), "subscription B waited on subscription A's Retry-After"
        assert blocked.is_alive()  # A still waits for its Retry-After
        assert not [e for e in tenant.journal.entries() if SUB_A in e.path.lower()]
    finally:
        blocked.join(timeout=30)
        clients.close()
    assert [e.status for e in tenant.journal.entries() if SUB_A in e.path.lower()] == [200]
