"""A per-client-IP token bucket for refused anonymous requests (401).

Each 401 takes one token from the caller's bucket; an empty bucket makes the API answer 429 with
``Retry-After`` before it looks at the credential, so a flood of bad tokens costs neither a database read
per request nor an audit write per forged webhook delivery. Authenticated callers never spend tokens.
Memory is bounded: the least recently seen addresses are forgotten first.

Behind a reverse proxy every caller has the proxy's address unless uvicorn is told to trust
``X-Forwarded-For`` (``--proxy-headers --forwarded-allow-ips``); see docs/api.md.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict


class RefusalLimiter:
    def __init__(self, *, burst: int, rate: float, capacity: int = 10_000) -> None:
        if burst < 1 or rate <= 0:
            raise ValueError("burst must be at least 1 and rate positive")
        self.burst, self.rate, self.capacity = burst, rate, capacity
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # ip -> (tokens, at)
        self._lock = threading.Lock()

    def _level(self, ip: str, now: float) -> float:
        tokens, at = self._buckets.get(ip, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.rate)

    def retry_after(self, ip: str) -> int | None:
        """Seconds until *ip* may be refused again; None while it has tokens left."""
        now = time.monotonic()
        with self._lock:
            if ip not in self._buckets:
                return None
            level = self._level(ip, now)
        return None if level >= 1 else max(1, math.ceil((1 - level) / self.rate))

    def refused(self, ip: str) -> None:
        """Spend one token of *ip* for a refusal."""
        now = time.monotonic()
        with self._lock:
            level = self._level(ip, now)
            self._buckets[ip] = (max(0.0, level - 1), now)
            self._buckets.move_to_end(ip)
            while len(self._buckets) > self.capacity:
                self._buckets.popitem(last=False)
