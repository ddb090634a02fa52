"""The operator's view of the ledger: `LedgerClient` calls, off the event loop, one signer
at a time.

Why a wrapper: kopf handlers are coroutines and `LedgerClient` is synchronous, so every
call runs in a worker thread; and many handlers may sign with the same owner key at once
(every Neuron of a subnet registers through its owner), so submissions are serialised per
signer, which keeps nonces in order instead of racing for them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.client import LedgerClient, LedgerError
from subnetlab.ledger.faucet_work import faucet_params

T = TypeVar("T")
Json = dict[str, Any]

FAUCET_LATER = frozenset({"rate_limited", "faucet_disabled", "faucet_budget_exhausted",
                          "faucet_pow_expired"})
"""Faucet refusals that pass by themselves (a later block, a later interval, new work)."""


class Ledger:
    """Async facade over one `LedgerClient`."""

    def __init__(self, url: str, timeout: float = 45.0) -> None:
        self.client = LedgerClient(url, timeout=timeout)
        self._guard = threading.Lock()
        self._signers: dict[str, threading.Lock] = {}

    @property
    def url(self) -> str:
        return self.client.url

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    def close(self) -> None:
        self.client.close()

    # ---- reads ------------------------------------------------------------------------

    async def chain(self) -> Json:
        return await self._run(self.client.chain)

    async def latest_block(self) -> int:
        """The ledger's height (from /v1/chain: a fresh chain has no block to show yet)."""
        return int((await self.chain())["block"])

    async def subnets(self) -> list[Json]:
        return await self._run(self.client.subnets)

    async def subnet(self, netuid: int) -> Json | None:
        """The subnet, or None when the ledger has no such netuid."""
        try:
            return await self._run(self.client.subnet, netuid)
        except LedgerError as exc:
            if exc.code == "unknown_subnet" or exc.status == 404:
                return None
            raise

    async def metagraph(self, netuid: int) -> Json:
        return await self._run(self.client.metagraph, netuid)

    async def account(self, address: str) -> Json:
        return await self._run(self.client.account, address)

    # ---- writes -----------------------------------------------------------------------

    def _lock_for(self, address: str) -> threading.Lock:
        with self._guard:
            return self._signers.setdefault(address, threading.Lock())

    def _submit(self, keypair: Keypair, call: str, params: Json) -> Json:
        with self._lock_for(keypair.ss58_address):
            return self.client.submit(keypair, call, params, wait=True)

    async def submit(self, keypair: Keypair, call: str, params: Json) -> Json:
        """Sign as `keypair`, submit, wait for the including block; LedgerError if refused."""
        return await self._run(self._submit, keypair, call, params)

    async def faucet(self, payer: Keypair) -> bool:
        """Ask the chain's faucet for a drip to `payer`, doing the proof of work when the
        faucet asks for one; False when there is no faucet, or its cooldown or budget
        has not passed, or the work expired (the caller retries later)."""
        if not (await self.chain()).get("faucet"):
            return False
        try:
            params = await self._run(faucet_params, self.client, payer.ss58_address)
            await self.submit(payer, "faucet", params)
        except LedgerError as exc:
            if exc.code in FAUCET_LATER:
                return False
            raise
        return True
