"""Claim 3: validators copy weights, and commit-reveal is the remedy.

Each point is one run of :func:`subnetlab.sim.copier.run_copier_experiment` (the chain's
state machine, scripted honest validators and copiers). Per point: the copiers' relative
yield (their dividends per stake over the honest validators'), and the miner evaluations
they skipped; across seeds, the summary gives 95% intervals.
"""

from __future__ import annotations

from collections.abc import Sequence

from subnetlab.experiments.common import Row, fmt, rounded
from subnetlab.experiments.stats import mean_ci, summarise
from subnetlab.experiments.sweep import Param
from subnetlab.sim.copier import run_copier_experiment

MINERS, HONEST = 4, 3

PARAMS = (
    Param("copier_stake_share", "--copier-stake-shares", float, 0, 1,
          (0.1, 0.2, 0.3, 0.4, 0.5), (0.2, 0.4),
          "the copiers' joint share of validator stake", lo_open=True, hi_open=True),
    Param("copiers", "--copiers", int, 1, 10, (1, 2, 3), (1, 2), "number of copying validators"),
    Param("reveal_period", "--reveal-periods", int, 0, 10, (0, 1, 2, 3), (0, 1, 3),
          "commit-reveal period in epochs (0: commit-reveal off)"),
    Param("churn", "--churn", float, 0, 1, (0.0, 0.2), (0.0,),
          "chance per epoch that a newcomer displaces the best miner"),
    Param("epochs", "--epochs", int, 2, 100_000, (200,), (20,), "epochs per run"),
)


def run_point(point: Row) -> Row:
    """One copier run; yields and work saved."""
    period = int(point["reveal_period"])
    result = run_copier_experiment(
        period > 0, int(point["epochs"]), MINERS, HONEST, seed=int(point["seed"]),
        reveal_period=max(period, 1), copiers=int(point["copiers"]),
        copier_stake_share=float(point["copier_stake_share"]), churn=float(point["churn"]))
    return {**point, "relative_yield": rounded(result.relative_yield),
            "copier_dividends_per_1000_stake": rounded(result.copier_dividends),
            "honest_dividends_per_1000_stake": rounded(result.honest_dividends),
            "work_saved_evaluations": result.work_saved}


KEYS = ("copier_stake_share", "copiers", "reveal_period", "churn")


def summary(rows: Sequence[Row]) -> list[str]:
    lines = ["| copier stake share | copiers | reveal period | churn | relative yield (95% CI) "
             "| evaluations saved | seeds |", "|---|---|---|---|---|---|---|"]
    saved = {k: m for k, m, _, _ in summarise(rows, KEYS, "work_saved_evaluations")}
    for key, m, h, n in summarise(rows, KEYS, "relative_yield"):
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {fmt(m)} ± {fmt(h)} | "
                     f"{saved[key]:.0f} | {n} |")
    return lines


def yield_by_period(rows: Sequence[Row]) -> dict[int, tuple[float, float]]:
    """Mean relative yield (and its 95% half-width) per reveal period, over everything else."""
    periods = sorted({int(r["reveal_period"]) for r in rows})
    return {p: mean_ci([r["relative_yield"] for r in rows if r["reveal_period"] == p])
            for p in periods}


def verdict(rows: Sequence[Row]) -> str:
    by_period = yield_by_period(rows)
    first, last = min(by_period), max(by_period)
    (y0, h0), (y1, h1) = by_period[first], by_period[last]
    saved = max(r["work_saved_evaluations"] for r in rows)
    if first == last:
        return (f"Copiers earn {y0:.2f} ± {h0:.2f} of honest dividends per stake at reveal "
                f"period {first}, skipping up to {saved} miner evaluations.")
    cut = y0 - y1
    significant = cut > h0 + h1
    remedy = ("a remedy" if significant and y1 < 0.5 * y0 else
              "a partial remedy" if significant else "no measurable remedy")
    return (f"Copying pays {y0:.2f} ± {h0:.2f} of honest dividends per stake without "
            f"commit-reveal while skipping up to {saved} miner evaluations; a reveal period of "
            f"{last} brings it to {y1:.2f} ± {h1:.2f}, so commit-reveal is {remedy}.")
