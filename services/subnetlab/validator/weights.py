"""From scores to weights: moving scores, and what each validator behaviour sets.

Pure functions of their inputs (plus an explicit RNG for the lazy behaviour), so the
audit can recompute the weights a validator set from its evidence alone.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from subnetlab.chain.yuma import max_upscale_u16
from subnetlab.protocol.metagraph import occupied
from subnetlab.specs import VALIDATOR_BEHAVIOURS
from subnetlab.validator.miners import miners_of

BEHAVIOURS = VALIDATOR_BEHAVIOURS
DEFAULT_ALPHA = 0.1


def update_moving_scores(
    previous: Mapping[int, float], scores: Mapping[int, float], alpha: float = DEFAULT_ALPHA
) -> dict[int, float]:
    """EMA per miner: s <- (1 - alpha) s + alpha * score; unqueried miners keep theirs.

    A miner never scored before starts from its first score, not from zero, so a new
    miner is judged on its work rather than on its absence.
    """
    moving = dict(previous)
    for uid, score in scores.items():
        moving[uid] = score if uid not in moving else (1 - alpha) * moving[uid] + alpha * score
    return moving


def held_scores(
    moving: Mapping[int, float], neurons: Iterable[Mapping[str, Any]]
) -> dict[int, float]:
    """Moving scores of the uids a hotkey still holds (`neurons`: metagraph rows).

    A uid that fell vacant (its hotkey deregistered) is forgotten, so no weight goes to
    it and whoever registers into it later starts from its own first score.
    """
    held = {int(row["uid"]) for row in occupied(neurons)}
    return {uid: score for uid, score in moving.items() if uid in held}


def honest_weights(moving: Mapping[int, float]) -> dict[int, int]:
    """Weights proportional to moving scores, max-upscaled to u16 as the chain stores them."""
    uids = sorted(moving)
    values = max_upscale_u16([max(0.0, moving[u]) for u in uids])
    return {u: int(v) for u, v in zip(uids, values, strict=True)}


def cabal_weights(moving: Mapping[int, float], cabal: set[int]) -> dict[int, int]:
    """All weight on the cabal's miners, whatever they scored (the attack being measured)."""
    members = sorted(u for u in moving if u in cabal) or sorted(cabal)
    return {u: 65535 for u in members}


def copier_weights(consensus: Mapping[int, float]) -> dict[int, int]:
    """The chain's last consensus as weights: earns like the majority without any work."""
    uids = sorted(u for u, c in consensus.items() if c > 0)
    values = max_upscale_u16([consensus[u] for u in uids])
    return {u: int(v) for u, v in zip(uids, values, strict=True) if v > 0}


def lazy_weights(miner_uids: list[int], rng: random.Random) -> dict[int, int]:
    """Random weights over the miners: no queries, no information."""
    values = max_upscale_u16([rng.random() for _ in miner_uids])
    return {u: int(v) for u, v in zip(sorted(miner_uids), values, strict=True)}


@dataclass(frozen=True)
class WeightPolicy:
    """A validator's `--behaviour` as one rule from moving scores (and the metagraph) to
    weights: the one place the behaviours are told apart, so the loop only asks "what now".

    `rng` is the validator's own (seeded) generator, shared with its rounds, so a seeded
    run draws the same numbers in the same order whoever draws them.
    """

    behaviour: str
    own_hotkey: str
    rng: random.Random
    cabal: frozenset[int] = frozenset()

    def __call__(self, moving: Mapping[int, float], metagraph: dict[str, Any]) -> dict[int, int]:
        """The weights this behaviour sets now."""
        if self.behaviour == "honest":
            return honest_weights(moving)
        if self.behaviour == "cabal":
            return cabal_weights(moving, set(self.cabal))
        if self.behaviour == "weight-copier":
            consensus = {n["uid"]: float(n["consensus"])
                         for n in occupied(metagraph.get("neurons", []))}
            return copier_weights(consensus) or honest_weights(moving)
        uids = [n["uid"] for n in miners_of(metagraph, self.own_hotkey)]
        return lazy_weights(uids, self.rng)
