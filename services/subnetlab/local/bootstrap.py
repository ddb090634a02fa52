"""Setting up a chain for an experiment: a subnet, its neurons, their stake, fast.

Extrinsics are signed with locally tracked nonces and sent in batches, and only the last
of each batch is waited for: registering hundreds of neurons takes a few blocks, not one
block each.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import httpx

from subnetlab.chain.extrinsic import Extrinsic, chain_identity, sign_extrinsic
from subnetlab.keys.keypair import Keypair


class SetupError(RuntimeError):
    """The ledger refused the setup, or could not be reached."""


class SetupClient:
    """Batch submission with local nonces: for setting up a chain quickly (bench, `up`)."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=60)
        try:
            info = self.http.get("/v1/chain").json()
            self.chain = chain_identity(info)
        except httpx.HTTPError as exc:
            raise SetupError(f"cannot reach the ledger at {url}: {exc}") from exc
        except ValueError as exc:
            raise SetupError(f"the ledger at {url}: {exc}") from exc
        self.block_time: float = float(info["block_time"])
        self.nonces: dict[str, int] = {}

    def nonce(self, key: Keypair) -> int:
        if key.ss58_address not in self.nonces:
            account = self.http.get(f"/v1/accounts/{key.ss58_address}").json()
            self.nonces[key.ss58_address] = int(account["nonce"])
        value = self.nonces[key.ss58_address]
        self.nonces[key.ss58_address] = value + 1
        return value

    def sign(self, key: Keypair, call: str, params: dict[str, Any]) -> Extrinsic:
        return sign_extrinsic(key, call, params, self.nonce(key), self.chain)

    def send(self, batch: list[Extrinsic]) -> list[dict[str, Any]]:
        body = {"extrinsics": [e.model_dump(mode="json") for e in batch]}
        response = self.http.post("/v1/extrinsics/batch", json=body)
        response.raise_for_status()
        results: list[dict[str, Any]] = response.json()["results"]
        return results

    def run_setup(self, extrinsics: list[Extrinsic], what: str) -> None:
        """Submit and wait until every one is included; any failure stops the bench."""
        for start in range(0, len(extrinsics), 500):
            for result in self.send(extrinsics[start : start + 500]):
                if "error" in result:
                    raise SetupError(f"setup ({what}) refused: {result['error']}")
        for ext in extrinsics[-1:]:
            self.wait(ext.hash, what)

    def wait(self, digest: str, what: str, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            receipt: dict[str, Any] = self.http.get(f"/v1/extrinsics/{digest}").json()
            if receipt.get("status") == "included":
                return receipt
            if receipt.get("status") == "failed":
                raise SetupError(f"setup ({what}) failed: {receipt}")
            time.sleep(self.block_time / 2)
        raise SetupError(f"setup ({what}) not included within {timeout:.0f}s")

    def latest_block(self) -> int:
        return int(self.http.get("/v1/blocks/latest").json()["number"])




def created_subnet(subnets: Iterable[Mapping[str, Any]], owner: str, after_block: int,
                   claimed: Iterable[int] = ()) -> int | None:
    """The netuid a create_subnet of `owner` sent after `after_block` made: the oldest
    subnet of that owner created since, that nobody else claims (None: there is none).

    The ledger's receipts do not carry the new netuid, so this is how `subnetlab up` and
    the Kubernetes operator (which, after a restart, must find a subnet it created but
    never recorded instead of creating a second one) learn it.
    """
    taken = set(claimed)
    candidates = sorted(int(s["netuid"]) for s in subnets
                        if s.get("owner") == owner and int(s.get("created_at", -1)) > after_block
                        and int(s["netuid"]) not in taken)
    return candidates[0] if candidates else None


def bootstrap_subnet(
    url: str,
    owner: Keypair,
    hyperparameters: dict[str, Any],
    miners: Sequence[Keypair | tuple[Keypair, int]],
    validators: Sequence[tuple[Keypair, int]],
) -> int:
    """Create a subnet owned by `owner`, register every hotkey, stake what is asked.

    `validators` pairs each hotkey with the stake (rao) the owner delegates to it; a miner
    is a hotkey, or a hotkey with its stake (miners may hold stake too, as on the chain,
    and the Kubernetes operator stakes them). Validators register first, so they get the
    low uids. Returns the new netuid.
    """
    staked = [*validators, *((m, 0) if isinstance(m, Keypair) else m for m in miners)]
    client = SetupClient(url)
    started = int(client.http.get("/v1/chain").json()["block"])  # also right at block 0
    client.run_setup([client.sign(owner, "create_subnet", {"hyperparameters": hyperparameters})],
                     "create_subnet")
    netuid = created_subnet(client.http.get("/v1/subnets").json()["subnets"],
                            owner.ss58_address, started)
    if netuid is None:
        raise SetupError("create_subnet was included but no new subnet of this owner exists")
    client.run_setup(
        [client.sign(owner, "register", {"netuid": netuid, "hotkey": k.ss58_address})
         for k, _ in staked],
        "register",
    )
    stakes = [client.sign(owner, "add_stake", {"hotkey": k.ss58_address, "amount": amount})
              for k, amount in staked if amount > 0]
    if stakes:
        client.run_setup(stakes, "add_stake")
    return netuid
