"""Claim 5: stake, not answer quality, decides rewards; newcomers join the popular cabal.

A cabal (validators weighting only the cabal's miners) against honest validators who
weight every miner by its accuracy. First half of the run: the cabal miners' share of
incentive, over (cabal stake share, cabal miner accuracy) - the heatmap. Second half:
entrant miners (as accurate as the honest ones) arrive, and each epoch each of them, with
an even chance, re-decides its side and joins whichever paid more per miner in the last
epoch; the cabal side's share of incentive over time is the series.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from subnetlab.experiments.common import Row, fmt, mean, rounded, share
from subnetlab.experiments.stats import group, summarise
from subnetlab.experiments.sweep import Param
from subnetlab.keys.keypair import Keypair
from subnetlab.sim.scripted import WeightSubmitter, hyperparameters, new_subnet

HONEST_VALIDATORS, CABAL_VALIDATORS = 3, 2
HONEST_MINERS, CABAL_MINERS = 3, 2
HONEST_ACCURACY = 0.8
SUBNET_STAKE = 1_000.0  # the honest validators' tokens
TEMPO = 10
RECONSIDER = 0.5  # chance per epoch that an entrant re-decides its side

PARAMS = (
    Param("stake_share", "--stake-shares", float, 0, 1,
          (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9), (0.2, 0.4, 0.6, 0.8),
          "the cabal's share of validator stake", lo_open=True, hi_open=True),
    Param("cabal_accuracy", "--cabal-accuracies", float, 0, 1, (0.1, 0.3, 0.5, 0.7, 0.9),
          (0.2, 0.5, 0.8), "accuracy of the cabal's miners as honest validators observe it"),
    Param("entrants", "--entrants", int, 0, 32, (4,), (2,),
          "miners that arrive half-way and join the side that pays more"),
    Param("epochs", "--epochs", int, 4, 100_000, (30,), (10,), "epochs per run"),
)


def run_point(point: Row) -> Row:
    """One subnet: the heatmap value over the first half, the entrants' series after."""
    stake_share, accuracy_c = float(point["stake_share"]), float(point["cabal_accuracy"])
    entrants, epochs, seed = int(point["entrants"]), int(point["epochs"]), int(point["seed"])
    rng = np.random.default_rng(seed)
    name = f"stake-quality-exp-{seed}"
    subnet = new_subnet(name, hyperparameters(TEMPO))
    honest = [Keypair.dev(f"{name}-honest-validator-{i}") for i in range(HONEST_VALIDATORS)]
    cabal = [Keypair.dev(f"{name}-cabal-validator-{i}") for i in range(CABAL_VALIDATORS)]
    subnet.register([*honest, *cabal])
    miners = subnet.register([Keypair.dev(f"{name}-miner-{i}")
                              for i in range(HONEST_MINERS + CABAL_MINERS)])
    for key, part in zip(honest, rng.dirichlet(np.ones(HONEST_VALIDATORS)), strict=True):
        subnet.stake(key, SUBNET_STAKE * part)
    for key in cabal:
        subnet.stake(key, SUBNET_STAKE * stake_share / (1 - stake_share) / CABAL_VALIDATORS)
    accuracy = {uid: HONEST_ACCURACY for uid in miners[:HONEST_MINERS]}
    accuracy.update({uid: accuracy_c for uid in miners[HONEST_MINERS:]})
    cabal_side = set(miners[HONEST_MINERS:])
    newcomers: list[int] = []
    submitter = WeightSubmitter(subnet, 0, rng)
    subnet.chain.until_epoch(subnet.netuid, 1)
    half = epochs // 2
    before: list[float] = []
    series: list[float] = []
    joined: list[int] = []
    for epoch in range(1, epochs + 1):
        if epoch == half + 1 and entrants:
            incumbents = sorted(accuracy)  # what they paid is what the entrants see
            newcomers = subnet.register([Keypair.dev(f"{name}-entrant-{i}")
                                         for i in range(entrants)])
            accuracy.update({uid: HONEST_ACCURACY for uid in newcomers})
            _choose_sides(subnet.rows(), incumbents, newcomers, cabal_side, rng,
                          everyone=True)
        uids = sorted(accuracy)
        for key in honest:
            observed = np.array([accuracy[u] for u in uids]) * rng.uniform(0.9, 1.1, len(uids))
            submitter.submit(key, uids, observed)
        for key in cabal:
            submitter.submit(key, sorted(cabal_side), [1.0] * len(cabal_side))
        subnet.chain.until_epoch(subnet.netuid, epoch + 1)
        rows = subnet.rows()
        cabal_share = share(sum(r["incentive"] for r in rows if r["uid"] in cabal_side),
                            sum(r["incentive"] for r in rows))
        if epoch <= half:
            if epoch > half // 2:
                before.append(cabal_share)
            continue
        series.append(rounded(cabal_share))
        joined.append(len(cabal_side & set(newcomers)))
        _choose_sides(rows, sorted(accuracy), newcomers, cabal_side, rng, everyone=False)
    return {**point, "cabal_incentive_share": rounded(mean(before)),
            "cabal_side_share_final": series[-1] if series else rounded(mean(before)),
            "entrants_with_cabal_final": joined[-1] if joined else 0,
            "cabal_side_share_series": series, "entrants_with_cabal_series": joined}


