"""Real irflow processes on loopback for the end-to-end tests: ``irflow sim serve`` and its JSON start line,
``irflow serve`` waited for until ready, API tokens from ``irflow tokens create``, and a bounded stop.

Importable as ``procs`` from every test directory: the suite's root conftest.py puts tests/ on sys.path.
Each test keeps what it is about (latency, fault flags, settings, roles) at its call site.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
PLAYBOOKS = REPO / "playbooks"
# irflow's egress IP, configured as a deployment would (IRFLOW_EGRESS_IPS): the strict tenant's firewalls see
# irflow's calls come from it (irflow.sim.firewall), and the simulator's start line's env then carries it.
EGRESS_IP = "192.0.2.10"


def irflow_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "irflow", *args]


def free_port() -> int:
    """A loopback port free at the time of the call."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen[Any], timeout: float = 30) -> int:
    """SIGTERM, then up to ``timeout`` seconds for the process to end; one that has not ended is killed (no
    test leaves a process behind) and the test fails. Returns the exit code."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        process.kill()
        process.wait(timeout=10)
        raise AssertionError(f"{exc.cmd} did not end within {timeout:g} s of SIGTERM: killed") from None


@dataclass
class Sim:
    """``irflow sim serve`` as a process and its JSON start line (endpoint, token, ca_file, env, ...)."""

    process: subprocess.Popen[str]
    info: dict[str, Any]


def _sim_command(
    *,
    latency_ms: int | None = None,
    caller_ip: str | None = EGRESS_IP,
    fault_profile: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    command = irflow_command("sim", "serve", "--port", "0")
    if latency_ms is not None:
        command += ["--latency-ms", str(latency_ms)]
    if caller_ip is not None:
        command += ["--caller-ip", caller_ip]
    if fault_profile is not None:
        command += ["--fault-profile", fault_profile]
    return [*command, *extra]


@contextmanager
def sim_serve(
    *,
    latency_ms: int | None = None,
    caller_ip: str | None = EGRESS_IP,
    fault_profile: str | None = None,
    extra: Sequence[str] = (),
    cwd: Path | None = None,
    stop_within: float = 30,
) -> Iterator[Sim]:
    """``irflow sim serve --port 0`` with these options, yielded once its start line is read; stopped after.
    ``latency_ms`` is the simulator's delay per Azure call; ``caller_ip`` the address its firewalls see
    irflow's calls come from (None: none); ``extra`` further flags as given."""
    command = _sim_command(
        latency_ms=latency_ms, caller_ip=caller_ip, fault_profile=fault_profile, extra=extra
    )
    # stderr to a file, not a pipe nobody reads (a full pipe blocks the server); read if it does not start
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=cwd)
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            if not line:
                process.wait(timeout=30)
                stderr.seek(0)
                raise AssertionError(f"{' '.join(command[2:])} did not start: {stderr.read()[-3000:]}")
            yield Sim(process, json.loads(line))
        finally:
            stop(process, stop_within)


def irflow_env(
    sim: Mapping[str, Any],
    database_url: str,
    *,
    playbooks: Path = PLAYBOOKS,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of an irflow process over the simulator whose start line is ``sim``: ``base``
    (default: this process's environment), the simulator's connection settings, the database, the playbooks,
    a 50 ms queue poll and an on-call recipient. A test adds its own settings to the result."""
    return {
        **(os.environ if base is None else base),
        **sim["env"],
        "IRFLOW_DATABASE_URL": database_url,
        "IRFLOW_QUEUE_POLLING_INTERVAL": "0.05",
        "IRFLOW_ONCALL_RECIPIENTS": "soc-oncall@example.org",
        "IRFLOW_PLAYBOOKS_DIR": str(playbooks),
    }


def create_token(env: Mapping[str, str], cwd: Path, *, role: str, name: str, timeout: float = 120) -> str:
    """An API token from ``irflow tokens create`` (its last line of output) in the database of ``env``."""
    created = subprocess.run(
        irflow_command("tokens", "create", "--role", role, "--name", name),
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert created.returncode == 0, created.stderr
    return created.stdout.splitlines()[-1]


@dataclass
class Served:
    """``irflow serve`` as a process, its base URL and the file its stdout and stderr go to."""

    process: subprocess.Popen[bytes]
    base: str
    log: Path

    def stop(self, timeout: float = 30) -> int:
        return stop(self.process, timeout)


def start_serve(
    env: Mapping[str, str], cwd: Path, *, log: Path, args: Sequence[str] = (), ready_within: float = 90
) -> Served:
    """``irflow serve`` on a free loopback port, returned once /readyz answers 200. The test fails if the
    process ends first (with the end of its log) or is not ready within ``ready_within`` seconds (stopped)."""
    port = free_port()
    with log.open("wb") as out:  # the child has its own copy of the descriptor
        process = subprocess.Popen(
            irflow_command("serve", "--port", str(port), *args),
            env=dict(env),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = Served(process, f"http://127.0.0.1:{port}", log)
    try:
        _wait_ready(served, ready_within)
    except BaseException:
        if process.poll() is None:
            stop(process)
        raise
    return served


def _wait_ready(served: Served, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        assert served.process.poll() is None, served.log.read_text(errors="replace")[-3000:]
        try:
            if httpx.get(f"{served.base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"irflow serve did not become ready within {within:g} s"
        time.sleep(0.2)


@contextmanager
def serve(
    env: Mapping[str, str], cwd: Path, *, log: Path, args: Sequence[str] = (), ready_within: float = 90
) -> Iterator[Served]:
    """:func:`start_serve`, stopped (:func:`stop`) when the block ends."""
    served = start_serve(env, cwd, log=log, args=args, ready_within=ready_within)
    try:
        yield served
    finally:
        served.stop()
