"""The guard's two pieces of state: a replay cache and per-caller token buckets.

Both are O(1) (amortised) per request and bounded in memory, because they sit on the path
of every request a miner receives.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["RateLimit", "ReplayCache", "ReplayCacheFull", "TokenBuckets"]


class ReplayCacheFull(Exception):  # noqa: N818 -- a state, like QueueFull
    """The replay cache holds ``max_entries`` unexpired ids: refuse rather than forget one."""


class ReplayCache:
    """Request ids seen recently, each kept until its request could no longer pass freshness.

    An id is remembered until ``expires_at_ms`` (the request's timestamp plus the freshness
    window): until then a copy of the request would still be fresh, so it must be refused as
    a replay; after it, the copy is refused as stale and the id can be forgotten.

    Entries live in insertion order in an ``OrderedDict`` and are evicted from the front
    while the front has expired: O(1) amortised per request. Expiry times are not perfectly
    monotonic in insertion order (timestamps may be a few seconds off either way), so an
    expired entry can sit behind an unexpired one for at most one window: memory is kept a
    little longer, but an entry is never dropped before its own expiry.

    When ``max_entries`` unexpired ids are held, :meth:`add` raises
    :class:`ReplayCacheFull` instead of evicting a live id, which would reopen a replay hole.
    """

    __slots__ = ("_expiry", "max_entries")

    def __init__(self, max_entries: int = 262_144) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._expiry: OrderedDict[tuple[str, str], int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    def evict(self, now_ms: int) -> None:
        """Forget ids whose window ended before ``now_ms`` (front of the queue only)."""
        expiry = self._expiry
        while expiry:
            expires_at = expiry[next(iter(expiry))]
            if expires_at >= now_ms:
                return
            expiry.popitem(last=False)

    def seen(self, key: tuple[str, str]) -> bool:
        """True when ``key`` was added and has not been evicted."""
        return key in self._expiry

    def add(self, key: tuple[str, str], expires_at_ms: int) -> None:
        """Remember ``key`` until ``expires_at_ms``; call :meth:`evict` first."""
        if len(self._expiry) >= self.max_entries:
            raise ReplayCacheFull(f"{len(self._expiry)} request ids inside the freshness window")
        self._expiry[key] = expires_at_ms


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket per caller: ``rate`` requests per second sustained, ``burst`` at once."""

    rate: float = 50.0
    burst: float = 100.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"rate must be a positive number, got {self.rate}")
        if not (math.isfinite(self.burst) and self.burst >= 1):
            raise ValueError(f"burst must be at least 1, got {self.burst}")


class TokenBuckets:
    """One token bucket per key, created full on first use.

    A bucket that has been idle long enough to refill is indistinguishable from a new one,
    so when more than ``max_keys`` buckets exist the full ones are dropped: memory stays
    bounded without changing any caller's allowance.
    """

    __slots__ = ("_buckets", "limit", "max_keys")

    def __init__(self, limit: RateLimit, max_keys: int = 4096) -> None:
        self.limit = limit
        self.max_keys = max_keys
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, last refill (s)]

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, now_s: float) -> bool:
        """Spend one token of ``key``'s bucket; False (nothing spent) when it is empty."""
        rate, burst = self.limit.rate, self.limit.burst
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._drop_full(now_s)
            self._buckets[key] = [burst - 1.0, now_s]
            return True
        tokens = min(burst, bucket[0] + (now_s - bucket[1]) * rate)
        bucket[1] = now_s
        if tokens < 1.0:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1.0
        return True

    def _drop_full(self, now_s: float) -> None:
        rate, burst = self.limit.rate, self.limit.burst
        self._buckets = {
            key: bucket
            for key, bucket in self._buckets.items()
            if bucket[0] + (now_s - bucket[1]) * rate < burst
        }
