"""Child processes the benchmarks start when not pointed at running services.

Every benchmark server (a ledger, the protocol bench server; the e2e tests' Prometheus)
is started the same way: a child process on a free loopback port, its output in a log
file, ready when its ``/readyz`` (or another path) answers 200, and stopped (terminate,
then kill) when the bench is done, so `started_server` is the one place that knows how.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from subnetlab.bench.errors import BenchError


def free_port() -> int:
    """A TCP port on loopback nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def started_server(
    argv: Sequence[str], name: str, port: int, log: Path, timeout: float = 30.0,
    ready_path: str = "/readyz", stop_timeout: float = 10.0,
) -> Iterator[str]:
    """Run `argv` (which serves on `port`), yield its base URL once `ready_path` answers
    200, and stop it afterwards (SIGTERM, SIGKILL after `stop_timeout` s); BenchError
    (with the log's tail) when it exits or never gets ready within `timeout` seconds."""
    with log.open("wb") as out:
        process = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise BenchError(f"the {name} exited: {log.read_text()[-1000:]}")
            try:
                if httpx.get(f"{base}{ready_path}", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"the {name} did not start within {timeout:.0f}s")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def started_ledger(url: str | None, timeout: float = 30.0) -> Iterator[str]:
    """Yield `url` as is, or start a --fast ledger on a private embedded Redis and stop it."""
    if url is not None:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="subnetlab-bench-") as tmp:
        port = free_port()
        data = Path(tmp) / "data"
        argv = [sys.executable, "-m", "subnetlab", "ledger", "serve", "--fast",
                "--port", str(port), "--data-dir", str(data)]
        try:
            with started_server(argv, "ledger", port, Path(tmp) / "ledger.log", timeout) as base:
                yield base
        finally:
            _stop_embedded_redis(data)


def _stop_embedded_redis(data_dir: Path) -> None:
    from subnetlab.ledger.redis_server import EmbeddedRedis

    EmbeddedRedis(data_dir).stop()
