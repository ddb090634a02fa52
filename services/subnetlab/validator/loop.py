"""The validator's loop: sample miners, ask, score, keep moving scores, set weights, commit
the evidence.

Each round asks a sample of miners one task (verifiable, or an open prompt scored against
the validator's reference model) and updates the moving scores. Once per epoch (when the
subnet's epoch counter moves, and never faster than the weights rate limit) the moving
scores become weights according to the behaviour; they are set (or, when the subnet uses
commit-reveal, committed, then revealed in the epoch the chain expects: reveals are tried
every round, not only when weights are due, so the rate limit never delays one), the
evidence document is stored in Redis and its digest committed on chain.

A round that fails (ledger down, Redis down, a refused extrinsic) is logged as one line
and retried with backoff; nothing is lost: weights not set keep their records for the
next try, evidence not stored or not committed stays queued, reveals stay pending.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis

from subnetlab.chain.weights import weights_commit_hash
from subnetlab.keys.keypair import Keypair
from subnetlab.miner.backends import Backend, Completion
from subnetlab.neuron.chain_writer import ChainWriter, ExtrinsicError
from subnetlab.neuron.follower import ChainFollower
from subnetlab.protocol.client import signed_post
from subnetlab.protocol.metagraph import occupied
from subnetlab.validator.evidence import final_moving, load_evidence, round_scores, store_evidence
from subnetlab.validator.health import Health, LedgerUnavailableError, one_line
from subnetlab.validator.metrics import ValidatorMetrics
from subnetlab.validator.reference import is_simulated, simulated_oracle
from subnetlab.validator.scoring import Scorer, task_score
from subnetlab.validator.tasks import OPEN, TASK_KINDS, Task, generate, with_reference
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

MIN_INTERVAL_S = 0.05
"""The shortest round interval: below it a validator only burns its miners' rate limit."""
TRANSIENT_REFUSALS = frozenset({"not_ready", "rate_limited", "nonce", "insufficient_balance",
                                "None"})
"""Ledger refusals of `commit_evidence` that a later try can get past: the document stays
queued. Any other refusal would be refused again."""
EVIDENCE_VERSION = 3
"""3: `held_at_block` (the metagraph block `held_uids` were read at) added."""
MAX_PENDING_EVIDENCE = 64
"""Evidence documents kept for a retry while Redis or the ledger is down (oldest go)."""


@dataclass(frozen=True)
class MinerAnswer:
    """What one miner returned for one request, and what it cost.

    `refused`: the miner answered with an error status (it spent no engine time);
    `simulated`: the miner labelled its answer simulated.
    """

    uid: int
    hotkey: str
    text: str
    latency_s: float
    completion_tokens: int
    engine_seconds: float | None
    ok: bool
    error: str | None = None
    simulated: bool = False
    refused: bool = False


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
    task_weights: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TASK_KINDS, 1.0))
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour {self.behaviour!r} is not one of {', '.join(BEHAVIOURS)}")
        if self.sample_size < 1:
            raise ValueError(f"sample_size must be at least 1, got {self.sample_size}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s}")
        if not self.round_interval_s >= MIN_INTERVAL_S:
            raise ValueError(f"round_interval_s must be at least {MIN_INTERVAL_S}, got "
                             f"{self.round_interval_s}")
        unknown = set(self.task_weights) - set(TASK_KINDS)
        if unknown:
            raise ValueError(f"unknown task kinds {sorted(unknown)}; known: "
                             f"{', '.join(TASK_KINDS)}")
        negative = sorted(k for k, w in self.task_weights.items() if not w >= 0)
        if negative:
            raise ValueError(f"task weights must be >= 0: {', '.join(negative)}")
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
    """Query one miner with a signed request; any failure is an answer with ok=False.

    `timeout_s` is a deadline for the whole exchange: httpx's own timeout bounds each
    phase (connect, each read) separately, so a miner trickling bytes could otherwise hold
    a round far past it. A miner past the deadline answers `timeout`.
    """
    started = time.perf_counter()
    uid, hotkey = neuron["uid"], neuron["hotkey"]
    try:
        async with asyncio.timeout(timeout_s):
            response = await signed_post(http, f"{axon_url(neuron)}/v1/chat/completions",
                                         keypair, hotkey, body, timeout=timeout_s)
        latency = time.perf_counter() - started
        if response.status_code != 200:
            code = response.json().get("error", {}).get("code", str(response.status_code))
            return MinerAnswer(uid, hotkey, "", latency, 0, 0.0, False, code, refused=True)
        data = response.json()
        usage = data.get("usage") or {}
        extra = data.get("subnetlab") or {}
        seconds = extra.get("engine_seconds")
        return MinerAnswer(
            uid, hotkey, data["choices"][0]["message"]["content"] or "", latency,
            int(usage.get("completion_tokens", 0)),
            float(seconds) if isinstance(seconds, int | float) else None, True,
            simulated=bool(extra.get("simulated")) or data.get("system_fingerprint") == "simulated",
        )
    except TimeoutError:
        return MinerAnswer(uid, hotkey, "", time.perf_counter() - started, 0, None, False,
                           "timeout")
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        latency = time.perf_counter() - started
        return MinerAnswer(uid, hotkey, "", latency, 0, None, False, type(exc).__name__)


