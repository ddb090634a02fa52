"""The integration tests' view of a real ledger process: the project's `LedgerClient`
for reads and signing, plus raw HTTP for what the tests examine byte by byte.

Reads, identity and nonces go through `subnetlab.ledger.client.LedgerClient` (the one
client). Submissions and receipts stay raw `httpx.Response`s on purpose: the ledger tests
check status codes, bodies and headers of the HTTP surface itself, including bodies no
client would send. Nothing here reaches into the ledger's memory.
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

from subnetlab.chain.extrinsic import ChainIdentity, Extrinsic
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.client import EXTRINSICS_ROUTE, METRICS_ROUTE, LedgerClient, receipt_route
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
    """The ledger API: queries, signed submissions, waiting for blocks."""

    def __init__(self, base_url: str, timeout: float = 40.0) -> None:
        self.base_url = base_url
        self.ledger = LedgerClient(base_url, timeout=timeout)
        self.http = httpx.Client(base_url=base_url, timeout=timeout)

    def close(self) -> None:
        self.ledger.close()
        self.http.close()

    # --- queries -------------------------------------------------------------------------

    def get_json(self, path: str) -> Any:
        """A raw GET that must answer 200: for tests of a route's exact answer."""
        response = self.http.get(path)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response.json()

    def account(self, who: Keypair | str) -> dict[str, Any]:
        return self.ledger.account(address(who))

    def nonce(self, who: Keypair | str) -> int:
        return self.ledger.nonce(address(who))

    def balance(self, who: Keypair | str) -> int:
        return int(self.account(who)["balance"])

    def identity(self) -> ChainIdentity:
        """The chain this ledger's extrinsics are signed for (read once)."""
        return self.ledger.identity()

    def height(self) -> int:
        return int(self.ledger.chain()["block"])

    def subnet(self, netuid: int) -> dict[str, Any]:
        return self.ledger.subnet(netuid)

    def metagraph(self, netuid: int) -> list[dict[str, Any]]:
        return list(self.ledger.metagraph(netuid)["neurons"])

    def block(self, number: int) -> dict[str, Any]:
        return self.ledger.block(number)

    def receipt(self, digest: str) -> httpx.Response:
        """The raw answer of the receipt route (tests check its status codes)."""
        return self.http.get(receipt_route(digest))

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample of /metrics, keyed by (sample name, labels)."""
        samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(self.ledger.text(METRICS_ROUTE)):
            for sample in family.samples:
                samples[(sample.name, frozenset(sample.labels.items()))] = float(sample.value)
        return samples

    # --- submissions ---------------------------------------------------------------------

    def sign(
        self, keypair: Keypair, call: str, params: dict[str, Any], nonce: int | None = None
    ) -> Extrinsic:
        """Sign with the account's current on-chain nonce unless one is given (tests of
        nonce refusals choose theirs, so the client's local counter is not used here)."""
        return self.ledger.sign(keypair, call, params,
                                self.nonce(keypair) if nonce is None else nonce)

    def post(self, body: bytes | str, wait: bool = False) -> httpx.Response:
        """POST raw bytes to the submission route: the HTTP surface under test."""
        content = body.encode() if isinstance(body, str) else body
        return self.http.post(EXTRINSICS_ROUTE, params={"wait": "inclusion"} if wait else None,
                              content=content, headers={"content-type": "application/json"})

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
        created = [s["netuid"] for s in self.ledger.subnets()
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


def read_ledger(url: str) -> LedgerClient:
    """A short-lived client for tests that only look at the chain (use with ``with``)."""
    return LedgerClient(url, timeout=10)


def run_cli(args: list[str], env: dict[str, str] | None = None,
            timeout: float = 60.0, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m subnetlab ARGS`, captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "subnetlab", *args], capture_output=True, text=True,
        timeout=timeout, env=env, cwd=cwd, check=False,
    )
