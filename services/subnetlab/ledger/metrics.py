"""Prometheus metrics of the ledger (prefix `subnetlab_`).

Each LedgerMetrics owns its registry, so several ledgers (tests) never collide and
`/metrics` shows exactly one chain. Per-neuron series and concentration indices are
refreshed from the metagraph when `/metrics` is scraped (`observe_state`), not per block:
for a 264-uid subnet that is ~14 ms of the single writer's loop, which per 0.25 s block
delayed admissions and seals; a scraper sees the same values either way. The registry
also carries the standard `process_*` series (CPU seconds, memory) of the ledger process.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from subnetlab.chain.model import ChainState
from subnetlab.chain.state import metagraph
from subnetlab.chain.units import TOKEN
from subnetlab.protocol.metagraph import occupied
from subnetlab.telemetry.concentration import gini, nakamoto

NEURON_LABELS = ("netuid", "uid", "hotkey")


class LedgerMetrics:
    """The ledger's series, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # process_cpu_seconds_total and friends (from /proc/self on Linux): `bench ledger`
        # reads the ledger's CPU time per extrinsic from it
        ProcessCollector(registry=r)
        self.height = Gauge("subnetlab_block_height", "Newest sealed (stored) block number.",
                            registry=r)
        self.extrinsics = Counter(
            "subnetlab_extrinsics", "Extrinsics processed in blocks, by call and result.",
            ("call", "result"), registry=r,
        )
        self.refused = Counter(
            "subnetlab_extrinsics_refused", "Extrinsics refused at the door, by code.",
            ("code",), registry=r,
        )
        self.block_seconds = Histogram(
            "subnetlab_block_production_seconds",
            "Time to apply, seal and persist a block, then open the next one.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5), registry=r,
        )
        self.epoch_seconds = Histogram(
            "subnetlab_epoch_duration_seconds", "Time of one subnet epoch (Yuma Consensus).",
            ("netuid",), buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0), registry=r,
        )
        self.epochs = Gauge("subnetlab_epochs", "Epochs run per subnet.", ("netuid",),
                            registry=r)
        self.signature_worker_cpu = Gauge(
            "subnetlab_signature_worker_cpu_seconds",
            "CPU seconds of the worker process that checks batches' signatures, as of its "
            "latest answer (the ledger's own are process_cpu_seconds_total).", registry=r,
        )
        self.pending = Gauge(
            "subnetlab_pending_extrinsics", "Extrinsics queued for the next block.", registry=r
        )
        neuron = {
            "stake": "Stake on the neuron's hotkey, tokens.",
            "incentive": "Incentive share of the last epoch.",
            "dividends": "Dividend share of the last epoch.",
            "emission": "Emission of the last epoch, tokens.",
            "consensus": "Consensus weight of the last epoch.",
            "validator_trust": "Validator trust of the last epoch.",
        }
        self.neuron = {
            key: Gauge(f"subnetlab_neuron_{key}", text, NEURON_LABELS, registry=r)
            for key, text in neuron.items()
        }
        self.gini = Gauge("subnetlab_gini", "Gini coefficient per subnet of stake or emission.",
                          ("netuid", "of"), registry=r)
        self.nakamoto = Gauge(
            "subnetlab_nakamoto_coefficient",
            "Fewest neurons holding more than half of the stake or emission, per subnet.",
            ("netuid", "of"), registry=r,
        )
        self._neuron_keys: set[tuple[str, str, str]] = set()

    def extrinsic(self, call: str, result: str, count: int = 1) -> None:
        """`count` extrinsics of `call` ended with `result` in a block (counted per block,
        not one by one: a label lookup per extrinsic was a visible share of a block)."""
        self.extrinsics.labels(call=call, result=result).inc(count)

    def block(self, height: int, seconds: float) -> None:
        """A block was sealed: its production time and the new height."""
        self.block_seconds.observe(seconds)
        self.height.set(height)

    def observe_state(self, state: ChainState, height: int) -> None:
        """Refresh height, per-neuron series and concentration indices from the state.

        `height` is the sealed block; `state` may be one block ahead (the node's open
        block), so its own block number is not the chain's height.
        """
        self.height.set(height)
        seen: set[tuple[str, str, str]] = set()
        for netuid in sorted(state.subnets):
            neurons = occupied(metagraph(state, netuid))  # a vacant uid is nobody
            label = str(netuid)
            self.epochs.labels(netuid=label).set(state.subnets[netuid].epochs)
            stakes = [n["stake"] / TOKEN for n in neurons]
            emissions = [n["emission"] / TOKEN for n in neurons]
            for n, stake, emission in zip(neurons, stakes, emissions, strict=True):
                key = (label, str(n["uid"]), n["hotkey"])
                seen.add(key)
                values: dict[str, Any] = {**n, "stake": stake, "emission": emission}
                for name, gauge in self.neuron.items():
                    gauge.labels(*key).set(float(values[name]))
            for of, amounts in (("stake", stakes), ("emission", emissions)):
                self.gini.labels(netuid=label, of=of).set(gini(amounts))
                self.nakamoto.labels(netuid=label, of=of).set(nakamoto(amounts))
        for key in self._neuron_keys - seen:  # a replaced uid's old hotkey series goes away
            for gauge in self.neuron.values():
                gauge.remove(*key)
        self._neuron_keys = seen
