"""Setting up a chain for an experiment: a subnet, its neurons, their stake, fast.

Extrinsics are signed with the ledger client's local nonce counter and sent in batches,
and only the last of each batch is waited for: registering hundreds of neurons takes a
few blocks, not one block each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from subnetlab.chain.extrinsic import Extrinsic
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.client import LedgerClient, LedgerClientError, LedgerError

SETUP_BATCH = 500
"""Extrinsics per ``POST /v1/extrinsics/batch`` while setting up."""


class SetupError(RuntimeError):
    """The ledger refused the setup, or could not be reached."""


class SetupClient:
    """Batch submission over :class:`LedgerClient`: for setting up a chain quickly (bench,
    `up`); every ledger failure comes out as :class:`SetupError`, naming the step."""

    def __init__(self, url: str) -> None:
        try:
            self.ledger = LedgerClient(url, timeout=60)
            info = self.ledger.chain()
        except LedgerError as exc:
            raise SetupError(f"the ledger at {url}: {exc}") from exc
        except (LedgerClientError, ValueError) as exc:
            raise SetupError(str(exc)) from exc
        self.block_time: float = float(info["block_time"])
        self.started_at = int(info["block"])
        """The chain's height when this client connected (also right at block 0)."""

    def sign(self, key: Keypair, call: str, params: dict[str, Any]) -> Extrinsic:
        """Sign with the key's next nonce (counted locally: batches are not yet included)."""
        try:
            return self.ledger.sign(key, call, params)
        except LedgerClientError as exc:
            raise SetupError(f"signing {call}: {exc}") from exc

    def run_setup(self, extrinsics: list[Extrinsic], what: str) -> None:
        """Submit and wait until every one is included; any failure stops the bench."""
        try:
            for start in range(0, len(extrinsics), SETUP_BATCH):
                for result in self.ledger.submit_batch(extrinsics[start : start + SETUP_BATCH]):
                    if "error" in result:
                        raise SetupError(f"setup ({what}) refused: {result['error']}")
        except LedgerClientError as exc:
            raise SetupError(f"setup ({what}): {exc}") from exc
        for ext in extrinsics[-1:]:
            self.wait(ext.hash, what)

    def wait(self, digest: str, what: str, timeout: float = 120.0) -> dict[str, Any]:
        """The receipt of ``digest`` once included; SetupError if it failed or timed out."""
        try:
            receipt = self.ledger.wait_for_receipt(digest, timeout, poll_s=self.block_time / 2)
        except LedgerError as exc:
            if exc.code == "timeout":
                raise SetupError(f"setup ({what}) not included within {timeout:.0f}s") from None
            raise SetupError(f"setup ({what}): {exc}") from exc
        except LedgerClientError as exc:
            raise SetupError(f"setup ({what}): {exc}") from exc
        if receipt.get("status") != "included":
            raise SetupError(f"setup ({what}) failed: {receipt}")
        return receipt

    def latest_block(self) -> int:
        """The newest block's number."""
        return int(self.ledger.latest_block()["number"])

    def subnets(self) -> list[dict[str, Any]]:
        """Every subnet's info."""
        try:
            return self.ledger.subnets()
        except LedgerClientError as exc:
            raise SetupError(str(exc)) from exc

    def close(self) -> None:
        """Close the ledger client's connections."""
        self.ledger.close()


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
    try:
        return _bootstrap(client, owner, hyperparameters, staked)
    finally:
        client.close()


def _bootstrap(client: SetupClient, owner: Keypair, hyperparameters: dict[str, Any],
               staked: list[tuple[Keypair, int]]) -> int:
    """The steps of :func:`bootstrap_subnet`, on a client the caller closes."""
    started = client.started_at
    client.run_setup([client.sign(owner, "create_subnet", {"hyperparameters": hyperparameters})],
                     "create_subnet")
    netuid = created_subnet(client.subnets(), owner.ss58_address, started)
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
