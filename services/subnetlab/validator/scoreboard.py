"""What a validator knows of its miners between two weight settings: moving scores, the
round records and penalties they rest on, and the moving scores the last setting ended with.

One object, written by the scoring rounds (`add_round`) and the gateway's spot-checks
(`penalise`), read by the weight setting in one synchronous step (`snapshot`), so nothing
can land between the weights and the evidence that explains them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from subnetlab.protocol.metagraph import occupied
from subnetlab.validator.evidence import final_moving, round_scores
from subnetlab.validator.metrics import ValidatorMetrics
from subnetlab.validator.weights import held_scores, update_moving_scores

log = logging.getLogger(__name__)

Policy = Callable[[Mapping[int, float], dict[str, Any]], dict[int, int]]
"""Moving scores and the metagraph to weights (weights.WeightPolicy)."""


@dataclass
class Snapshot:
    """What one weight setting rests on, taken in one step so nothing slips between."""

    records: list[dict[str, Any]]
    penalties: list[dict[str, Any]]
    moving_before: dict[int, float]
    held_uids: list[int] | None
    held_at_block: int | None
    weights: dict[int, int]


@dataclass
class Scoreboard:
    """Moving scores and their evidence since the last weight setting."""

    metrics: ValidatorMetrics
    moving: dict[int, float] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    penalties: list[dict[str, Any]] = field(default_factory=list)
    moving_before: dict[int, float] = field(default_factory=dict)
    rounds: int = 0

    def add_round(self, round_records: list[dict[str, Any]], alpha: float) -> None:
        """One round's graded answers: kept for the evidence, folded into the moving
        scores (and their gauges)."""
        self.rounds += 1
        self.records.extend(round_records)
        self.moving = update_moving_scores(self.moving, round_scores(round_records), alpha)
        for uid, value in self.moving.items():
            self.metrics.moving_score.labels(uid=str(uid)).set(value)

    def penalise(self, uid: int, penalty: dict[str, Any]) -> None:
        """A spot-check caught miner `uid`: cut its moving score to 0 (its weights follow
        at the next setting) and keep the proof for the evidence, placed after the rounds
        completed so far, so the audit replays it where it happened."""
        self.penalties.append({**penalty, "uid": uid, "after_round": self.rounds})
        self.moving[uid] = 0.0
        self.metrics.moving_score.labels(uid=str(uid)).set(0.0)
        self.metrics.penalties.inc()
        log.info("penalised uid %d: caught by a spot-check", uid)

    def score(self, uid: int) -> float:
        """Miner `uid`'s moving score (0 for one never scored)."""
        return self.moving.get(uid, 0.0)

    def snapshot(self, metagraph: dict[str, Any], policy: Policy) -> Snapshot | None:
        """Weights and what they rest on, in one synchronous step (no await: a penalty or
        a round cannot land between the weights and their evidence); None when the
        weights would all be zero (nothing to set, nothing taken)."""
        held: list[int] | None = None
        held_at: int | None = None
        if metagraph:
            self.moving = held_scores(self.moving, metagraph.get("neurons", []))
            held = sorted(int(n["uid"]) for n in occupied(metagraph.get("neurons", [])))
            held_at = int(metagraph["block"]) if isinstance(metagraph.get("block"), int) \
                else None
        weights = policy(self.moving, metagraph)
        if not any(weights.values()):
            return None
        snapshot = Snapshot(self.records, self.penalties, self.moving_before, held, held_at,
                            weights)
        self.records, self.penalties, self.moving_before = [], [], dict(self.moving)
        return snapshot

    def restore(self, snapshot: Snapshot) -> None:
        """Weights were not set: their records go back, to rest the next try on."""
        self.records = snapshot.records + self.records
        self.penalties = snapshot.penalties + self.penalties
        self.moving_before = snapshot.moving_before

    def resume(self, document: Mapping[str, Any]) -> None:
        """Go on from the moving scores a restarted validator's last evidence ends with."""
        self.moving = final_moving(document)
        self.moving_before = dict(self.moving)
