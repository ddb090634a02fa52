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


@bench_app.command("ledger")
def bench_ledger(
    ledger: Annotated[
        str | None,
        typer.Option("--ledger", help="A running ledger; default: start a --fast one here."),
    ] = None,
    duration: Annotated[float, typer.Option("--duration", help="Seconds of load.")] = 20.0,
    rate: Annotated[float, typer.Option("--rate", help="Offered extrinsics per second.")] = 2500,
    validators: Annotated[int, typer.Option("--validators", help="set_weights senders.")] = 8,
    accounts: Annotated[int, typer.Option("--accounts", help="Transfer senders.")] = 64,
    batch: Annotated[int, typer.Option("--batch", help="Extrinsics per HTTP request.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Sustained extrinsics/s and submission-to-inclusion time of a ledger."""
    from subnetlab.bench.ledger_bench import run_ledger_bench
    from subnetlab.bench.processes import started_ledger
    from subnetlab.local.bootstrap import BenchError

    if not 0 < duration <= 3600:
        fail(f"--duration {duration}: must be in (0, 3600] seconds")
    if not 0 < rate <= 100_000:
        fail(f"--rate {rate}: must be in (0, 100000]")
    if not 1 <= validators <= 1024:
        fail(f"--validators {validators}: must be in [1, 1024]")
    if not 2 <= accounts <= 10_000:
        fail(f"--accounts {accounts}: must be in [2, 10000]")
    if not 1 <= batch <= 5000:
        fail(f"--batch {batch}: must be in [1, 5000]")
    console = Console(stderr=True)
    with started_ledger(ledger) as url, console.status("starting") as status:
        try:
            result = run_ledger_bench(
                url, duration, rate, validators, accounts, batch,
                progress=lambda what, _f: status.update(what),
            )
        except BenchError as exc:
            fail(str(exc))
    figures = result.as_json()
    if as_json:
        typer.echo(json.dumps(figures))
        return
    Console().print(
        f"ledger: {figures['extrinsics_per_second']} extrinsics/s sustained "
        f"(offered {rate:.0f}/s, {result.included} included, {result.refused} refused, "
        f"{result.failed} failed); inclusion p50 {figures['p50_inclusion_ms']} ms, "
        f"p99 {figures['p99_inclusion_ms']} ms = {figures['p99_inclusion_blocks']} blocks "
        f"of {result.block_time_s}s"
    )


@bench_app.command("protocol")
def bench_protocol(
    requests: Annotated[int, typer.Option("--requests", help="Timed requests per route.")] = 4000,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Requests in flight.")] = 4,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Latency and throughput of signed (Epistula) vs plain requests to one handler."""
    from subnetlab.bench.protocol_bench import (
        BenchError,
        run_protocol_bench,
        started_protocol_server,
    )

    if not 10 <= requests <= 1_000_000:
        fail(f"--requests {requests}: must be in [10, 1000000]")
    if not 1 <= concurrency <= 1024:
        fail(f"--concurrency {concurrency}: must be in [1, 1024]")
    console = Console(stderr=True)
    with console.status(f"{requests} plain + {requests} signed requests, {concurrency} in flight"):
        try:
            with started_protocol_server() as url:
                result = run_protocol_bench(url, requests, concurrency)
        except BenchError as exc:
            fail(str(exc))
    figures = result.as_json()
    if as_json:
        typer.echo(json.dumps(figures))
        return
    plain, signed = result.plain, result.signed
    Console().print(
        f"plain:  p50 {plain.p50_ms:.2f} ms, p99 {plain.p99_ms:.2f} ms, {plain.rps:.0f} req/s\n"
        f"signed: p50 {signed.p50_ms:.2f} ms, p99 {signed.p99_ms:.2f} ms, {signed.rps:.0f} req/s\n"
        f"signed/plain throughput {result.throughput_ratio:.3f}, "
        f"p50 overhead {result.signed_overhead_p50_ms:+.3f} ms "
        f"({requests} requests per route, {concurrency} in flight)\n"
        f"CPU per request, client + server: plain {plain.client_cpu_us:.0f} + "
        f"{plain.server_cpu_us:.0f} us, signed {signed.client_cpu_us:.0f} + "
        f"{signed.server_cpu_us:.0f} us"
    )
