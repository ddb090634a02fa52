"""The operator's view of the ledger: the async ledger client, plus the faucet's work.

kopf handlers are coroutines, so the operator uses `AsyncLedgerClient` directly: many
handlers may sign with the same owner key at once (every Neuron of a subnet registers
through its owner), and the client serialises each signer's submissions itself, which
keeps nonces in order instead of racing for them. Only the faucet's proof of work, which
is CPU-bound, runs in a worker thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.client import AsyncLedgerClient, LedgerError
from subnetlab.ledger.faucet_work import solve_faucet_work

Json = dict[str, Any]

FAUCET_LATER = frozenset({"rate_limited", "faucet_disabled", "faucet_budget_exhausted",
                          "faucet_pow_expired"})
"""Faucet refusals that pass by themselves (a later block, a later interval, new work)."""


class Ledger:
    """The operator's ledger calls over one `AsyncLedgerClient`."""

    def __init__(self, url: str, timeout: float = 45.0) -> None:
        self.client = AsyncLedgerClient(url, timeout=timeout)

    @property
    def url(self) -> str:
        return self.client.url

    async def aclose(self) -> None:
        await self.client.aclose()

    # ---- reads ------------------------------------------------------------------------

    async def chain(self) -> Json:
        return await self.client.chain()

    async def latest_block(self) -> int:
        """The ledger's height (from the chain's info: a fresh chain has no block to show
        yet)."""
        return int((await self.chain())["block"])

    async def subnets(self) -> list[Json]:
        return await self.client.subnets()

    async def subnet(self, netuid: int) -> Json | None:
        """The subnet, or None when the ledger has no such netuid."""
        try:
            return await self.client.subnet(netuid)
        except LedgerError as exc:
            if exc.code == "unknown_subnet" or exc.status == 404:
                return None
            raise

    async def metagraph(self, netuid: int) -> Json:
        return await self.client.metagraph(netuid)

    async def account(self, address: str) -> Json:
        return await self.client.account(address)

    # ---- writes -----------------------------------------------------------------------

    async def submit(self, keypair: Keypair, call: str, params: Json) -> Json:
        """Sign as `keypair`, submit, wait for the including block; LedgerError if refused."""
        return await self.client.submit(keypair, call, params)

    async def faucet(self, payer: Keypair) -> bool:
        """Ask the chain's faucet for a drip to `payer`, doing the proof of work when the
        faucet asks for one; False when there is no faucet, or its cooldown or budget
        has not passed, or the work expired (the caller retries later)."""
        if not (await self.chain()).get("faucet"):
            return False
        try:
            info = await self.client.faucet()
            chain_id = (await self.client.identity()).chain_id
            params = await asyncio.to_thread(solve_faucet_work, info, self.url, chain_id,
                                             payer.ss58_address)
            await self.submit(payer, "faucet", params)
        except LedgerError as exc:
            if exc.code in FAUCET_LATER:
                return False
            raise
        return True
