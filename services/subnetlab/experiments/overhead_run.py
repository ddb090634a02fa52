"""One overhead point, run for real: a testnet of its own, organic load, counters read.

Each point starts what `subnetlab up` starts (`local.testnet.Testnet`: a ledger on its own
embedded Redis, M miners and V validators as processes, each validator serving its organic
gateway), with sim engines or one local CPU vLLM server shared by the miners, then:

1. warm-up: every gateway is asked until it answers (validators need a permit and a synced
   metagraph before miners accept them);
2. baseline: the same kind of prompts sent straight to one miner, signed by a validator's
   key as the gateway signs them, one after another: what one answer costs in latency
   without a subnet in between;
3. load: organic requests at the point's rate, evenly spaced and open-loop (a request does
   not wait for the previous answer), round robin over the gateways, every answer's N+V
   accounting kept; every miner's and validator's token counter is read just before the
   first request and after the last answer, so the validators' synthetic queries made
   meanwhile are in the difference.

Why not the locust machinery of `bench organic`: `experiments` may not import `bench`
(sibling layers), and one point needs a fixed, seeded schedule rather than users.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from subnetlab.engines import sum_metric
from subnetlab.experiments.overhead_ratio import Delivered
from subnetlab.local.testnet import API_KEY, NeuronRun, Testnet
from subnetlab.protocol.epistula import sign_request
from subnetlab.specs import Network, parse_documents
from subnetlab.tasks import KINDS, generate

STRATEGY_HEADER = "X-Subnetlab-Strategy"
SPOT_CHECK_OTHERS = 2  # the gateway's default: a re-check asks two other miners
MIN_MINERS = SPOT_CHECK_OTHERS + 1  # so that a re-check has its two others
BASELINE_CALLS = 12
TEMPO = 10  # blocks of 0.25 s: validators hold permits after the first 2.5 s epoch
MINER_TOKENS = "subnetlab_miner_tokens_generated_total"
REFERENCE_TOKENS = "subnetlab_validator_reference_tokens_total"

Say = Callable[[str], object]


class OverheadRunError(RuntimeError):
    """The point could not be measured (a gateway never answered, a process failed)."""


@dataclass(frozen=True)
class Setup:
    """What one point runs: the swept quantities and the seed of its prompts."""

    fan_out: int
    strategy: str
    spot_check_rate: float
    validators: int
    organic_rate: float
    duration_s: float
    engine: str
    seed: int

    @property
    def miners(self) -> int:
        """Enough miners for the fan-out, and for a spot-check's re-check."""
        return max(self.fan_out, MIN_MINERS)

    @property
    def requests(self) -> int:
        """Organic requests in the load window (at least one: a ratio needs an answer)."""
        return max(1, round(self.organic_rate * self.duration_s))

    @property
    def timeout_s(self) -> float:
        """A miner's answer on a CPU vLLM server shared by every miner can take seconds."""
        return 60.0 if self.engine == "vllm" else 10.0


@dataclass(frozen=True)
class Measured:
    """What a point measured, before any arithmetic."""

    answers: tuple[Delivered, ...]
    failures: int
    miner_tokens: float
    reference_tokens: float
    direct_latencies_s: tuple[float, ...]


def network(setup: Setup, vllm_model: str | None) -> Network:
    """The point's subnet: V validators (equal stake, the point's gateway settings) and
    M miners on sim engines or the given vLLM model."""
    timeout = setup.timeout_s
    gateway = {"strategy": setup.strategy, "fanOut": setup.fan_out,
               "spotCheckRate": setup.spot_check_rate, "spotCheckOthers": SPOT_CHECK_OTHERS}
    miner: dict[str, Any] = ({"backend": {"type": "vllm", "model": vllm_model, "gpus": 0}}
                             if vllm_model else {})
    docs: list[tuple[str, Any]] = [("overhead", {
        "kind": "Subnet", "metadata": {"name": "overhead"},
        "spec": {"hyperparameters": {"tempo": TEMPO, "weightsRateLimit": 5,
                                     "immunityPeriod": 1000, "maxRegistrationsPerBlock": 64,
                                     "targetRegistrationsPerInterval": 64}}})]
    docs += [("overhead", {"kind": "Neuron", "metadata": {"name": f"validator-{i}"},
                           "spec": {"subnet": "overhead", "role": "validator", "stake": 1000,
                                    "validator": {"timeoutSeconds": timeout,
                                                  "gateway": gateway}}})
             for i in range(setup.validators)]
    docs += [("overhead", {"kind": "Neuron", "metadata": {"name": f"miner-{i}"},
                           "spec": {"subnet": "overhead", "role": "miner",
                                    **({"miner": miner} if miner else {})}})
             for i in range(setup.miners)]
    return parse_documents(docs)


def prompts(seed: int, count: int) -> list[bytes]:
    """`count` chat bodies of verifiable prompts, the same for the same seed."""
    rng = random.Random(f"overhead:{seed}")
    return [json.dumps({"model": "subnet", "messages": [{"role": "user", "content": generate(
        rng.choice(KINDS), rng.randrange(2**31)).prompt}]}).encode() for _ in range(count)]


def run(setup: Setup, say: Say = lambda text: None) -> Measured:
    """Start the point's testnet, measure, stop it (whatever happens)."""
    vllm_model = _vllm_model(say) if setup.engine == "vllm" else None
    with tempfile.TemporaryDirectory(prefix="subnetlab-overhead-") as tmp:
        testnet = Testnet(network(setup, vllm_model), Path(tmp), block_time=0.25,
                          organic_rate=0.0)
        try:
            testnet.start(say)
            return _measure(testnet, setup, say)
        finally:
            testnet.stop()


