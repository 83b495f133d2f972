"""ARM throttling: token buckets per subscription and principal, on the tenant clock, in both mounts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline.policies import RetryPolicy
from azure.core.rest import HttpRequest
from sim_helpers import NOW, PHI_RG, Sim

from irflow.clock import FrozenClock
from irflow.sim.throttle import BucketLimit, ThrottleLimits, Throttler, kind_of

WRITES = "x-ms-ratelimit-remaining-subscription-writes"
READS = "x-ms-ratelimit-remaining-subscription-reads"
DELETES = "x-ms-ratelimit-remaining-subscription-deletes"


class Recorder:
    """``raw_response_hook``: the headers of every answer the client saw."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []

    def __call__(self, pipeline_response: Any) -> None:
        self.headers.append(dict(pipeline_response.http_response.headers))


def test_a_burst_beyond_the_write_budget_is_throttled(sim: Sim, clock: FrozenClock) -> None:
    sim.tenant.faults.throttle = True
    sim.tenant.faults.set_limit("writes", 3, 0.5)
    seen = Recorder()
    client = sim.client(retry_total=0, raw_response_hook=seen)

    for n in range(3):
        client.storage_accounts.update(PHI_RG, "phiimaging", {"tags": {"n": str(n)}})
    assert [h[WRITES] for h in seen.headers] == ["2", "1", "0"]

    with pytest.raises(HttpResponseError) as caught:
        client.storage_accounts.update(PHI_RG, "phiimaging", {"tags": {"n": "throttled"}})
    assert caught.value.status_code == 429
    assert caught.value.error.code == "SubscriptionRequestsThrottled"
    assert "Please try again after '2' seconds" in caught.value.error.message
    throttled = caught.value.response.headers
    assert throttled["Retry-After"] == "2"  # one token at 0.5 per second
    assert throttled[WRITES] == "0"
    assert sim.tenant.storage_account("phiimaging").tags == {"n": "2"}  # the refused call changed nothing

    # Reads have their own bucket; a POST is a write for ARM (listKeys included).
    client.storage_accounts.get_properties(PHI_RG, "phiimaging")
    assert seen.headers[-1][READS] == "249" and WRITES not in seen.headers[-1]
    with pytest.raises(HttpResponseError):
        client.storage_accounts.list_keys(PHI_RG, "phiimaging")

    clock.advance(timedelta(seconds=1))  # half a token: still refused, and told to wait the other second
    with pytest.raises(HttpResponseError) as again:
        client.storage_accounts.update(PHI_RG, "phiimaging", {"tags": {"n": "too-soon"}})
    assert again.value.response.headers["Retry-After"] == "1"
    clock.advance(timedelta(seconds=1))
    client.storage_accounts.update(PHI_RG, "phiimaging", {"tags": {"n": "later"}})
    assert seen.headers[-1][WRITES] == "0"

    entries = sim.tenant.journal.entries()
    assert [e.status for e in entries] == [200, 200, 200, 429, 200, 429, 429, 200]
    refused = entries[3]
    assert refused.route == "storage.accounts.update" and refused.is_write
    assert refused.response["error"]["code"] == "SubscriptionRequestsThrottled"


def test_deletes_have_their_own_bucket_and_quota_headers_come_without_throttling(sim: Sim) -> None:
    assert sim.tenant.faults.throttle is False
    sim.tenant.faults.set_limit("writes", 1, 1)
    seen = Recorder()
    client = sim.client(retry_total=0, raw_response_hook=seen)
    client.storage_accounts.regenerate_key(PHI_RG, "phiimaging", {"keyName": "key1"})
    client.storage_accounts.regenerate_key(PHI_RG, "phiimaging", {"keyName": "key2"})  # over budget: admitted
    assert [h[WRITES] for h in seen.headers] == ["0", "0"]

    path = (
        f"/subscriptions/{sim.subscription_id}/resourceGroups/{PHI_RG}/providers/Microsoft.Storage"
        "/storageAccounts/phiimaging/blobServices/default/containers/dicom-archive?api-version=2026-09-01"
    )
    response = client.send_request(HttpRequest("DELETE", path))
    assert response.status_code == 404  # not simulated, but throttled and counted as ARM would
    assert response.headers[DELETES] == "199"


