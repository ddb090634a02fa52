"""`subnetlab bench …`: benchmark drivers that print their figures."""

from __future__ import annotations

import json
import re
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from subnetlab.bench.epoch_bench import run_epoch_bench
from subnetlab.cli.errors import OneLineTyper, fail
from subnetlab.cli.shared import ledger_option

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.progress import Progress
    from rich.table import Table

    from subnetlab.bench.k8s_bench import KubeBenchResult
    from subnetlab.bench.organic_bench import OrganicResult
    from subnetlab.bench.organic_run import RunInfo
    from subnetlab.bench.protocol_bench import CpuBreakdown

bench_app = OneLineTyper(help="Measure subnetlab's own speed.")


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
        ledger_option("A running ledger (or $SUBNETLAB_LEDGER); default: start a --fast "
                      "one here."),
    ] = None,
    duration: Annotated[float, typer.Option("--duration", help="Seconds of load.")] = 20.0,
    rate: Annotated[float, typer.Option("--rate", help="Offered extrinsics per second.")] = 2500,
    validators: Annotated[int, typer.Option("--validators", help="Weight setters.")] = 8,
    accounts: Annotated[int, typer.Option("--accounts", help="Transfer senders.")] = 64,
    batch: Annotated[int, typer.Option("--batch", help="Extrinsics per HTTP request.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Sustained extrinsics/s and submission-to-inclusion time of a ledger."""
    from subnetlab.bench.errors import BenchError
    from subnetlab.bench.ledger_bench import run_ledger_bench
    from subnetlab.bench.processes import started_ledger
    from subnetlab.local.bootstrap import SetupError

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
    try:
        with started_ledger(ledger) as url, console.status("starting") as status:
            result = run_ledger_bench(
                url, duration, rate, validators, accounts, batch,
                progress=lambda what, _f: status.update(what),
            )
    except (BenchError, SetupError) as exc:
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
        f"of {result.block_time_s}s; a query (GET /v1/chain) p50 {figures['query_p50_ms']} "
        f"ms, p99 {figures['query_p99_ms']} ms"
    )


@bench_app.command("protocol")
def bench_protocol(
    requests: Annotated[int, typer.Option("--requests", help="Timed requests per route.")] = 4000,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Requests in flight.")] = 4,
    breakdown: Annotated[
        bool,
        typer.Option("--breakdown", help="Also run the signing-only and headers-only routes "
                                         "and split the signed path's extra CPU into parts."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Latency and throughput of signed (Epistula) vs plain requests to one handler."""
    from subnetlab.bench.errors import BenchError
    from subnetlab.bench.protocol_bench import run_protocol_bench, started_protocol_server

    if not 10 <= requests <= 1_000_000:
        fail(f"--requests {requests}: must be in [10, 1000000]")
    if not 1 <= concurrency <= 1024:
        fail(f"--concurrency {concurrency}: must be in [1, 1024]")
    routes = "plain, signed, signing-only and headers-only" if breakdown else "plain and signed"
    console = Console(stderr=True)
    with console.status(f"{requests} requests per route ({routes}), {concurrency} in flight"):
        try:
            with started_protocol_server() as url:
                result = run_protocol_bench(url, requests, concurrency, breakdown=breakdown)
        except BenchError as exc:
            fail(str(exc))
    figures = result.as_json()
    if as_json:
        typer.echo(json.dumps(figures))
        return
    plain, signed, spread = result.plain, result.signed, result.ratio_spread
    out = Console()
    out.print(
        f"plain:  p50 {plain.p50_ms:.2f} ms, p99 {plain.p99_ms:.2f} ms, {plain.rps:.0f} req/s\n"
        f"signed: p50 {signed.p50_ms:.2f} ms, p99 {signed.p99_ms:.2f} ms, {signed.rps:.0f} req/s\n"
        f"signed/plain throughput {result.throughput_ratio:.3f} "
        f"(round by round: median {spread.median:.3f}, quartiles {spread.p25:.3f}-"
        f"{spread.p75:.3f}, {spread.rounds} rounds), "
        f"p50 overhead {result.signed_overhead_p50_ms:+.3f} ms "
        f"({requests} requests per route, {concurrency} in flight)\n"
        f"CPU per request, client + server: plain {plain.client_cpu_us:.0f} + "
        f"{plain.server_cpu_us:.0f} us, signed {signed.client_cpu_us:.0f} + "
        f"{signed.server_cpu_us:.0f} us"
    )
    parts = result.breakdown
    if parts is not None:
        out.print(_breakdown_table(parts))


def _breakdown_table(parts: CpuBreakdown) -> Table:
    """The signed path's extra CPU per request, part by part, as a table."""
    from rich.table import Table

    table = Table(title="signed path: extra CPU per request over plain")
    table.add_column("side")
    table.add_column("part")
    table.add_column("µs", justify="right")
    rows = [
        ("client", "signing (sr25519 sign, uuid, digest)", parts.client_signing_us),
        ("client", "six Epistula headers through httpx and h11", parts.client_headers_us),
        ("client", "other (the two together, beyond their sum)", parts.client_other_us),
        ("server", "reading the six headers (uvicorn, h11)", parts.server_headers_us),
        ("server", "checks (verify, freshness, replay, metagraph, gate)",
         parts.server_checks_us),
    ]
    for side, part, micros in rows:
        table.add_row(side, part, f"{micros:.0f}")
    table.add_row("client", "total", f"{parts.client_total_us:.0f}", style="bold")
    table.add_row("server", "total", f"{parts.server_total_us:.0f}", style="bold")
    return table


@bench_app.command("organic")
def bench_organic(
    duration: Annotated[
        float, typer.Option("--duration", help="Seconds of load per strategy.")
    ] = 30.0,
    users: Annotated[int, typer.Option("--users", help="Concurrent locust users.")] = 4,
    strategy: Annotated[
        list[str] | None,
        typer.Option("--strategy", help="Strategy to load (repeat; default: all three)."),
    ] = None,
    stream_fraction: Annotated[
        float, typer.Option("--stream-fraction", help="Share of requests with stream=true.")
    ] = 0.2,
    run_dir: Annotated[
        Path | None,
        typer.Option("--run-dir", help="A running testnet's run dir (its run.json); "
                                       "default: start one here."),
    ] = None,
    miners: Annotated[int, typer.Option("--miners", help="Testnet started here: miners.")] = 6,
    validators: Annotated[
        int, typer.Option("--validators", help="Testnet started here: validators.")
    ] = 2,
    locustfile: Annotated[
        Path | None, typer.Option("--locustfile", help="Default: the checkout's loadtest/.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Organic load per strategy (locust, headless): latency, requests/s and N+V overhead."""
    from subnetlab.bench.organic_bench import OrganicBenchError, run_organic_bench
    from subnetlab.bench.organic_locust import DEFAULT_LOCUSTFILE, LocustError, locust_available
    from subnetlab.bench.organic_run import read_run_info
    from subnetlab.validator.gateway import STRATEGIES

    strategies = tuple(strategy or STRATEGIES)
    for name in strategies:
        if name not in STRATEGIES:
            fail(f"--strategy {name!r}: must be one of {', '.join(STRATEGIES)}")
    if len(set(strategies)) != len(strategies):
        fail("--strategy: each strategy once")
    if not 1 <= duration <= 3600:
        fail(f"--duration {duration}: must be in [1, 3600] seconds")
    if not 1 <= users <= 1000:
        fail(f"--users {users}: must be in [1, 1000]")
    if not 0.0 <= stream_fraction <= 1.0:
        fail(f"--stream-fraction {stream_fraction}: must be in [0, 1]")
    if run_dir is None and not (1 <= miners <= 256 and 1 <= validators <= 64):
        fail(f"--miners {miners} / --validators {validators}: must be in [1, 256] / [1, 64]")
    locustfile = locustfile or DEFAULT_LOCUSTFILE
    if not locustfile.is_file():
        fail(f"--locustfile {locustfile}: no such file (it ships in the source checkout's "
             "loadtest/)")
    if not locust_available():
        fail("locust is not installed: pip install -e '.[loadtest]'")
    try:
        info = read_run_info(run_dir) if run_dir is not None else None
    except ValueError as exc:
        fail(str(exc))

    def measure(progress: Progress) -> OrganicResult:
        task = progress.add_task("starting", total=1.0)

        def report(what: str, done: float) -> None:
            progress.update(task, description=what, completed=done)

        def run(target: RunInfo, started_here: bool) -> OrganicResult:
            return run_organic_bench(target, strategies, duration, users, stream_fraction,
                                     locustfile, report, started_here=started_here)

        if info is not None:
            return run(info, False)
        from subnetlab.bench.organic_bench import started_testnet
        from subnetlab.cli.up_cmds import _adhoc_network

        with started_testnet(_adhoc_network(miners, validators),
                             lambda text: report(text, 0.0)) as started:
            return run(started, True)

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from subnetlab.local.bootstrap import SetupError
    from subnetlab.local.processes import NeuronProcessError

    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
            result = measure(progress)
    except (OrganicBenchError, LocustError, NeuronProcessError, SetupError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(result.as_json()))
        return
    # a pipe or a log file has no width: give the table room for its nine columns
    console = Console() if sys.stdout.isatty() else Console(width=120)
    console.print(organic_table(result))
    for line in provenance_lines(result):
        console.print(line, markup=False, highlight=False)


def provenance_lines(result: OrganicResult) -> list[str]:
    """What the measured testnet was: its seed, and its simulated and real parts."""
    run = result.run
    if run is None or (run.seed is None and not run.simulated and not run.real):
        return ["testnet: no seed or simulated/real parts recorded (a run.json from before "
                "`subnetlab up` wrote them)"]
    return [f"testnet seed: {run.seed}",
            *[f"simulated: {item}" for item in run.simulated],
            *[f"real: {item}" for item in run.real]]


def organic_table(result: OrganicResult) -> Table:
    """One row per strategy: customers' view (locust) beside the gateways' N+V ratio."""
    from rich.table import Table

    table = Table(title=f"organic load: {result.users} users, {result.duration_s:.0f}s per "
                        f"strategy, {len(result.gateways)} gateways, "
                        f"{result.stream_fraction:.0%} streamed", title_justify="left")
    for column in ("strategy", "requests", "failures", "req/s", "p50 ms", "p90 ms", "p99 ms",
                   "N+V mean", "N+V p50"):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for phase in result.phases:
        mean, p50 = phase.overhead_mean, phase.overhead_p50
        table.add_row(phase.strategy, str(phase.locust.requests), str(phase.locust.failures),
                      f"{phase.locust.requests_per_s:.1f}", f"{phase.locust.p50_ms:.0f}",
                      f"{phase.locust.p90_ms:.0f}", f"{phase.locust.p99_ms:.0f}",
                      "-" if mean is None else f"{mean:.2f}",
                      "-" if p50 is None else f"{p50:.2f}")
    return table


@bench_app.command("kubernetes")
def bench_kubernetes(
    ledger: Annotated[
        str | None,
        ledger_option("The cluster's ledger, reachable from here (cluster.sh prints it)."),
    ] = None,
    repeats: Annotated[
        int, typer.Option("--repeats", help="Applies of the default example (0: skip).")
    ] = 3,
    neurons: Annotated[
        int, typer.Option("--neurons", help="Neurons applied at once (0: skip).")
    ] = 100,
    cpu: Annotated[
        str, typer.Option("--cpu", help="Each of the N Neurons' CPU request (spec.resources).")
    ] = "10m",
    memory: Annotated[
        str, typer.Option("--memory", help="Each of the N Neurons' memory request.")
    ] = "96Mi",
    default_resources: Annotated[
        bool, typer.Option("--default-resources",
                           help="Leave the N Neurons' spec.resources out: the operator's "
                                "defaults (100m, 128Mi each), as a cluster whose CRD "
                                "predates spec.resources needs.")
    ] = False,
    example: Annotated[
        Path | None, typer.Option("--example", help="Default: manifests/examples/default.yaml "
                                                    "of the checkout.")
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds each measurement may take.")
    ] = 900.0,
    poll: Annotated[float, typer.Option("--poll", help="Seconds between status reads.")] = 0.5,
    kubeconfig: Annotated[
        str | None, typer.Option("--kubeconfig", envvar="KUBECONFIG",
                                 help="The cluster (default: kubectl's).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Time the operator on a cluster: the default example to Ready and to its first epoch,
    and N Neurons to Ready; each in a fresh bench-k8s-* namespace, deleted afterwards."""
    from subnetlab.bench.k8s_bench import (
        KubeBenchError,
        KubeBenchResult,
        Kubectl,
        check_room,
        crd_has_resources,
        node_summary,
        time_default_example,
        time_many_neurons,
    )
    from subnetlab.specs import CPU_QUANTITY_PATTERN, QUANTITY_PATTERN

    if not 0 <= repeats <= 50:
        fail(f"--repeats {repeats}: must be in [0, 50]")
    if neurons != 0 and not 2 <= neurons <= 1000:
        fail(f"--neurons {neurons}: must be 0 (skip) or in [2, 1000]")
    if not 10 <= timeout <= 7200:
        fail(f"--timeout {timeout}: must be in [10, 7200] seconds")
    if not 0.1 <= poll <= 30:
        fail(f"--poll {poll}: must be in [0.1, 30] seconds")
    if not re.match(CPU_QUANTITY_PATTERN, cpu):
        fail(f"--cpu {cpu!r}: not a CPU quantity (e.g. 10m, 0.5, 1)")
    if not re.match(QUANTITY_PATTERN, memory):
        fail(f"--memory {memory!r}: not a memory quantity (e.g. 96Mi, 1Gi)")
    if repeats and not ledger:
        fail("--ledger (or SUBNETLAB_LEDGER): the cluster's ledger URL, for the epochs")
    path = example or Path(__file__).resolve().parents[3] / "manifests" / "examples" / \
        "default.yaml"
    if repeats and not path.is_file():
        fail(f"--example {path}: no such file")
    kubectl = Kubectl(kubeconfig)
    console = Console(stderr=True)
    result = KubeBenchResult()
    # a TERM (or an INT of a background job, which starts ignored) still deletes the
    # namespace in hand: the measurement's `finally` runs on SystemExit
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_on_signal)
    try:
        result.node = node_summary(kubectl)
        if neurons and not default_resources and not crd_has_resources(kubectl):
            fail("the cluster's Neuron CRD has no spec.resources (an older subnetlab): "
                 "install this version's CRDs and operator, or pass --default-resources "
                 "(and as many --neurons as fit at 100m CPU each)")
        if neurons:  # before the default example's minutes, not after them
            check_room(kubectl, neurons, None if default_resources else cpu,
                       None if default_resources else memory)
        with console.status("starting") as status:
            for run in range(repeats):
                result.default_runs.append(time_default_example(
                    kubectl, str(ledger), path, timeout, poll,
                    _prefixed(status.update, f"default example {run + 1}/{repeats}: ")))
            if neurons:
                result.many = time_many_neurons(
                    kubectl, neurons, None if default_resources else cpu,
                    None if default_resources else memory, timeout, max(poll, 1.0),
                    lambda what: status.update(f"{neurons} Neurons: {what}"))
    except KubeBenchError as exc:
        if result.default_runs:  # what was measured before the failure is still printed
            _print_kubernetes(result, as_json)
        fail(str(exc))
    _print_kubernetes(result, as_json)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _print_kubernetes(result: KubeBenchResult, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(result.as_json()))
    else:  # a pipe or a log file has no width: give the seven columns room
        (Console() if sys.stdout.isatty() else Console(width=120)).print(
            kubernetes_table(result))


def _prefixed(report: Callable[[str], object], prefix: str) -> Callable[[str], None]:
    """`report` with `prefix` before each message."""
    def prefixed(what: str) -> None:
        report(prefix + what)

    return prefixed


def kubernetes_table(result: KubeBenchResult) -> Table:
    """One row per run, and the medians of the default example's."""
    from rich.table import Table

    table = Table(title=f"operator on {result.node.get('allocatable', '?')}",
                  title_justify="left")
    for column in ("run", "neurons", "first Ready s", "half Ready s", "all Ready s",
                   "first epoch s", "delete s"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for i, run in enumerate(result.default_runs, 1):
        table.add_row(f"default example #{i}", str(run.neurons), "-", "-", f"{run.ready_s:.1f}",
                      f"{run.first_epoch_s:.1f}", f"{run.delete_s:.1f}")
    if result.default_runs:
        table.add_row("default example, median", "", "", "", f"{result.ready_median_s:.1f}",
                      f"{result.epoch_median_s:.1f}", "", style="bold")
    if result.many is not None:
        m = result.many
        requests = ", ".join(v for v in (m.cpu_request, m.memory_request) if v)
        requests = f"{requests} each" if requests else "the operator's default requests"
        table.add_row(f"many ({requests})", str(m.neurons), f"{m.first_ready_s:.1f}",
                      f"{m.half_ready_s:.1f}", f"{m.all_ready_s:.1f}", "-", f"{m.delete_s:.1f}")
    return table