def _vllm_model(say: Say) -> str:
    """The tiny model's served name, the cached CPU vLLM environment built if missing."""
    from subnetlab.local.tiny_model import ensure_model
    from subnetlab.local.vllm_env import cache_root, ensure_env

    say("preparing the CPU vLLM environment and the tiny model (cached)")
    return ensure_model(ensure_env(), cache_root()).served_name


def _measure(testnet: Testnet, setup: Setup, say: Say) -> Measured:
    neurons = [n for run in testnet.subnets for n in run.neurons]
    validators = [n for n in neurons if n.spec.spec.role == "validator"]
    miners = [n for n in neurons if n.spec.spec.role == "miner"]
    gateways = [f"{n.gateway_url}/v1/chat/completions" for n in validators if n.gateway_url]
    bodies = prompts(setup.seed, BASELINE_CALLS + setup.requests)
    limits = httpx.Limits(max_connections=128, max_keepalive_connections=64)
    with httpx.Client(timeout=setup.timeout_s + 30, limits=limits) as client:
        say("waiting for every gateway to answer")
        warm_up(client, gateways, setup.strategy, 300.0 if setup.engine == "vllm" else 120.0)
        say("baseline: one miner called directly")
        direct = direct_latencies(client, miners[0], validators[0], bodies[:BASELINE_CALLS])
        say(f"organic load: {setup.requests} requests at {setup.organic_rate:g}/s")
        before = counters(client, miners, validators)
        results = organic_load(client, gateways, setup.strategy, setup.organic_rate,
                               bodies[BASELINE_CALLS:])
        after = counters(client, miners, validators)
    answers = tuple(r for r in results if r is not None)
    return Measured(answers, len(results) - len(answers), after[0] - before[0],
                    after[1] - before[1], tuple(direct))


def _post_gateway(client: httpx.Client, url: str, body: bytes, strategy: str
                  ) -> httpx.Response:
    return client.post(url, content=body, headers={
        "Authorization": f"Bearer {API_KEY}", STRATEGY_HEADER: strategy,
        "Content-Type": "application/json"})


def warm_up(client: httpx.Client, gateways: list[str], strategy: str, timeout_s: float) -> None:
    """Ask each gateway until it delivers an answer (not counted: before the window)."""
    body = prompts(-1, 1)[0]
    for url in gateways:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if _post_gateway(client, url, body, strategy).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise OverheadRunError(f"gateway {url} gave no answer within "
                                       f"{timeout_s:.0f}s")
            time.sleep(0.5)


def direct_latencies(client: httpx.Client, miner: NeuronRun, caller: NeuronRun,
                     bodies: list[bytes]) -> list[float]:
    """Seconds per answer of one miner called directly, signed by `caller`, in turn."""
    assert miner.child is not None and miner.child.health_url is not None
    url = miner.child.health_url.replace("/healthz", "/v1/chat/completions")
    out = []
    for body in bodies:
        headers = {"Content-Type": "application/json",
                   **sign_request(caller.key, body, miner.key.ss58_address)}
        started = time.perf_counter()
        response = client.post(url, content=body, headers=headers)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise OverheadRunError(f"baseline: miner {miner.spec.metadata.name} answered "
                                   f"{response.status_code}: {response.text[:200]}")
        out.append(elapsed)
    return out


def counters(client: httpx.Client, miners: list[NeuronRun], validators: list[NeuronRun]
             ) -> tuple[float, float]:
    """(every miner's generated tokens, every validator's reference tokens) so far."""
    def scrape(neuron: NeuronRun, metric: str) -> float:
        assert neuron.child is not None and neuron.child.health_url is not None
        url = neuron.child.health_url.replace("/healthz", "/metrics")
        try:
            response = client.get(url)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise OverheadRunError(f"{neuron.spec.metadata.name}: /metrics unreachable "
                                   f"({exc})") from None
        return sum_metric(response.text, metric)

    return (sum(scrape(m, MINER_TOKENS) for m in miners),
            sum(scrape(v, REFERENCE_TOKENS) for v in validators))


def organic_load(client: httpx.Client, gateways: list[str], strategy: str, rate: float,
                 bodies: list[bytes]) -> list[Delivered | None]:
    """Request k at k / rate seconds (open loop), gateways in turn; None: not delivered."""
    start = time.monotonic()

    def one(k: int) -> Delivered | None:
        delay = start + k / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        began = time.perf_counter()
        try:
            response = _post_gateway(client, gateways[k % len(gateways)], bodies[k], strategy)
        except httpx.HTTPError:
            return None
        latency = time.perf_counter() - began
        if response.status_code != 200:
            return None
        return accounted(response.json(), latency)

    with ThreadPoolExecutor(max_workers=min(64, len(bodies))) as pool:
        return list(pool.map(one, range(len(bodies))))


def accounted(payload: Any, latency_s: float) -> Delivered | None:
    """The gateway's N+V accounting of one answer (None: the answer has none)."""
    block = payload.get("subnetlab") if isinstance(payload, dict) else None
    if not isinstance(block, dict):
        return None

    def seconds(key: str) -> float | None:
        value = block.get(key)
        return float(value) if isinstance(value, int | float) else None

    try:
        return Delivered(float(block["miner_tokens"]), float(block["grading_tokens"]),
                         float(block["delivered_tokens"]), latency_s,
                         seconds("miner_engine_seconds"), seconds("grading_engine_seconds"),
                         seconds("delivered_engine_seconds"))
    except (KeyError, TypeError, ValueError):
        return None
