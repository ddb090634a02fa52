"""Claim 1: every organic answer costs N+V compute.

Each point is one real testnet (`overhead_run`): fan-out N, a gateway strategy, V
validators, an organic request rate, sim engines or CPU vLLM. Per point: the organic ratio
(tokens the organic path spent per delivered token), the total ratio (every miner and
reference token in the window, the validators' synthetic queries included, per delivered
organic token) and the latency p50/p99 through the gateways against one miner called
directly in the same point. Real processes add noise: the summary gives 95% intervals
across seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from subnetlab.experiments import overhead_ratio as ratio
from subnetlab.experiments.common import Row, fmt, mean, rounded
from subnetlab.experiments.overhead_run import SPOT_CHECK_OTHERS, Measured, Setup, run
from subnetlab.experiments.stats import summarise
from subnetlab.experiments.sweep import Param

STRATEGIES = ("broadcast", "best-of-n", "spot-check")
ENGINES = ("sim", "vllm")
NO_SPOT_CHECK = 0.0  # the rate a point without spot-checks runs (and its row shows)

PARAMS = (
    Param("fan_out", "--fan-out", int, 1, 16, (1, 2, 4, 8), (1, 4),
          "miners a broadcast or best-of-n request asks (spot-check: how many it tries)"),
    Param("strategy", "--strategies", str, 0, 0, STRATEGIES, STRATEGIES,
          "the gateway's strategy", choices=STRATEGIES),
    Param("spot_check_rate", "--spot-check-rates", float, 0, 1, (0.05, 0.1, 0.3), (0.3,),
          "share of spot-check answers re-checked (other strategies ignore it)"),
    Param("validators", "--validators", int, 1, 8, (1, 2, 4), (1,),
          "validators, each with its gateway and its synthetic queries"),
    Param("organic_rate", "--organic-rates", float, 0, 50, (0.1, 1.0, 10.0), (2.0,),
          "organic requests per second, over all gateways", lo_open=True),
    Param("duration_s", "--durations", float, 2, 600, (30.0,), (8.0,),
          "seconds of organic load per point"),
    Param("engine", "--engine", str, 0, 0, ("sim",), ("sim",),
          "the miners' engines: sim (modelled) or vllm (the CPU build, a tiny model)",
          choices=ENGINES),
)


def narrow(points: list[Row]) -> list[Row]:
    """One point per run that differs: a spot-check rate means nothing to broadcast and
    best-of-n, so their points run (and show) rate 0, once."""
    seen: set[tuple[object, ...]] = set()
    out = []
    for point in points:
        if point["strategy"] != "spot-check":
            point = {**point, "spot_check_rate": NO_SPOT_CHECK}
        key = tuple(point.items())
        if key not in seen:
            seen.add(key)
            out.append(point)
    return out


def setup_of(point: Row) -> Setup:
    return Setup(int(point["fan_out"]), str(point["strategy"]),
                 float(point["spot_check_rate"]), int(point["validators"]),
                 float(point["organic_rate"]), float(point["duration_s"]),
                 str(point["engine"]), int(point["seed"]))


def run_point(point: Row) -> Row:
    """One real testnet, measured."""
    setup = setup_of(point)
    return row_of(point, setup, run(setup))


def row_of(point: Row, setup: Setup, measured: Measured) -> Row:
    """The point's row: its parameters, what it measured, and the ratios (None where no
    organic answer was delivered: nothing to divide by)."""
    answers = measured.answers
    organic = ratio.organic_ratio(answers)
    total = ratio.total_ratio(measured.miner_tokens, measured.reference_tokens, answers)
    latencies = [a.latency_s for a in answers]
    p50, p99 = ratio.quantile(latencies, 0.5), ratio.quantile(latencies, 0.99)
    d50 = ratio.quantile(measured.direct_latencies_s, 0.5)
    d99 = ratio.quantile(measured.direct_latencies_s, 0.99)

    def r(value: float | None, scale: float = 1.0) -> float | None:
        return None if value is None else rounded(value * scale)

    return {**point, "miners": setup.miners, "requests": setup.requests,
            "requests_ok": len(answers), "requests_failed": measured.failures,
            "delivered_tokens": ratio.delivered_tokens(answers),
            "miner_tokens": measured.miner_tokens,
            "reference_tokens": measured.reference_tokens,
            "organic_ratio": r(organic), "total_ratio": r(total),
            "synthetic_share": r(ratio.synthetic_share(organic, total)),
            "organic_seconds_ratio": r(ratio.seconds_ratio(answers)),
            "expected_organic_ratio": rounded(ratio.expected_organic_ratio(
                setup.strategy, setup.fan_out, setup.spot_check_rate, SPOT_CHECK_OTHERS)),
            "latency_p50_ms": r(p50, 1000), "latency_p99_ms": r(p99, 1000),
            "direct_p50_ms": r(d50, 1000), "direct_p99_ms": r(d99, 1000),
            "latency_p50_x": r(ratio.slowdown(p50, d50)),
            "latency_p99_x": r(ratio.slowdown(p99, d99))}


def line_of(row: Row) -> str:
    """The figure's and summary's name for a row's configuration (strategy, rate, V)."""
    strategy = str(row["strategy"])
    if strategy == "spot-check":
        strategy += f" {row['spot_check_rate']:g}"
    return f"{strategy}, V={row['validators']}"


