"""Child processes the benchmarks start when not pointed at running services."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on loopback nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def started_ledger(url: str | None, timeout: float = 30.0) -> Iterator[str]:
    """Yield `url` as is, or start a --fast ledger on a private embedded Redis and stop it."""
    if url is not None:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="subnetlab-bench-") as tmp:
        port = free_port()
        log = Path(tmp) / "ledger.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "subnetlab", "ledger", "serve", "--fast", "--port", str(port),
             "--data-dir", str(Path(tmp) / "data")],
            stdout=log.open("wb"), stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"the ledger exited: {log.read_text()[-1000:]}")
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the ledger did not start within {timeout:.0f}s")
                time.sleep(0.1)
            yield base
        finally:
            process.terminate()
            process.wait(10)
            _stop_embedded_redis(Path(tmp) / "data")


def _stop_embedded_redis(data_dir: Path) -> None:
    from subnetlab.ledger.redis_server import EmbeddedRedis

    EmbeddedRedis(data_dir).stop()
