"""What every scripted experiment shares: the catalog entry's shape, share arithmetic,
stable rounding of row values."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from subnetlab.experiments.sweep import Param

Row = dict[str, Any]
DIGITS = 6  # rows are rounded so that results.json is readable and compares byte for byte

SCRIPTED_CHAIN = ("chain state machine (chain.state.apply, chain.blocks.advance_block, "
                  "chain.yuma epoch): real code, run in-process without a ledger")
SCRIPTED_NEURONS = "validators and miners: scripted (weights from modelled quality, no processes)"


@dataclass(frozen=True)
class Experiment:
    """One experiment of the catalog: the claim it tests, its sweep, and how to read it."""

    name: str
    claim: int
    claim_text: str
    measures: str
    params: tuple[Param, ...]
    run_point: Callable[[Row], Row]
    """One self-contained run: the point's parameters (and seed) in, one row out."""
    summary: Callable[[Sequence[Row]], list[str]]
    """Markdown lines summarising the rows (means and intervals across seeds)."""
    verdict: Callable[[Sequence[Row]], str]
    """One sentence, computed from the rows."""
    figure: Callable[[Sequence[Row], Path], None]
    simulated: tuple[str, ...]
    real: tuple[str, ...]
    default_seeds: int = 3
    quick_seeds: int = 2
    narrow: Callable[[list[Row]], list[Row]] = lambda points: points
    """The grid's points that differ in what they run (overhead: a spot-check rate means
    nothing to broadcast, so one point stands for all of them); default: every point."""


def share(part: float, whole: float) -> float:
    """part / whole, 0 when nothing was paid at all."""
    return part / whole if whole > 0 else 0.0


def rounded(value: float) -> float:
    return round(float(value), DIGITS)


def mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items) if items else 0.0


def closest(values: Iterable[float], target: float) -> float:
    """The value nearest `target` (the lower one on a tie)."""
    return min(sorted(set(values)), key=lambda v: abs(v - target))


def fmt(value: float) -> str:
    """A number as the summaries print it."""
    return f"{value:.3f}"
