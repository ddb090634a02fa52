"""A quick point of experiment `miners` on the chain's own state machine, its seeding,
and the rule that reads its rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from subnetlab.experiments import miners
from subnetlab.experiments.cost_model import MINER_TYPES
from tests.conftest import CliRun


def _point(rate: float, seed: int = 0, agreement: float = 0.97) -> dict[str, Any]:
    return miners.run_point({"spot_check_rate": rate, "upstream_accuracy": 0.95,
                             "upstream_agreement": agreement, "api_price": 0.2,
                             "gpu_cost": 2.5, "epochs": 6, "seed": seed})


def test_point_has_every_types_money_and_catches() -> None:
    row = _point(0.3)
    for kind in MINER_TYPES:
        assert {f"{kind}_profit_usd_day", f"{kind}_detection_rate", f"{kind}_incentive_share",
                f"{kind}_checks", f"{kind}_catches"} <= set(row)
        assert row[f"{kind}_profit_usd_day"] == round(
            row[f"{kind}_revenue_usd_day"] - row[f"{kind}_cost_usd_day"], 6)
    # the lazy answer never agrees: nearly every check of it is a catch, and it earns nothing
    assert row["lazy_catches"] > 0.8 * row["lazy_checks"] > 0
    assert row["lazy_incentive_share"] < 0.05 < row["honest_incentive_share"]
    # a sybil's three hotkeys earn about three honest miners' incentive on one engine
    assert row["sybil_incentive_share"] > 2 * row["honest_incentive_share"]
    assert row["sybil_cost_usd_day"] == row["honest_cost_usd_day"]


def test_without_spot_checks_nobody_is_checked_or_caught() -> None:
    row = _point(0.0)
    assert all(row[f"{kind}_checks"] == row[f"{kind}_detection_rate"] == 0
               for kind in MINER_TYPES)


def test_point_is_a_function_of_its_seed() -> None:
    assert _point(0.1, seed=3) == _point(0.1, seed=3)
    assert _point(0.1, seed=3) != _point(0.1, seed=4)


def _counts(checks: int, catches: int, agreement: float = 0.97, seed: int = 0
            ) -> dict[str, Any]:
    return {"seed": seed, "upstream_agreement": agreement, "honest_checks": 2000,
            "honest_catches": 40, "copycat_checks": checks, "copycat_catches": catches}


def test_told_apart_needs_a_significant_excess_and_counts_a_seeds_draws_once() -> None:
    assert not miners.told_apart([_counts(1000, 22)], "copycat")  # 2.2% vs 2%: chance
    assert miners.told_apart([_counts(1000, 60)], "copycat")  # 6% vs 2%: z about 6
    # the same (seed, agreement) repeated (prices differ, the draws do not) is one sample
    repeated = [_counts(1000, 32) for _ in range(8)]
    assert miners.told_apart(repeated, "copycat") == miners.told_apart(repeated[:1], "copycat")
    assert not miners.told_apart([_counts(0, 0)], "copycat")


def test_sweep_writes_report_with_verdict_and_what_was_simulated(cli: CliRun,
                                                                  tmp_path: Path) -> None:
    result = cli("experiment", "run", "miners", "--quick", "--seeds", "1", "--epochs", "4",
                 "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    report = (tmp_path / "report.md").read_text()
    assert "simulated: money: a cost model" in report
    assert "real: who a spot-check catches: validator.spotcheck.caught" in report
    assert "an honest miner nets" in report and (tmp_path / "miners.png").stat().st_size > 0


def test_bad_sweep_flag_names_the_flag(cli: CliRun, tmp_path: Path) -> None:
    result = cli("experiment", "run", "miners", "--spot-check-rates", "0.1,1.5",
                 "--out", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("error: --spot-check-rates: 1.5 is outside [0, 1]")
    result = cli("experiment", "run", "miners", "--gpu-costs", "0", "--out", str(tmp_path))
    assert result.stderr.startswith("error: --gpu-costs: 0 is outside (0, 1000]")
