"""`subnetlab up` and `subnetlab down`: a whole testnet on this machine, one command."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from subnetlab.cli.errors import fail

DEFAULT_EXAMPLE = "default.yaml"


def _bundled_example() -> Path:
    return Path(str(resources.files("subnetlab.data").joinpath("examples", DEFAULT_EXAMPLE)))


def _adhoc_network(miners: int, validators: int) -> Any:
    from subnetlab.specs import parse_documents

    docs: list[tuple[str, Any]] = [("--miners/--validators", {
        "kind": "Subnet", "metadata": {"name": "adhoc"},
        "spec": {"hyperparameters": {"tempo": 20, "weightsRateLimit": 5,
                                     "immunityPeriod": 1000, "maxRegistrationsPerBlock": 64,
                                     "targetRegistrationsPerInterval": 64}}})]
    docs += [("--validators", {"kind": "Neuron", "metadata": {"name": f"validator-{i}"},
                               "spec": {"subnet": "adhoc", "role": "validator", "stake": 1000}})
             for i in range(validators)]
    docs += [("--miners", {"kind": "Neuron", "metadata": {"name": f"miner-{i}"},
                           "spec": {"subnet": "adhoc", "role": "miner"}})
             for i in range(miners)]
    return parse_documents(docs)


def up(
    files: Annotated[
        list[Path] | None,
        typer.Option("-f", "--file", help="Subnet/Neuron YAML files or directories."),
    ] = None,
    miners: Annotated[
        int | None, typer.Option("--miners", help="Ad-hoc subnet: this many sim miners.",
                                 min=1, max=256)
    ] = None,
    validators: Annotated[
        int | None, typer.Option("--validators", help="Ad-hoc subnet: this many validators.",
                                 min=1, max=64)
    ] = None,
    fast: Annotated[
        bool, typer.Option("--fast/--slow", help="0.25 s blocks (default) or 12 s blocks.")
    ] = True,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Stop after this many seconds.", min=1)
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write summary.json and report.md here.")
    ] = None,
    redis_url: Annotated[
        str | None, typer.Option("--redis-url", help="Redis for the chain; default: embedded.")
    ] = None,
    organic_rate: Annotated[
        float, typer.Option("--organic-rate", help="Organic requests/s to the gateways.", min=0)
    ] = 1.0,
    run_dir: Annotated[
        Path | None, typer.Option("--run-dir", help="Logs and data of this run.")
    ] = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="Run in the background; stop with `subnetlab down`.")
    ] = False,
) -> None:
    """Start a whole testnet (ledger, miners, validators) from Subnet/Neuron specs."""
    from subnetlab.local.testnet import pid_file
    from subnetlab.specs import SpecError, load_specs

    if (miners is None) != (validators is None):
        fail("--miners and --validators go together (an ad-hoc subnet needs both)")
    if files and miners is not None:
        fail("give -f FILES or --miners/--validators, not both")
    try:
        network = (_adhoc_network(miners, validators) if miners is not None and validators
                   else load_specs(files or [_bundled_example()]))
    except SpecError as exc:
        fail(str(exc))
    home = Path(os.environ.get("SUBNETLAB_HOME", Path.home() / ".subnetlab"))
    run_dir = run_dir or home / "runs" / time.strftime("%Y%m%d-%H%M%S")
    if detach:
        _detach(run_dir, pid_file())
        return
    _run(network, run_dir, 0.25 if fast else 12.0, duration, report, redis_url, organic_rate)


def _detach(run_dir: Path, pidfile: Path) -> None:
    """Re-run this command in its own session, logging to the run dir."""
    if pidfile.exists():
        fail(f"a testnet is already running (pid file {pidfile}); stop it with "
             "`subnetlab down` first")
    args = [a for a in sys.argv[1:] if a != "--detach"]
    if "--run-dir" not in args:
        args += ["--run-dir", str(run_dir)]
    run_dir.mkdir(parents=True, exist_ok=True)
    log = (run_dir / "up.log").open("ab")
    process = subprocess.Popen([sys.executable, "-m", "subnetlab", *args], stdout=log,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(str(process.pid))
    Console().print(f"testnet starting in the background (pid {process.pid}); "
                    f"log: {run_dir / 'up.log'}; stop it with `subnetlab down`")


def _run(network: Any, run_dir: Path, block_time: float, duration: float | None,
         report: Path | None, redis_url: str | None, organic_rate: float) -> None:
    from subnetlab.local.bootstrap import SetupError
    from subnetlab.local.processes import NeuronProcessError
    from subnetlab.local.report import write_report
    from subnetlab.local.testnet import Testnet, install_stop_signals, pid_file

    # A pipe or a log file has no width: give the metagraph table room for its ten columns.
    console = Console() if sys.stdout.isatty() else Console(width=140)
    testnet = Testnet(network, run_dir, block_time, redis_url, organic_rate)
    install_stop_signals(testnet)
    started = time.monotonic()
    try:
        with console.status("starting") as status:
            testnet.start(lambda text: status.update(text))
        organic = threading.Thread(target=testnet.organic_loop, daemon=True)
        organic.start()
        console.print(f"testnet up: ledger {testnet.ledger_url}, logs in {run_dir / 'logs'}")
        with Live(render(testnet, started), console=console, refresh_per_second=2,
                  transient=False) as live:
            while duration is None or time.monotonic() - started < duration:
                testnet.poll()
                live.update(render(testnet, started))
                time.sleep(1.0)
    except KeyboardInterrupt:
        console.print("stopping")
    except (NeuronProcessError, SetupError, ValueError) as exc:
        fail(str(exc))
    finally:
        if testnet.ledger_url:
            # the last epoch's numbers, before the chain goes away (best effort)
            with contextlib.suppress(Exception):
                testnet.poll()
        testnet.stop()
        pid = pid_file()
        if pid.exists() and pid.read_text().strip() == str(os.getpid()):
            pid.unlink()
    if report is not None:
        path = write_report(testnet, report)
        console.line()
        console.print(f"report written to {path} and {report / 'summary.json'}")


def render(testnet: Any, started: float) -> Group:
    """The live view: per subnet, block, epoch, metagraph, organic latency and N+V ratio."""
    from subnetlab.local.testnet import quantiles

    parts: list[Any] = []
    elapsed = time.monotonic() - started
    for run in testnet.subnets:
        last: dict[str, Any] = run.history[-1] if run.history else {"block": 0, "neurons": []}
        rows = {n["hotkey"]: n for n in last["neurons"]}
        organic = testnet.organic.get(run.netuid)
        ratio = (sum(organic.ratios) / len(organic.ratios)) if organic and organic.ratios else None
        latency = quantiles(organic.latencies_ms if organic else [])
        table = Table(title=f"subnet {run.spec.metadata.name} (netuid {run.netuid}) · block "
                            f"{last['block']} · epoch {max(0, run.last_epoch)} · "
                            f"{elapsed:.0f}s", title_justify="left")
        for column in ("uid", "neuron", "role", "behaviour", "stake", "incentive", "dividends",
                       "emission", "trust", "restarts"):
            table.add_column(column, justify="right" if column not in ("neuron", "role",
                                                                       "behaviour") else "left")
        for neuron in run.neurons:
            row = rows.get(neuron.key.ss58_address, {})
            table.add_row(
                str(row.get("uid", "-")), neuron.spec.metadata.name, neuron.spec.spec.role,
                neuron.spec.spec.behaviour, f"{row.get('stake', 0) / 1e9:.2f}",
                f"{row.get('incentive', 0):.4f}", f"{row.get('dividends', 0):.4f}",
                f"{row.get('emission', 0) / 1e9:.4f}",
                f"{row.get('validator_trust', 0):.3f}",
                str(neuron.child.restarts if neuron.child else 0))
        parts.append(table)
        parts.append(Text(
            f"organic: {len(organic.latencies_ms) if organic else 0} requests, latency p50 "
            f"{latency['p50']} ms p99 {latency['p99']} ms · N+V ratio "
            f"{'-' if ratio is None else f'{ratio:.2f}'}"))
    for event in testnet.events[-5:]:
        parts.append(Text(event, style="yellow"))
    return Group(*parts)


def down(
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait.", min=1)] = 60,
) -> None:
    """Stop a testnet started with `subnetlab up --detach`."""
    from subnetlab.local.testnet import pid_file

    pidfile = pid_file()
    if not pidfile.exists():
        fail("no testnet is running in the background (no pid file)")
    pid = int(pidfile.read_text().strip())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pidfile.unlink(missing_ok=True)
        fail(f"the testnet (pid {pid}) had already stopped; removed the stale pid file")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            pidfile.unlink(missing_ok=True)
            Console().print(f"testnet (pid {pid}) stopped")
            return
        time.sleep(0.2)
    fail(f"the testnet (pid {pid}) did not stop within {timeout:.0f}s")
