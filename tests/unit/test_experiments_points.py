"""A quick point of each experiment, on the chain's own state machine, and the seeding."""

from __future__ import annotations

import numpy as np

from subnetlab.experiments import cabal, copier, stake_quality
from subnetlab.keys.keypair import Keypair
from subnetlab.sim.copier import run_copier_experiment
from subnetlab.sim.scripted import WeightSubmitter, hyperparameters, new_subnet


def _cabal(stake_share: float, seed: int = 0) -> dict[str, object]:
    return cabal.run_point({"stake_share": stake_share, "kappa": 0.5, "subnet_stake": 1000.0,
                            "epochs": 6, "seed": seed})


def test_cabal_point_has_the_issues_fields_and_a_majority_captures() -> None:
    minority, majority = _cabal(0.3), _cabal(0.7)
    for row in (minority, majority):
        assert {"stake_share", "kappa", "cabal_incentive_share", "cabal_dividend_share",
                "cabal_emission_share", "seed", "cabal_stake_tokens"} <= set(row)
    assert minority["cabal_incentive_share"] < 0.5 < majority["cabal_incentive_share"]
    assert majority["captured"] and not minority["captured"]
    assert majority["cabal_stake_tokens"] == round(1000 * 0.7 / 0.3, 6)


def test_cabal_point_is_a_function_of_its_seed() -> None:
    assert _cabal(0.3, seed=1) == _cabal(0.3, seed=1)
    assert _cabal(0.3, seed=1)["cabal_incentive_share"] != _cabal(0.3, seed=2)[
        "cabal_incentive_share"]


def test_copier_point_counts_the_work_it_saved() -> None:
    row = copier.run_point({"copier_stake_share": 0.3, "copiers": 2, "reveal_period": 2,
                            "churn": 0.2, "epochs": 8, "seed": 0})
    assert row["work_saved_evaluations"] == 2 * 8 * copier.MINERS
    assert 0 < row["relative_yield"] < 1
    assert row == copier.run_point({k: row[k] for k in (
        "copier_stake_share", "copiers", "reveal_period", "churn", "epochs", "seed")})


def test_copier_yield_is_per_unit_of_stake() -> None:
    """A copier holding twice the stake earns about twice the dividends, not a higher yield:
    the comparison with honest validators is per unit of stake."""
    small = run_copier_experiment(False, 10, copier_stake_share=0.2)
    large = run_copier_experiment(False, 10, copier_stake_share=1 / 3)
    assert abs(small.relative_yield - large.relative_yield) < 0.15


def test_commit_salts_come_from_the_seed() -> None:
    """Two runs with one seed commit the same hashes (the salts were `secrets` before)."""
    def commits(seed: int) -> list[str]:
        subnet = new_subnet("salt-test", hyperparameters(10, reveal_period=1))
        key = Keypair.dev("salt-test-validator")
        uids = subnet.register([key, Keypair.dev("salt-test-miner")])
        subnet.stake(key, 10)
        subnet.chain.until_epoch(subnet.netuid, 1)
        WeightSubmitter(subnet, 1, np.random.default_rng(seed)).submit(key, uids[1:], [1.0])
        return [c.hash for pending in subnet.chain.state.commits.values() for c in pending]

    assert commits(3) == commits(3) != commits(4)


def test_commit_reveal_runs_reveal_each_commit_after_its_period() -> None:
    for period in (1, 3):
        result = run_copier_experiment(True, 8, reveal_period=period)
        assert result.honest_dividends > 0 and result.reveal_period == period


def test_stake_vs_quality_point_gives_the_heatmap_value_and_the_entrants_series() -> None:
    row = stake_quality.run_point({"stake_share": 0.7, "cabal_accuracy": 0.2, "entrants": 2,
                                   "epochs": 8, "seed": 0})
    assert row["cabal_incentive_share"] > 0.5  # a majority's lazy miners still take most
    assert len(row["cabal_side_share_series"]) == 4
    assert row["entrants_with_cabal_series"][-1] == row["entrants_with_cabal_final"] == 2
    honest_pays = stake_quality.run_point({"stake_share": 0.2, "cabal_accuracy": 0.2,
                                           "entrants": 2, "epochs": 8, "seed": 0})
    assert honest_pays["entrants_with_cabal_final"] == 0
