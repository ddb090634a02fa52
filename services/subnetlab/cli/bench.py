"""`subnetlab bench …`: benchmark drivers that print their figures."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from subnetlab.bench.epoch_bench import run_epoch_bench
from subnetlab.cli.errors import fail

bench_app = typer.Typer(help="Measure subnetlab's own speed.", no_args_is_help=True)


@bench_app.command("epoch")
def bench_epoch(
    uids: Annotated[int, typer.Option("--uids", help="Subnet size n.")] = 4096,
    validators: Annotated[int, typer.Option("--validators", help="Permitted validators.")] = 256,
    repeats: Annotated[int, typer.Option("--repeats", help="Timed epochs.")] = 15,
    yuma3: Annotated[bool, typer.Option("--yuma3/--no-yuma3", help="Yuma3 bonds.")] = True,
    liquid_alpha: Annotated[
        bool, typer.Option("--liquid-alpha/--no-liquid-alpha", help="Liquid alpha.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Median time of one Yuma epoch on a synthetic subnet."""
    if not 2 <= uids <= 65535:
        fail(f"--uids {uids}: must be between 2 and 65535")
    if not 1 <= validators <= uids:
        fail(f"--validators {validators}: must be between 1 and --uids ({uids})")
    if repeats < 1:
        fail(f"--repeats {repeats}: must be at least 1")
    if liquid_alpha and not yuma3:
        fail("--liquid-alpha needs --yuma3 (the chain applies liquid alpha to Yuma3 bonds only)")
    console = Console(stderr=True)
    with console.status(f"timing {repeats} epochs of {uids} uids x {validators} validators"):
        result = run_epoch_bench(uids, validators, yuma3, liquid_alpha, repeats)
    if as_json:
        typer.echo(json.dumps(result.as_json()))
    else:
        variant = ("Yuma3" if yuma3 else "Yuma") + (" + liquid alpha" if liquid_alpha else "")
        Console().print(
            f"epoch {uids} uids x {validators} validators ({variant}): "
            f"median {result.median_ms:.2f} ms, p90 {result.p90_ms:.2f} ms "
            f"over {repeats} runs"
        )