class RecordingRetry(RetryPolicy):
    """azure-core's own retry policy, with its waits recorded and the tenant clock advanced instead of
    sleeping (the policy still decides whether and how long to wait)."""

    def __init__(self, clock: FrozenClock, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self.waits: list[float] = []
        self.backoffs: list[float] = []

    def _sleep_for_retry(self, response, transport):  # type: ignore[no-untyped-def]
        retry_after = self.get_retry_after(response)
        if retry_after:
            self.waits.append(retry_after)
            self.clock.advance(timedelta(seconds=retry_after))
            return True
        return False

    def _sleep_backoff(self, settings, transport):  # type: ignore[no-untyped-def]
        self.backoffs.append(self.get_backoff_time(settings))


def test_the_sdk_retries_a_throttled_call_after_retry_after(sim: Sim, clock: FrozenClock) -> None:
    sim.tenant.faults.throttle = True
    sim.tenant.faults.set_limit("writes", 2, 0.5)
    retry = RecordingRetry(clock)
    client = sim.client(retry_policy=retry)

    client.storage_accounts.regenerate_key(PHI_RG, "phipatientexports", {"keyName": "key1"})
    client.storage_accounts.regenerate_key(PHI_RG, "phipatientexports", {"keyName": "key2"})
    before = sim.tenant.storage_account("phipatientexports").key_value("key1")
    keys = client.storage_accounts.regenerate_key(PHI_RG, "phipatientexports", {"keyName": "key1"})

    assert retry.waits == [2]  # the POST was retried only after the Retry-After it was given
    assert retry.backoffs == []
    entries = sim.tenant.journal.entries()
    assert [e.status for e in entries] == [200, 200, 429, 200]
    assert entries[3].time - entries[2].time == timedelta(seconds=2)
    account = sim.tenant.storage_account("phipatientexports")
    assert account.key_value("key1") != before
    assert account.key_times["key1"] == NOW + timedelta(seconds=2)
    assert keys.keys_property[0].creation_time == NOW + timedelta(seconds=2)


def test_buckets_are_per_subscription_and_reset_with_the_tenant(sim: Sim) -> None:
    sim.tenant.faults.throttle = True
    sim.tenant.faults.set_limit("reads", 1, 1)
    client = sim.client(retry_total=0)
    client.storage_accounts.get_properties(PHI_RG, "phiimaging")
    with pytest.raises(HttpResponseError):
        client.storage_accounts.get_properties(PHI_RG, "phiimaging")
    other = sim.client(retry_total=0, subscription_id="00000000-0000-4000-8000-000000000000")
    with pytest.raises(HttpResponseError) as caught:
        list(other.storage_accounts.list())
    assert caught.value.error.code == "SubscriptionNotFound"  # its own bucket: admitted, then not found
    sim.tenant.reset()
    client.storage_accounts.get_properties(PHI_RG, "phiimaging")


def test_token_bucket_arithmetic() -> None:
    clock = FrozenClock(NOW)
    throttler = Throttler(clock)
    limits = ThrottleLimits(writes=BucketLimit(2, 10.0))
    take = lambda: throttler.take("s", "p", "PATCH", limits, enforce=True)  # noqa: E731
    assert [take().remaining for _ in range(2)] == [1, 0]
    refused = take()
    assert not refused.allowed and refused.retry_after == 1  # ceil(0.1 s), at least one second
    assert refused.headers == {WRITES: "0", "Retry-After": "1"}
    clock.advance(timedelta(milliseconds=150))
    assert take().allowed
    clock.advance(timedelta(hours=1))
    assert take().remaining == 1  # refills up to the burst, no further
    assert [kind_of(m) for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")] == [
        "reads",
        "reads",
        "writes",
        "writes",
        "writes",
        "deletes",
    ]
    assert BucketLimit.parse("5/0.5") == BucketLimit(5, 0.5)
    assert BucketLimit.parse("200") == BucketLimit(200, 20.0)
    with pytest.raises(ValueError, match="BURST"):
        BucketLimit.parse("lots")
