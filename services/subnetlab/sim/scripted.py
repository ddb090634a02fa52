"""Scripted neurons on the chain's own state machine: the shared driver of the pure experiments.

Why a driver and not a network: questions about consensus economics (who captures a
subnet, what copying earns) are answered by the chain's state machine alone. Every call
goes through `chain.state.apply` as a signed origin's would, every block and epoch through
`chain.blocks.advance_block`, so the numbers are the chain's own; only the neurons'
decisions are scripted. Nothing here reads a clock or an unseeded random source, so a run
is a function of its inputs (the salts of commit-reveal come from a seeded generator).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from subnetlab.chain.blocks import advance_block
from subnetlab.chain.model import ChainState, Genesis
from subnetlab.chain.queries import metagraph
from subnetlab.chain.state import apply
from subnetlab.chain.units import TOKEN
from subnetlab.chain.weights import weights_commit_hash
from subnetlab.chain.yuma import max_upscale_u16
from subnetlab.keys.keypair import Keypair

OWNER_BALANCE = 10**12 * TOKEN  # enough to stake any experiment's validators from genesis


class ScriptedChain:
    """The state machine plus nonces: submit calls as signed origins would."""

    def __init__(self, genesis: Genesis) -> None:
        self.state = ChainState.from_genesis(genesis)

    def call(self, key: Keypair, call: str, params: dict[str, object]) -> None:
        apply(self.state, key.ss58_address, self.state.nonce(key.ss58_address), call, params)

    def until_epoch(self, netuid: int, epochs_run: int) -> None:
        """Advance blocks until the subnet has run `epochs_run` epochs."""
        while self.state.subnets[netuid].epochs_run < epochs_run:
            advance_block(self.state)

    def epochs_run(self, netuid: int) -> int:
        return self.state.subnets[netuid].epochs_run


@dataclass
class Subnet:
    """One subnet of a scripted chain: its owner, netuid and the uid of every hotkey."""

    chain: ScriptedChain
    owner: Keypair
    netuid: int
    uid_of: dict[str, int] = field(default_factory=dict)

    def register(self, keys: Sequence[Keypair]) -> list[int]:
        """Register `keys` (the owner pays) and return their uids, in order."""
        for key in keys:
            self.chain.call(self.owner, "register",
                            {"netuid": self.netuid, "hotkey": key.ss58_address})
        self.uid_of = {n["hotkey"]: n["uid"] for n in metagraph(self.chain.state, self.netuid)
                       if not n["vacant"]}
        return [self.uid_of[k.ss58_address] for k in keys]

    def stake(self, key: Keypair, tokens: float) -> int:
        """Stake `tokens` (rounded down to rao) from the owner onto `key`; the rao staked."""
        amount = int(tokens * TOKEN)
        if amount > 0:
            self.chain.call(self.owner, "add_stake",
                            {"hotkey": key.ss58_address, "amount": amount})
        return amount

    def rows(self) -> list[dict[str, Any]]:
        """The subnet's metagraph (a row per uid)."""
        return metagraph(self.chain.state, self.netuid)


def new_subnet(name: str, hyperparameters: dict[str, object]) -> Subnet:
    """A fresh chain whose one subnet has `hyperparameters`; its owner is a dev key from `name`
    (the experiment and seed belong in `name`, so keys derive from the seed too)."""
    owner = Keypair.dev(f"{name}-owner")
    chain = ScriptedChain(Genesis(balances={owner.ss58_address: OWNER_BALANCE}))
    chain.call(owner, "create_subnet", {"hyperparameters": hyperparameters})
    return Subnet(chain, owner, max(chain.state.subnets))


class WeightSubmitter:
    """Submit a validator's weights: `set_weights`, or with commit-reveal, commit now and
    reveal each commit exactly `reveal_period` epochs later (the chain's window).

    Salts come from `rng`, so a run with commit-reveal is reproducible from its seed.
    """

    def __init__(self, subnet: Subnet, reveal_period: int, rng: np.random.Generator) -> None:
        self.subnet = subnet
        self.reveal_period = reveal_period
        self.rng = rng
        self.pending: dict[str, list[tuple[int, list[int], list[int], list[int]]]] = {}

    def reveal_due(self, key: Keypair) -> None:
        """Reveal the commits of `key` whose window is the current epoch."""
        now = self.subnet.chain.epochs_run(self.subnet.netuid)
        keep = []
        for epoch, uids, weights, salt in self.pending.get(key.ss58_address, []):
            if epoch + self.reveal_period == now:
                self.subnet.chain.call(key, "reveal_weights", {
                    "netuid": self.subnet.netuid, "uids": uids, "weights": weights,
                    "salt": salt})
            elif epoch + self.reveal_period > now:
                keep.append((epoch, uids, weights, salt))
        self.pending[key.ss58_address] = keep

    def submit(self, key: Keypair, uids: list[int],
               values: Sequence[float] | NDArray[np.float64]) -> bool:
        """Set (or commit) `values` over `uids`; False (nothing sent) if all are zero."""
        array = np.asarray(values, dtype=np.float64)
        if not np.any(array > 0):
            return False
        weights = [int(w) for w in max_upscale_u16(array)]
        netuid = self.subnet.netuid
        if self.reveal_period <= 0:
            self.subnet.chain.call(key, "set_weights",
                                   {"netuid": netuid, "uids": uids, "weights": weights})
            return True
        salt = [int(b) for b in self.rng.integers(0, 256, 8)]
        digest = weights_commit_hash(key.ss58_address, netuid, uids, weights, salt)
        self.subnet.chain.call(key, "commit_weights", {"netuid": netuid, "commit_hash": digest})
        self.pending.setdefault(key.ss58_address, []).append(
            (self.subnet.chain.epochs_run(netuid), uids, weights, salt))
        return True


def hyperparameters(tempo: int, kappa: float = 0.5, reveal_period: int = 0,
                    max_uids: int = 256) -> dict[str, object]:
    """Hyperparameters of an experiment subnet: no rate limit, no pruning, open registration."""
    params: dict[str, object] = {
        "tempo": tempo, "weights_rate_limit": 0, "immunity_period": 10_000, "kappa": kappa,
        "max_registrations_per_block": 64, "target_registrations_per_interval": 64,
        "max_allowed_uids": max_uids, "commit_reveal_weights_enabled": reveal_period > 0}
    if reveal_period > 0:
        params["commit_reveal_period"] = reveal_period
    return params