@dataclass
class _Snapshot:
    """What one weight setting rests on, taken in one step so nothing slips between."""

    records: list[dict[str, Any]]
    penalties: list[dict[str, Any]]
    moving_before: dict[int, float]
    held_uids: list[int] | None
    held_at_block: int | None
    weights: dict[int, int]


@dataclass
class Validator:
    """One validator process's state and loop."""

    config: ValidatorConfig
    reference: Backend = field(default_factory=simulated_oracle)
    metrics: ValidatorMetrics = field(default_factory=ValidatorMetrics)
    scorer: Scorer = task_score
    moving: dict[int, float] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    penalties: list[dict[str, Any]] = field(default_factory=list)
    pending_reveals: list[dict[str, Any]] = field(default_factory=list)
    pending_evidence: list[dict[str, Any]] = field(default_factory=list)
    health: Health = field(default_factory=Health)
    last_epoch_set: int = -1
    last_set_block: int = -(10**9)
    rounds: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.config.seed)
        self.follower = ChainFollower(self.config.ledger_url, self.config.netuid)
        self.writer = ChainWriter(self.config.ledger_url, self.config.keypair)
        self.redis = redis.Redis.from_url(self.config.redis_url, socket_timeout=5,
                                          socket_connect_timeout=5)
        self.http = httpx.AsyncClient(timeout=self.config.timeout_s)
        self.moving_before: dict[int, float] = {}
        self.resumed = False
        self.stage = "idle"

    @property
    def hotkey(self) -> str:
        return self.config.keypair.ss58_address

    @property
    def reference_simulated(self) -> bool:
        return is_simulated(self.reference)

    # --- one round -----------------------------------------------------------------------

    def new_task(self) -> Task:
        kinds = list(self.config.task_weights)
        kind = self.rng.choices(kinds, weights=[self.config.task_weights[k] for k in kinds])[0]
        return generate(kind, self.rng.randrange(2**31))

    async def query_round(self) -> list[MinerAnswer]:
        """Ask a sample of miners one task, score the answers, update moving scores."""
        metagraph = self.follower.metagraph or {}
        chosen = sample(miners_of(metagraph, self.hotkey), self.config.sample_size, self.rng)
        if not chosen:
            return []
        task = self.new_task()
        body = {"model": "subnet", "messages": [{"role": "user", "content": task.prompt}]}
        asks = [ask(self.http, self.config.keypair, n, body, self.config.timeout_s)
                for n in chosen]
        reference: dict[str, Any] = {}
        if task.kind == OPEN:
            self.stage = "reference"
            graded = asyncio.ensure_future(self.grade(body, "open_task"))
            answers = list(await asyncio.gather(*asks))
            completion = await graded
            self.stage = "query"
            task = with_reference(task, completion.text)
            reference = {"reference": completion.text,
                         "reference_simulated": bool(completion.simulated)}
        else:
            answers = list(await asyncio.gather(*asks))
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
                **reference,
            })
        self.rounds += 1
        self.records.extend(round_records)
        self.moving = update_moving_scores(self.moving, round_scores(round_records),
                                           self.config.alpha)
        for uid, value in self.moving.items():
            self.metrics.moving_score.labels(uid=str(uid)).set(value)
        return list(answers)

    async def grade(self, body: dict[str, Any], purpose: str) -> Completion:
        """The reference model's answer to `body`, its completion tokens counted under
        `purpose` (`open_task`, or an organic strategy) and the reference's health kept:
        the one place the loop and the gateway ask it. A failure is re-raised as it came,
        with the reference marked unreachable until it answers again."""
        try:
            completion = await self.reference.complete(body)
        except Exception:
            self.health.reference = "unreachable"
            raise
        self.health.reference = "ok"
        self.metrics.reference_tokens.labels(purpose=purpose).inc(completion.completion_tokens)
        return completion

    def penalise(self, uid: int, penalty: dict[str, Any]) -> None:
        """A spot-check caught miner `uid`: cut its moving score to 0 (its weights follow
        at the next setting) and keep the proof for the evidence, placed after the rounds
        completed so far, so the audit replays it where it happened."""
        self.penalties.append({**penalty, "uid": uid, "after_round": self.rounds})
        self.moving[uid] = 0.0
        self.metrics.moving_score.labels(uid=str(uid)).set(0.0)
        self.metrics.penalties.inc()
        log.info("penalised uid %d: caught by a spot-check", uid)

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

    def _take_snapshot(self, metagraph: dict[str, Any]) -> _Snapshot | None:
        """Weights and what they rest on, in one synchronous step (no await: a penalty or
        a round cannot land between the weights and their evidence)."""
        held: list[int] | None = None
        held_at: int | None = None
        if metagraph:
            self.moving = held_scores(self.moving, metagraph.get("neurons", []))
            held = sorted(int(n["uid"]) for n in occupied(metagraph.get("neurons", [])))
            held_at = int(metagraph["block"]) if isinstance(metagraph.get("block"), int) \
                else None
        weights = self.weights(metagraph)
        if not any(weights.values()):
            return None
        snapshot = _Snapshot(self.records, self.penalties, self.moving_before, held, held_at,
                             weights)
        self.records, self.penalties, self.moving_before = [], [], dict(self.moving)
        return snapshot

    def _restore(self, snapshot: _Snapshot) -> None:
        """Weights were not set: their records go back, to rest the next try on."""
        self.records = snapshot.records + self.records
        self.penalties = snapshot.penalties + self.penalties
        self.moving_before = snapshot.moving_before

    async def _ledger_json(self, path: str) -> dict[str, Any]:
        response = await self.writer.http.get(path)
        if response.status_code != 200:
            raise LedgerUnavailableError(f"GET {path}: HTTP {response.status_code} "
                                    f"{response.text[:200]}")
        body: dict[str, Any] = response.json()
        return body

    async def maybe_set_weights(self) -> bool:
        """Reveal what is due; once per epoch (within the rate limit) set or commit weights
        and queue their evidence."""
        self.stage = "subnet"
        subnet = await self._ledger_json(f"/v1/subnets/{self.config.netuid}")
        self.health.ledger = "ok"
        epoch = int(subnet["epochs_run"])
        hyper = subnet["hyperparameters"]
        if self.pending_reveals:
            self.stage = "reveal"
            await self._reveal_due(epoch)
        if epoch == self.last_epoch_set:
            return False
        if self.follower.latest_block - self.last_set_block < int(hyper["weights_rate_limit"]):
            return False
        snapshot = self._take_snapshot(self.follower.metagraph or {})
        if snapshot is None:
            return False
        self.stage = "weights"
        try:
            chain = await self._submit_weights(snapshot.weights, epoch, hyper)
        except ExtrinsicError as exc:
            self._restore(snapshot)
            log.warning("weights not set: epoch=%d code=%s message=%s", epoch, exc.code,
                        exc.message)
            self.metrics.weight_sets.labels(outcome=exc.code).inc()
            return False
        except BaseException:
            self._restore(snapshot)
            raise
        self.metrics.weight_sets.labels(outcome="ok").inc()
        self.last_epoch_set = epoch
        self.last_set_block = int(chain.get("block") or self.follower.latest_block)
        self._queue_evidence(self._document(epoch, snapshot, chain))
        return True

    async def _submit_weights(self, weights: dict[int, int], epoch: int,
                              hyper: dict[str, Any]) -> dict[str, Any]:
        """Set (or commit) the weights; return where the chain has them (for the evidence)."""
        uids = sorted(weights)
        values = [weights[u] for u in uids]
        netuid = self.config.netuid
        if not hyper.get("commit_reveal_weights_enabled"):
            receipt = await self.writer.submit("set_weights", {"netuid": netuid, "uids": uids,
                                                               "weights": values})
            return {"call": "set_weights", "block": receipt.get("block")}
        salt = [secrets.randbelow(2**16) for _ in range(8)]
        commit = weights_commit_hash(self.hotkey, netuid, uids, values, salt, 0)
        receipt = await self.writer.submit("commit_weights",
                                           {"netuid": netuid, "commit_hash": commit})
        # The earliest epoch the chain can want the reveal in: a commit included after the
        # epoch turned wants it one later, and `reveal_too_early` keeps it pending till then.
        self.pending_reveals.append({
            "epoch": epoch + int(hyper.get("commit_reveal_period", 1)), "uids": uids,
            "weights": values, "salt": salt, "commit_hash": commit})
        return {"call": "commit_weights", "block": receipt.get("block"), "commit_hash": commit,
                "salt": salt, "version_key": 0}

    async def _reveal_due(self, epoch: int) -> None:
        """Reveal every commit whose epoch has come; a reveal the chain finds too late is
        counted and logged as missed (never dropped silently), one too early kept."""
        for reveal in list(self.pending_reveals):
            if epoch < reveal["epoch"]:
                continue
            try:
                await self.writer.submit("reveal_weights", {
                    "netuid": self.config.netuid, "uids": reveal["uids"],
                    "weights": reveal["weights"], "salt": reveal["salt"], "version_key": 0})
            except ExtrinsicError as exc:
                if exc.code == "reveal_too_early":
                    continue
                self.pending_reveals.remove(reveal)
                outcome = "missed" if exc.code == "reveal_too_late" else exc.code
                if outcome == "missed":
                    self.health.missed_reveals += 1
                self.metrics.reveals.labels(outcome=outcome).inc()
                log.warning("reveal not made: outcome=%s commit=%s epoch=%d message=%s",
                            outcome, reveal["commit_hash"], epoch, exc.message)
                continue
            self.pending_reveals.remove(reveal)
            self.metrics.reveals.labels(outcome="ok").inc()

    def _document(self, epoch: int, snapshot: _Snapshot, chain: dict[str, Any]
                  ) -> dict[str, Any]:
        return {
            "version": EVIDENCE_VERSION, "validator": self.hotkey, "netuid": self.config.netuid,
            "epoch": epoch, "behaviour": self.config.behaviour,
            "timeout_s": self.config.timeout_s, "alpha": self.config.alpha,
            "reference": {"backend": self.reference.name,
                          "simulated": self.reference_simulated},
            "records": snapshot.records, "penalties": snapshot.penalties,
            "moving_before": {str(k): v for k, v in snapshot.moving_before.items()},
            "held_uids": snapshot.held_uids, "held_at_block": snapshot.held_at_block,
            "weights": {str(k): v for k, v in snapshot.weights.items()},
            "chain": chain,
        }

    def _queue_evidence(self, document: dict[str, Any]) -> None:
        self.pending_evidence.append(document)
        if len(self.pending_evidence) > MAX_PENDING_EVIDENCE:
            dropped = self.pending_evidence.pop(0)
            log.warning("evidence dropped: epoch=%d (queue full while Redis or the ledger "
                        "is down)", dropped["epoch"])

    async def flush_evidence(self) -> None:
        """Store each queued document in Redis and commit its digest, oldest first.

        What fails for a passing reason (Redis or the ledger down, the ledger not ready or
        rate limiting) stays queued for the next round. A refusal that retrying cannot
        change (the validator deregistered, say) drops the document with a warning. A
        `duplicate_evidence` refusal is success only when the digest on chain is this one
        (an earlier commit whose answer was lost); another digest there means these weights
        have no evidence on chain, which is logged as a warning, never passed over.
        """
        while self.pending_evidence:
            document = self.pending_evidence[0]
            self.stage = "store_evidence"
            digest = await asyncio.to_thread(store_evidence, self.redis, document)
            self.health.redis = "ok"
            self.stage = "commit_evidence"
            try:
                await self.writer.submit("commit_evidence", {
                    "netuid": self.config.netuid, "epoch": document["epoch"],
                    "digest": digest})
            except ExtrinsicError as exc:
                if exc.code in TRANSIENT_REFUSALS:
                    log.info("evidence commit deferred: epoch=%d code=%s", document["epoch"],
                             exc.code)
                    return
                if exc.code == "duplicate_evidence":
                    await self._check_committed(int(document["epoch"]), digest)
                else:
                    log.warning("evidence dropped, refused: epoch=%d digest=%s code=%s "
                                "message=%s", document["epoch"], digest, exc.code, exc.message)
            self.pending_evidence.pop(0)

    async def _committed_evidence(self, epoch: int | None = None) -> list[dict[str, Any]]:
        """This validator's evidence digests on chain (for one epoch, or all)."""
        query = f"?hotkey={self.hotkey}" + ("" if epoch is None else f"&epoch={epoch}")
        found = await self._ledger_json(f"/v1/evidence/{self.config.netuid}{query}")
        return list(found["digests"])

    async def _resume_reveals(self, committed: list[dict[str, Any]],
                              load: Callable[[str], Awaitable[dict[str, Any] | None]]) -> None:
        """Owed reveals back into `pending_reveals`, from the evidence that made them."""
        owed = {str(c["hash"]): c for c in (await self._ledger_json(
            f"/v1/subnets/{self.config.netuid}/commits?hotkey={self.hotkey}"))["commits"]}
        if not owed:
            return
        oldest = min(int(c["epoch"]) for c in owed.values())
        found: list[dict[str, Any]] = []  # added at the end: a failed read adds nothing
        for entry in committed:
            if int(entry["epoch"]) < oldest - 1:  # an epoch may turn between read and commit
                continue
            document = await load(str(entry["digest"]))
            chain = (document or {}).get("chain") or {}
            commit = owed.pop(str(chain.get("commit_hash")), None)
            if document is None or chain.get("call") != "commit_weights" or commit is None:
                continue
            weights = {int(k): int(v) for k, v in document["weights"].items()}
            uids = sorted(weights)
            found.append({
                "epoch": int(commit["reveal_epoch"]), "uids": uids,
                "weights": [weights[u] for u in uids], "salt": list(chain["salt"]),
                "commit_hash": commit["hash"]})
        self.pending_reveals.extend(found)
        for commit in owed.values():
            log.warning("resume: commit %s (epoch %s) cannot be revealed: no evidence in the "
                        "store holds its salt", commit["hash"], commit["epoch"])

    async def _check_committed(self, epoch: int, digest: str) -> None:
        on_chain = [str(entry["digest"]) for entry in await self._committed_evidence(epoch)]
        if digest not in on_chain:
            log.warning("evidence not committed: epoch=%d digest=%s, the chain already holds "
                        "%s for this epoch; the weights it describes have no evidence on "
                        "chain", epoch, digest, ",".join(on_chain) or "another digest")

    async def resume(self) -> None:
        """Pick up where this validator's last committed evidence left off.

        A restart must not set weights twice in one epoch (the chain keeps one evidence
        digest per epoch, so the second setting would have none), nor start its moving
        scores from nothing while its evidence continues from them, nor forget the reveals
        it owes under commit-reveal (a commit never revealed is weight never counted). So
        the latest epoch with evidence counts as set, the moving scores that document ends
        with (read from the evidence store) are the ones to go on from, and each commit the
        chain still holds for this hotkey is revealed in its epoch with the salt its
        evidence recorded. A document missing from the store is a warning: the scores
        start afresh, which the audit notes; a commit no document explains cannot be
        revealed and is logged.
        """
        self.stage = "resume"
        committed = sorted(await self._committed_evidence(), key=lambda e: int(e["epoch"]))
        loaded: dict[str, dict[str, Any] | None] = {}

        async def load(digest: str) -> dict[str, Any] | None:
            """Each document read from the store once, however many steps need it."""
            if digest not in loaded:
                loaded[digest] = await asyncio.to_thread(load_evidence, self.redis, digest)
                self.health.redis = "ok"
            return loaded[digest]

        if committed:
            self._resume_moving(committed[-1], await load(str(committed[-1]["digest"])))
        await self._resume_reveals(committed, load)
        self.resumed = True

    def _resume_moving(self, latest: dict[str, Any], document: dict[str, Any] | None) -> None:
        """The latest evidence's epoch counts as set; its moving scores are the ones to go
        on from (afresh, with a warning, when the store lost the document)."""
        self.last_epoch_set = max(self.last_epoch_set, int(latest["epoch"]))
        if document is None:
            log.warning("resume: evidence %s (epoch %s) is not in the evidence store; moving "
                        "scores start afresh", latest["digest"], latest["epoch"])
            return
        self.moving = final_moving(document)
        self.moving_before = dict(self.moving)
        block = (document.get("chain") or {}).get("block")
        if isinstance(block, int):
            self.last_set_block = block
        log.info("resumed from evidence: epoch=%s uids=%d", latest["epoch"], len(self.moving))

    # --- the loop ------------------------------------------------------------------------

    async def round_once(self) -> None:
        """One round: query (honest and cabal validators), weights, evidence; the first
        round that reaches the ledger and Redis resumes from the last evidence."""
        if not self.resumed:
            await self.resume()
        if self.config.behaviour in ("honest", "cabal"):
            self.stage = "query"
            await self.query_round()
        await self.maybe_set_weights()
        await self.flush_evidence()
        self.stage = "idle"

    async def run(self) -> None:
        """Rounds forever; a failed round is logged (one line) and retried with backoff."""
        follow = asyncio.create_task(self.follower.run())
        try:
            while True:
                started = time.monotonic()
                try:
                    await self.round_once()
                    self.health.succeeded()
                except Exception as exc:  # a round must never end the loop
                    dependency = self.health.failed(self.stage, exc)
                    self.metrics.round_failures.labels(stage=self.stage,
                                                       dependency=dependency).inc()
                    log.warning("round failed: stage=%s dependency=%s failures=%d "
                                "retry_in_s=%.2f error=%s", self.stage, dependency,
                                self.health.consecutive_failures,
                                self.health.backoff_s(self.config.round_interval_s),
                                one_line(exc))
                    self.stage = "idle"
                    await asyncio.sleep(self.health.backoff_s(self.config.round_interval_s))
                    continue
                await asyncio.sleep(max(0.0, self.config.round_interval_s
                                        - (time.monotonic() - started)))
        finally:
            follow.cancel()
            await self.http.aclose()
            await self.writer.aclose()

    def health_json(self) -> dict[str, Any]:
        return {**self.health.as_json(self.follower.connected.is_set()), "hotkey": self.hotkey,
                "netuid": self.config.netuid, "behaviour": self.config.behaviour,
                "last_epoch_set": self.last_epoch_set,
                "pending_reveals": len(self.pending_reveals),
                "pending_evidence": len(self.pending_evidence),
                "reference_model": {"backend": self.reference.name,
                                    "simulated": self.reference_simulated}}
