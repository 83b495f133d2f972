"""The journal: every request the simulated tenant answered, for assertions in tests and drills.

Secrets never enter it. Bodies are redacted on the way in: key values (``{"keyName": ..., "value": ...}``),
fields whose names denote secrets, SAS signatures in query strings, and any string equal to a secret the
tenant ever issued are replaced by ``***``. Headers (and so bearer tokens) are not recorded at all.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

REDACTED = "***"

# Field names whose values are secrets wherever they appear.
SECRET_FIELDS = frozenset(
    name.lower()
    for name in (
        "accessToken",
        "accountKey",
        "accountSasToken",
        "clientSecret",
        "connectionString",
        "password",
        "primaryKey",
        "refreshToken",
        "sasToken",
        "secondaryKey",
        "serviceSasToken",
        "sharedKey",
        "token",
    )
)
# Query parameters that carry secrets (SAS signature).
SECRET_QUERY_PARAMS = frozenset({"sig"})


# Secrets the tenant issues (account keys: base64; tokens: URL-safe base64) appear in text as runs of these
# characters; a run equal to a known secret is masked. One regex pass per string, however many secrets.
_SECRET_RUN = re.compile(r"[A-Za-z0-9+/_\-]{16,}={0,2}")


def redact(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of ``value`` (JSON-like) with every secret replaced by ``***``: key entries' ``value``,
    fields named like secrets, and any base64-like run of characters equal to one of ``secrets``."""
    known = frozenset(s for s in secrets if s)
    return _redact(value, known)


def _redact(value: Any, secrets: frozenset[str]) -> Any:
    if isinstance(value, dict):
        is_key_entry = any(str(k).lower() == "keyname" for k in value)
        out: dict[str, Any] = {}
        for key, item in value.items():
            lowered = str(key).lower()
            if lowered in SECRET_FIELDS or (is_key_entry and lowered == "value"):
                out[key] = REDACTED if item is not None else None
            else:
                out[key] = _redact(item, secrets)
        return out
    if isinstance(value, list):
        return [_redact(item, secrets) for item in value]
    if isinstance(value, str) and secrets:
        if value in secrets:
            return REDACTED  # a whole value (a Key Vault secret) that is not a base64-like run
        return _SECRET_RUN.sub(lambda run: REDACTED if run.group(0) in secrets else run.group(0), value)
    return value


def redact_query(query: dict[str, str], secrets: Iterable[str] = ()) -> dict[str, str]:
    known = frozenset(s for s in secrets if s)
    return {
        key: REDACTED if key.lower() in SECRET_QUERY_PARAMS else _redact(item, known)
        for key, item in query.items()
    }


@dataclass(frozen=True)
class JournalEntry:
    """One answered request. Bodies are already redacted."""

    seq: int
    time: datetime  # UTC
    method: str
    path: str
    query: dict[str, str]
    body: Any  # request body (parsed JSON, or a short description when not JSON), redacted
    status: int
    is_write: bool
    route: str | None  # the route's name, e.g. "storage.accounts.regenerate_key"; None when unknown
    response: Any  # response body, redacted

    @property
    def mutation(self) -> bool:
        """A write Azure accepted (2xx): the only entries that may have changed state. A refused, failed,
        throttled, timed-out (status 0) or reset request is journaled, but never as a mutation."""
        return self.is_write and 200 <= self.status < 300

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "method": self.method,
            "path": self.path,
            "query": dict(self.query),
            "body": self.body,
            "status": self.status,
            "is_write": self.is_write,
            "mutation": self.mutation,
            "route": self.route,
            "response": self.response,
        }


class Journal:
    """Thread-safe, append-only (until :meth:`clear`) list of :class:`JournalEntry`."""

    def __init__(self, clock: Callable[[], datetime], secrets: Callable[[], Iterable[str]]) -> None:
        self._clock = clock
        self._secrets = secrets
        self._lock = threading.Lock()
        self._entries: list[JournalEntry] = []
        self._seq = 0

    def record(
        self,
        *,
        method: str,
        path: str,
        query: dict[str, str],
        body: Any,
        status: int,
        is_write: bool,
        route: str | None,
        response: Any,
    ) -> JournalEntry:
        secrets = list(self._secrets())
        with self._lock:
            self._seq += 1
            entry = JournalEntry(
                seq=self._seq,
                time=self._clock(),
                method=method,
                path=path,
                query=redact_query(query, secrets),
                body=redact(body, secrets),
                status=status,
                is_write=is_write,
                route=route,
                response=redact(response, secrets),
            )
            self._entries.append(entry)
        return entry

    def entries(self) -> list[JournalEntry]:
        """Every entry, oldest first."""
        with self._lock:
            return list(self._entries)

    def writes(self) -> list[JournalEntry]:
        """Entries of requests that change state (PUT/PATCH/DELETE and non-read-only POSTs)."""
        return [entry for entry in self.entries() if entry.is_write]

    def mutations(self) -> list[JournalEntry]:
        """Writes Azure accepted (2xx), oldest first: what changed (or may have changed) the tenant."""
        return [entry for entry in self.entries() if entry.mutation]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def to_list(self) -> list[dict[str, Any]]:
        return [entry.to_dict() for entry in self.entries()]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
