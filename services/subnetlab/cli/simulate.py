"""`subnetlab simulate yuma`: run a Yuma case file through the chain's own epoch."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from subnetlab.cli.errors import OneLineTyper, fail
from subnetlab.sim.yuma_case import CaseError, load_case, parse_case, result_record, run_case

simulate_app = OneLineTyper(help="Run consensus experiments without a network.")

BUNDLED_CASE = "kappa_moves_first.json"


def bundled_case_text() -> str:
    """The example case shipped with the package (used when no file is given)."""
    return resources.files("subnetlab.data").joinpath("cases", BUNDLED_CASE).read_text()


@simulate_app.command("yuma")
def simulate_yuma(
    case_file: Annotated[
        Path | None,
        typer.Argument(help="Case JSON (see docs/consensus.md). Default: a bundled example."),
    ] = None,
    table: Annotated[bool, typer.Option("--table", help="Print a table instead of JSON.")] = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Draw dividends and incentive to this PNG.")
    ] = None,
) -> None:
    """Run a Yuma case and print one JSON object per epoch (or a table, or a plot)."""
    if plot is not None and (problem := plot_problem(plot)):
        fail(f"--plot {plot}: {problem}")
    try:
        if case_file is None:
            case = parse_case(json.loads(bundled_case_text()), source=f"bundled {BUNDLED_CASE}")
        else:
            case = load_case(case_file)
    except CaseError as exc:
        fail(str(exc))
    records = [result_record(i, r) for i, r in enumerate(run_case(case))]
    if plot is not None:
        from subnetlab.sim.plots import plot_case  # matplotlib only when asked for

        try:
            plot_case(case.name, records, plot)
        except OSError as exc:
            fail(f"--plot {plot}: cannot write ({exc.strerror or exc})")
    if table:
        print_table(case.name, records)
    elif plot is None:
        for record in records:
            typer.echo(json.dumps(record))
    else:
        Console(stderr=True).print(f"plot written to {plot}", soft_wrap=True, highlight=False)


PLOT_FORMATS = (".png", ".svg", ".pdf")


def plot_problem(path: Path) -> str | None:
    """Why the plot cannot be written to `path` (checked before the case runs); None: it
    can. The file's suffix picks the format, and the file is written under exactly that
    name (matplotlib would add ``.png`` to a name without a suffix)."""
    if path.is_dir():
        return "is a directory; give a file name ending in " + ", ".join(PLOT_FORMATS)
    if path.suffix.lower() not in PLOT_FORMATS:
        return (f"unsupported plot format {path.suffix or '(no suffix)'!r}; give a file "
                "name ending in " + ", ".join(PLOT_FORMATS))
    parent = path.parent
    if not parent.is_dir():
        return f"{parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK) or (
            path.exists() and not os.access(path, os.W_OK)):
        return "is not writable"
    return None


def print_table(name: str, records: list[dict[str, Any]]) -> None:
    """One row per uid per epoch; validators and miners read off the same columns."""
    table = Table(title=f"Yuma case: {name}", show_lines=False)
    for column in ("epoch", "uid", "permit", "consensus", "incentive", "dividends", "vtrust",
                   "emission"):
        table.add_column(column, justify="right")
    for record in records:
        for uid in range(len(record["incentive"])):
            table.add_row(
                str(record["epoch"]),
                str(uid),
                "yes" if record["validator_permit"][uid] else "",
                f"{record['consensus'][uid]:.4f}",
                f"{record['incentive'][uid]:.4f}",
                f"{record['dividends'][uid]:.4f}",
                f"{record['validator_trust'][uid]:.4f}",
                f"{record['emission'][uid]:.4f}",
                end_section=uid == len(record["incentive"]) - 1,
            )
    Console().print(table)


@simulate_app.command("copier")
def simulate_copier(
    epochs: Annotated[int, typer.Option("--epochs", help="Epochs per run.", min=2)] = 40,
    rotate_every: Annotated[
        int, typer.Option("--rotate-every", help="Epochs between changes of the best miner.",
                          min=1)
    ] = 3,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """What a weight-copying validator earns with commit-reveal off and on."""
    from subnetlab.sim.copier import run_copier_experiment

    results = [run_copier_experiment(cr, epochs, rotate_every=rotate_every, seed=seed)
               for cr in (False, True)]
    if as_json:
        for result in results:
            typer.echo(json.dumps(result.as_json()))
        return
    table = Table(title="weight copier vs honest validators (equal stake)")
    for column in ("commit-reveal", "epochs", "copier dividends", "honest dividends (mean)",
                   "copier / honest"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row("on" if r.commit_reveal else "off", str(r.epochs),
                      f"{r.copier_dividends:.3f}", f"{r.honest_dividends:.3f}",
                      f"{r.relative_yield:.3f}")
    Console().print(table)
