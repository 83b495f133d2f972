"""Real processes for the fault and crash tests: ``irflow sim serve`` with fault flags, the irflow CLI, and
the simulator's admin routes (journal, state, faults, the write hook) as a test reads them."""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import procs
import requests
from procs import REPO, irflow_command

IRFLOW_EGRESS_IP = procs.EGRESS_IP
RG = "rg-phi-prod"
ACCOUNTS = ("phipatientexports", "phiclaimsarchive", "phiimaging")


# Read when the module is imported: the suite's autouse fixture removes IRFLOW_* variables before each test.
_ENVIRONMENT = dict(os.environ)


def seed_from_env(name: str) -> int:
    """A random seed per run, printed (pytest shows it on failure); ``name`` in the environment fixes it."""
    fixed = _ENVIRONMENT.get(name)
    seed = int(fixed) if fixed else random.SystemRandom().randrange(1, 2**31)
    print(f"{name}={seed}")
    return seed


@dataclass
class SimProcess:
    """``irflow sim serve`` as a process and its JSON start line."""

    process: subprocess.Popen[str]
    info: dict[str, Any]
    session: requests.Session = field(default_factory=requests.Session)  # one TLS connection, reused

    @property
    def env(self) -> dict[str, str]:
        return dict(self.info["env"])

    def account_id(self, name: str) -> str:
        return (
            f"/subscriptions/{self.info['subscription_id']}/resourceGroups/{RG}/providers/"
            f"Microsoft.Storage/storageAccounts/{name}"
        )

    def _admin(self, method: str, path: str, body: Any = None) -> Any:
        answer = self.session.request(
            method,
            f"{self.info['endpoint']}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.info['token']}"},
            verify=self.info["ca_file"],
            timeout=30,
        )
        answer.raise_for_status()
        return answer.json()

    def journal(self, *, mutations: bool = False) -> list[dict[str, Any]]:
        return list(self._admin("GET", "/_sim/journal" + ("?mutations=1" if mutations else "")))

    def state(self) -> dict[str, Any]:
        return dict(self._admin("GET", "/_sim/state"))

    def set_faults(self, **knobs: Any) -> dict[str, Any]:
        return dict(self._admin("POST", "/_sim/faults", knobs))

    def deny(self, permission: str, scope: str = "/") -> None:
        self._admin("POST", "/_sim/rbac/deny", {"permission": permission, "scope": scope})

    def reset(self) -> None:
        self._admin("POST", "/_sim/reset")

    def hook(self) -> dict[str, Any]:
        return dict(self._admin("GET", "/_sim/hooks"))

    def pause_after_write(self, after: int, hold_s: float = 60.0) -> dict[str, Any]:
        return dict(self._admin("POST", "/_sim/hooks/pause-after-write", {"after": after, "hold_s": hold_s}))

    def release(self) -> dict[str, Any]:
        return dict(self._admin("POST", "/_sim/hooks/release"))


@contextmanager
def sim_serve(*flags: str) -> Iterator[SimProcess]:
    """``irflow sim serve`` with these flags, irflow's calls coming from its egress IP."""
    with procs.sim_serve(caller_ip=IRFLOW_EGRESS_IP, extra=flags, cwd=REPO) as started:
        sim = SimProcess(started.process, started.info)
        try:
            yield sim
        finally:
            sim.session.close()


def irflow_env(sim: SimProcess, db: Path) -> dict[str, str]:
    return procs.irflow_env(sim.info, f"sqlite:///{db}")


def run_cli(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """The CLI as a subprocess with a bounded wait: a run that does not end in ``timeout`` fails the test."""
    try:
        return subprocess.run(
            irflow_command(*args),
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"irflow {' '.join(args[:2])} did not end within {timeout:g} s: it hangs"
        ) from exc


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(interval)
