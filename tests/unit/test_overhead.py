"""Claim 1's experiment without processes: its sweep flags, the ratio arithmetic, the rows,
summary, verdict and figure built from measured figures (the real point runs in
tests/integration/test_overhead_point.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from subnetlab.experiments import overhead
from subnetlab.experiments import overhead_ratio as ratio
from subnetlab.experiments.figures import overhead_figure
from subnetlab.experiments.overhead_run import Measured, Setup, accounted, network, prompts
from subnetlab.experiments.sweep import SweepError, expand, parse_flags, point_problem


def _answer(miner: float, grading: float, delivered: float, latency: float = 0.1,
            seconds: tuple[float | None, float | None, float | None] = (None, None, None)
            ) -> ratio.Delivered:
    return ratio.Delivered(miner, grading, delivered, latency, *seconds)


# --- the arithmetic -------------------------------------------------------------------------


def test_organic_ratio_is_a_ratio_of_sums_not_a_mean_of_ratios() -> None:
    # broadcast N=2: two answers of 10 and 30 tokens, graded with 10 and 30 tokens
    answers = [_answer(20, 10, 10), _answer(60, 30, 30)]
    assert ratio.organic_ratio(answers) == pytest.approx((20 + 10 + 60 + 30) / 40)
    # a mean of the per-answer ratios would weight the short answer as much as the long one
    skewed = [_answer(10, 0, 10), _answer(100, 0, 10)]
    assert ratio.organic_ratio(skewed) == pytest.approx(110 / 20)


def test_an_empty_answer_counts_one_delivered_token_as_the_gateway_does() -> None:
    assert ratio.delivered_tokens([_answer(5, 0, 0)]) == 1
    assert ratio.organic_ratio([_answer(5, 0, 0)]) == 5


def test_total_ratio_counts_every_token_in_the_window_per_delivered_organic_token() -> None:
    answers = [_answer(30, 10, 10), _answer(30, 10, 10)]
    # the counters saw the organic 80 tokens plus 120 synthetic ones
    total = ratio.total_ratio(miner_tokens=60 + 100, reference_tokens=20 + 20, answers=answers)
    assert total == pytest.approx(200 / 20)
    organic = ratio.organic_ratio(answers)
    assert ratio.synthetic_share(organic, total) == pytest.approx(120 / 200)


def test_no_answer_gives_no_ratio_and_a_shrinking_counter_is_refused() -> None:
    assert ratio.organic_ratio([]) is None
    assert ratio.total_ratio(10, 0, []) is None
    assert ratio.synthetic_share(None, 3.0) is None
    with pytest.raises(ValueError, match="restarted during the window"):
        ratio.total_ratio(-1, 0, [_answer(1, 0, 1)])


def test_seconds_ratio_uses_only_answers_whose_every_figure_is_the_engines() -> None:
    answers = [_answer(0, 0, 1, seconds=(0.3, 0.1, 0.1)),
               _answer(0, 0, 1, seconds=(None, None, 0.2)),  # a miner's seconds unknown
               _answer(0, 0, 1, seconds=(0.6, None, 0.2))]  # no grading (best-of-n)
    assert ratio.seconds_ratio(answers) == pytest.approx((0.3 + 0.1 + 0.6) / (0.1 + 0.2))
    assert ratio.seconds_ratio([answers[1]]) is None


def test_quantile_interpolates_between_order_statistics() -> None:
    assert ratio.quantile([4.0, 1.0, 3.0, 2.0], 0.5) == pytest.approx(2.5)
    assert ratio.quantile([1.0, 2.0], 0.99) == pytest.approx(1.99)
    assert ratio.quantile([7.0], 0.99) == 7.0
    assert ratio.quantile([], 0.5) is None
    with pytest.raises(ValueError, match=r"quantile 1\.5"):
        ratio.quantile([1.0], 1.5)
    assert ratio.slowdown(0.2, 0.05) == pytest.approx(4.0)
    assert ratio.slowdown(0.2, None) is None


def test_expected_ratios_follow_docs_overhead_table() -> None:
    assert ratio.expected_organic_ratio("broadcast", 4, 0.0, 2) == 5
    assert ratio.expected_organic_ratio("best-of-n", 4, 0.0, 2) == 4
    assert ratio.expected_organic_ratio("spot-check", 4, 0.3, 2) == pytest.approx(1.9)
    with pytest.raises(ValueError, match="strategy 'nope'"):
        ratio.expected_organic_ratio("nope", 1, 0.0, 2)


# --- the sweep ------------------------------------------------------------------------------


def test_flags_are_named_after_the_quantities_and_take_lists() -> None:
    grid = parse_flags(overhead.PARAMS, [
        "--fan-out", "1,2,4,8", "--strategies", "broadcast,best-of-n,spot-check",
        "--spot-check-rates", "0.05,0.1,0.3", "--validators", "1,2,4",
        "--organic-rates", "0.1,1,10", "--engine", "sim,vllm"], quick=False,
        experiment="overhead")
    assert grid["fan_out"] == (1, 2, 4, 8)
    assert grid["strategy"] == ("broadcast", "best-of-n", "spot-check")
    assert grid["organic_rate"] == (0.1, 1.0, 10.0) and grid["engine"] == ("sim", "vllm")
    quick = parse_flags(overhead.PARAMS, [], quick=True, experiment="overhead")
    assert quick["engine"] == ("sim",) and len(quick["fan_out"]) < len(grid["fan_out"])


@pytest.mark.parametrize(("args", "message"), [
    (["--fan-out", "0"], "--fan-out: 0 is outside [1, 16]"),
    (["--fan-out", "1.5"], "--fan-out: '1.5' is not an integer"),
    (["--strategies", "broadcast,fastest"],
     "--strategies: 'fastest' is not one of broadcast, best-of-n, spot-check"),
    (["--strategies", "broadcast,broadcast"], "--strategies: 'broadcast,broadcast' lists a "
                                              "value twice"),
    (["--spot-check-rates", "-0.1"], "--spot-check-rates: -0.1 is outside [0, 1]"),
    (["--validators", "9"], "--validators: 9 is outside [1, 8]"),
    (["--organic-rates", "0"], "--organic-rates: 0 is outside (0, 50]"),
    (["--organic-rates", "inf"], "--organic-rates: 'inf' is not a finite number"),
    (["--durations", "1"], "--durations: 1 is outside [2, 600]"),
    (["--engine", "gpu"], "--engine: 'gpu' is not one of sim, vllm"),
    (["--kappa", "0.5"], "--kappa: unknown flag for experiment overhead"),
])
def test_bad_values_name_the_flag_and_the_reason(args: list[str], message: str) -> None:
    with pytest.raises(SweepError) as raised:
        parse_flags(overhead.PARAMS, args, quick=False, experiment="overhead")
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_a_spot_check_rate_splits_only_spot_check_points_and_each_is_a_valid_point(
) -> None:
    grid = parse_flags(overhead.PARAMS, ["--fan-out", "2", "--spot-check-rates", "0.1,0.3",
                                         "--validators", "1", "--organic-rates", "1"],
                       quick=False, experiment="overhead")
    points = overhead.narrow(expand(grid, [0, 1]))
    shown = [(p["strategy"], p["spot_check_rate"], p["seed"]) for p in points]
    assert shown == [("broadcast", 0.0, 0), ("broadcast", 0.0, 1),
                     ("best-of-n", 0.0, 0), ("best-of-n", 0.0, 1),
                     ("spot-check", 0.1, 0), ("spot-check", 0.1, 1),
                     ("spot-check", 0.3, 0), ("spot-check", 0.3, 1)]
    # each narrowed point is one `experiment point --point JSON` accepts (--kubernetes)
    assert all(point_problem(overhead.PARAMS, p) is None for p in points)


def test_the_points_network_has_the_gateway_settings_and_enough_miners() -> None:
    setup = Setup(fan_out=1, strategy="spot-check", spot_check_rate=0.3, validators=2,
                  organic_rate=0.1, duration_s=5, engine="sim", seed=3)
    assert setup.miners == 3 and setup.requests == 1  # a re-check needs two others
    net = network(setup, None)
    validators = [n for n in net.neurons if n.spec.role == "validator"]
    assert len(validators) == 2 and len(net.neurons) == 5
    gateway = validators[0].spec.validator.gateway  # type: ignore[union-attr]
    assert (gateway.strategy, gateway.fan_out, gateway.spot_check_rate) == (
        "spot-check", 1, 0.3)
    vllm = network(Setup(8, "broadcast", 0.0, 1, 1, 5, "vllm", 0), "tiny")
    miners = [n for n in vllm.neurons if n.spec.role == "miner"]
    assert len(miners) == 8 and {m.spec.miner.backend.type for m in miners  # type: ignore[union-attr]
                                 } == {"vllm"}
    assert prompts(3, 4) == prompts(3, 4) and prompts(3, 4) != prompts(4, 4)


def test_a_gateway_answer_without_accounting_is_not_counted() -> None:
    block = {"miner_tokens": 20, "grading_tokens": 10, "delivered_tokens": 10,
             "miner_engine_seconds": 0.2, "grading_engine_seconds": None,
             "delivered_engine_seconds": 0.1}
    got = accounted({"subnetlab": block}, 0.5)
    assert got == ratio.Delivered(20, 10, 10, 0.5, 0.2, None, 0.1)
    assert accounted({"choices": []}, 0.5) is None
    assert accounted({"subnetlab": {"miner_tokens": "x"}}, 0.5) is None


# --- rows, summary, verdict, figure ---------------------------------------------------------


def _rows() -> list[dict[str, Any]]:
    """Rows as run_point makes them, from measured figures of two seeds per point."""
    rows = []
    for strategy, rate in (("broadcast", 0.0), ("best-of-n", 0.0), ("spot-check", 0.3)):
        for fan_out in (1, 4):
            for organic_rate in (1.0, 10.0):
                for seed in (0, 1):
                    point = {"fan_out": fan_out, "strategy": strategy, "spot_check_rate": rate,
                             "validators": 1, "organic_rate": organic_rate, "duration_s": 8.0,
                             "engine": "sim", "seed": seed}
                    setup = overhead.setup_of(point)
                    per = ratio.expected_organic_ratio(strategy, fan_out, rate, 2)
                    answers = tuple(_answer(10 * per, 0, 10, 0.08 + 0.01 * seed)
                                    for _ in range(setup.requests))
                    synthetic = 400.0 / organic_rate
                    measured = Measured(answers, 0, 10 * per * len(answers) + synthetic, 0.0,
                                        (0.04, 0.05, 0.06))
                    rows.append(overhead.row_of(point, setup, measured))
    return rows


def test_rows_summary_verdict_and_figure_come_from_the_measured_figures(tmp_path: Path
                                                                         ) -> None:
    rows = _rows()
    first = rows[0]
    assert first["organic_ratio"] == pytest.approx(2.0)  # broadcast N=1: the miner + grading
    assert first["total_ratio"] > first["organic_ratio"]
    assert first["latency_p50_x"] == pytest.approx(0.08 / 0.05)
    low = [r for r in rows if r["organic_rate"] == 1.0]
    high = [r for r in rows if r["organic_rate"] == 10.0]
    # the synthetic work weighs less per organic token under more organic load
    assert min(r["total_ratio"] for r in low) > max(r["total_ratio"] for r in high)
    lines = overhead.summary(rows)
    assert len(lines) == 2 + len(rows) // 2  # a line per point, seeds together
    sentence = overhead.verdict(rows)
    assert sentence.startswith("At fan-out 4 a delivered organic token costs broadcast 5.00, "
                               "best-of-n 4.00, spot-check 1.90 tokens on the organic path")
    png = tmp_path / "overhead.png"
    overhead_figure(rows, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_point_that_delivered_nothing_is_reported_not_averaged() -> None:
    point = {"fan_out": 1, "strategy": "broadcast", "spot_check_rate": 0.0, "validators": 1,
             "organic_rate": 1.0, "duration_s": 8.0, "engine": "sim", "seed": 0}
    row = overhead.row_of(point, overhead.setup_of(point),
                          Measured((), 8, 500.0, 0.0, (0.05,)))
    assert row["organic_ratio"] is None and row["requests_failed"] == 8
    assert overhead.verdict([row]) == "No point delivered an organic answer: nothing measured."
    rows = [*_rows(), row]
    assert overhead.summary(rows)[-1] == "1 point(s) delivered no organic answer (left out above)."


def test_the_verdict_compares_validator_counts_when_several_were_swept() -> None:
    rows = _rows()
    more = [{**r, "validators": 2, "total_ratio": r["total_ratio"] * 2} for r in rows]
    sentence = overhead.verdict([*rows, *more])
    low = sum(r["total_ratio"] for r in rows) / len(rows)
    assert f"({low:.1f} with V=1 against {2 * low:.1f} with V=2)" in sentence
