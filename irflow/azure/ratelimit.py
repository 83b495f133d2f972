"""ARM's request budget, kept on irflow's side: a token bucket per subscription and kind of request.

Azure Resource Manager throttles each subscription, per security principal and per kind of operation, with a
token bucket: reads 250 tokens refilling 25 per second, writes 200 / 10 per second, deletes 200 / 10 per
second (the same at tenant scope); every answer says what is left in ``x-ms-ratelimit-remaining-subscription-
reads`` / ``-writes`` / ``-deletes``, and a request over the budget answers 429 with ``Retry-After``
(https://learn.microsoft.com/en-us/azure/azure-resource-manager/management/request-limits-and-throttling).

:class:`ArmRateLimiter` mirrors those buckets, partitioned by subscription (tenant-scope requests share one
partition) and kind, and :class:`ArmRateLimitPolicy` applies it in the SDKs' azure-core pipeline, after the
retry policy, so every attempt (retries included) takes a token:

- a request waits for a token of its own partition only: a throttled or busy subscription never holds up
  another one, and a waiting request holds no lock;
- each answer's ``x-ms-ratelimit-remaining-*`` lowers the bucket to what ARM says is left (another replica or
  tool spending the same principal's budget), never raises it above irflow's own count;
- a 429 with ``Retry-After`` closes the partition until then: no request of that subscription and kind is
  sent before the time ARM gave has passed (azure-core's retry policy then retries the one refused).

A wait longer than ``max_wait_s`` is not slept: the request fails as throttled (retryable), and the step's
retry policy decides, so nothing waits unbounded.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from azure.core.exceptions import HttpResponseError
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import HTTPPolicy

KINDS = ("reads", "writes", "deletes")
REMAINING_HEADER = "x-ms-ratelimit-remaining-subscription-{kind}"
TENANT_PARTITION = "tenant"
_SUBSCRIPTION = re.compile(r"/subscriptions/([^/?#]+)", re.IGNORECASE)


@dataclass(frozen=True)
class Budget:
    """One bucket: its size and refill rate (tokens per second)."""

    burst: float
    per_second: float


# ARM's documented subscription (and tenant) limits per principal, since the 2024 regional throttling.
ARM_BUDGETS: dict[str, Budget] = {
    "reads": Budget(250, 25.0),
    "writes": Budget(200, 10.0),
    "deletes": Budget(200, 10.0),
}


def kind_of(method: str) -> str:
    """ARM counts GET and HEAD as reads, DELETE as deletes, everything else (POST included) as writes."""
    method = method.upper()
    if method in ("GET", "HEAD"):
        return "reads"
    if method == "DELETE":
        return "deletes"
    return "writes"


def partition_of(url: str) -> str:
    found = _SUBSCRIPTION.search(url)
    return found.group(1).lower() if found else TENANT_PARTITION


class Throttled(HttpResponseError):
    """irflow's own budget for a subscription would make this request wait too long: retry it later."""


@dataclass
class _Bucket:
    budget: Budget
    tokens: float
    updated: float
    closed_until: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class ArmRateLimiter:
    """The buckets of one process (one principal). Thread-safe; ``clock`` and ``sleep`` are replaceable."""

    def __init__(
        self,
        budgets: dict[str, Budget] | None = None,
        *,
        max_wait_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.budgets = dict(budgets or ARM_BUDGETS)
        self.max_wait_s = max_wait_s
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._guard = threading.Lock()

    def _bucket(self, partition: str, kind: str) -> _Bucket:
        with self._guard:
            bucket = self._buckets.get((partition, kind))
            if bucket is None:
                budget = self.budgets[kind]
                bucket = self._buckets[(partition, kind)] = _Bucket(budget, budget.burst, self._clock())
            return bucket

    def _refill(self, bucket: _Bucket, now: float) -> None:
        elapsed = max(now - bucket.updated, 0.0)
        bucket.tokens = min(bucket.budget.burst, bucket.tokens + elapsed * bucket.budget.per_second)
        bucket.updated = now

    def reserve(self, partition: str, kind: str) -> float:
        """Take a token (reserving a future one when the bucket is empty) and return how long to wait before
        sending. Raises :class:`Throttled`, taking nothing, when that wait would exceed ``max_wait_s``."""
        bucket = self._bucket(partition, kind)
        with bucket.lock:
            now = self._clock()
            self._refill(bucket, now)
            closed = max(bucket.closed_until - now, 0.0)
            short = max(1.0 - bucket.tokens, 0.0) / bucket.budget.per_second
            wait = max(closed, short)
            if wait > self.max_wait_s:
                raise Throttled(
                    message=f"ARM budget for {kind} in subscription {partition} exhausted for {wait:.0f} s "
                    f"(more than {self.max_wait_s:g} s): retry later"
                )
            bucket.tokens -= 1.0  # may go below zero: later callers queue behind this reservation
            return wait

    def acquire(self, partition: str, kind: str) -> float:
        """Reserve a token and sleep until it is due; returns the time waited."""
        wait = self.reserve(partition, kind)
        if wait > 0:
            self._sleep(wait)
        return wait

    def observe(self, partition: str, kind: str, remaining: str | None, retry_after: float | None) -> None:
        """What ARM answered: the tokens it says are left, and a ``Retry-After`` when it refused."""
        bucket = self._bucket(partition, kind)
        with bucket.lock:
            now = self._clock()
            self._refill(bucket, now)
            if remaining is not None:
                try:
                    left = float(remaining)
                except ValueError:
                    left = math.inf
                bucket.tokens = min(bucket.tokens, left)
            if retry_after is not None and retry_after > 0:
                bucket.closed_until = max(bucket.closed_until, now + retry_after)
                bucket.tokens = min(bucket.tokens, 0.0)

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Tokens left and seconds closed, per partition and kind (tests and diagnostics)."""
        now = self._clock()
        with self._guard:
            buckets = dict(self._buckets)
        view: dict[str, dict[str, float]] = {}
        for (partition, kind), bucket in buckets.items():
            with bucket.lock:
                self._refill(bucket, now)
                view[f"{partition}/{kind}"] = {
                    "tokens": round(bucket.tokens, 3),
                    "closed_for_s": round(max(bucket.closed_until - now, 0.0), 3),
                }
        return view


def retry_after_seconds(headers: Any) -> float | None:
    """``Retry-After`` in seconds (ARM sends whole seconds; an HTTP date is not used by ARM)."""
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


class ArmRateLimitPolicy(HTTPPolicy):  # type: ignore[type-arg]
    """The limiter in an ARM client's pipeline (a per-retry policy: each attempt takes its own token)."""

    def __init__(self, limiter: ArmRateLimiter) -> None:
        super().__init__()
        self.limiter = limiter

    def send(self, request: PipelineRequest) -> PipelineResponse:  # type: ignore[type-arg]
        http = request.http_request
        partition, kind = partition_of(http.url), kind_of(http.method)
        self.limiter.acquire(partition, kind)
        response = self.next.send(request)
        headers = response.http_response.headers
        remaining = headers.get(REMAINING_HEADER.format(kind=kind))
        refused = response.http_response.status_code in (429, 503)
        self.limiter.observe(partition, kind, remaining, retry_after_seconds(headers) if refused else None)
        return response
