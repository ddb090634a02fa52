"""What `subnetlab up` shows: a line per finished setup step, then the live view.

Why lines and not only a spinner: a spinner (`console.status`) vanishes when the step ends
and prints nothing at all off a terminal, so a `--detach` log or a CI run would show no
progress. Each finished step is printed as a line, on a terminal or not; on a terminal a
spinner also names the step under way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.live import Live
from rich.status import Status
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from subnetlab.local.testnet import Testnet


class Steps:
    """Setup progress: `step(text)` begins a step (ending the one before), `update(text)`
    tells how the current one is going (shown by the spinner only)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.current: str | None = None
        self.began = 0.0
        self.status: Status | None = console.status("starting") if console.is_terminal else None

    def __enter__(self) -> Steps:
        if self.status is not None:
            self.status.start()
        return self

    def step(self, text: str) -> None:
        self._end("[green]done[/]")
        self.current, self.began = text, time.monotonic()
        if self.status is not None:
            self.status.update(text)

    def update(self, text: str) -> None:
        if self.status is not None:
            self.status.update(text)

    def _end(self, outcome: str) -> None:
        if self.current is not None:
            self.console.print(f"{self.current}: {outcome} "
                               f"({time.monotonic() - self.began:.1f} s)", highlight=False)
        self.current = None

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self.status is not None:
            self.status.stop()
        self._end("[green]done[/]" if kind is None else "[red]failed[/]")


@dataclass(frozen=True)
class Column:
    """A column of the metagraph table; `drop` ranks what goes first at a narrow width
    (0: never dropped; the highest rank goes first)."""

    title: str
    justify: Literal["left", "right"]
    drop: int = 0


# trust and vtrust as `subnetlab metagraph` shows them: a miner's trust, a validator's
# validator trust (before, one "trust" column showed validator trust: 0 for every miner)
COLUMNS = (Column("uid", "right"), Column("neuron", "left"), Column("role", "left", 3),
           Column("behaviour", "left", 4), Column("stake", "right", 1),
           Column("incentive", "right"), Column("dividends", "right"), Column("trust", "right"),
           Column("vtrust", "right"), Column("emission", "right"),
           Column("restarts", "right", 2))
NAME = 1  # the neuron column: the one that shrinks, its names ending in "…"
NAME_MIN = 10  # cells the name column keeps before a droppable column goes


def metagraph_cells(row: dict[str, Any], label: str, role: str, behaviour: str,
                    restarts: Text) -> list[Text]:
    """One hotkey's cells, in `COLUMNS` order; numbers as `subnetlab metagraph` has them,
    stake and emission in tokens."""
    plain = [str(row.get("uid", "-")), label, role, behaviour,
             f"{row.get('stake', 0) / 1e9:.2f}", f"{row.get('incentive', 0):.4f}",
             f"{row.get('dividends', 0):.4f}", f"{row.get('trust', 0):.4f}",
             f"{row.get('validator_trust', 0):.4f}", f"{row.get('emission', 0) / 1e9:.4f}"]
    return [*(Text(cell) for cell in plain), restarts]


def fit(rows: list[list[Text]], width: int) -> tuple[list[int], int]:
    """Which columns (indices into `COLUMNS`) fit in `width` cells, and the name column's
    width.

    Why: rich squeezes a table that is too wide by shrinking every column, and wraps or
    cuts numbers into unreadable cells (at 80 columns, "0.0312" became "0.…"). Here the
    least useful columns go first, whole; numbers keep their full width (down to about 65
    columns, where nothing is left to drop); only the names shrink, ending in an ellipsis.
    """
    natural = [max([cell_len(column.title), *(cells[i].cell_len for cells in rows)])
               for i, column in enumerate(COLUMNS)]
    kept = list(range(len(COLUMNS)))

    def needed(columns: list[int]) -> int:  # borders: 3 cells per column and one more
        return (sum(natural[i] for i in columns if i != NAME)
                + min(natural[NAME], NAME_MIN) + 3 * len(columns) + 1)

    for rank in sorted({c.drop for c in COLUMNS if c.drop}, reverse=True):
        if needed(kept) <= width:
            break
        kept = [i for i in kept if COLUMNS[i].drop != rank]
    others = needed(kept) - min(natural[NAME], NAME_MIN)
    return kept, max(1, min(natural[NAME], width - others))


