"""A validator's view of its own health: what failed last, and what it depends on.

The loop never dies on a ledger or Redis error: each failed round is classified here
(which dependency failed), logged as one line, retried with backoff, and reported in
`/healthz` (`degraded` while the ledger or Redis is unreachable). `/healthz` still
answers 200 when degraded: the process is alive and will recover by itself, so a
liveness probe must not restart it; the body says what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import redis

from subnetlab.engines import EngineError
from subnetlab.ledger.client import LedgerError, LedgerUnreachable

MAX_BACKOFF_S = 10.0


class LedgerUnavailableError(RuntimeError):
    """The ledger answered, but not usefully (HTTP 5xx, 503 not_ready, not JSON)."""


def dependency_of(exc: BaseException) -> str:
    """Which part a failure came from: ledger, redis, chain (a refused extrinsic),
    reference (the reference model), or internal."""
    if isinstance(exc, redis.RedisError):
        return "redis"
    if isinstance(exc, httpx.HTTPError | LedgerUnavailableError | LedgerUnreachable):
        return "ledger"
    if isinstance(exc, LedgerError):
        # A refusal with the chain's code blames the chain; a ledger not ready, answering
        # 5xx or not answering JSON blames the ledger.
        unwell = exc.code in ("not_ready", "bad_response") or (exc.status or 0) >= 500
        return "ledger" if unwell else "chain"
    if isinstance(exc, EngineError):
        return "reference"
    return "internal"


def one_line(exc: BaseException, limit: int = 300) -> str:
    """`Type: message` on one line, cut to `limit` characters."""
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Health:
    """Dependency states (`ok`, `unreachable`, `unknown`) and the last failure."""

    ledger: str = "unknown"
    redis: str = "unknown"
    reference: str = "unknown"
    last_error: str | None = None
    last_stage: str | None = None
    consecutive_failures: int = 0
    missed_reveals: int = 0

    def failed(self, stage: str, exc: BaseException) -> str:
        """Record a failed round; return the dependency it is blamed on."""
        dependency = dependency_of(exc)
        if dependency in ("ledger", "redis", "reference"):
            setattr(self, dependency, "unreachable")
        self.last_error, self.last_stage = one_line(exc), stage
        self.consecutive_failures += 1
        return dependency

    def succeeded(self) -> None:
        self.consecutive_failures = 0

    def backoff_s(self, interval_s: float) -> float:
        """Wait before the next round: the interval, doubled per consecutive failure."""
        if not self.consecutive_failures:
            return interval_s
        return min(MAX_BACKOFF_S, interval_s * 2.0 ** min(self.consecutive_failures, 16))

    def status(self, following: bool) -> str:
        unreachable = "unreachable" in (self.ledger, self.redis) or not following
        return "degraded" if unreachable else "ok"

    def as_json(self, following: bool) -> dict[str, Any]:
        return {"status": self.status(following), "ledger": self.ledger,
                "block_stream": "connected" if following else "disconnected",
                "redis": self.redis, "reference": self.reference,
                "consecutive_failures": self.consecutive_failures,
                "last_error": self.last_error, "last_stage": self.last_stage,
                "missed_reveals": self.missed_reveals}
