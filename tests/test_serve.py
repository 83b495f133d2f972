"""``irflow serve`` as a real process: health, readiness and metrics over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_answers_health_readiness_and_metrics(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "IRFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'irflow.db'}"}
    process = subprocess.Popen(
        [sys.executable, "-m", "irflow", "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            try:
                health = httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "irflow serve did not start"
                time.sleep(0.1)
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        ready = httpx.get(f"{base}/readyz", timeout=5)
        assert ready.status_code == 200
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
        assert 'irflow_runs{status="succeeded"} 0.0' in metrics
        assert "irflow_audit_events 0.0" in metrics
        missing = httpx.get(f"{base}/nope", timeout=5)
        assert missing.status_code == 404
        assert missing.json() == {"error": {"code": "not_found", "message": "Not Found"}}
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert process.returncode in (0, -15)
