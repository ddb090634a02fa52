"""The ledger reads a validator's loop makes, over the writer's ledger client.

A read the ledger does not answer usefully raises LedgerUnavailableError, so a failed
round blames the ledger (health.dependency_of), even when the ledger's answer carried a
chain code (a read is not a refused extrinsic).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from subnetlab.ledger.client import AsyncLedgerClient, LedgerError
from subnetlab.validator.health import LedgerUnavailableError


@dataclass
class LedgerReads:
    """The subnet, this validator's evidence digests and its open weight commits."""

    client: AsyncLedgerClient
    netuid: int
    hotkey: str

    async def subnet(self) -> dict[str, Any]:
        try:
            return await self.client.subnet(self.netuid)
        except LedgerError as exc:
            raise LedgerUnavailableError(f"GET subnet {self.netuid}: {exc}") from None

    async def evidence(self, epoch: int | None = None) -> list[dict[str, Any]]:
        """This validator's evidence digests on chain (for one epoch, or all)."""
        try:
            return await self.client.evidence(self.netuid, self.hotkey, epoch)
        except LedgerError as exc:
            raise LedgerUnavailableError(f"GET evidence {self.netuid}: {exc}") from None

    async def commits(self) -> list[dict[str, Any]]:
        """This validator's weight commits the chain still holds (owed reveals)."""
        try:
            return await self.client.commits(self.netuid, self.hotkey)
        except LedgerError as exc:
            raise LedgerUnavailableError(f"GET commits {self.netuid}: {exc}") from None
