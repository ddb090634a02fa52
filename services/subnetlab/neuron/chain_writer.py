"""Signed extrinsics from long-running neurons: one key over the async ledger client.

A neuron is the only writer for its own hotkey, so the client's :class:`NoncePolicy`
numbers its extrinsics locally after one look-up; refusals come out as the client's
:class:`LedgerError` with the chain's code, like everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.client import AsyncLedgerClient


@dataclass
class ChainWriter:
    """Submit extrinsics signed by one key and wait for their receipts."""

    ledger_url: str
    keypair: Keypair
    client: AsyncLedgerClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = AsyncLedgerClient(self.ledger_url, timeout=60)

    async def submit(self, call: str, params: dict[str, Any]) -> dict[str, Any]:
        """Sign, submit, wait for inclusion; raise LedgerError with the chain's code."""
        return await self.client.submit(self.keypair, call, params)

    async def aclose(self) -> None:
        await self.client.aclose()
