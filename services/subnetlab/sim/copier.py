"""Does weight copying pay, and does commit-reveal stop it? An experiment on the chain itself.

The chain's own state machine runs every block, epoch and extrinsic (set_weights, or
commit_weights then reveal_weights); only the validators are scripted, so the result is
exact and reproducible. Miners' quality drifts: the best miner changes every
`rotate_every` epochs. Honest validators weight the quality they observe now. The copier
does no work: it sets the chain's last consensus as its weights. Without commit-reveal
that consensus is one epoch old; with commit-reveal, honest weights only become visible
when revealed, and the copier's own weights must be committed too, so what it copies is
older still. Its dividends per unit of stake, relative to the honest validators', measure
what copying earns.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import numpy as np

from subnetlab.chain.blocks import advance_block
from subnetlab.chain.model import TOKEN, ChainState, Genesis
from subnetlab.chain.queries import metagraph
from subnetlab.chain.state import apply
from subnetlab.chain.weights import weights_commit_hash
from subnetlab.chain.yuma import max_upscale_u16
from subnetlab.keys.keypair import Keypair


@dataclass(frozen=True)
class CopierResult:
    commit_reveal: bool
    epochs: int
    copier_dividends: float
    honest_dividends: float

    @property
    def relative_yield(self) -> float:
        """Copier's dividends per stake over the honest validators' (1.0 = as good)."""
        return self.copier_dividends / self.honest_dividends if self.honest_dividends else 0.0

    def as_json(self) -> dict[str, object]:
        return {"commit_reveal": self.commit_reveal, "epochs": self.epochs,
                "copier_dividends_tokens": round(self.copier_dividends, 6),
                "honest_dividends_tokens": round(self.honest_dividends, 6),
                "relative_yield": round(self.relative_yield, 4)}


class _Chain:
    """The state machine plus nonces: submit calls as signed origins would."""

    def __init__(self, genesis: Genesis) -> None:
        self.state = ChainState.from_genesis(genesis)

    def call(self, key: Keypair, call: str, params: dict[str, object]) -> None:
        apply(self.state, key.ss58_address, self.state.nonce(key.ss58_address), call, params)

    def until_epoch(self, netuid: int, epochs_run: int) -> None:
        while self.state.subnets[netuid].epochs_run < epochs_run:
            advance_block(self.state)


def run_copier_experiment(
    commit_reveal: bool, epochs: int = 40, miners: int = 4, honest: int = 3,
    rotate_every: int = 3, tempo: int = 10, seed: int = 0,
) -> CopierResult:
    """Run one subnet for `epochs` epochs; return the copier's and honest dividends."""
    rng = np.random.default_rng(seed)
    owner = Keypair.dev("copier-experiment-owner")
    genesis = Genesis(balances={owner.ss58_address: 10**7 * TOKEN})
    chain = _Chain(genesis)
    chain.call(owner, "create_subnet", {"hyperparameters": {
        "tempo": tempo, "weights_rate_limit": 0, "immunity_period": 10_000,
        "max_registrations_per_block": 64, "target_registrations_per_interval": 64,
        "commit_reveal_weights_enabled": commit_reveal, "commit_reveal_period": 1,
    }})
    netuid = max(chain.state.subnets)
    honest_keys = [Keypair.dev(f"copier-exp-honest-{i}") for i in range(honest)]
    copier = Keypair.dev("copier-exp-copier")
    miner_keys = [Keypair.dev(f"copier-exp-miner-{i}") for i in range(miners)]
    for key in [*honest_keys, copier, *miner_keys]:
        chain.call(owner, "register", {"netuid": netuid, "hotkey": key.ss58_address})
    for key in [*honest_keys, copier]:
        chain.call(owner, "add_stake", {"hotkey": key.ss58_address, "amount": 1_000 * TOKEN})
    uid_of = {n["hotkey"]: n["uid"] for n in metagraph(chain.state, netuid)}
    miner_uids = [uid_of[k.ss58_address] for k in miner_keys]

    pending: dict[str, tuple[list[int], list[int], list[int]]] = {}
    earned = {k.ss58_address: 0.0 for k in [*honest_keys, copier]}
    chain.until_epoch(netuid, 1)  # permits are granted by the first epoch
    for epoch in range(1, epochs + 1):
        best = (epoch // rotate_every) % miners
        quality = np.full(miners, 0.2)
        quality[best] = 1.0
        consensus = {n["uid"]: n["consensus"] for n in metagraph(chain.state, netuid)}
        plans = {k.ss58_address: (k, quality * rng.uniform(0.9, 1.1, miners)) for k in honest_keys}
        plans[copier.ss58_address] = (copier, np.array([consensus[u] for u in miner_uids]))
        for hotkey, (key, values) in plans.items():
            if commit_reveal and hotkey in pending:
                uids, weights, salt = pending.pop(hotkey)
                chain.call(key, "reveal_weights", {"netuid": netuid, "uids": uids,
                                                   "weights": weights, "salt": salt})
            if not np.any(values > 0):
                continue
            weights = [int(w) for w in max_upscale_u16(values)]
            if commit_reveal:
                salt = [secrets.randbelow(256) for _ in range(8)]
                digest = weights_commit_hash(hotkey, netuid, miner_uids, weights, salt)
                chain.call(key, "commit_weights", {"netuid": netuid, "commit_hash": digest})
                pending[hotkey] = (miner_uids, weights, salt)
            else:
                chain.call(key, "set_weights", {"netuid": netuid, "uids": miner_uids,
                                                "weights": weights})
        chain.until_epoch(netuid, epoch + 1)
        for neuron in metagraph(chain.state, netuid):
            if neuron["hotkey"] in earned:
                earned[neuron["hotkey"]] += neuron["emission"] / TOKEN
    honest_mean = sum(earned[k.ss58_address] for k in honest_keys) / honest
    return CopierResult(commit_reveal, epochs, earned[copier.ss58_address], honest_mean)
