"""The experiments `subnetlab experiment` knows, by name, with the claim each one tests.

Only experiments that run for real are listed: overhead, miners and audit need real
processes and are not here yet (no placeholders).
"""

from __future__ import annotations

from subnetlab.experiments import cabal, copier, stake_quality
from subnetlab.experiments.common import SCRIPTED_CHAIN, SCRIPTED_NEURONS, Experiment, Row
from subnetlab.experiments.figures import cabal_figure, copier_figure, stake_quality_figure

NOT_RUN = ("ledger, Redis, HTTP, miner and validator processes, inference engines: "
           "not used (no network)")

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment(
        name="cabal", claim=2,
        claim_text="more than half of a subnet's validator stake captures it; niche "
        "(low-stake) subnets are cheaper to attack",
        measures="cabal miners' incentive, cabal validators' dividends and the cabal's "
        "emission share against the cabal's stake share, per kappa; stake needed to capture "
        "against the subnet's stake",
        params=cabal.PARAMS, run_point=cabal.run_point, summary=cabal.summary,
        verdict=cabal.verdict, figure=cabal_figure,
        simulated=(SCRIPTED_NEURONS, NOT_RUN), real=(SCRIPTED_CHAIN,)),
    Experiment(
        name="copier", claim=3,
        claim_text="validators copy weights; commit-reveal is the remedy",
        measures="copiers' dividends per stake relative to honest validators (95% CI across "
        "seeds) against the commit-reveal period, copier stake, number of copiers and miner "
        "churn; miner evaluations the copiers skipped",
        params=copier.PARAMS, run_point=copier.run_point, summary=copier.summary,
        verdict=copier.verdict, figure=copier_figure,
        simulated=(SCRIPTED_NEURONS, NOT_RUN), real=(SCRIPTED_CHAIN,)),
    Experiment(
        name="stake-vs-quality", claim=5,
        claim_text="stake, not answer quality, decides rewards; newcomers join the popular "
        "cabal",
        measures="cabal miners' incentive share over (cabal stake share, cabal miner "
        "accuracy); the cabal side's share over time as entrants join the side that pays more",
        params=stake_quality.PARAMS, run_point=stake_quality.run_point,
        summary=stake_quality.summary, verdict=stake_quality.verdict,
        figure=stake_quality_figure,
        simulated=(SCRIPTED_NEURONS, NOT_RUN), real=(SCRIPTED_CHAIN,)),
)}


def run_one(name: str, point: Row) -> Row:
    """Run one point of experiment `name` (a top-level function: worker processes pickle it)."""
    return EXPERIMENTS[name].run_point(point)
