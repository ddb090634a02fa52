"""Child processes of a local testnet: started with a log file each, restarted with a
backoff when they crash (and given up on when they keep crashing), stopped without orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

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
    crashes: list[float] = field(default_factory=list)  # when it was seen dead (monotonic)
    restart_at: float | None = None  # a restart is due then (backing off)
    given_up: bool = False  # crashed too often: left stopped

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the fd
            self.process = subprocess.Popen(
                [*self.program, *self.args],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env},
                start_new_session=True,  # its own process group: we can stop all it started
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

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


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a crashed child, and when to stop trying.

    Why a backoff: a neuron that dies at start (a bad flag, a port taken) would otherwise be
    restarted every poll, filling its log and the CPU. Why a limit: one that keeps dying will
    not recover by itself, and a run that quietly restarts it forever hides the failure.
    Crashes older than `window` seconds are forgiven, so a neuron that ran fine for a while
    starts again from the shortest delay.
    """

    base_delay: float = 0.5
    max_delay: float = 30.0
    max_crashes: int = 5
    window: float = 120.0

    def __post_init__(self) -> None:
        if self.base_delay <= 0 or self.max_delay < self.base_delay:
            raise ValueError("RestartPolicy: need 0 < base_delay <= max_delay")
        if self.max_crashes < 1 or self.window <= 0:
            raise ValueError("RestartPolicy: need max_crashes >= 1 and window > 0")

    def recent(self, crashes: list[float], now: float) -> list[float]:
        return [t for t in crashes if now - t <= self.window]

    def delay(self, crashes: list[float], now: float) -> float | None:
        """Seconds to wait before the next start; None: give up (too many recent crashes)."""
        recent = self.recent(crashes, now)
        if len(recent) > self.max_crashes:
            return None
        return min(self.max_delay, self.base_delay * 2.0 ** max(0, len(recent) - 1))


@dataclass(frozen=True)
class ChildEvent:
    """Something the supervisor did about a child, for the view and the log."""

    child: Child
    kind: Literal["crashed", "restarted", "gave-up"]
    text: str


@dataclass
class Supervisor:
    """Starts children, restarts crashed ones (with a backoff, up to a limit), stops them."""

    children: list[Child] = field(default_factory=list)
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    clock: Callable[[], float] = time.monotonic

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

    def restart_crashed(self) -> list[ChildEvent]:
        """Notice children that exited, restart those whose backoff is over, give up on
        those that crash too often; return what happened (the caller reports it)."""
        now = self.clock()
        events: list[ChildEvent] = []
        for child in self.children:
            if child.given_up or child.process is None:
                continue
            if child.restart_at is None and not child.alive():
                child.crashes.append(now)
                delay = self.policy.delay(child.crashes, now)
                code = child.exit_code()
                if delay is None:
                    child.given_up = True
                    events.append(ChildEvent(child, "gave-up", (
                        f"{child.name} crashed {len(self.policy.recent(child.crashes, now))} "
                        f"times in {self.policy.window:.0f} s (last exit code {code}); gave up "
                        f"restarting it: see {child.log_path}")))
                    continue
                child.restart_at = now + delay
                events.append(ChildEvent(child, "crashed", (
                    f"{child.name} crashed (exit code {code}); restarting in {delay:.1f} s")))
            if child.restart_at is not None and now >= child.restart_at:
                child.restart_at = None
                child.restarts += 1
                child.start()
                events.append(ChildEvent(child, "restarted", (
                    f"{child.name} crashed; restarted (#{child.restarts})")))
        return events

    def stop_all(self) -> None:
        for child in reversed(self.children):
            child.stop()
