"""`subnetlab bench organic`: organic load per strategy, and the N+V figures it produced.

For each strategy in turn: scrape every gateway's /metrics, run locust headless against
all gateways with that strategy only, scrape again. Locust gives requests/s and latency
percentiles as customers saw them; the difference of the two scrapes gives what the
gateways counted for exactly that phase (requests, the N+V ratio histogram). Phases run one
after another, so a strategy's figures never mix with another's.

A testnet started here is the ad-hoc one `subnetlab up --miners M --validators V` builds,
with no background organic traffic of its own (a running one given by run dir may have
some: `subnetlab up --organic-rate 0` keeps the figures clean).
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from subnetlab.bench.organic_load import LoadConfig, answer_problem, next_request
from subnetlab.bench.organic_locust import LocustStats, locust_command, run_locust
from subnetlab.bench.organic_metrics import (
    Snapshot,
    StrategyFigures,
    difference,
    parse_organic,
    total,
)
from subnetlab.bench.organic_run import Gateway, RunInfo, read_run_info
from subnetlab.local.testnet import Testnet
from subnetlab.specs import Network

Progress = Callable[[str, float], None]  # (what is happening, fraction of the run done)
RATIO_FLOOR = 1.0  # the N+V ratio of an answer is never below 1 (docs/overhead.md)


class OrganicBenchError(RuntimeError):
    """The benchmark could not run (a gateway is down, the testnet never answered)."""


@dataclass(frozen=True)
class Phase:
    """One strategy's load: what locust measured and what the gateways counted."""

    strategy: str
    locust: LocustStats
    gateways: StrategyFigures

    @property
    def overhead_mean(self) -> float | None:
        return self.gateways.overhead.mean

    @property
    def overhead_p50(self) -> float | None:
        return self.gateways.overhead.quantile(0.5, floor=RATIO_FLOOR)

    def as_json(self) -> dict[str, Any]:
        def rounded(x: float | None) -> float | None:
            return None if x is None else round(x, 4)

        seconds = self.gateways.seconds
        return {**self.locust.as_json(),
                "overhead_ratio": {"mean": rounded(self.overhead_mean),
                                   "p50": rounded(self.overhead_p50)},
                "overhead_seconds_ratio": {
                    "mean": rounded(seconds.mean),
                    "p50": rounded(seconds.quantile(0.5, floor=RATIO_FLOOR)),
                    "requests": seconds.count},
                "metrics": self.gateways.as_json()}


@dataclass
class Warmup:
    """The requests sent until every gateway answered (they are in the metrics too)."""

    strategy: str
    ok: int = 0
    refused: int = 0
    overhead_ratios: list[float] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "ok": self.ok, "refused": self.refused,
                "overhead_ratios": self.overhead_ratios}


@dataclass(frozen=True)
class OrganicResult:
    gateways: tuple[Gateway, ...]
    started_here: bool
    users: int
    duration_s: float
    stream_fraction: float
    warmup: Warmup
    phases: tuple[Phase, ...]
    run: RunInfo | None = None
    """The testnet measured (its seed and what was simulated), when known."""

    def as_json(self) -> dict[str, Any]:
        run = self.run
        return {
            "testnet": {"started_here": self.started_here,
                        "gateways": [{"neuron": g.neuron, "netuid": g.netuid, "url": g.url,
                                      "fan_out": g.fan_out} for g in self.gateways],
                        "seed": run.seed if run else None,
                        "simulated": list(run.simulated) if run else [],
                        "real": list(run.real) if run else []},
            "users": self.users, "duration_s": self.duration_s,
            "stream_fraction": self.stream_fraction, "warmup": self.warmup.as_json(),
            "strategies": {p.strategy: p.as_json() for p in self.phases},
        }


def scrape(client: httpx.Client, gateways: tuple[Gateway, ...]) -> list[Snapshot]:
    """Every gateway's organic figures now."""
    snapshots = []
    for gateway in gateways:
        try:
            response = client.get(f"{gateway.url}/metrics")
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise OrganicBenchError(f"gateway {gateway.neuron} at {gateway.url}: /metrics "
                                    f"unreachable ({exc}); is the testnet still running?"
                                    ) from None
        snapshots.append(parse_organic(response.text))
    return snapshots


def warm_up(client: httpx.Client, info: RunInfo, strategy: str, timeout_s: float) -> Warmup:
    """Ask each gateway until it answers: validators need their permits and a synced
    metagraph before miners accept them, which takes an epoch or two on a fresh testnet."""
    record = Warmup(strategy)
    for index, gateway in enumerate(info.gateways):
        config = LoadConfig((gateway.url,), info.api_key, (strategy,))
        rng_seed = f"warmup:{index}"
        deadline = time.monotonic() + timeout_s
        while True:
            request = next_request(config, random.Random(f"{rng_seed}:{record.refused}"))
            try:
                response = client.post(request.url, json=request.body, headers=request.headers)
                payload = response.json() if response.status_code == 200 else None
            except (httpx.HTTPError, ValueError):
                payload = None
            if payload is not None and answer_problem(payload, strategy) is None:
                record.ok += 1
                record.overhead_ratios.append(float(payload["subnetlab"]["overhead_ratio"]))
                break
            record.refused += 1
            if time.monotonic() > deadline:
                raise OrganicBenchError(f"gateway {gateway.neuron} at {gateway.url} gave no "
                                        f"good answer within {timeout_s:.0f}s")
            time.sleep(0.5)
    return record


def run_organic_bench(
    info: RunInfo, strategies: tuple[str, ...], duration_s: float, users: int,
    stream_fraction: float, locustfile: Path, progress: Progress, started_here: bool = False,
    warmup_timeout_s: float = 180.0, seed: int = 7,
) -> OrganicResult:
    """Warm up, then one locust phase per strategy with a /metrics scrape either side."""
    phases = []
    with httpx.Client(timeout=30) as client, tempfile.TemporaryDirectory(
            prefix="subnetlab-organic-") as tmp:
        progress("waiting for every gateway to answer", 0.0)
        warmup = warm_up(client, info, strategies[0], warmup_timeout_s)
        for i, strategy in enumerate(strategies):
            progress(f"{strategy}: {users} users for {duration_s:.0f}s", i / len(strategies))
            before = scrape(client, info.gateways)
            prefix = Path(tmp) / strategy
            stats = run_locust(
                locust_command(locustfile, info.gateway_urls, info.api_key, strategy, users,
                               duration_s, stream_fraction, seed, prefix),
                prefix, timeout_s=duration_s + 180)
            after = scrape(client, info.gateways)
            counted = total([difference(a, b) for a, b in zip(after, before, strict=True)])
            phases.append(Phase(strategy, stats, counted.get(strategy, StrategyFigures())))
        progress("done", 1.0)
    return OrganicResult(info.gateways, started_here, users, duration_s, stream_fraction,
                         warmup, tuple(phases), info)


@contextmanager
def started_testnet(network: Network, say: Callable[[str], None]) -> Iterator[RunInfo]:
    """A fresh testnet (fast blocks, embedded Redis, no organic traffic of its own) in a
    temporary run dir, stopped on the way out."""
    with tempfile.TemporaryDirectory(prefix="subnetlab-organic-net-") as tmp:
        testnet = Testnet(network, Path(tmp), block_time=0.25, organic_rate=0.0)
        try:
            testnet.start(say)
            yield read_run_info(tmp)
        finally:
            testnet.stop()
