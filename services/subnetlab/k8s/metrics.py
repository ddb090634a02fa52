"""Prometheus metrics of the operator (prefix `subnetlab_operator_`).

One registry per operator (tests may run several in one process), served by
`prometheus_client`'s own HTTP server on `--metrics-port`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class OperatorMetrics:
    """The operator's series: reconciles, ledger health and objects by phase."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.reconciles = Counter(
            "subnetlab_operator_reconciles", "Reconcile passes, by kind and result "
            "(ok, retry, failed).", ("kind", "result"), registry=r)
        self.reconcile_seconds = Histogram(
            "subnetlab_operator_reconcile_seconds", "Time of one reconcile pass, by kind.",
            ("kind",), buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r)
        self.extrinsics = Counter(
            "subnetlab_operator_extrinsics", "Extrinsics the operator submitted, by call "
            "and result (included, refused, unreachable).", ("call", "result"), registry=r)
        self.ledger_up = Gauge(
            "subnetlab_operator_ledger_up", "1 when the last ledger call got an answer.",
            registry=r)
        self.phases = Gauge(
            "subnetlab_operator_resources", "Subnets and Neurons by phase.",
            ("kind", "phase"), registry=r)
        self._phase_of: dict[str, tuple[str, str]] = {}

    def set_phase(self, uid: str, kind: str, phase: str | None) -> None:
        """Record (or with None, forget) the phase of one object; the gauge follows."""
        old = self._phase_of.pop(uid, None)
        if old is not None:
            self.phases.labels(*old).dec()
        if phase is not None:
            self._phase_of[uid] = (kind, phase)
            self.phases.labels(kind, phase).inc()

    def serve(self, port: int) -> None:
        """Expose /metrics on `port` (0: not at all)."""
        if port:
            start_http_server(port, registry=self.registry)
