"""The validator's loop: sample miners, ask, score, keep moving scores, set weights, commit
the evidence.

Once per epoch (when the subnet's epoch counter moves, and never faster than the weights
rate limit) the validator turns its moving scores into weights according to its behaviour,
sets them (or commits them, then reveals them `commit_reveal_period` epochs later, when
the subnet uses commit-reveal), stores the evidence document in Redis and commits its
digest on chain.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis

from subnetlab.chain.weights import weights_commit_hash
from subnetlab.keys.keypair import Keypair
from subnetlab.neuron.chain_writer import ChainWriter, ExtrinsicError
from subnetlab.neuron.follower import ChainFollower
from subnetlab.protocol.client import signed_post
from subnetlab.protocol.metagraph import occupied
from subnetlab.validator.evidence import round_scores, store_evidence
from subnetlab.validator.metrics import ValidatorMetrics
from subnetlab.validator.scoring import Scorer, verifiable_score
from subnetlab.validator.tasks import KINDS, Task, generate
from subnetlab.validator.weights import (
    BEHAVIOURS,
    DEFAULT_ALPHA,
    cabal_weights,
    copier_weights,
    held_scores,
    honest_weights,
    lazy_weights,
    update_moving_scores,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MinerAnswer:
    """What one miner returned for one task, and what it cost."""

    uid: int
    hotkey: str
    text: str
    latency_s: float
    completion_tokens: int
    engine_seconds: float | None
    ok: bool
    error: str | None = None


@dataclass
class ValidatorConfig:
    keypair: Keypair
    netuid: int
    ledger_url: str
    redis_url: str
    behaviour: str = "honest"
    sample_size: int = 4
    timeout_s: float = 5.0
    round_interval_s: float = 1.0
    alpha: float = DEFAULT_ALPHA
    cabal: frozenset[int] = frozenset()
    task_weights: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KINDS, 1.0))
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour {self.behaviour!r} is not one of {', '.join(BEHAVIOURS)}")
        if self.sample_size < 1:
            raise ValueError(f"sample_size must be at least 1, got {self.sample_size}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s}")
        unknown = set(self.task_weights) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown task kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
        if not any(w > 0 for w in self.task_weights.values()):
            raise ValueError("at least one task kind needs a positive weight")


def miners_of(metagraph: dict[str, Any], own_hotkey: str) -> list[dict[str, Any]]:
    """The neurons worth asking: a hotkey holds the uid, it serves an axon, and it is not
    this validator."""
    return [n for n in occupied(metagraph.get("neurons", []))
            if n.get("axon") and n["hotkey"] != own_hotkey]



def sample(pool: list[dict[str, Any]], k: int, rng: random.Random) -> list[dict[str, Any]]:
    """k miners at random, k clamped to the pool: never "sample larger than population"."""
    return rng.sample(pool, min(k, len(pool)))


def axon_url(neuron: dict[str, Any]) -> str:
    axon = neuron["axon"]
    if isinstance(axon, str):
        return axon.rstrip("/")
    return str(axon.get("url") or f"{axon.get('protocol', 'http')}://{axon['ip']}:{axon['port']}")


async def ask(
    http: httpx.AsyncClient, keypair: Keypair, neuron: dict[str, Any], body: dict[str, Any],
    timeout_s: float,
) -> MinerAnswer:
    """Query one miner with a signed request; any failure is an answer with ok=False."""
    started = time.perf_counter()
    try:
        response = await signed_post(http, f"{axon_url(neuron)}/v1/chat/completions", keypair,
                                     neuron["hotkey"], body, timeout=timeout_s)
        latency = time.perf_counter() - started
        if response.status_code != 200:
            code = response.json().get("error", {}).get("code", str(response.status_code))
            return MinerAnswer(neuron["uid"], neuron["hotkey"], "", latency, 0, None, False, code)
        data = response.json()
        usage = data.get("usage") or {}
        extra = data.get("subnetlab") or {}
        return MinerAnswer(
            neuron["uid"], neuron["hotkey"], data["choices"][0]["message"]["content"] or "",
            latency, int(usage.get("completion_tokens", 0)), extra.get("engine_seconds"), True,
        )
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        latency = time.perf_counter() - started
        return MinerAnswer(neuron["uid"], neuron["hotkey"], "", latency, 0, None, False,
                           type(exc).__name__)


@dataclass
class Validator:
    """One validator process's state and loop."""

    config: ValidatorConfig
    metrics: ValidatorMetrics = field(default_factory=ValidatorMetrics)
    scorer: Scorer = verifiable_score
    moving: dict[int, float] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    pending_reveals: list[dict[str, Any]] = field(default_factory=list)
    last_epoch_set: int = -1
    last_set_block: int = -(10**9)
    rounds: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.config.seed)
        self.follower = ChainFollower(self.config.ledger_url, self.config.netuid)
        self.writer = ChainWriter(self.config.ledger_url, self.config.keypair)
        self.redis = redis.Redis.from_url(self.config.redis_url)
        self.http = httpx.AsyncClient(timeout=self.config.timeout_s)
        self.moving_before: dict[int, float] = {}

    @property
    def hotkey(self) -> str:
        return self.config.keypair.ss58_address

    # --- one round -----------------------------------------------------------------------

    def new_task(self) -> Task:
        kinds = list(self.config.task_weights)
        kind = self.rng.choices(kinds, weights=[self.config.task_weights[k] for k in kinds])[0]
        return generate(kind, self.rng.randrange(2**31))

    async def query_round(self) -> list[MinerAnswer]:
        """Ask a sample of miners one task, score the answers, update moving scores."""
        metagraph = self.follower.metagraph or {}
        pool = miners_of(metagraph, self.hotkey)
        chosen = sample(pool, self.config.sample_size, self.rng)
        if not chosen:
            return []
        task = self.new_task()
        body = {"model": "subnet", "messages": [{"role": "user", "content": task.prompt}]}
        answers = await asyncio.gather(
            *(ask(self.http, self.config.keypair, n, body, self.config.timeout_s)
              for n in chosen)
        )
        round_records = []
        for answer in answers:
            outcome = "ok" if answer.ok else (answer.error or "error")
            self.metrics.queries.labels(outcome=outcome).inc()
            if answer.ok:
                self.metrics.miner_latency.observe(answer.latency_s)
            started = time.perf_counter()
            score = self.scorer(task, answer.text, answer.latency_s, self.config.timeout_s)
            self.metrics.scoring_seconds.observe(time.perf_counter() - started)
            round_records.append({
                "uid": answer.uid, "hotkey": answer.hotkey, "kind": task.kind,
                "seed": task.seed, "prompt": task.prompt, "response": answer.text,
                "latency_s": answer.latency_s, "score": score, "round": self.rounds,
            })
        self.rounds += 1
        self.records.extend(round_records)
        self.moving = update_moving_scores(self.moving, round_scores(round_records),
                                           self.config.alpha)
        for uid, value in self.moving.items():
            self.metrics.moving_score.labels(uid=str(uid)).set(value)
        return list(answers)

    # --- weights -------------------------------------------------------------------------

    def weights(self, metagraph: dict[str, Any]) -> dict[int, int]:
        """The weights this validator's behaviour sets now."""
        behaviour = self.config.behaviour
        if behaviour == "honest":
            return honest_weights(self.moving)
        if behaviour == "cabal":
            return cabal_weights(self.moving, set(self.config.cabal))
        if behaviour == "weight-copier":
            consensus = {n["uid"]: float(n["consensus"])
                         for n in occupied(metagraph.get("neurons", []))}
            return copier_weights(consensus) or honest_weights(self.moving)
        uids = [n["uid"] for n in miners_of(metagraph, self.hotkey)]
        return lazy_weights(uids, self.rng)

    async def maybe_set_weights(self) -> bool:
        """Once per epoch (within the rate limit): set or commit weights, commit evidence."""
        subnet = (await self.writer.http.get(f"/v1/subnets/{self.config.netuid}")).json()
        epoch = int(subnet.get("epochs_run", 0))
        hyper = subnet["hyperparameters"]
        block = self.follower.latest_block
        if epoch == self.last_epoch_set:
            return False
        if block - self.last_set_block < int(hyper["weights_rate_limit"]):
            return False
        metagraph = self.follower.metagraph or {}
        await self._reveal_due(epoch)
        if metagraph:
            self.moving = held_scores(self.moving, metagraph.get("neurons", []))
        weights = self.weights(metagraph)
        if not weights:
            return False
        uids, values = list(weights), list(weights.values())
        try:
            if hyper.get("commit_reveal_weights_enabled"):
                salt = [secrets.randbelow(2**16) for _ in range(8)]
                commit = weights_commit_hash(self.hotkey, self.config.netuid, uids, values, salt, 0)
                await self.writer.submit("commit_weights",
                                         {"netuid": self.config.netuid, "commit_hash": commit})
                self.pending_reveals.append({
                    "epoch": epoch + int(hyper.get("commit_reveal_period", 1)),
                    "uids": uids, "weights": values, "salt": salt})
            else:
                await self.writer.submit("set_weights", {"netuid": self.config.netuid,
                                                         "uids": uids, "weights": values})
        except ExtrinsicError as exc:
            log.warning("weights not set: %s", exc)
            self.metrics.weight_sets.labels(outcome=exc.code).inc()
            return False
        self.metrics.weight_sets.labels(outcome="ok").inc()
        self.last_epoch_set, self.last_set_block = epoch, block
        await self._commit_evidence(epoch, weights)
        return True

    async def _reveal_due(self, epoch: int) -> None:
        due = [r for r in self.pending_reveals if r["epoch"] <= epoch]
        self.pending_reveals = [r for r in self.pending_reveals if r["epoch"] > epoch]
        for reveal in due:
            if reveal["epoch"] < epoch:
                continue  # missed its epoch; the chain would refuse it as too late
            try:
                await self.writer.submit("reveal_weights", {
                    "netuid": self.config.netuid, "uids": reveal["uids"],
                    "weights": reveal["weights"], "salt": reveal["salt"], "version_key": 0})
            except ExtrinsicError as exc:
                log.warning("reveal failed: %s", exc)

    async def _commit_evidence(self, epoch: int, weights: dict[int, int]) -> None:
        document = {
            "validator": self.hotkey, "netuid": self.config.netuid, "epoch": epoch,
            "behaviour": self.config.behaviour, "timeout_s": self.config.timeout_s,
            "alpha": self.config.alpha, "records": self.records,
            "moving_before": {str(k): v for k, v in self.moving_before.items()},
            "weights": {str(k): v for k, v in weights.items()},
        }
        digest = await asyncio.to_thread(store_evidence, self.redis, document)
        try:
            await self.writer.submit("commit_evidence", {
                "netuid": self.config.netuid, "epoch": epoch, "digest": digest})
        except ExtrinsicError as exc:
            log.warning("evidence not committed: %s", exc)
        self.records = []
        self.moving_before = dict(self.moving)

    # --- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        follow = asyncio.create_task(self.follower.run())
        try:
            await asyncio.wait_for(self.follower.connected.wait(), timeout=60)
            while True:
                started = time.monotonic()
                if self.config.behaviour in ("honest", "cabal"):
                    await self.query_round()
                await self.maybe_set_weights()
                await asyncio.sleep(max(0.0, self.config.round_interval_s
                                        - (time.monotonic() - started)))
        finally:
            follow.cancel()
            await self.http.aclose()
            await self.writer.aclose()
