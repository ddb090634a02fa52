"""Prometheus metrics of a validator (prefix `subnetlab_validator_` and `subnetlab_organic_`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ValidatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.queries = Counter("subnetlab_validator_queries", "Miner queries by outcome.",
                               ("outcome",), registry=r)
        self.miner_latency = Histogram("subnetlab_validator_miner_latency_seconds",
                                       "Latency of successful miner answers.",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.scoring_seconds = Histogram("subnetlab_validator_scoring_seconds",
                                         "Time to score one answer.",
                                         buckets=(1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1), registry=r)
        self.moving_score = Gauge("subnetlab_validator_moving_score", "Moving score per miner.",
                                  ("uid",), registry=r)
        self.weight_sets = Counter("subnetlab_validator_weight_sets", "Weight settings by outcome.",
                                   ("outcome",), registry=r)
        self.organic_latency = Histogram("subnetlab_organic_latency_seconds",
                                         "Organic request latency by strategy.", ("strategy",),
                                         buckets=LATENCY_BUCKETS, registry=r)
        self.overhead = Histogram(
            "subnetlab_organic_overhead_ratio",
            "N+V compute ratio per organic request: compute of every miner asked plus the "
            "validator's grading, over the compute of the answer delivered.",
            ("strategy",), buckets=(1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64), registry=r)
        self.overhead_seconds = Histogram(
            "subnetlab_organic_overhead_seconds_ratio",
            "N+V engine-seconds ratio per organic request, observed only when every answer "
            "(and the grading) carried the engine's own seconds.",
            ("strategy",), buckets=(1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64), registry=r)
        self.reference_tokens = Counter(
            "subnetlab_validator_reference_tokens",
            "Completion tokens the validator's reference model generated, by purpose.",
            ("purpose",), registry=r)
        self.penalties = Counter("subnetlab_validator_penalties",
                                 "Miners caught by a spot-check and penalised.", registry=r)
        self.round_failures = Counter("subnetlab_validator_round_failures",
                                      "Rounds that failed, by stage and dependency.",
                                      ("stage", "dependency"), registry=r)
        self.reveals = Counter("subnetlab_validator_reveals",
                               "Weight reveals under commit-reveal, by outcome.", ("outcome",),
                               registry=r)
        self.organic_requests = Counter("subnetlab_organic_requests",
                                        "Organic requests by strategy and outcome.",
                                        ("strategy", "outcome"), registry=r)
