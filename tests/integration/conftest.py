"""Real processes for integration tests: Redis servers, ledgers, miners and validators on
loopback."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from subnetlab.ledger.redis_server import EmbeddedRedis
from subnetlab.local.processes import Child, die_with_parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return
        except (httpx.HTTPError, redis.RedisError, OSError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def miner_child(name: str, netuid: int, ledger: str, logs: Path, *extra: str,
                port: int | None = None) -> Child:
    """`subnetlab miner serve` with dev key `name` on a free port (or `port`), for a
    `Supervisor`; `extra` are further CLI flags (a behaviour, a backend)."""
    port = port or free_port()
    return Child(name, ["miner", "serve", "--dev-key", name, "--netuid", str(netuid),
                        "--ledger", ledger, "--port", str(port), "--log-level", "warning",
                        *extra],
                 logs / f"{name}.log", f"http://127.0.0.1:{port}/healthz")


def validator_child(name: str, netuid: int, ledger: str, redis_url: str, logs: Path,
                    *extra: str, api_key: str = "k", log_level: str | None = "warning") -> Child:
    """`subnetlab validator run` with dev key `name`, a fast loop (0.3 s, 2 s timeout) and
    its gateway keyed by `api_key`; `log_level` None keeps the validator's default."""
    port = free_port()
    level = ["--log-level", log_level] if log_level else []
    return Child(name, ["validator", "run", "--dev-key", name, "--netuid", str(netuid),
                        "--ledger", ledger, "--redis-url", redis_url, "--port", str(port),
                        "--interval", "0.3", "--timeout", "2", *level, *extra],
                 logs / f"{name}.log", f"http://127.0.0.1:{port}/healthz",
                 env={"SUBNETLAB_API_KEYS": api_key})


@dataclass
class RedisServer:
    """A Redis server process of our own (Debian's redis-server) on a free port."""

    url: str
    process: subprocess.Popen[bytes]


def start_redis_server(data_dir: Path, durable: bool = True) -> RedisServer:
    """Start Debian's redis-server on a free loopback port, AOF fsynced on every write
    (or, not `durable`, with no persistence at all: what the ledger refuses by default)."""
    binary = shutil.which("redis-server", path="/usr/bin:/usr/sbin:/usr/local/bin")
    if binary is None:
        pytest.fail("redis-server is not installed: .ci/run installs Debian's redis-server")
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
         "--appendonly", "yes" if durable else "no", "--appendfsync", "always", "--save", ""],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent(),  # a killed pytest leaves no server behind
    )
    url = f"redis://127.0.0.1:{port}/0"
    wait_until(lambda: redis.Redis.from_url(url).ping(), 10, "redis-server")
    return RedisServer(url, proc)


def stop_redis_server(server: RedisServer) -> None:
    server.process.terminate()
    server.process.wait(10)


@pytest.fixture
def system_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """Debian's redis-server, installed by .ci/run: the real thing, not the embedded one."""
    server = start_redis_server(tmp_path)
    yield server
    stop_redis_server(server)


@pytest.fixture
def embedded_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """The embedded Redis the ledger uses by default, in a private data dir."""
    embedded = EmbeddedRedis(tmp_path / "embedded")
    embedded.ensure_running(preexec_fn=die_with_parent())  # gone with pytest, however it ends
    yield embedded
    embedded.stop()


@dataclass
class LedgerProcess:
    """`subnetlab ledger serve` running as a child process."""

    port: int
    args: list[str]
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        log = self.log_path.with_suffix(f".{len(self.logs)}.log")
        self.logs.append(log)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "subnetlab", "ledger", "serve", "--port", str(self.port),
             *self.args],
            stdout=log.open("wb"), stderr=subprocess.STDOUT, env=self.env,
            preexec_fn=die_with_parent(),  # SIGTERM when pytest dies, however it dies
        )
        wait_until(self._ready, timeout, f"ledger on port {self.port} (log: {log})")

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"ledger exited with {self.process.returncode}: "
                               f"{self.logs[-1].read_text()[-2000:]}")
        return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(10)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


def start_ledger(
    workdir: Path, redis_url: str | None, extra: list[str] | None = None, fast: bool = True,
    name: str = "ledger",
) -> LedgerProcess:
    """Start `subnetlab ledger serve` on a free port and wait for /readyz.

    `redis_url=None` passes no --redis-url (give `--data-dir` in `extra` for the embedded
    Redis); HOME points into `workdir`, so nothing ever lands in the real ~/.subnetlab.
    """
    env = {**os.environ, "SUBNETLAB_HOME": str(workdir / "home"), "HOME": str(workdir / "home"),
           "PYTHONUNBUFFERED": "1"}
    args = [*(["--redis-url", redis_url] if redis_url else []), *(["--fast"] if fast else []),
            *(extra or [])]
    ledger = LedgerProcess(free_port(), args, workdir / name, env)
    try:
        ledger.start()
    except BaseException:
        ledger.kill()
        raise
    return ledger


@pytest.fixture
def ledger_factory(tmp_path: Path) -> Iterator[object]:
    """Start ledgers: `ledger_factory(redis_url=..., extra=[...])` -> LedgerProcess.

    `redis_url=None` starts a ledger without --redis-url (pass `--data-dir` in `extra`).
    """
    started: list[LedgerProcess] = []

    def make(
        redis_url: str | None, extra: list[str] | None = None, fast: bool = True
    ) -> LedgerProcess:
        ledger = start_ledger(tmp_path, redis_url, extra, fast, name=f"ledger{len(started)}")
        started.append(ledger)
        return ledger

    yield make
    for ledger in started:
        ledger.kill(signal.SIGTERM)


@pytest.fixture
def ledger(ledger_factory: object, system_redis: RedisServer) -> LedgerProcess:
    """One fast-block ledger on a real Redis server."""
    return ledger_factory(system_redis.url)  # type: ignore[operator, no-any-return]


# --- module-scoped variants: one Redis and one ledger shared by a whole test module ----------


@pytest.fixture(scope="module")
def module_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server shared by the tests of one module (keeps the suite fast)."""
    server = start_redis_server(tmp_path_factory.mktemp("module-redis"))
    yield server
    stop_redis_server(server)


@pytest.fixture(scope="module")
def module_ledger(
    tmp_path_factory: pytest.TempPathFactory, module_redis: RedisServer
) -> Iterator[LedgerProcess]:
    """One fast-block ledger on `module_redis`, shared by the tests of one module."""
    ledger = start_ledger(tmp_path_factory.mktemp("module-ledger"), module_redis.url)
    yield ledger
    ledger.kill(signal.SIGTERM)