def _choose_sides(rows: Sequence[Row], miners: list[int], newcomers: list[int],
                  cabal_side: set[int], rng: np.random.Generator, everyone: bool) -> None:
    """Entrants move to the side that paid more per miner in the last epoch (each with an
    even chance per epoch, or all of them on arrival)."""
    paid = {r["uid"]: r["incentive"] for r in rows}
    cabal_pays = (mean(paid[u] for u in miners if u in cabal_side)
                  > mean(paid[u] for u in miners if u not in cabal_side))
    for uid in newcomers:
        if everyone or rng.random() < RECONSIDER:
            (cabal_side.add if cabal_pays else cabal_side.discard)(uid)


def heatmap(rows: Sequence[Row]) -> tuple[list[float], list[float], list[list[float]]]:
    """(stake shares, accuracies, mean cabal incentive share [accuracy][stake share])."""
    stakes = sorted({r["stake_share"] for r in rows})
    accs = sorted({r["cabal_accuracy"] for r in rows})
    cells = {k: mean(r["cabal_incentive_share"] for r in m)
             for k, m in group(rows, ("cabal_accuracy", "stake_share")).items()}
    return stakes, accs, [[cells.get((a, s), float("nan")) for s in stakes] for a in accs]


def summary(rows: Sequence[Row]) -> list[str]:
    lines = ["| stake share | cabal accuracy | cabal incentive share (95% CI) | "
             "cabal side's share at the end | entrants with the cabal at the end | seeds |",
             "|---|---|---|---|---|---|"]
    keys = ("stake_share", "cabal_accuracy")
    final = {k: m for k, m, _, _ in summarise(rows, keys, "cabal_side_share_final")}
    joined = {k: m for k, m, _, _ in summarise(rows, keys, "entrants_with_cabal_final")}
    for key, m, h, n in summarise(rows, keys, "cabal_incentive_share"):
        lines.append(f"| {key[0]} | {key[1]} | {fmt(m)} ± {fmt(h)} | {fmt(final[key])} | "
                     f"{joined[key]:.2f} of {rows[0]['entrants']} | {n} |")
    return lines


def verdict(rows: Sequence[Row]) -> str:
    stakes, accs, grid = heatmap(rows)
    by_stake = mean(max(line) - min(line) for line in grid)
    by_quality = mean(max(col) - min(col) for col in zip(*grid, strict=True))
    majority = [r for r in rows if r["stake_share"] > 0.5 and r["entrants"]]
    joined = share(sum(r["entrants_with_cabal_final"] for r in majority),
                   sum(r["entrants"] for r in majority))
    decides = "stake" if by_stake > by_quality else "quality"
    tail = (f"; with a majority cabal, {joined:.0%} of entrants ended on its side"
            if majority else "")
    return (f"{'Supported' if decides == 'stake' else 'Not supported'}: moving the cabal's "
            f"stake share across {stakes[0]}-{stakes[-1]} moves its miners' incentive share by "
            f"{by_stake:.2f} on average, moving their accuracy across {accs[0]}-{accs[-1]} by "
            f"{by_quality:.2f}{tail}.")
