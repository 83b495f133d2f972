"""ARM request throttling: a token bucket per subscription, principal and kind of operation.

Azure Resource Manager (since 2024) keeps, for each subscription and security principal, one bucket per
kind of operation: reads (GET, HEAD) 250 tokens refilling 25 per second, writes (PUT, PATCH, POST)
200 / 10 per second, deletes 200 / 10 per second. Each request takes a token; an empty bucket answers 429
``SubscriptionRequestsThrottled`` with ``Retry-After`` (seconds). Every answer carries the bucket's remaining
tokens in ``x-ms-ratelimit-remaining-subscription-reads`` / ``-writes`` / ``-deletes``. ARM counts a POST as
a write whatever it does (``listKeys`` included), so the kind follows the HTTP method, not the route.

Time comes from the tenant's clock, so a frozen clock keeps buckets still until a test advances it.
Buckets are always kept (the headers are always sent); 429s are answered only when ``faults.throttle`` is on.

Bursts (the ``burst_rate`` fault knob) are windows of tenant-clock time during which every call on a
subscription answers 429 with ``Retry-After`` the seconds left: ARM processes no request sent before a
``Retry-After`` has elapsed and answers it with a new retry value
(https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling).
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

KINDS = ("reads", "writes", "deletes")
REMAINING_HEADER = "x-ms-ratelimit-remaining-subscription-{kind}"


@dataclass
class BucketLimit:
    """One bucket's size (``burst``) and refill rate (tokens per second)."""

    burst: int
    per_second: float

    def __post_init__(self) -> None:
        if self.burst < 1:
            raise ValueError("a throttle burst must be >= 1")
        if self.per_second <= 0:
            raise ValueError("a throttle refill rate must be > 0")

    @classmethod
    def parse(cls, text: str) -> BucketLimit:
        """``"200"`` (burst, refill rate 10% of it) or ``"200/10"`` (burst / tokens per second)."""
        burst_text, _, rate_text = text.partition("/")
        try:
            burst = int(burst_text)
            rate = float(rate_text) if rate_text else max(burst / 10.0, 1.0)
        except ValueError as exc:
            raise ValueError(f"invalid throttle limit {text!r}: give BURST or BURST/PER_SECOND") from exc
        return cls(burst, rate)


@dataclass
class ThrottleLimits:
    """ARM's published subscription limits, per principal; change them to throttle sooner in tests."""

    reads: BucketLimit = field(default_factory=lambda: BucketLimit(250, 25.0))
    writes: BucketLimit = field(default_factory=lambda: BucketLimit(200, 10.0))
    deletes: BucketLimit = field(default_factory=lambda: BucketLimit(200, 10.0))

    def for_kind(self, kind: str) -> BucketLimit:
        limit: BucketLimit = getattr(self, kind)
        return limit

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {
            k: {"burst": self.for_kind(k).burst, "per_second": self.for_kind(k).per_second} for k in KINDS
        }


def kind_of(method: str) -> str:
    """ARM's classification: GET/HEAD read, DELETE deletes, everything else writes."""
    method = method.upper()
    if method in ("GET", "HEAD"):
        return "reads"
    if method == "DELETE":
        return "deletes"
    return "writes"


@dataclass
class Decision:
    """The outcome of taking a token: admitted or not, what is left, how long to wait when refused."""

    allowed: bool
    kind: str
    remaining: int
    retry_after: int = 0

    @property
    def headers(self) -> dict[str, str]:
        headers = {REMAINING_HEADER.format(kind=self.kind): str(self.remaining)}
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


@dataclass
class _Bucket:
    tokens: float
    updated: datetime


class Throttler:
    """The buckets of one tenant. Thread-safe; time comes from ``clock``."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}
        self._bursts: dict[str, datetime] = {}  # lower-cased subscription id → end of its 429 burst

    @staticmethod
    def principal_key(token: str) -> str:
        """Buckets are keyed by a digest of the bearer token (the principal), never the token itself."""
        return hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]

    def take(
        self, subscription_id: str, principal: str, method: str, limits: ThrottleLimits, enforce: bool
    ) -> Decision:
        """Take one token for a request. Refused (``allowed`` False) only when ``enforce`` and empty."""
        kind = kind_of(method)
        limit = limits.for_kind(kind)
        now = self._clock()
        key = (subscription_id.lower(), principal, kind)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(float(limit.burst), now)
            elapsed = max((now - bucket.updated).total_seconds(), 0.0)
            bucket.tokens = min(float(limit.burst), bucket.tokens + elapsed * limit.per_second)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return Decision(True, kind, math.floor(bucket.tokens))
            if not enforce:
                return Decision(True, kind, 0)
            wait = math.ceil((1.0 - bucket.tokens) / limit.per_second - 1e-9)
            return Decision(False, kind, 0, max(wait, 1))

    def burst_left(self, subscription_id: str) -> int:
        """Whole seconds (rounded up) left in the subscription's 429 burst; 0 when none is open."""
        with self._lock:
            end = self._bursts.get(subscription_id.lower())
            if end is None:
                return 0
            left = (end - self._clock()).total_seconds()
            if left <= 0:
                del self._bursts[subscription_id.lower()]
                return 0
            return max(math.ceil(left - 1e-9), 1)

    def open_burst(self, subscription_id: str, seconds: int) -> int:
        """Open a 429 burst of ``seconds`` on the subscription (unless one is open); the seconds left."""
        with self._lock:
            key = subscription_id.lower()
            now = self._clock()
            if key not in self._bursts or self._bursts[key] <= now:
                self._bursts[key] = now + timedelta(seconds=seconds)
        return self.burst_left(subscription_id)

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
            self._bursts.clear()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"subscription_id": s, "kind": k, "tokens": round(b.tokens, 3)}
                for (s, _, k), b in sorted(self._buckets.items())
            ]
