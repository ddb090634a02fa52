"""Signed extrinsics from long-running neurons (async): nonces tracked locally.

A neuron is the only writer for its own hotkey, so after one look-up it can number its
extrinsics itself instead of asking the ledger before every one; a refused nonce (another
tool used the same key) triggers one re-sync and one retry, as does `wrong_genesis` (the
ledger started a new chain since the chain's identity was read: it is read again).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx

from subnetlab.chain.extrinsic import ChainIdentity, chain_identity, sign_extrinsic
from subnetlab.keys.keypair import Keypair


class ExtrinsicError(RuntimeError):
    """The ledger refused the extrinsic, or included it as failed."""

    def __init__(self, call: str, code: str, message: str) -> None:
        super().__init__(f"{call}: {code}: {message}")
        self.call, self.code, self.message = call, code, message


@dataclass
class ChainWriter:
    """Submit extrinsics signed by one key and wait for their receipts."""

    ledger_url: str
    keypair: Keypair
    http: httpx.AsyncClient = field(init=False)
    chain: ChainIdentity | None = None
    nonce: int | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.http = httpx.AsyncClient(base_url=self.ledger_url, timeout=60)

    async def _sync(self) -> None:
        if self.chain is None:
            self.chain = chain_identity((await self.http.get("/v1/chain")).json())
        account = (await self.http.get(f"/v1/accounts/{self.keypair.ss58_address}")).json()
        self.nonce = int(account["nonce"])

    async def submit(self, call: str, params: dict[str, Any]) -> dict[str, Any]:
        """Sign, submit, wait for inclusion; raise ExtrinsicError with the chain's code."""
        async with self.lock:
            for attempt in (1, 2):
                if self.nonce is None or self.chain is None:
                    await self._sync()
                assert self.nonce is not None and self.chain is not None
                ext = sign_extrinsic(self.keypair, call, params, self.nonce, self.chain)
                response = await self.http.post(
                    "/v1/extrinsics", params={"wait": "inclusion"}, content=ext.to_json()
                )
                body: dict[str, Any] = response.json()
                if response.status_code >= 400:
                    error = body.get("error", {})
                    if error.get("code") in ("stale_nonce", "future_nonce") and attempt == 1:
                        self.nonce = None
                        continue
                    if error.get("code") == "wrong_genesis" and attempt == 1:
                        self.chain = self.nonce = None  # a new chain: read who it is again
                        continue
                    raise ExtrinsicError(call, str(error.get("code")), str(error.get("message")))
                self.nonce += 1  # included or failed, the nonce is consumed
                if body.get("status") == "failed":
                    raise ExtrinsicError(call, str(body.get("code")), str(body.get("message")))
                return body
        raise ExtrinsicError(call, "nonce", "could not agree on a nonce with the ledger")

    async def aclose(self) -> None:
        await self.http.aclose()
