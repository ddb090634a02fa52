"""What `subnetlab up` shows: a line per finished setup step, then the live view.

Why lines and not only a spinner: a spinner (`console.status`) vanishes when the step ends
and prints nothing at all off a terminal, so a `--detach` log or a CI run would show no
progress. Each finished step is printed as a line, on a terminal or not; on a terminal a
spinner also names the step under way.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
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


COLUMNS = ("uid", "neuron", "role", "behaviour", "stake", "incentive", "dividends", "emission",
           "trust", "restarts")


def render(testnet: Testnet, running_since: float) -> Group:
    """The live view: per subnet, block, epoch, metagraph, organic latency and N+V ratio;
    then the ledger's state when it does not answer, and the latest events."""
    from subnetlab.local.testnet import quantiles

    parts: list[Any] = []
    elapsed = time.monotonic() - running_since
    for run in testnet.subnets:
        last: dict[str, Any] = run.history[-1] if run.history else {"block": 0, "neurons": []}
        rows = {n["hotkey"]: n for n in last["neurons"]}
        organic = testnet.organic.get(run.netuid)
        ratio = (sum(organic.ratios) / len(organic.ratios)) if organic and organic.ratios else None
        latency = quantiles(organic.latencies_ms if organic else [])
        table = Table(title=f"subnet {run.spec.metadata.name} (netuid {run.netuid}) · block "
                            f"{last['block']} · epoch {max(0, run.last_epoch)} · "
                            f"{elapsed:.0f}s", title_justify="left")
        for column in COLUMNS:
            table.add_column(column, justify="left" if column in ("neuron", "role", "behaviour")
                             else "right")
        for neuron in run.neurons:
            child = neuron.child
            restarts = ("[bold red]gave up[/]" if child and child.given_up
                        else str(child.restarts if child else 0))
            for label, key in neuron.labelled_keys():  # a sybil: a line per hotkey
                row = rows.get(key.ss58_address, {})
                table.add_row(
                    str(row.get("uid", "-")), label, neuron.spec.spec.role,
                    neuron.spec.spec.behaviour, f"{row.get('stake', 0) / 1e9:.2f}",
                    f"{row.get('incentive', 0):.4f}", f"{row.get('dividends', 0):.4f}",
                    f"{row.get('emission', 0) / 1e9:.4f}",
                    f"{row.get('validator_trust', 0):.3f}", restarts)
        parts.append(table)
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
    for event in testnet.events[-5:]:
        parts.append(Text(event, style="yellow"))
    return Group(*parts)
