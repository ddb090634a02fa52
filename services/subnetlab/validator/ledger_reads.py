"""The ledger reads a validator's loop makes, over the writer's HTTP client.

A read that does not answer 200 raises LedgerUnavailableError, so a failed round blames
the ledger (health.dependency_of) rather than whatever tripped on a bad body later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from subnetlab.validator.health import LedgerUnavailableError


@dataclass
class LedgerReads:
    """The subnet, this validator's evidence digests and its open weight commits."""

    http: httpx.AsyncClient
    netuid: int
    hotkey: str

    async def json(self, path: str) -> dict[str, Any]:
        response = await self.http.get(path)
        if response.status_code != 200:
            raise LedgerUnavailableError(f"GET {path}: HTTP {response.status_code} "
                                         f"{response.text[:200]}")
        body: dict[str, Any] = response.json()
        return body

    async def subnet(self) -> dict[str, Any]:
        return await self.json(f"/v1/subnets/{self.netuid}")

    async def evidence(self, epoch: int | None = None) -> list[dict[str, Any]]:
        """This validator's evidence digests on chain (for one epoch, or all)."""
        query = f"?hotkey={self.hotkey}" + ("" if epoch is None else f"&epoch={epoch}")
        found = await self.json(f"/v1/evidence/{self.netuid}{query}")
        return list(found["digests"])

    async def commits(self) -> list[dict[str, Any]]:
        """This validator's weight commits the chain still holds (owed reveals)."""
        found = await self.json(f"/v1/subnets/{self.netuid}/commits?hotkey={self.hotkey}")
        return list(found["commits"])
