"""Follow the chain from the ledger's block stream and keep a fresh metagraph.

Miners and validators never fetch the metagraph per request: a follower task reads the
server-sent block headers and refreshes its copy every `refresh_blocks` blocks, handing
it to a callback (the miner swaps its guard's view; the validator its sampling pool). If
the stream breaks, it reconnects with exponential backoff and says so in the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from subnetlab.ledger.client import AsyncLedgerClient, LedgerClientError

log = logging.getLogger(__name__)

Metagraph = dict[str, Any]


@dataclass
class ChainFollower:
    """Keeps `latest_block` and `metagraph` current for one subnet."""

    ledger_url: str
    netuid: int
    on_metagraph: Callable[[Metagraph], Awaitable[None] | None] | None = None
    refresh_blocks: int = 4
    latest_block: int = 0
    metagraph: Metagraph | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    _last_refresh: int = -(10**9)

    async def refresh(self, client: AsyncLedgerClient) -> Metagraph:
        """Fetch the metagraph now and hand it to the callback."""
        metagraph = await client.metagraph(self.netuid)
        self.metagraph = metagraph
        self._last_refresh = int(metagraph.get("block", self.latest_block))
        if self.on_metagraph is not None:
            result = self.on_metagraph(metagraph)
            if asyncio.iscoroutine(result):
                await result
        return metagraph

    async def run(self) -> None:
        """Follow blocks forever (cancel the task to stop)."""
        backoff = 0.5
        async with AsyncLedgerClient(self.ledger_url) as client:
            while True:
                try:
                    await self.refresh(client)
                    async for header in client.blocks(on_open=self.connected.set):
                        backoff = 0.5
                        await self._on_block(client, header)
                except (LedgerClientError, ValueError) as exc:
                    self.connected.clear()
                    log.warning("block stream from %s lost (%s); retrying in %.1fs",
                                self.ledger_url, exc, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)

    async def _on_block(self, client: AsyncLedgerClient, header: dict[str, Any]) -> None:
        self.latest_block = int(header["number"])
        if self.latest_block - self._last_refresh >= self.refresh_blocks:
            await self.refresh(client)
