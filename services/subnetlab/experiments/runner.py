"""Run a sweep's points: one after another, or in worker processes up to `jobs`.

Why processes: each point is a self-contained, CPU-bound run of the chain's state machine,
so threads would share one interpreter lock. Workers are spawned (not forked), so they
start clean whatever threads the parent runs (the progress display). Rows are handed on
in point order whatever order the workers finish in, which is what makes a parallel sweep
give the same output, byte for byte, as a serial one.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed

from subnetlab.experiments.catalog import run_one
from subnetlab.experiments.common import Row


class PointError(RuntimeError):
    """A point's run raised: the point and the reason, for one error line."""


def run_points(name: str, points: Sequence[Row], jobs: int,
               emit: Callable[[Row], None] = lambda row: None,
               done: Callable[[], None] = lambda: None) -> list[Row]:
    """Run every point of experiment `name`; `done` after each finishes, `emit` each row
    in point order as soon as it and all before it are in. Returns the rows in order."""
    rows: list[Row | None] = [None] * len(points)
    emitted = 0

    def finish(index: int, row: Row) -> None:
        nonlocal emitted
        rows[index] = row
        done()
        while emitted < len(rows) and (ready := rows[emitted]) is not None:
            emit(ready)
            emitted += 1

    if jobs <= 1 or len(points) <= 1:
        for index, point in enumerate(points):
            finish(index, _guarded(name, point))
        return [r for r in rows if r is not None]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(points)), mp_context=context) as pool:
        futures: dict[Future[Row], int] = {
            pool.submit(_guarded, name, point): i for i, point in enumerate(points)}
        for future in as_completed(futures):
            finish(futures[future], future.result())
    return [r for r in rows if r is not None]


def _guarded(name: str, point: Row) -> Row:
    try:
        return run_one(name, point)
    except Exception as exc:  # any failure of a point is reported with the point
        raise PointError(f"experiment {name}, point {point}: {type(exc).__name__}: {exc}"
                          ) from None
