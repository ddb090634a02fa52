"""The validator's run loop: the collaborators wired together, resumed, and driven round
after round.

Each round asks a sample of miners one task and updates the moving scores
(round.ScoringRound, into scoreboard.Scoreboard). Once per epoch (when the subnet's epoch
counter moves, and never faster than the weights rate limit) the moving scores become
weights according to the behaviour (weights.WeightPolicy); they are set (or, when the
subnet uses commit-reveal, committed, then revealed in the epoch the chain expects:
commit_reveal.CommitReveal), and the evidence document is stored in Redis and its digest
committed on chain (epoch.WeightSetter, evidence_queue.EvidenceQueue). The organic gateway
reaches the validator only through organic.OrganicService, which Validator implements.

A round that fails (ledger down, Redis down, a refused extrinsic) is logged as one line
and retried with backoff; nothing is lost: weights not set keep their records for the
next try, evidence not stored or not committed stays queued, reveals stay pending.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

import httpx
import redis

from subnetlab.engines import Backend, Completion
from subnetlab.neuron.chain_writer import ChainWriter
from subnetlab.neuron.follower import ChainFollower
from subnetlab.validator.commit_reveal import CommitReveal
from subnetlab.validator.config import ValidatorConfig
from subnetlab.validator.epoch import WeightSetter
from subnetlab.validator.evidence import load_evidence
from subnetlab.validator.evidence_queue import EvidenceQueue
from subnetlab.validator.health import Health, one_line
from subnetlab.validator.ledger_reads import LedgerReads
from subnetlab.validator.metrics import ValidatorMetrics
from subnetlab.validator.miners import MinerAnswer, ask, miners_of
from subnetlab.validator.reference import Grader, simulated_oracle
from subnetlab.validator.round import ScoringRound
from subnetlab.validator.scoreboard import Scoreboard
from subnetlab.validator.scoring import Scorer, task_score
from subnetlab.validator.stage import Stage, StageMarker
from subnetlab.validator.weights import WeightPolicy

log = logging.getLogger(__name__)


class Validator:
    """One validator process: its collaborators and the loop that drives them.

    `http` (the client miners are asked with) is for tests that route it in-process;
    by default the validator opens its own.
    """

    def __init__(self, config: ValidatorConfig, reference: Backend | None = None, *,
                 metrics: ValidatorMetrics | None = None, scorer: Scorer = task_score,
                 http: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self.reference = reference if reference is not None else simulated_oracle()
        self.metrics = metrics if metrics is not None else ValidatorMetrics()
        self.health = Health()
        self.rng = random.Random(config.seed)
        self.stage_marker = StageMarker()
        self.follower = ChainFollower(config.ledger_url, config.netuid)
        self.writer = ChainWriter(config.ledger_url, config.keypair)
        self.redis = redis.Redis.from_url(config.redis_url, socket_timeout=5,
                                          socket_connect_timeout=5)
        self.http = http if http is not None else httpx.AsyncClient(timeout=config.timeout_s)
        self.reads = LedgerReads(self.writer.client, config.netuid, config.hotkey)
        self.grader = Grader(self.reference, self.health, self.metrics)
        self.board = Scoreboard(self.metrics)
        tasks = random.Random(None if config.seed is None else f"{config.seed}:tasks")
        self.scoring = ScoringRound(config, self.follower, self.http, self.grader, self.board,
                                    self.metrics, scorer, self.rng, self.stage_marker, tasks)
        self.commit_reveal = CommitReveal(self.writer, self.reads, self.health, self.metrics)
        self.evidence = EvidenceQueue(self.redis, self.writer, self.reads, self.health,
                                      self.stage_marker)
        self.weight_setter = WeightSetter(
            config, self.follower, self.reads, self.board,
            WeightPolicy(config.behaviour, config.hotkey, self.rng, config.cabal),
            self.commit_reveal, self.evidence, self.grader, self.health, self.metrics,
            self.stage_marker)
        self.resumed = False

    @property
    def hotkey(self) -> str:
        return self.config.hotkey

    @property
    def stage(self) -> Stage:
        """Where the current round is (the `stage` of a failed round)."""
        return self.stage_marker.now

    # --- what the gateway uses (organic.OrganicService) ------------------------------------

    @property
    def reference_name(self) -> str:
        return self.grader.name

    @property
    def reference_simulated(self) -> bool:
        return self.grader.simulated

    def miners(self) -> list[dict[str, Any]]:
        return miners_of(self.follower.metagraph or {}, self.hotkey)

    def moving_score(self, uid: int) -> float:
        return self.board.score(uid)

    async def ask(self, miner: dict[str, Any], body: dict[str, Any]) -> MinerAnswer:
        return await ask(self.http, self.config.keypair, miner, body, self.config.timeout_s)

    async def grade(self, body: dict[str, Any], purpose: str) -> Completion:
        return await self.grader.complete(body, purpose)

    def penalise(self, uid: int, penalty: dict[str, Any]) -> None:
        self.board.penalise(uid, penalty)

    def health_json(self) -> dict[str, Any]:
        return {**self.health.as_json(self.follower.connected.is_set()), "hotkey": self.hotkey,
                "netuid": self.config.netuid, "behaviour": self.config.behaviour,
                "last_epoch_set": self.weight_setter.last_epoch_set,
                "pending_reveals": len(self.commit_reveal.pending),
                "pending_evidence": len(self.evidence.pending),
                "reference_model": {"backend": self.reference_name,
                                    "simulated": self.reference_simulated}}

    # --- resume and the loop ---------------------------------------------------------------

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
        self.stage_marker.now = Stage.RESUME
        committed = sorted(await self.reads.evidence(), key=lambda e: int(e["epoch"]))
        loaded: dict[str, dict[str, Any] | None] = {}

        async def load(digest: str) -> dict[str, Any] | None:
            """Each document read from the store once, however many steps need it."""
            if digest not in loaded:
                loaded[digest] = await asyncio.to_thread(load_evidence, self.redis, digest)
                self.health.redis = "ok"
            return loaded[digest]

        if committed:
            self.weight_setter.resume(committed[-1], await load(str(committed[-1]["digest"])))
        await self.commit_reveal.resume(committed, load)
        self.resumed = True

    async def round_once(self) -> None:
        """One round: query (honest and cabal validators), weights, evidence; the first
        round that reaches the ledger and Redis resumes from the last evidence."""
        if not self.resumed:
            await self.resume()
        if self.config.behaviour in ("honest", "cabal"):
            self.stage_marker.now = Stage.QUERY
            await self.scoring.run()
        await self.weight_setter.maybe_set()
        await self.evidence.flush()
        self.stage_marker.now = Stage.IDLE

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
                    stage = self.stage
                    dependency = self.health.failed(stage, exc)
                    self.metrics.round_failures.labels(stage=stage,
                                                       dependency=dependency).inc()
                    log.warning("round failed: stage=%s dependency=%s failures=%d "
                                "retry_in_s=%.2f error=%s", stage, dependency,
                                self.health.consecutive_failures,
                                self.health.backoff_s(self.config.round_interval_s),
                                one_line(exc))
                    self.stage_marker.now = Stage.IDLE
                    await asyncio.sleep(self.health.backoff_s(self.config.round_interval_s))
                    continue
                await asyncio.sleep(max(0.0, self.config.round_interval_s
                                        - (time.monotonic() - started)))
        finally:
            follow.cancel()
            await self.http.aclose()
            await self.writer.aclose()
