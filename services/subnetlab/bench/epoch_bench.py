"""Time one Yuma epoch on a synthetic subnet of realistic shape.

Validators hold most of the stake and set dense weights over every uid; bonds come from
a warm-up epoch, so the timed epochs do the full bond work (not the empty first epoch).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

from subnetlab.chain.hyperparameters import Hyperparameters
from subnetlab.chain.yuma import EpochInputs, epoch, max_upscale_u16


@dataclass(frozen=True)
class EpochBenchResult:
    uids: int
    validators: int
    yuma3: bool
    liquid_alpha: bool
    repeats: int
    median_ms: float
    p90_ms: float

    def as_json(self) -> dict[str, object]:
        return {
            "uids": self.uids,
            "validators": self.validators,
            "median_ms": round(self.median_ms, 3),
            "p90_ms": round(self.p90_ms, 3),
            "repeats": self.repeats,
            "yuma3": self.yuma3,
            "liquid_alpha": self.liquid_alpha,
        }


def synthetic_inputs(uids: int, validators: int, seed: int = 0) -> EpochInputs:
    """A subnet whose first `validators` uids hold permits and weight every uid."""
    rng = np.random.default_rng(seed)
    stake = np.zeros(uids)
    stake[:validators] = rng.lognormal(mean=10.0, sigma=1.0, size=validators)
    stake[validators:] = rng.uniform(0.0, 1.0, size=uids - validators)
    weights = np.zeros((uids, uids), dtype=np.uint16)
    quality = rng.uniform(0.2, 1.0, size=uids)
    for row in range(validators):
        noisy = quality * rng.uniform(0.8, 1.2, size=uids)
        noisy[row] = 0.0
        weights[row] = max_upscale_u16(noisy)
    permit = np.zeros(uids, dtype=bool)
    permit[:validators] = True
    return EpochInputs(
        block=10_000,
        stake=stake,
        weights=weights,
        bonds=np.zeros((uids, uids), dtype=np.uint16),
        last_update=np.full(uids, 9_999, dtype=np.int64),
        block_at_registration=np.zeros(uids, dtype=np.int64),
        validator_permit=permit,
    )


def run_epoch_bench(
    uids: int, validators: int, yuma3: bool = True, liquid_alpha: bool = True, repeats: int = 15
) -> EpochBenchResult:
    """Median and p90 wall time of `repeats` epochs after one warm-up epoch."""
    hp = Hyperparameters(
        max_allowed_uids=uids, max_allowed_validators=validators, yuma3=yuma3,
        liquid_alpha=liquid_alpha,
    )
    inputs = synthetic_inputs(uids, validators)
    warm = epoch(inputs, hp)
    inputs = EpochInputs(
        block=inputs.block + hp.tempo,
        stake=inputs.stake,
        weights=inputs.weights,
        bonds=warm.bonds,
        last_update=inputs.last_update + hp.tempo,
        block_at_registration=inputs.block_at_registration,
        validator_permit=warm.validator_permit,
    )
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        epoch(inputs, hp)
        times.append((time.perf_counter() - start) * 1000.0)
    times.sort()
    return EpochBenchResult(
        uids=uids,
        validators=validators,
        yuma3=yuma3,
        liquid_alpha=liquid_alpha,
        repeats=repeats,
        median_ms=statistics.median(times),
        p90_ms=times[min(len(times) - 1, int(0.9 * len(times)))],
    )
