"""Does weight copying pay, and does commit-reveal stop it? An experiment on the chain itself.

The chain's own state machine runs every block, epoch and extrinsic (set_weights, or
commit_weights then reveal_weights); only the validators are scripted, so the result is
exact and reproducible from the seed (the honest validators' noise, the churn and the
commit salts all come from seeded generators). Miners' quality drifts: the best miner
changes every `rotate_every` epochs, and with `churn` also at random in between (a
newcomer displacing the leader). Honest validators weight the quality they observe now.
The copiers do no work: each sets the chain's last consensus as its weights. Without
commit-reveal that consensus is one epoch old; with commit-reveal, honest weights only
become visible when revealed, `reveal_period` epochs later, and the copiers' own weights
must be committed too, so what they copy is older still. Their dividends per unit of
stake, relative to the honest validators', measure what copying earns; the miner
evaluations they skipped measure the work it saves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from subnetlab.chain.units import TOKEN
from subnetlab.keys.keypair import Keypair
from subnetlab.sim.scripted import WeightSubmitter, hyperparameters, new_subnet

HONEST_STAKE_TOKENS = 1_000.0  # each honest validator's stake


@dataclass(frozen=True)
class CopierResult:
    commit_reveal: bool
    epochs: int
    copier_dividends: float
    """Mean over copiers of dividends per copier, scaled to an honest validator's stake."""
    honest_dividends: float
    """Mean dividends of one honest validator."""
    copiers: int = 1
    copier_stake_share: float = 0.25
    reveal_period: int = 1
    churn: float = 0.0
    work_saved: int = 0
    """Miner evaluations the copiers skipped (an honest validator's evaluations, per copier)."""

    @property
    def relative_yield(self) -> float:
        """Copier's dividends per stake over the honest validators' (1.0 = as good)."""
        return self.copier_dividends / self.honest_dividends if self.honest_dividends else 0.0

    def as_json(self) -> dict[str, object]:
        return {"commit_reveal": self.commit_reveal, "epochs": self.epochs,
                "copier_dividends_tokens": round(self.copier_dividends, 6),
                "honest_dividends_tokens": round(self.honest_dividends, 6),
                "relative_yield": round(self.relative_yield, 4)}


def run_copier_experiment(
    commit_reveal: bool, epochs: int = 40, miners: int = 4, honest: int = 3,
    rotate_every: int = 3, tempo: int = 10, seed: int = 0, *, reveal_period: int = 1,
    copiers: int = 1, copier_stake_share: float | None = None, churn: float = 0.0,
    evaluations_per_miner: int = 1,
) -> CopierResult:
    """Run one subnet for `epochs` epochs; return the copiers' and honest dividends.

    `copier_stake_share` is the copiers' joint share of validator stake (default: each
    copier staked like one honest validator); `reveal_period` applies with commit-reveal.
    """
    if copier_stake_share is None:
        copier_stake_share = copiers / (copiers + honest)
    if not 0 < copier_stake_share < 1:
        raise ValueError(f"copier_stake_share: {copier_stake_share} is not in (0, 1)")
    period = reveal_period if commit_reveal else 0
    noise = np.random.default_rng(seed)
    churn_rng = np.random.default_rng([seed, 1])
    name = f"copier-exp-{seed}"
    subnet = new_subnet(name, hyperparameters(tempo, reveal_period=period))
    honest_keys = [Keypair.dev(f"{name}-honest-{i}") for i in range(honest)]
    copier_keys = [Keypair.dev(f"{name}-copier-{i}") for i in range(copiers)]
    miner_keys = [Keypair.dev(f"{name}-miner-{i}") for i in range(miners)]
    subnet.register([*honest_keys, *copier_keys])
    miner_uids = subnet.register(miner_keys)
    honest_total = HONEST_STAKE_TOKENS * honest
    copier_each = honest_total * copier_stake_share / (1 - copier_stake_share) / copiers
    stake = {k.ss58_address: subnet.stake(k, HONEST_STAKE_TOKENS) for k in honest_keys}
    stake.update({k.ss58_address: subnet.stake(k, copier_each) for k in copier_keys})
    submitter = WeightSubmitter(subnet, period, np.random.default_rng([seed, 2]))

    earned = dict.fromkeys(stake, 0.0)
    subnet.chain.until_epoch(subnet.netuid, 1)  # permits are granted by the first epoch
    best = 0
    for epoch in range(1, epochs + 1):
        if epoch % rotate_every == 0:
            best = (best + 1) % miners
        if churn > 0 and churn_rng.random() < churn:
            best = (best + 1 + int(churn_rng.integers(0, miners - 1))) % miners
        quality = np.full(miners, 0.2)
        quality[best] = 1.0
        consensus = {n["uid"]: n["consensus"] for n in subnet.rows()}
        copied = [consensus[u] for u in miner_uids]
        plans = [(k, quality * noise.uniform(0.9, 1.1, miners)) for k in honest_keys]
        plans += [(k, np.array(copied)) for k in copier_keys]
        for key, values in plans:
            submitter.reveal_due(key)
            submitter.submit(key, miner_uids, values)
        subnet.chain.until_epoch(subnet.netuid, epoch + 1)
        for neuron in subnet.rows():
            if neuron["hotkey"] in earned:
                earned[neuron["hotkey"]] += neuron["emission"] / TOKEN
    per_stake = {k: earned[k] / stake[k] * HONEST_STAKE_TOKENS * TOKEN for k in earned}
    honest_mean = sum(per_stake[k.ss58_address] for k in honest_keys) / honest
    copier_mean = sum(per_stake[k.ss58_address] for k in copier_keys) / copiers
    return CopierResult(commit_reveal, epochs, copier_mean, honest_mean, copiers,
                        copier_stake_share, period, churn,
                        copiers * epochs * miners * evaluations_per_miner)
