"""Once per epoch: moving scores become weights, go on chain, and their evidence is queued.

When the subnet's epoch counter moves (and never faster than the weights rate limit) the
scoreboard is snapshotted, the weight policy applied, the weights set or committed
(commit_reveal.CommitReveal), and the evidence document that explains them queued
(evidence_queue.EvidenceQueue). Weights not set put their records back for the next try.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from subnetlab.ledger.client import LedgerError
from subnetlab.neuron.follower import ChainFollower
from subnetlab.validator.commit_reveal import CommitReveal
from subnetlab.validator.config import ValidatorConfig
from subnetlab.validator.evidence_queue import EvidenceQueue
from subnetlab.validator.health import Health
from subnetlab.validator.ledger_reads import LedgerReads
from subnetlab.validator.metrics import ValidatorMetrics
from subnetlab.validator.reference import Grader
from subnetlab.validator.scoreboard import Policy, Scoreboard, Snapshot
from subnetlab.validator.stage import Stage, StageMarker

log = logging.getLogger(__name__)

EVIDENCE_VERSION = 4
"""3: `held_at_block` (the metagraph block `held_uids` were read at) added.
4: each answered record's `answer`: the miner's signature of it (protocol/answers.py)."""


@dataclass
class WeightSetter:
    """Decides when weights are due, sets them, and queues their evidence; remembers the
    last epoch and block it set in (a restart reads them back from the evidence)."""

    config: ValidatorConfig
    follower: ChainFollower
    reads: LedgerReads
    board: Scoreboard
    policy: Policy
    chain: CommitReveal
    evidence: EvidenceQueue
    grader: Grader
    health: Health
    metrics: ValidatorMetrics
    stage: StageMarker
    last_epoch_set: int = -1
    last_set_block: int = -(10**9)

    async def maybe_set(self) -> bool:
        """Reveal what is due; once per epoch (within the rate limit) set or commit weights
        and queue their evidence."""
        self.stage.now = Stage.SUBNET
        subnet = await self.reads.subnet()
        self.health.ledger = "ok"
        epoch = int(subnet["epochs_run"])
        hyper = subnet["hyperparameters"]
        if self.chain.owes_reveals:
            self.stage.now = Stage.REVEAL
            await self.chain.reveal_due(epoch)
        if epoch == self.last_epoch_set:
            return False
        if self.follower.latest_block - self.last_set_block < int(hyper["weights_rate_limit"]):
            return False
        snapshot = self.board.snapshot(self.follower.metagraph or {}, self.policy)
        if snapshot is None:
            return False
        self.stage.now = Stage.WEIGHTS
        try:
            chain = await self.chain.submit(snapshot.weights, epoch, hyper)
        except LedgerError as exc:
            self.board.restore(snapshot)
            log.warning("weights not set: epoch=%d code=%s message=%s", epoch, exc.code,
                        exc.message)
            self.metrics.weight_sets.labels(outcome=exc.code).inc()
            return False
        except BaseException:
            self.board.restore(snapshot)
            raise
        self.metrics.weight_sets.labels(outcome="ok").inc()
        self.last_epoch_set = epoch
        self.last_set_block = int(chain.get("block") or self.follower.latest_block)
        self.evidence.put(self.document(epoch, snapshot, chain))
        return True

    def document(self, epoch: int, snapshot: Snapshot, chain: dict[str, Any]
                 ) -> dict[str, Any]:
        """The evidence of one setting: enough for the audit to recompute the weights."""
        return {
            "version": EVIDENCE_VERSION, "validator": self.config.hotkey,
            "netuid": self.config.netuid, "epoch": epoch, "behaviour": self.config.behaviour,
            "timeout_s": self.config.timeout_s, "alpha": self.config.alpha,
            "reference": {"backend": self.grader.name, "simulated": self.grader.simulated},
            "records": snapshot.records, "penalties": snapshot.penalties,
            "moving_before": {str(k): v for k, v in snapshot.moving_before.items()},
            "held_uids": snapshot.held_uids, "held_at_block": snapshot.held_at_block,
            "weights": {str(k): v for k, v in snapshot.weights.items()},
            "chain": chain,
        }

    def resume(self, latest: dict[str, Any], document: dict[str, Any] | None) -> None:
        """The latest evidence's epoch counts as set; its moving scores are the ones to go
        on from (afresh, with a warning, when the store lost the document)."""
        self.last_epoch_set = max(self.last_epoch_set, int(latest["epoch"]))
        if document is None:
            log.warning("resume: evidence %s (epoch %s) is not in the evidence store; moving "
                        "scores start afresh", latest["digest"], latest["epoch"])
            return
        self.board.resume(document)
        block = (document.get("chain") or {}).get("block")
        if isinstance(block, int):
            self.last_set_block = block
        log.info("resumed from evidence: epoch=%s uids=%d", latest["epoch"],
                 len(self.board.moving))
