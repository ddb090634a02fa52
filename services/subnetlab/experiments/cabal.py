"""Claim 2: more than half of a subnet's validator stake captures it; niche subnets are
cheaper to capture.

A cabal's validators put all their weight on the cabal's own (lazy) miners; honest
validators weight every miner by the accuracy they observe. The chain's epoch decides
who is paid. Per point: the cabal miners' share of incentive, the cabal validators'
share of dividends, the cabal's share of all emission, and the stake the cabal had to
bring against the honest stake (the cost of capture in tokens).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from subnetlab.experiments.common import Row, closest, fmt, mean, rounded, share
from subnetlab.experiments.stats import group, summarise
from subnetlab.experiments.sweep import Param
from subnetlab.keys.keypair import Keypair
from subnetlab.sim.scripted import WeightSubmitter, hyperparameters, new_subnet

HONEST_VALIDATORS, CABAL_VALIDATORS = 3, 2
HONEST_MINERS, CABAL_MINERS = 4, 2
CABAL_ACCURACY = 0.05  # the cabal's miners are lazy: honest validators see little worth
TEMPO = 10
CAPTURE = 0.5  # captured: the cabal's miners take more than half of the incentive

PARAMS = (
    Param("stake_share", "--stake-shares", float, 0, 1,
          (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9), (0.2, 0.4, 0.5, 0.6, 0.8),
          "the cabal's share of validator stake", lo_open=True, hi_open=True),
    Param("kappa", "--kappa", float, 0, 1, (0.3, 0.5, 0.7), (0.3, 0.5, 0.7),
          "the subnet's kappa (majority ratio of consensus)"),
    Param("subnet_stake", "--subnet-stakes", float, 0, 1e9, (1_000.0, 100_000.0),
          (1_000.0, 100_000.0),
          "tokens staked by the honest validators (the subnet's size)", lo_open=True),
    Param("epochs", "--epochs", int, 2, 100_000, (30,), (8,), "epochs per run"),
)


def run_point(point: Row) -> Row:
    """One subnet with an honest side and a cabal; shares measured over the last half."""
    stake_share, kappa = float(point["stake_share"]), float(point["kappa"])
    honest_stake, epochs, seed = float(point["subnet_stake"]), int(point["epochs"]), point["seed"]
    rng = np.random.default_rng(seed)
    name = f"cabal-exp-{seed}"
    subnet = new_subnet(name, hyperparameters(TEMPO, kappa=kappa))
    honest = [Keypair.dev(f"{name}-honest-validator-{i}") for i in range(HONEST_VALIDATORS)]
    cabal = [Keypair.dev(f"{name}-cabal-validator-{i}") for i in range(CABAL_VALIDATORS)]
    honest_m = [Keypair.dev(f"{name}-honest-miner-{i}") for i in range(HONEST_MINERS)]
    cabal_m = [Keypair.dev(f"{name}-cabal-miner-{i}") for i in range(CABAL_MINERS)]
    validator_uids = subnet.register([*honest, *cabal])
    miner_uids = subnet.register([*honest_m, *cabal_m])
    cabal_stake = honest_stake * stake_share / (1 - stake_share)
    for key, part in zip(honest, rng.dirichlet(np.ones(HONEST_VALIDATORS)), strict=True):
        subnet.stake(key, honest_stake * part)
    for key in cabal:
        subnet.stake(key, cabal_stake / CABAL_VALIDATORS)
    accuracy = np.concatenate([rng.uniform(0.6, 0.95, HONEST_MINERS),
                               np.full(CABAL_MINERS, CABAL_ACCURACY)])
    cabal_miner_uids = set(miner_uids[HONEST_MINERS:])
    cabal_validator_uids = set(validator_uids[HONEST_VALIDATORS:])
    submitter = WeightSubmitter(subnet, 0, rng)
    subnet.chain.until_epoch(subnet.netuid, 1)
    incentive, dividends, emission = [], [], []
    for epoch in range(1, epochs + 1):
        for key in honest:
            submitter.submit(key, miner_uids, accuracy * rng.uniform(0.9, 1.1, len(accuracy)))
        for key in cabal:
            submitter.submit(key, sorted(cabal_miner_uids), [1.0] * CABAL_MINERS)
        subnet.chain.until_epoch(subnet.netuid, epoch + 1)
        if epoch <= epochs // 2:
            continue
        rows = subnet.rows()
        incentive.append(share(sum(r["incentive"] for r in rows if r["uid"] in cabal_miner_uids),
                               sum(r["incentive"] for r in rows)))
        dividends.append(share(sum(r["dividends"] for r in rows
                                   if r["uid"] in cabal_validator_uids),
                               sum(r["dividends"] for r in rows)))
        cabal_uids = cabal_miner_uids | cabal_validator_uids
        emission.append(share(sum(r["emission"] for r in rows if r["uid"] in cabal_uids),
                              sum(r["emission"] for r in rows)))
    return {**point, "cabal_incentive_share": rounded(mean(incentive)),
            "cabal_dividend_share": rounded(mean(dividends)),
            "cabal_emission_share": rounded(mean(emission)),
            "cabal_stake_tokens": rounded(cabal_stake),
            "captured": mean(incentive) > CAPTURE}


def capture_thresholds(rows: Sequence[Row]) -> dict[tuple[float, float], float | None]:
    """Per (kappa, subnet_stake): the smallest stake share whose mean capture across seeds
    exceeds one half, with every larger share of the grid capturing too (None: never)."""
    out: dict[tuple[float, float], float | None] = {}
    for (kappa, size), members in group(rows, ("kappa", "subnet_stake")).items():
        means = {s: mean(r["cabal_incentive_share"] for r in m)
                 for (s,), m in group(members, ("stake_share",)).items()}
        shares = sorted(means)
        captured = [s for i, s in enumerate(shares)
                    if all(means[t] > CAPTURE for t in shares[i:])]
        out[(kappa, size)] = captured[0] if captured else None
    return out


def capture_cost(threshold: float, subnet_stake: float) -> float:
    """Tokens a cabal must stake to hold `threshold` of a subnet with `subnet_stake` honest."""
    return subnet_stake * threshold / (1 - threshold)


def summary(rows: Sequence[Row]) -> list[str]:
    lines = ["| kappa | subnet stake | stake share | cabal incentive share | "
             "cabal dividend share | cabal emission share | seeds |",
             "|---|---|---|---|---|---|---|"]
    keys = ("kappa", "subnet_stake", "stake_share")
    div = {k: (m, h) for k, m, h, _ in summarise(rows, keys, "cabal_dividend_share")}
    emi = {k: (m, h) for k, m, h, _ in summarise(rows, keys, "cabal_emission_share")}
    for key, m, h, n in summarise(rows, keys, "cabal_incentive_share"):
        lines.append(f"| {key[0]} | {key[1]:g} | {key[2]} | {fmt(m)} ± {fmt(h)} | "
                     f"{fmt(div[key][0])} ± {fmt(div[key][1])} | "
                     f"{fmt(emi[key][0])} ± {fmt(emi[key][1])} | {n} |")
    lines += ["", "Cost of capture (smallest swept stake share from which the cabal's miners "
              "take more than half of the incentive):", "",
              "| kappa | subnet stake (tokens) | capture share | cabal stake needed (tokens) |",
              "|---|---|---|---|"]
    for (kappa, size), threshold in capture_thresholds(rows).items():
        cost = "-" if threshold is None else f"{capture_cost(threshold, size):,.0f}"
        lines.append(f"| {kappa} | {size:,.0f} | {threshold if threshold is not None else 'never'}"
                     f" | {cost} |")
    return lines


def verdict(rows: Sequence[Row]) -> str:
    thresholds = capture_thresholds(rows)
    kappa = closest((k for k, _ in thresholds), 0.5)
    at = {size: t for (k, size), t in thresholds.items() if k == kappa}
    sizes = sorted(at)
    threshold = at[sizes[0]]
    if threshold is None:
        return (f"Not supported in the swept range: at kappa {kappa} no swept stake share up to "
                f"{max(r['stake_share'] for r in rows)} captured the subnet.")
    below = [r for r in rows if r["kappa"] == kappa and r["stake_share"] < threshold]
    holds = threshold > 0.5 - 1e-9 and not any(r["captured"] for r in below)
    costs = ", ".join(f"{capture_cost(t, s):,.0f} tokens for a {s:,.0f}-token subnet"
                      for s in sizes if (t := at[s]) is not None)
    return (f"{'Supported' if holds else 'Not supported'}: at kappa {kappa} the cabal's miners "
            f"take over half the incentive from a {threshold} stake share (costing {costs}), "
            f"{'and never below it' if holds else 'which is at or below one half'}.")
