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


class InOrder:
    """Rows as they finish, handed on in point order: `emit` gets each row as soon as it
    and every row before it are in, whatever order the points finish in (worker
    processes, or Jobs on a cluster), which keeps a parallel sweep's output the same as a
    serial one's."""

    def __init__(self, count: int, emit: Callable[[Row], None],
                 done: Callable[[], None]) -> None:
        self.rows: list[Row | None] = [None] * count
        self.emit, self.done = emit, done
        self.emitted = 0

    def finish(self, index: int, row: Row) -> None:
        self.rows[index] = row
        self.done()
        while self.emitted < len(self.rows) and (ready := self.rows[self.emitted]) is not None:
            self.emit(ready)
            self.emitted += 1

    def ordered(self) -> list[Row]:
        return [r for r in self.rows if r is not None]


def run_points(name: str, points: Sequence[Row], jobs: int,
               emit: Callable[[Row], None] = lambda row: None,
               done: Callable[[], None] = lambda: None) -> list[Row]:
    """Run every point of experiment `name`; `done` after each finishes, `emit` each row
    in point order as soon as it and all before it are in. Returns the rows in order."""
    rows = InOrder(len(points), emit, done)
    if jobs <= 1 or len(points) <= 1:
        for index, point in enumerate(points):
            rows.finish(index, _guarded(name, point))
        return rows.ordered()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(points)), mp_context=context) as pool:
        futures: dict[Future[Row], int] = {
            pool.submit(_guarded, name, point): i for i, point in enumerate(points)}
        for future in as_completed(futures):
            rows.finish(futures[future], future.result())
    return rows.ordered()


def _guarded(name: str, point: Row) -> Row:
    try:
        return run_one(name, point)
    except Exception as exc:  # any failure of a point is reported with the point
        raise PointError(f"experiment {name}, point {point}: {type(exc).__name__}: {exc}"
                          ) from None
