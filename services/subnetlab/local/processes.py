"""Child processes of a local testnet: started with a log file each, stopped without orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx


class NeuronProcessError(RuntimeError):
    """A child process exited or never became healthy; the message quotes its log."""


@dataclass
class Child:
    """One `python -m subnetlab …` child (or `program`, e.g. a vLLM server) with its own log
    and health URL."""

    name: str
    args: list[str]
    log_path: Path
    health_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    program: list[str] = field(default_factory=lambda: [sys.executable, "-m", "subnetlab"])

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*self.program, *self.args],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env},
            start_new_session=True,  # its own process group: we can stop all it started
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_healthy(self, timeout: float = 30.0) -> None:
        if self.health_url is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise NeuronProcessError(f"{self.name} exited: {self.tail()}")
            try:
                if httpx.get(self.health_url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise NeuronProcessError(f"{self.name} not healthy within {timeout:.0f}s: {self.tail()}")

    def tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the child's whole process group, then SIGKILL what is left."""
        if self.process is None or self.process.poll() is not None:
            return
        group = os.getpgid(self.process.pid)
        os.killpg(group, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            self.process.wait(timeout)


@dataclass
class Supervisor:
    """Starts children, restarts crashed ones, stops them all."""

    children: list[Child] = field(default_factory=list)

    def start(self, child: Child, timeout: float = 30.0) -> Child:
        self.children.append(child)
        child.start()
        child.wait_healthy(timeout)
        return child

    def start_all(self, children: list[Child], timeout: float = 60.0) -> list[Child]:
        """Start every child at once, then wait until each is healthy (startups overlap)."""
        for child in children:
            self.children.append(child)
            child.start()
        for child in children:
            child.wait_healthy(timeout)
        return children

    def restart_crashed(self) -> list[Child]:
        """Restart every child that exited; return them (the caller reports it)."""
        crashed = [c for c in self.children if c.process is not None and not c.alive()]
        for child in crashed:
            child.restarts += 1
            child.start()
        return crashed

    def stop_all(self) -> None:
        for child in reversed(self.children):
            child.stop()
