"""Child processes of a local testnet: started with a log file each, restarted with a
backoff when they crash (and given up on when they keep crashing), stopped without orphans."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx


class NeuronProcessError(RuntimeError):
    """A child process exited or never became healthy; the message quotes its log."""


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child get `sig` when this process dies, however it
    dies (SIGKILL included), so no child outlives its parent: Linux's PR_SET_PDEATHSIG
    through libc's prctl. None elsewhere (the parent's own stop is all there is).

    The signal comes when the *thread* that started the child ends: start children from
    a thread that lives as long as they should (the main thread, here)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: no signal will come
            os._exit(1)

    return preexec


class PortAllocator:
    """Loopback ports for the children of one run, each handed out once.

    A port probed free (bound to port 0 and closed again) is not reserved: the kernel
    may hand the same number out again before the child binds it, and two children then
    share one port (seen: 1 run in 7). This allocator remembers every port it gave and
    never gives one twice; a port it finds taken (by anyone) is skipped.
    """

    def __init__(self, probe: Callable[[], int] | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self._probe = probe or self._free
        self._given: set[int] = set()
        self._lock = threading.Lock()

    def _free(self) -> int:
        with socket.socket() as s:
            s.bind((self.host, 0))
            return int(s.getsockname()[1])

    def available(self, port: int) -> bool:
        """Nobody listens on `port` right now (as a server binding it would see it)."""
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            try:
                s.bind((self.host, port))
            except OSError:
                return False
            return True

    def take(self, attempts: int = 1000) -> int:
        """A port nobody listens on and this allocator never gave before."""
        with self._lock:
            for _ in range(attempts):
                port = self._probe()
                if port not in self._given and self.available(port):
                    self._given.add(port)
                    return port
        raise RuntimeError(f"no free loopback port in {attempts} attempts")


STOP_MARGIN_S = 5.0
"""What `Child.stop` waits beyond a server's own bound before it sends SIGKILL."""


def stop_timeout(env: Mapping[str, str], args: Sequence[str] = ()) -> float:
    """Seconds `Child.stop` gives a child to exit after SIGTERM: the longest its server may
    drain and exit (protocol/drain.py; its `--drain-seconds` in `args`, else as `env`
    sets it), plus :data:`STOP_MARGIN_S`."""
    from subnetlab.protocol.drain import (
        MAX_DRAIN_SECONDS,
        check_drain_seconds,
        drain_seconds_from_env,
        stop_bound,
    )

    drain = drain_seconds_from_env(env)
    if "--drain-seconds" in args[:-1]:
        try:
            drain = check_drain_seconds(float(args[args.index("--drain-seconds") + 1]))
        except ValueError:
            drain = MAX_DRAIN_SECONDS  # the server refuses it; never wait too little
    return stop_bound(drain) + STOP_MARGIN_S


def _address_in_use(text: str) -> bool:
    return "address already in use" in text.lower() or "errno 98" in text.lower()


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
    port: int | None = None  # the port it listens on (the value of its `--port` flag)
    log_offset: int = 0  # the log's size when it was last started

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the fd
            self.log_offset = log.tell()
            self.process = subprocess.Popen(
                [*self.program, *self.args],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env},
                start_new_session=True,  # its own process group: we can stop all it started
                preexec_fn=die_with_parent(),  # and it dies with us, even on SIGKILL
            )

    def last_log(self) -> str:
        """What the child wrote to its log since its latest start."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self.log_offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def move_to(self, port: int) -> None:
        """Listen on `port` from the next start: its `--port` flag and health URL."""
        old, self.port = self.port, port
        if "--port" in self.args:
            self.args[self.args.index("--port") + 1] = str(port)
        if self.health_url is not None and old is not None:
            self.health_url = self.health_url.replace(f":{old}/", f":{port}/", 1)

    def url(self) -> str | None:
        """http://127.0.0.1:PORT, where it listens now."""
        return None if self.port is None else f"http://127.0.0.1:{self.port}"

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

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM the child's whole process group, then SIGKILL what is left.

        By default it waits as long as the child's server may take to drain and exit
        (protocol/drain.py: its `--drain-seconds`, from $SUBNETLAB_DRAIN_SECONDS or the
        default, plus the grace), and a little more: a server is never killed mid-drain.
        """
        if self.process is None or self.process.poll() is not None:
            return
        if timeout is None:
            timeout = stop_timeout({**os.environ, **self.env}, self.args)
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
    ports: PortAllocator = field(default_factory=PortAllocator)

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
                moved = ""
                if child.port is not None and (_address_in_use(child.last_log())
                                               or not self.ports.available(child.port)):
                    # its port is someone else's now: the same port would fail forever
                    old = child.port
                    child.move_to(self.ports.take())
                    moved = f" on port {child.port} (port {old} was in use)"
                child.start()
                events.append(ChildEvent(child, "restarted", (
                    f"{child.name} crashed; restarted (#{child.restarts}){moved}")))
        return events

    def stop_all(self) -> None:
        for child in reversed(self.children):
            child.stop()
