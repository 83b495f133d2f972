"""Fixtures for the simulated tenant: the same tests run against both mounts (``responses`` and HTTPS)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sim_helpers import NOW, Sim

from irflow.clock import FrozenClock
from irflow.sim import Tenant
from irflow.sim.mock import DEFAULT_BASE_URL, mount
from irflow.sim.server import SimServer


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def tenant(clock: FrozenClock) -> Tenant:
    return Tenant.demo(clock=clock)


@pytest.fixture(params=["mock", "server"])
def sim(request: pytest.FixtureRequest, tenant: Tenant) -> Iterator[Sim]:
    if request.param == "mock":
        with mount(tenant):
            yield Sim("mock", tenant, DEFAULT_BASE_URL, True)
    else:
        with SimServer(tenant) as server:
            yield Sim("server", tenant, server.endpoint, server.ca_file)
