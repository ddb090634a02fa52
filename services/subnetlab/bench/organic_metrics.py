"""The organic gateway's Prometheus figures, per strategy, as a load test needs them.

Pure logic: parse a validator's /metrics text into per-strategy snapshots, subtract a
snapshot taken before a load phase from one taken after it (counters only grow, so the
difference is exactly what the phase added), add the gateways of a testnet together, and
estimate quantiles from histogram buckets the way Prometheus's `histogram_quantile` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

OVERHEAD = "subnetlab_organic_overhead_ratio"
SECONDS = "subnetlab_organic_overhead_seconds_ratio"
LATENCY = "subnetlab_organic_latency_seconds"
REQUESTS = "subnetlab_organic_requests"


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts by upper bound (`+Inf` included), with count and sum."""

    buckets: tuple[tuple[float, float], ...] = ()
    count: float = 0.0
    total: float = 0.0

    def minus(self, before: Histogram) -> Histogram:
        earlier = dict(before.buckets)
        return Histogram(tuple((le, n - earlier.get(le, 0.0)) for le, n in self.buckets),
                         self.count - before.count, self.total - before.total)

    def plus(self, other: Histogram) -> Histogram:
        if not self.buckets:
            return other
        if not other.buckets:
            return self
        theirs = dict(other.buckets)
        if set(theirs) != {le for le, _ in self.buckets}:
            raise ValueError("cannot add histograms with different buckets")
        return Histogram(tuple((le, n + theirs[le]) for le, n in self.buckets),
                         self.count + other.count, self.total + other.total)

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def quantile(self, q: float, floor: float = 0.0) -> float | None:
        """Prometheus's `histogram_quantile`: linear inside the bucket that holds rank q.

        `floor` is the lower edge of the first bucket (the smallest value the quantity can
        take: 0 for latencies, 1 for the N+V ratio, which is never below 1 for an answer
        that has tokens). A rank in the `+Inf` bucket answers the largest finite bound.
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile {q} is not in [0, 1]")
        if not self.count:
            return None
        rank = q * self.count
        lower, below = floor, 0.0
        for le, cumulative in self.buckets:
            if cumulative >= rank and cumulative > below:
                if math.isinf(le):
                    return lower
                return lower + (le - lower) * (rank - below) / (cumulative - below)
            lower, below = le, cumulative
        return lower


@dataclass(frozen=True)
class StrategyFigures:
    """What one gateway (or several, added) counted for one strategy."""

    outcomes: dict[str, float] = field(default_factory=dict)
    overhead: Histogram = Histogram()
    latency: Histogram = Histogram()
    seconds: Histogram = Histogram()
    """The engine-seconds ratio (observed only for requests whose every answer had them)."""

    @property
    def ok(self) -> float:
        return self.outcomes.get("ok", 0.0)

    @property
    def failed(self) -> float:
        return sum(n for outcome, n in self.outcomes.items() if outcome != "ok")

    def minus(self, before: StrategyFigures) -> StrategyFigures:
        outcomes = {k: v - before.outcomes.get(k, 0.0) for k, v in self.outcomes.items()}
        return StrategyFigures(outcomes, self.overhead.minus(before.overhead),
                               self.latency.minus(before.latency),
                               self.seconds.minus(before.seconds))

    def plus(self, other: StrategyFigures) -> StrategyFigures:
        outcomes = dict(self.outcomes)
        for k, v in other.outcomes.items():
            outcomes[k] = outcomes.get(k, 0.0) + v
        return StrategyFigures(outcomes, self.overhead.plus(other.overhead),
                               self.latency.plus(other.latency),
                               self.seconds.plus(other.seconds))

    def as_json(self) -> dict[str, Any]:
        """The raw numbers, as the /metrics endpoints exposed them (differences of)."""
        return {"requests_ok": self.ok, "requests_failed": self.failed,
                "outcomes": dict(sorted(self.outcomes.items())),
                "overhead_count": self.overhead.count, "overhead_sum": self.overhead.total,
                "seconds_ratio_count": self.seconds.count,
                "seconds_ratio_sum": self.seconds.total,
                "latency_count": self.latency.count, "latency_sum_s": self.latency.total}


Snapshot = dict[str, StrategyFigures]


def parse_organic(text: str) -> Snapshot:
    """Per strategy: request outcomes, the N+V ratio histograms (tokens, engine seconds)
    and the latency histogram."""
    outcomes: dict[str, dict[str, float]] = {}
    hists: dict[tuple[str, str], dict[str, Any]] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in (OVERHEAD, SECONDS, LATENCY, REQUESTS):
            continue
        for sample in family.samples:
            strategy = sample.labels.get("strategy")
            if strategy is None:
                continue
            if family.name == REQUESTS:
                if sample.name == f"{REQUESTS}_total":
                    per = outcomes.setdefault(strategy, {})
                    per[sample.labels["outcome"]] = float(sample.value)
                continue
            parts = hists.setdefault((family.name, strategy), {"buckets": []})
            if sample.name.endswith("_bucket"):
                parts["buckets"].append((float(sample.labels["le"]), float(sample.value)))
            elif sample.name.endswith("_count"):
                parts["count"] = float(sample.value)
            elif sample.name.endswith("_sum"):
                parts["sum"] = float(sample.value)
    strategies = set(outcomes) | {s for _, s in hists}

    def histogram(name: str, strategy: str) -> Histogram:
        parts = hists.get((name, strategy))
        if parts is None:
            return Histogram()
        return Histogram(tuple(sorted(parts["buckets"])), parts.get("count", 0.0),
                         parts.get("sum", 0.0))

    return {s: StrategyFigures(outcomes.get(s, {}), histogram(OVERHEAD, s),
                               histogram(LATENCY, s), histogram(SECONDS, s))
            for s in strategies}


def difference(after: Snapshot, before: Snapshot) -> Snapshot:
    """What happened between two snapshots of one gateway."""
    return {s: figures.minus(before.get(s, StrategyFigures())) for s, figures in after.items()}


def total(snapshots: list[Snapshot]) -> Snapshot:
    """Several gateways' figures added per strategy."""
    out: Snapshot = {}
    for snapshot in snapshots:
        for strategy, figures in snapshot.items():
            out[strategy] = out.get(strategy, StrategyFigures()).plus(figures)
    return out
