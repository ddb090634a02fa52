"""Prometheus metrics of a miner (prefix `subnetlab_miner_`), in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class MinerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("subnetlab_miner_requests", "Requests by caller and outcome.",
                                ("caller", "outcome"), registry=r)
        self.backend_seconds = Histogram(
            "subnetlab_miner_backend_seconds", "Time the backend took to answer.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r)
        self.tokens = Counter("subnetlab_miner_tokens_generated", "Completion tokens produced.",
                              registry=r)
        self.queue_depth = Gauge("subnetlab_miner_queue_depth",
                                 "Requests waiting for a slot (served by caller stake).",
                                 registry=r)