KEYS = ("engine", "strategy", "spot_check_rate", "validators", "organic_rate", "fan_out")


def _measured(metric: str) -> Callable[[Row], bool]:
    return lambda row: row.get(metric) is not None


def summary(rows: Sequence[Row]) -> list[str]:
    lines = ["| engine | strategy | V | organic rate /s | N | organic ratio | total ratio | "
             "latency p50 ms (direct) | p99 ms (direct) | p50 x | seeds |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    total = {k: (m, h) for k, m, h, _ in summarise(rows, KEYS, "total_ratio",
                                                   _measured("total_ratio"))}
    by_key: dict[tuple[object, ...], dict[str, float]] = {}
    for metric in ("latency_p50_ms", "latency_p99_ms", "direct_p50_ms", "direct_p99_ms",
                   "latency_p50_x"):
        for key, m, _, _ in summarise(rows, KEYS, metric, _measured(metric)):
            by_key.setdefault(key, {})[metric] = m
    for key, m, h, n in summarise(rows, KEYS, "organic_ratio", _measured("organic_ratio")):
        engine, strategy, rate, v, organic_rate, n_out = key
        name = f"{strategy} {rate:g}" if strategy == "spot-check" else str(strategy)
        tm, th = total[key]
        lat = by_key.get(key, {})
        lines.append(
            f"| {engine} | {name} | {v} | {organic_rate:g} | {n_out} | {fmt(m)} ± {fmt(h)} | "
            f"{fmt(tm)} ± {fmt(th)} | {lat.get('latency_p50_ms', 0):.0f} "
            f"({lat.get('direct_p50_ms', 0):.0f}) | {lat.get('latency_p99_ms', 0):.0f} "
            f"({lat.get('direct_p99_ms', 0):.0f}) | {lat.get('latency_p50_x', 0):.2f} | {n} |")
    missing = sum(1 for r in rows if r.get("organic_ratio") is None)
    if missing:
        lines += ["", f"{missing} point(s) delivered no organic answer (left out above)."]
    return lines


def _mean_of(rows: Sequence[Row], metric: str) -> float | None:
    values = [r[metric] for r in rows if r.get(metric) is not None]
    return mean(values) if values else None


def verdict(rows: Sequence[Row]) -> str:
    measured = [r for r in rows if r.get("organic_ratio") is not None]
    if not measured:
        return "No point delivered an organic answer: nothing measured."
    top = max(r["fan_out"] for r in measured)
    at_top = [r for r in measured if r["fan_out"] == top]
    per_strategy = []
    for strategy in STRATEGIES:
        value = _mean_of([r for r in at_top if r["strategy"] == strategy], "organic_ratio")
        if value is not None:
            per_strategy.append(f"{strategy} {value:.2f}")
    rates = sorted({r["organic_rate"] for r in measured})
    low = _mean_of([r for r in measured if r["organic_rate"] == rates[0]], "total_ratio")
    high = _mean_of([r for r in measured if r["organic_rate"] == rates[-1]], "total_ratio")
    validators = sorted({r["validators"] for r in measured})
    if len(validators) > 1:
        per_v = [(v, _mean_of([r for r in measured if r["validators"] == v], "total_ratio"))
                 for v in (validators[0], validators[-1])]
        text_v = " against ".join(f"{t:.1f} with V={v}" for v, t in per_v if t is not None)
    else:
        text_v = ""
    slow = _mean_of(measured, "latency_p50_x")
    text = (f"At fan-out {top} a delivered organic token costs "
            f"{', '.join(per_strategy)} tokens on the organic path")
    if low is not None and high is not None:
        text += (f"; counting the validators' synthetic queries, {low:.1f} at "
                 f"{rates[0]:g} organic requests/s" +
                 (f" and {high:.1f} at {rates[-1]:g}/s" if len(rates) > 1 else ""))
    if text_v:
        text += f" ({text_v})"
    if slow is not None:
        text += f"; the gateway's median latency is {slow:.1f}x one miner's called directly"
    return text + "."
