"""Shared fixtures and the test tiers.

Tiers: everything under ``tests/unit`` is pure or in-process and runs in about a minute,
the fast tier for the edit-test loop (``python3 -m pytest -m "not slow"``). The other
directories start real services (Redis, ledgers, miners, validators, kube-apiserver, the
test node), so their tests are marked ``slow`` here, by where they live, rather than one by
one: a new test file cannot forget its marker.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

CliRun = Callable[..., subprocess.CompletedProcess[str]]

SLOW_DIRECTORIES = frozenset({"integration", "k8s", "e2e"})
"""Test directories whose tests start real services or processes (see the module docstring)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test outside tests/unit ``slow`` (and the cluster's ``e2e``) by its directory."""
    tests_dir = Path(__file__).parent
    for item in items:
        parts = item.path.relative_to(tests_dir).parts
        if parts and parts[0] in SLOW_DIRECTORIES:
            item.add_marker(pytest.mark.slow)
        if parts and parts[0] == "e2e":
            item.add_marker(pytest.mark.e2e)


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
