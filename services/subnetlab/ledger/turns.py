"""Turns at the ledger's door: requests admitted one after the other, in arrival order.

A request's work before admission (decoding, shape checks, signatures in the worker
process) reads no chain state, so requests may overlap there; admitting (nonce, dry run,
queueing) must follow arrival order, so that a client's consecutive nonces spread over
several requests still queue in order. Each request takes a ticket when it arrives and
waits for the one before it to be through before it admits anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager


class Turns:
    """Tickets in arrival order; one request admits at a time."""

    def __init__(self) -> None:
        self._last: asyncio.Future[None] | None = None

    @asynccontextmanager
    async def ticket(self) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        """Take the next ticket; await the yielded function before admitting anything.

        The turn passes on when the block exits, and never before the requests ahead are
        through, even when this one is cancelled or fails before its turn.
        """
        before = self._last
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._last = mine

        async def my_turn() -> None:
            if before is not None and not before.done():
                await asyncio.shield(before)  # a cancelled waiter must not cancel `before`

        def pass_on(_: object = None) -> None:
            if not mine.done():
                mine.set_result(None)
            if self._last is mine:
                self._last = None

        try:
            yield my_turn
        finally:
            if before is None or before.done():
                pass_on()
            else:
                before.add_done_callback(pass_on)
