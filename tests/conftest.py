"""Shared fixtures: run the real `subnetlab` command in a child process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

CliRun = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli() -> CliRun:
    """Run `python -m subnetlab ARGS…` and return the finished process (never raises)."""

    def run(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "subnetlab", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run
