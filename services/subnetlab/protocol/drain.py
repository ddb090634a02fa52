"""How every HTTP server of subnetlab stops: drain for a bounded time, then exit.

One mechanism for the ledger, the miner, the validator's gateway, the simulated engine
and the benchmark server. Why: uvicorn, left to its defaults, waits for every request in
flight before it exits, however long it takes. A miner whose engine takes a minute to
answer (or a client holding a stream open) kept the process alive long after SIGTERM, so
`subnetlab up` had to SIGKILL it and Kubernetes waited out the pod's grace period.

On SIGTERM or Ctrl-C (or the ledger's own stop) a :class:`DrainingServer`:

1. stops accepting connections and closes idle keep-alive ones at once;
2. lets the requests in flight (streams included) finish for up to ``drain_seconds``;
3. then cancels what is still running (uvicorn's ``timeout_graceful_shutdown``), runs the
   app's shutdown and exits, as the signal would have ended it;
4. should the process still be alive :data:`STOP_GRACE_S` after the drain ended (a task
   that ignores cancellation, a thread stuck in a call, a shutdown handler that hangs),
   a watchdog ends it with exit status ``128 + signal`` (1 when no signal stopped it).

So a server never outlives a stop request by more than :func:`stop_bound` seconds: what
`subnetlab up` waits before SIGKILL and the pods' ``terminationGracePeriodSeconds`` are
sized from it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import socket
import sys
import threading
from collections.abc import Mapping
from typing import Any

import uvicorn

__all__ = [
    "DEFAULT_DRAIN_SECONDS",
    "DRAIN_ENV",
    "MAX_DRAIN_SECONDS",
    "STOP_GRACE_S",
    "DrainingServer",
    "check_drain_seconds",
    "drain_seconds_from_env",
    "stop_bound",
]

DEFAULT_DRAIN_SECONDS = 5.0
"""Long enough for a typical chat answer or extrinsic to finish; short enough that a
restart is not noticeably delayed."""
MAX_DRAIN_SECONDS = 300.0
"""A drain longer than five minutes is a hung server, not a graceful one."""
STOP_GRACE_S = 5.0
"""After the drain: time for cancelled tasks and the app's shutdown before the watchdog."""
DRAIN_ENV = "SUBNETLAB_DRAIN_SECONDS"
"""The environment variable behind every server's `--drain-seconds`."""

log = logging.getLogger("subnetlab.drain")


def check_drain_seconds(value: float, flag: str = "--drain-seconds") -> float:
    """`value` when it is a number of seconds in [0, :data:`MAX_DRAIN_SECONDS`];
    `ValueError` naming `flag` otherwise (NaN and infinity included)."""
    if not (math.isfinite(value) and 0.0 <= value <= MAX_DRAIN_SECONDS):
        raise ValueError(f"{flag} {value}: must be a number of seconds in "
                         f"[0, {MAX_DRAIN_SECONDS:g}]")
    return value


def drain_seconds_from_env(env: Mapping[str, str] | None = None) -> float:
    """The drain time of a server started with `env` (default: this process's) and no
    `--drain-seconds`: $SUBNETLAB_DRAIN_SECONDS, else the default. A value the servers
    would refuse counts as the most they accept, so a supervisor never waits less than a
    server might drain."""
    raw = (os.environ if env is None else env).get(DRAIN_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_DRAIN_SECONDS
    try:
        return check_drain_seconds(float(raw))
    except ValueError:
        return MAX_DRAIN_SECONDS


def stop_bound(drain_seconds: float) -> float:
    """The longest a server lives after a stop request: the drain, then the grace."""
    return drain_seconds + STOP_GRACE_S


class DrainingServer(uvicorn.Server):
    """A uvicorn server that drains for at most `drain_seconds`, then exits (module doc).

    `config` are further `uvicorn.Config` settings (host and port for a server that binds
    its own socket); logging is quiet (warnings, no access log) like every server here.
    """

    def __init__(self, app: Any, drain_seconds: float, **config: Any) -> None:
        check_drain_seconds(drain_seconds, "drain_seconds")
        settings: dict[str, Any] = {"log_level": "warning", "access_log": False, **config}
        # uvicorn annotates the timeout as int, but hands it to asyncio.timeout, which
        # takes any number of seconds: a fraction of a second is honoured as given
        super().__init__(uvicorn.Config(
            app, timeout_graceful_shutdown=drain_seconds,  # type: ignore[arg-type]
            **settings))
        self.drain_seconds = drain_seconds
        self._watchdog: threading.Timer | None = None

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's shutdown (stop accepting, drain, cancel), under the watchdog."""
        if self._watchdog is None:
            self._watchdog = threading.Timer(stop_bound(self.drain_seconds), self._hard_exit)
            self._watchdog.daemon = True  # never what keeps the process alive
            self._watchdog.start()
        await super().shutdown(sockets)

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve until stopped; the watchdog is disarmed once the event loop is closed."""
        try:
            super().run(sockets=sockets)
        finally:
            if self._watchdog is not None:
                self._watchdog.cancel()

    def _hard_exit(self) -> None:
        signum = self._captured_signals[0] if self._captured_signals else None
        name = signal.Signals(signum).name if signum is not None else "stop"
        log.error("still running %g s after %s (drain %g s): exiting now",
                  stop_bound(self.drain_seconds), name, self.drain_seconds)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # closed, or a broken pipe
                stream.flush()
        os._exit(128 + signum if signum is not None else 1)
