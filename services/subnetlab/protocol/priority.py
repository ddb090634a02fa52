"""Stake-ordered admission for a busy miner: who gets the next free slot, and who is turned away.

Validators with more stake carry more weight in consensus, so when a miner cannot serve
everyone at once it serves them first: that is what the network pays it for. Equal stake is
served first come, first served, so nobody can jump a queue without more stake.

:class:`StakePriorityGate` holds ``concurrency`` slots. A request takes a free slot at once;
when none is free it waits, and each freed slot is handed directly to the waiter with the
highest stake (earliest first among equals), so a newcomer can never take a slot ahead of a
waiter. At most ``max_queue`` requests wait: when one more arrives, the lowest-stake of all
of them (the latest among equals, possibly the newcomer itself) gets :class:`QueueFull`,
which a miner answers with 429 ``busy``.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import math
from types import TracebackType

__all__ = ["QueueFull", "StakePriorityGate"]


class QueueFull(Exception):  # noqa: N818 -- names the state, like asyncio.QueueFull
    """The miner is busy and this request ranks lowest among those waiting: answer 429 busy."""


# A waiter: (stake, -arrival, future). Sorted ascending, the list ends with the waiter to
# serve next (highest stake, earliest arrival) and starts with the one to reject first.
# Arrival numbers are unique, so the future is never compared.
_Waiter = tuple[float, int, "asyncio.Future[None]"]


class StakePriorityGate:
    """``concurrency`` slots, and a queue of at most ``max_queue`` waiters ordered by stake.

    Use ``async with gate.slot(stake): ...`` around the work. Cancelling a waiting task
    removes it from the queue; a slot handed to a task that is cancelled before it runs is
    passed on, so slots never leak. Single event loop only (like ``asyncio.Semaphore``).
    """

    def __init__(self, concurrency: int, max_queue: int) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if max_queue < 0:
            raise ValueError(f"max_queue must be non-negative, got {max_queue}")
        self.concurrency = concurrency
        self.max_queue = max_queue
        self._free = concurrency
        self._waiters: list[_Waiter] = []
        self._arrivals = itertools.count()

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a slot now (export as a gauge)."""
        return len(self._waiters)

    @property
    def in_use(self) -> int:
        """Slots held now."""
        return self.concurrency - self._free

    def slot(self, stake: float) -> _Slot:
        """An async context manager holding one slot for a caller with ``stake``.

        Raises :class:`QueueFull` on entry when the request is turned away.
        """
        return _Slot(self, stake)

    async def acquire(self, stake: float) -> None:
        """Wait for a slot (prefer :meth:`slot`); raise :class:`QueueFull` if turned away."""
        if not math.isfinite(stake):
            raise ValueError(f"stake must be a finite number, got {stake}")
        if self._free > 0:  # free slots imply nobody waits: slots go straight to waiters
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter: _Waiter = (stake, -next(self._arrivals), future)
        waiters = self._waiters
        if len(waiters) >= self.max_queue:
            if not waiters or waiter[:2] < waiters[0][:2]:
                raise QueueFull(f"{len(waiters)} requests already wait with more stake")
            displaced = waiters.pop(0)[2]
            if not displaced.done():  # done = cancelled, its task is about to leave anyway
                displaced.set_exception(QueueFull("displaced by a caller with more stake"))
        bisect.insort(waiters, waiter)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.exception() is None:
                self.release()  # the slot arrived just as we were cancelled: pass it on
            else:
                self._remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back: to the best waiter if any, else to the free pool."""
        waiters = self._waiters
        while waiters:
            future = waiters.pop()[2]
            if not future.done():
                future.set_result(None)
                return
        self._free += 1

    def _remove(self, waiter: _Waiter) -> None:
        index = bisect.bisect_left(self._waiters, waiter)
        if index < len(self._waiters) and self._waiters[index] is waiter:
            del self._waiters[index]


class _Slot:
    """What :meth:`StakePriorityGate.slot` returns: acquire on enter, release on exit."""

    __slots__ = ("_gate", "_stake")

    def __init__(self, gate: StakePriorityGate, stake: float) -> None:
        self._gate = gate
        self._stake = stake

    async def __aenter__(self) -> None:
        await self._gate.acquire(self._stake)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._gate.release()
