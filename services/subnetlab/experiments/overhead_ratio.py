"""Claim 1's arithmetic: what a delivered organic token cost, and how late it came.

Pure functions over what one overhead point measured, so the definitions are unit-tested
apart from the processes. Two ratios, both tokens per delivered organic token:

- organic ratio: over the organic answers delivered, (every asked miner's completion
  tokens + the validator's grading tokens) / delivered tokens, each answer's accounting
  as its gateway reported it (docs/overhead.md). A ratio of sums, not a mean of
  per-answer ratios: it is what the network spent per token its customers got.
- total ratio: (every miner's token counter difference + every validator's reference
  token counter difference, over the whole load window) / the same delivered tokens. The
  counters include the validators' synthetic queries, which the organic ratio leaves out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Delivered:
    """One organic answer as its gateway accounted it (the response's `subnetlab` block)."""

    miner_tokens: float
    grading_tokens: float
    delivered_tokens: float
    latency_s: float
    miner_seconds: float | None = None
    grading_seconds: float | None = None
    delivered_seconds: float | None = None

    @property
    def denominator(self) -> float:
        """The delivered tokens, at least 1 (the gateway's own floor: an empty answer)."""
        return max(1.0, self.delivered_tokens)


def delivered_tokens(answers: Sequence[Delivered]) -> float:
    return sum(a.denominator for a in answers)


def organic_ratio(answers: Sequence[Delivered]) -> float | None:
    """Miner and grading tokens of the organic path per delivered token; None: no answer."""
    if not answers:
        return None
    spent = sum(a.miner_tokens + a.grading_tokens for a in answers)
    return spent / delivered_tokens(answers)


def total_ratio(miner_tokens: float, reference_tokens: float,
                answers: Sequence[Delivered]) -> float | None:
    """Every token the miners and validators generated in the window (counter
    differences: organic and synthetic) per delivered organic token; None: no answer."""
    if not answers:
        return None
    if miner_tokens < 0 or reference_tokens < 0:
        raise ValueError("token counters only grow: a negative difference means a process "
                         "restarted during the window")
    return (miner_tokens + reference_tokens) / delivered_tokens(answers)


def synthetic_share(organic: float | None, total: float | None) -> float | None:
    """The part of all tokens spent that the organic path does not explain (validators'
    synthetic validation), from the two ratios (same denominator)."""
    if organic is None or total is None or total <= 0:
        return None
    return max(0.0, 1.0 - organic / total)


def seconds_ratio(answers: Sequence[Delivered]) -> float | None:
    """The organic ratio in engine seconds, over the answers whose every figure was the
    engine's own (docs/overhead.md, "In engine seconds"); None when there is none."""
    usable = [a for a in answers if a.miner_seconds is not None
              and a.delivered_seconds is not None and a.delivered_seconds > 0]
    if not usable:
        return None
    spent = sum((a.miner_seconds or 0.0) + (a.grading_seconds or 0.0) for a in usable)
    return spent / sum(a.delivered_seconds or 0.0 for a in usable)


def quantile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile, linear between order statistics (numpy's default); None if empty."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} is not in [0, 1]")
    if not values:
        return None
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def slowdown(organic_s: float | None, direct_s: float | None) -> float | None:
    """How many times the gateway's latency is calling one miner directly."""
    if organic_s is None or direct_s is None or direct_s <= 0:
        return None
    return organic_s / direct_s


def expected_organic_ratio(strategy: str, fan_out: int, spot_check_rate: float,
                           others: int) -> float:
    """The ratio with equal answers (docs/overhead.md's table): broadcast N + 1 (the
    reference grades every answer), best-of-n N, spot-check 1 + p (k + 1)."""
    if strategy == "broadcast":
        return fan_out + 1.0
    if strategy == "best-of-n":
        return float(fan_out)
    if strategy == "spot-check":
        return 1.0 + spot_check_rate * (others + 1)
    raise ValueError(f"strategy {strategy!r}: not broadcast, best-of-n or spot-check")
