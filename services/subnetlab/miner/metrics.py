"""Prometheus metrics of a miner (prefix `subnetlab_miner_`), in a registry of its own.

Every metric, its labels and when it moves are listed in docs/metrics.md.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class MinerMetrics:
    """The miner's counters, one registry per miner (a test can run several in a process).

    `requests` is counted once per request, when its outcome is known (a stream's when it
    ends). Its `caller` label is the hotkey of a caller whose signature verified and who is
    registered on the subnet, else `unknown` (server.caller_label says why). Backend
    seconds and tokens are counted for answers delivered whole.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "subnetlab_miner_requests",
            "Requests by caller (a registered caller's hotkey, else unknown) and outcome.",
            ("caller", "outcome"), registry=r)
        self.backend_seconds = Histogram(
            "subnetlab_miner_backend_seconds",
            "Time the backend took to answer (answers delivered whole; a stream's until its "
            "last chunk).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r)
        self.tokens = Counter("subnetlab_miner_tokens_generated",
                              "Completion tokens of the answers delivered (their usage).",
                              registry=r)
        self.queue_depth = Gauge("subnetlab_miner_queue_depth",
                                 "Requests waiting for a slot (served by caller stake).",
                                 registry=r)
