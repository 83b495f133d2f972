"""Shared by the security tests: the CLI as a child process under a time and a memory bound."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MEMORY_LIMIT = 2 * 1024**3  # address space of the child: the 1.85 GB template and the 4.6 GB bomb die here
TIME_LIMIT = 90  # seconds; a child still running then is a hang, and the test fails on TimeoutExpired


def _bounded() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def irflow(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "irflow", *args],
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT,
        preexec_fn=_bounded,
        cwd=REPO,
    )