class MetagraphTable:
    """A subnet's metagraph table, laid out for the width it is drawn at (a terminal may
    be resized while the live view runs)."""

    def __init__(self, title: str, rows: list[list[Text]]) -> None:
        self.title, self.rows = title, rows

    def table(self, width: int) -> Table:
        kept, name_width = fit(self.rows, width)
        table = Table(title=self.title, title_justify="left")
        for i in kept:
            column = COLUMNS[i]
            table.add_column(column.title, justify=column.justify, no_wrap=True,
                             overflow="ellipsis", width=name_width if i == NAME else None)
        for cells in self.rows:
            table.add_row(*(cells[i] for i in kept))
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.table(options.max_width)


def render(testnet: Testnet, running_since: float) -> Group:
    """The live view: per subnet, block, epoch, metagraph, organic latency and N+V ratio;
    then the ledger's state when it does not answer, and neurons given up on.

    The events are not listed here: `LiveView` prints each as a line, once.
    """
    from subnetlab.local.testnet import quantiles

    parts: list[Any] = []
    elapsed = time.monotonic() - running_since
    for run in testnet.subnets:
        last: dict[str, Any] = run.history[-1] if run.history else {"block": 0, "neurons": []}
        by_hotkey = {n["hotkey"]: n for n in last["neurons"]}
        organic = testnet.organic.get(run.netuid)
        ratio = (sum(organic.ratios) / len(organic.ratios)) if organic and organic.ratios else None
        latency = quantiles(organic.latencies_ms if organic else [])
        rows: list[list[Text]] = []
        for neuron in run.neurons:
            child = neuron.child
            restarts = (Text("gave up", style="bold red") if child and child.given_up
                        else Text(str(child.restarts if child else 0)))
            for label, key in neuron.labelled_keys():  # a sybil: a line per hotkey
                rows.append(metagraph_cells(by_hotkey.get(key.ss58_address, {}), label,
                                            neuron.spec.spec.role, neuron.spec.spec.behaviour,
                                            restarts))
        parts.append(MetagraphTable(
            f"subnet {run.spec.metadata.name} (netuid {run.netuid}) · block {last['block']} "
            f"· epoch {max(0, run.last_epoch)} · {elapsed:.0f}s", rows))
        parts.append(Text(
            f"organic: {len(organic.latencies_ms) if organic else 0} requests, latency p50 "
            f"{latency['p50']} ms p99 {latency['p99']} ms · N+V ratio "
            f"{'-' if ratio is None else f'{ratio:.2f}'}"))
    if testnet.ledger_problem:
        parts.append(Text(f"ledger not answering: {testnet.ledger_problem}; retrying",
                          style="bold red"))
    given_up = [c.name for c in testnet.supervisor.children if c.given_up]
    if given_up:
        parts.append(Text(f"gave up restarting: {', '.join(given_up)}", style="bold red"))
    return Group(*parts)


class LiveView:
    """The live view, redrawn in place, and each new event as a line above it.

    Why each event only as a line: the events used to be printed as lines and listed at
    the foot of the view as well, so each showed twice (on a terminal, the line and the
    view's list under it; in a log, the line and the final view). A line stays in the
    scrollback and in a log; the view shows state only.
    """

    def __init__(self, console: Console, testnet: Testnet, running_since: float) -> None:
        self.testnet, self.running_since = testnet, running_since
        self.shown = len(testnet.events)  # setup's events were printed by then
        self.live = Live(render(testnet, running_since), console=console,
                         refresh_per_second=2, transient=False)

    def __enter__(self) -> LiveView:
        self.live.start(refresh=True)
        return self

    def refresh(self) -> None:
        """Print the events noted since the last call, then redraw the view."""
        for event in self.testnet.events[self.shown:]:
            self.live.console.print(Text(event, style="yellow"))
        self.shown = len(self.testnet.events)
        self.live.update(render(self.testnet, self.running_since))

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.live.stop()
