"""Fault knobs of the fault test: 429 bursts with Retry-After, connection resets, failed requests never
journaled as mutations, named fault profiles, and the hook that holds the answer to a write (crash tests)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.core.rest import HttpRequest
from sim_helpers import PHI_RG, Sim
from test_sim_server_and_cli import _read_line, client_for
from test_sim_throttle import RecordingRetry

from irflow.clock import FrozenClock
from irflow.sim import Tenant
from irflow.sim.mock import mount
from irflow.sim.models import FaultSettings, SimConnectionReset
from irflow.sim.scenario import FAULT_PROFILES


def _admin(sim: Sim, method: str, path: str, body: object | None = None):  # type: ignore[no-untyped-def]
    request = HttpRequest(method, path, json=body) if body is not None else HttpRequest(method, path)
    return sim.client().send_request(request)


# ------------------------------------------------------------------------------------------- 429 bursts
def test_a_burst_answers_429_with_retry_after_until_its_window_closes(sim: Sim, clock: FrozenClock) -> None:
    sim.tenant.faults.burst_rate = 1.0
    sim.tenant.faults.burst_retry_after = 3
    before = sim.tenant.storage_account("phiimaging").key_value("key1")
    client = sim.client(retry_total=0)

    with pytest.raises(HttpResponseError) as caught:
        client.storage_accounts.regenerate_key(PHI_RG, "phiimaging", {"keyName": "key1"})
    assert caught.value.status_code == 429 and caught.value.error.code == "TooManyRequests"
    assert caught.value.response.headers["Retry-After"] == "3"

    sim.tenant.faults.burst_rate = 0.0  # no new burst; the open one still holds its window
    clock.advance(timedelta(seconds=1))
    with pytest.raises(HttpResponseError) as early:  # sent before Retry-After elapsed: a new retry value
        client.storage_accounts.get_properties(PHI_RG, "phiimaging")
    assert early.value.status_code == 429 and early.value.response.headers["Retry-After"] == "2"

    clock.advance(timedelta(seconds=2))
    assert client.storage_accounts.get_properties(PHI_RG, "phiimaging").name == "phiimaging"
    assert sim.tenant.storage_account("phiimaging").key_value("key1") == before  # nothing changed
    entries = sim.tenant.journal.entries()
    assert [(e.status, e.mutation) for e in entries] == [(429, False), (429, False), (200, False)]
    assert sim.tenant.journal.mutations() == []


def test_the_sdk_waits_out_a_burst_and_then_writes_once(sim: Sim, clock: FrozenClock) -> None:
    sim.tenant.faults.burst_rate = 1.0
    sim.tenant.faults.burst_retry_after = 2
    retry = RecordingRetry(clock)

    def no_new_burst(pipeline_request) -> None:  # type: ignore[no-untyped-def]
        sim.tenant.faults.burst_rate = 0.0  # the first call opened one; later ones find it closed

    client = sim.client(retry_policy=retry, raw_response_hook=no_new_burst)
    client.storage_accounts.regenerate_key(PHI_RG, "phiimaging", {"keyName": "key1"})

    assert retry.waits == [2]  # ARM's Retry-After, honoured by azure-core's RetryPolicy
    [mutation] = sim.tenant.journal.mutations()
    assert mutation.route == "storage.accounts.regenerate_key"
    assert [e.status for e in sim.tenant.journal.entries()] == [429, 200]


def test_bursts_are_per_subscription_and_skip_tenant_level_and_admin_paths(sim: Sim) -> None:
    sim.tenant.faults.burst_rate = 1.0
    client = sim.client(retry_total=0)
    with pytest.raises(HttpResponseError):
        client.storage_accounts.get_properties(PHI_RG, "phiimaging")
    assert sim.tenant.throttler.burst_left(sim.subscription_id) == 2
    assert sim.tenant.throttler.burst_left("00000000-0000-0000-0000-000000000000") == 0
    assert _admin(sim, "GET", "/_sim/faults").json()["burst_rate"] == 1.0
    sim.tenant.reset()
    assert sim.tenant.throttler.burst_left(sim.subscription_id) == 0


# -------------------------------------------------------------------------------------- connection resets
def test_a_reset_answers_nothing_and_changes_nothing(sim: Sim) -> None:
    sim.tenant.faults.reset_rate = 1.0
    before = sim.tenant.storage_account("phiimaging").key_value("key1")
    client = sim.client(retry_total=0)

    with pytest.raises((ServiceResponseError, ServiceRequestError)) as caught:
        client.storage_accounts.regenerate_key(PHI_RG, "phiimaging", {"keyName": "key1"})

    if sim.mode == "mock":
        assert isinstance(caught.value.inner_exception, requests.exceptions.ConnectionError)
    assert sim.tenant.storage_account("phiimaging").key_value("key1") == before
    [entry] = sim.tenant.journal.entries()
    assert (entry.status, entry.is_write, entry.mutation) == (0, True, False)
    assert sim.tenant.journal.mutations() == []


def test_reset_and_burst_draws_are_seeded_and_taken_only_when_set() -> None:
    def outcomes(seed: int) -> list[int]:
        tenant = Tenant.demo(seed=seed, faults=FaultSettings(reset_rate=0.3, burst_rate=0.2))
        tenant.sleep = lambda seconds: None
        url = (
            f"https://management.azure.com/subscriptions/{tenant.default_subscription_id}/resourceGroups/"
            f"{PHI_RG}/providers/Microsoft.Storage/storageAccounts/phiimaging?api-version=2026-09-01"
        )
        with mount(tenant):
            for _ in range(20):
                with contextlib.suppress(SimConnectionReset):
                    requests.get(url, headers={"Authorization": f"Bearer {tenant.token}"}, timeout=5)
        return [e.status for e in tenant.journal.entries()]

    first = outcomes(11)
    assert first == outcomes(11) and 0 in first and 429 in first
    quiet = Tenant.demo(seed=11)
    assert not quiet.faults.draw_reset(quiet.random) and not quiet.faults.draw_burst(quiet.random)
    assert quiet.random.random() == Tenant.demo(seed=11).random.random()  # no draw was taken


def test_fault_settings_validate_the_new_knobs() -> None:
    for bad, name in (({"reset_rate": 1.5}, "reset_rate"), ({"burst_rate": -0.1}, "burst_rate")):
        with pytest.raises(ValueError, match=name):
            FaultSettings(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="burst_retry_after"):
        FaultSettings(burst_retry_after=0)
    tenant = Tenant.demo()
    with pytest.raises(ValueError):
        tenant.configure_faults({"burst_retry_after": 0})
    assert tenant.configure_faults(FAULT_PROFILES["flaky"])["error_rate"] == 0.1


# ------------------------------------------------------------------------- journal: mutations and failures
def test_failed_writes_are_journaled_but_never_as_mutations(sim: Sim) -> None:
    client = sim.client(retry_total=0)
    sim.tenant.faults.error_rate = 1.0
    with pytest.raises(HttpResponseError):
        client.storage_accounts.regenerate_key(PHI_RG, "phiimaging", {"keyName": "key1"})
    sim.tenant.faults.error_rate = 0.0
    with pytest.raises(HttpResponseError):  # 404: no such account
        client.storage_accounts.regenerate_key(PHI_RG, "nosuchaccount", {"keyName": "key1"})
    client.storage_accounts.regenerate_key(PHI_RG, "phiimaging", {"keyName": "key2"})

    assert [(e.status, e.is_write, e.mutation) for e in sim.tenant.journal.entries()] == [
        (500, True, False),
        (404, True, False),
        (200, True, True),
    ]
    [mutation] = _admin(sim, "GET", "/_sim/journal?mutations=1").json()
    assert mutation["body"] == {"keyName": "key2"} and mutation["mutation"] is True


# --------------------------------------------------------------------------------- hold the answer to a write
def test_the_write_hook_holds_the_answer_after_the_write_until_released() -> None:
    tenant = Tenant.demo()
    from irflow.sim.server import SimServer

    with SimServer(tenant) as server:
        sim = Sim("server", tenant, server.endpoint, server.ca_file)
        armed = _admin(sim, "POST", "/_sim/hooks/pause-after-write", {"after": 2, "hold_s": 30})
        assert armed.json()["armed"] and armed.json()["remaining"] == 2
        client = sim.client(retry_total=0)
        client.storage_accounts.regenerate_key(PHI_RG, "phiimaging", {"keyName": "key1"})  # 1st: answered
        answered = threading.Event()

        def second_write() -> None:
            client.storage_accounts.regenerate_key(PHI_RG, "phiimaging", {"keyName": "key2"})
            answered.set()

        writer = threading.Thread(target=second_write, daemon=True)
        writer.start()
        deadline = time.monotonic() + 30
        while not _admin(sim, "GET", "/_sim/hooks").json()["paused"]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        status = _admin(sim, "GET", "/_sim/hooks").json()
        assert status["mutation"]["body"] == {"keyName": "key2"}  # journaled and applied, not answered
        assert len(tenant.journal.mutations()) == 2 and not answered.is_set()
        # other calls go on meanwhile
        assert client.storage_accounts.get_properties(PHI_RG, "phiimaging").name == "phiimaging"
        assert _admin(sim, "POST", "/_sim/hooks/release").json()["paused"] in (True, False)
        writer.join(timeout=30)
        assert answered.is_set()
        assert _admin(sim, "GET", "/_sim/hooks").json() == {
            "armed": False,
            "remaining": None,
            "paused": False,
            "mutation": None,
            "held": 1,
        }
        bad = _admin(sim, "POST", "/_sim/hooks/pause-after-write", {"after": 0})
        assert bad.status_code == 400 and "after" in bad.json()["error"]["message"]


# -------------------------------------------------------------------------------------- irflow sim serve
@pytest.mark.slow
def test_sim_serve_fault_profile_and_flags() -> None:
    command = [sys.executable, "-m", "irflow.cli.sim", "serve", "--fault-profile", "flaky"]
    flags = ["--reset-rate", "0.25", "--burst-retry-after", "4", "--seed", "3"]
    process = subprocess.Popen(
        [*command, *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        info = json.loads(_read_line(process.stdout, timeout=30))
        client = client_for(info["endpoint"], info["token"], info["subscription_id"], info["ca_file"])
        knobs = client.send_request(HttpRequest("GET", "/_sim/faults")).json()
        assert (knobs["error_rate"], knobs["burst_rate"]) == (0.1, 0.03)  # the profile
        assert (knobs["reset_rate"], knobs["burst_retry_after"]) == (0.25, 4)  # flags win over it
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    unknown = subprocess.run([*command[:-1], "no-such-profile"], capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "no fault profile 'no-such-profile'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
