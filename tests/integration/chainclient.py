"""A small HTTP client for the ledger's API, used by the integration tests.

It signs with the project's own `sign_extrinsic` and speaks plain HTTP to a real ledger
process; nothing here reaches into the ledger's memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from subnetlab.chain.extrinsic import ChainIdentity, Extrinsic, chain_identity, sign_extrinsic
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.genesis import dev_genesis
from subnetlab.ledger.verify import identity

CHAIN_ID = "subnetlab-dev"
DEV_CHAIN = identity(dev_genesis())
"""What extrinsics for an in-process node on `dev_genesis()` (salt "") are signed for. A
served dev ledger draws a salt of its own: ask it (`ChainClient.identity`)."""
TOKEN = 10**9
DEV_BALANCE = 1_000_000 * TOKEN
REDIS_PREFIX = f"subnetlab:{CHAIN_ID}"


def address(who: Keypair | str) -> str:
    return who if isinstance(who, str) else who.ss58_address


class ChainClient:
    """The ledger API over HTTP: queries, signed submissions, waiting for blocks."""

    def __init__(self, base_url: str, timeout: float = 40.0) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=timeout)
        self._identity: ChainIdentity | None = None

    def close(self) -> None:
        self.http.close()

    # --- queries -------------------------------------------------------------------------

    def get_json(self, path: str) -> Any:
        response = self.http.get(path)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response.json()

    def account(self, who: Keypair | str) -> dict[str, Any]:
        return dict(self.get_json(f"/v1/accounts/{address(who)}"))

    def nonce(self, who: Keypair | str) -> int:
        return int(self.account(who)["nonce"])

    def balance(self, who: Keypair | str) -> int:
        return int(self.account(who)["balance"])

    def identity(self) -> ChainIdentity:
        """The chain this ledger's extrinsics are signed for (GET /v1/chain, once)."""
        if self._identity is None:
            self._identity = chain_identity(self.get_json("/v1/chain"))
        return self._identity

    def height(self) -> int:
        return int(self.get_json("/v1/chain")["block"])

    def subnet(self, netuid: int) -> dict[str, Any]:
        return dict(self.get_json(f"/v1/subnets/{netuid}"))

    def metagraph(self, netuid: int) -> list[dict[str, Any]]:
        return list(self.get_json(f"/v1/subnets/{netuid}/metagraph")["neurons"])

    def block(self, number: int) -> dict[str, Any]:
        return dict(self.get_json(f"/v1/blocks/{number}"))

    def receipt(self, digest: str) -> httpx.Response:
        return self.http.get(f"/v1/extrinsics/{digest}")

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample of /metrics, keyed by (sample name, labels)."""
        response = self.http.get("/metrics")
        assert response.status_code == 200, response.text
        samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                samples[(sample.name, frozenset(sample.labels.items()))] = float(sample.value)
        return samples

    # --- submissions ---------------------------------------------------------------------

    def sign(
        self, keypair: Keypair, call: str, params: dict[str, Any], nonce: int | None = None
    ) -> Extrinsic:
        """Sign with the account's current on-chain nonce unless one is given."""
        return sign_extrinsic(
            keypair, call, params, self.nonce(keypair) if nonce is None else nonce,
            self.identity(),
        )

    def post(self, body: bytes | str, wait: bool = False) -> httpx.Response:
        path = "/v1/extrinsics?wait=inclusion" if wait else "/v1/extrinsics"
        content = body.encode() if isinstance(body, str) else body
        return self.http.post(path, content=content,
                              headers={"content-type": "application/json"})

    def submit(self, ext: Extrinsic, wait: bool = True) -> httpx.Response:
        return self.post(ext.to_json(), wait=wait)

    def call(self, keypair: Keypair, call: str, params: dict[str, Any]) -> dict[str, Any]:
        """Sign, submit, wait for inclusion; fail the test unless it was included."""
        ext = self.sign(keypair, call, params)
        response = self.submit(ext, wait=True)
        assert response.status_code == 200, f"{call}: {response.status_code} {response.text}"
        receipt = dict(response.json())
        assert receipt["status"] == "included", f"{call}: {receipt}"
        assert receipt["hash"] == ext.hash
        return receipt

    def create_subnet(self, owner: Keypair, hyperparameters: dict[str, Any]) -> int:
        """create_subnet and return the new netuid (the one `owner` created in that block)."""
        receipt = self.call(owner, "create_subnet", {"hyperparameters": hyperparameters})
        created = [s["netuid"] for s in self.get_json("/v1/subnets")["subnets"]
                   if s["owner"] == owner.ss58_address and s["created_at"] == receipt["block"]]
        assert len(created) == 1, created
        return int(created[0])

    # --- blocks --------------------------------------------------------------------------

    def wait_for_height(self, number: int, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while True:
            height = self.height()
            if height >= number:
                return height
            if time.monotonic() > deadline:
                raise TimeoutError(f"chain stuck at block {height}, waited for {number}")
            time.sleep(0.05)

    def wait_blocks(self, count: int) -> int:
        return self.wait_for_height(self.height() + count)

    def blocks_containing(self, digest: str, first: int, last: int) -> list[int]:
        """Numbers of the stored blocks in [first, last] with `digest` among their receipts."""
        return [
            n for n in range(max(first, 1), last + 1)
            if any(r["hash"] == digest for r in self.block(n)["receipts"])
        ]

    @contextmanager
    def block_stream(self) -> Iterator[Iterator[dict[str, Any]]]:
        """The SSE stream of block headers, decoded; closes the connection on exit."""
        with self.http.stream("GET", "/v1/stream/blocks", timeout=30) as response:
            assert response.status_code == 200, response.status_code
            assert response.headers["content-type"].startswith("text/event-stream")

            def headers() -> Iterator[dict[str, Any]]:
                event = None
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        event = line.split(":", 1)[1].strip()
                    elif line.startswith("data:"):
                        assert event == "block", f"data line outside a block event: {line}"
                        yield dict(json.loads(line.split(":", 1)[1]))
                        event = None

            yield headers()


def run_cli(args: list[str], env: dict[str, str] | None = None,
            timeout: float = 60.0, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m subnetlab ARGS`, captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "subnetlab", *args], capture_output=True, text=True,
        timeout=timeout, env=env, cwd=cwd, check=False,
    )
