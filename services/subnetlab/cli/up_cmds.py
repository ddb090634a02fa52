"""`subnetlab up` and `subnetlab down`: a whole testnet on this machine, one command."""

from __future__ import annotations

import contextlib
import json
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
from rich.console import Console

from subnetlab.cli.errors import fail
from subnetlab.cli.folders import folder_problem
from subnetlab.ledger.client import LEDGER_ENV
from subnetlab.local.provenance import SEED_MAX

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
        float | None, typer.Option(
            "--duration", min=1,
            help="Stop this many seconds after the network is running (setup not counted).")
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write summary.json and report.md here.")
    ] = None,
    redis_url: Annotated[
        str | None, typer.Option("--redis-url", help="Redis for the chain (redis://, "
                                 "rediss:// or unix://); default: embedded.")
    ] = None,
    volatile_redis: Annotated[
        bool, typer.Option("--volatile-redis",
                           help="Run on a --redis-url that may lose blocks on a crash (no "
                           "appendonly/fsync): refused without this flag, as by `ledger "
                           "serve`.")
    ] = False,
    organic_rate: Annotated[
        float, typer.Option("--organic-rate", help="Organic requests/s to the gateways.", min=0)
    ] = 1.0,
    run_dir: Annotated[
        Path | None, typer.Option("--run-dir", help="Logs and data of this run.")
    ] = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="Run in the background; stop with `subnetlab down`.")
    ] = False,
    seed: Annotated[
        int | None, typer.Option("--seed", min=0, max=SEED_MAX,
                                 help="Seed of the validators' tasks and choices, the organic "
                                      "prompts (and so the sim engines' answers); default: a "
                                      "fresh one, named in the report.")
    ] = None,
) -> None:
    """Start a whole testnet (ledger, miners, validators) from Subnet/Neuron specs.

    Everything is checked before anything starts: the specs (file, field, reason), the
    keys and local model servers they need, the --run-dir and --report folders and the
    --redis-url.
    """
    from subnetlab.local.testnet import Testnet, pid_file
    from subnetlab.specs import SpecError, load_specs

    if (miners is None) != (validators is None):
        fail("--miners and --validators go together (an ad-hoc subnet needs both)")
    if files and miners is not None:
        fail("give -f FILES or --miners/--validators, not both")
    home = Path(os.environ.get("SUBNETLAB_HOME", Path.home() / ".subnetlab"))
    run_dir = run_dir or home / "runs" / time.strftime("%Y%m%d-%H%M%S")
    for flag, folder in (("--run-dir", run_dir), ("--report", report)):
        if folder is not None and (problem := folder_problem(folder)):
            fail(f"{flag} {folder}: {problem}")
    if volatile_redis and redis_url is None:
        fail("--volatile-redis: only with --redis-url (the embedded Redis is durable)")
    if redis_url is not None:
        check_redis(redis_url, volatile_redis)
    try:
        network = (_adhoc_network(miners, validators) if miners is not None and validators
                   else load_specs(files or [_bundled_example()]))
        testnet = Testnet(network, run_dir, 0.25 if fast else 12.0, redis_url, organic_rate,
                          volatile_redis=volatile_redis, seed=seed)
        testnet.prepare()
    except SpecError as exc:
        fail(str(exc))
    if detach:
        _detach(run_dir, pid_file())
        return
    _run(testnet, duration, report)


def check_redis(url: str, volatile: bool) -> None:
    """--redis-url: a redis/rediss/unix URL of a server that answers PING and keeps what
    it acknowledged (unless --volatile-redis), or one line: checked here, before anything
    starts, rather than by the ledger child `up` would then restart in vain."""
    import redis

    from subnetlab.ledger.durability import DURABLE, check_durability
    from subnetlab.urls import REDIS_SCHEMES, shown, url_problem

    if problem := url_problem(url, REDIS_SCHEMES, "redis://127.0.0.1:6379/0"):
        fail(f"--redis-url: {problem}")
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        try:
            client.ping()
            problems = check_durability(client)
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        fail(f"--redis-url {shown(url)}: no Redis answers there ({exc})")
    if problems and not volatile:
        settings = ", ".join(f"{k} {v}" for k, v in DURABLE.items())
        fail(f"--redis-url {shown(url)} may lose blocks on a crash: {'; '.join(problems)} "
             f"(set {settings}, or give --volatile-redis to run on it anyway)")


def _detach(run_dir: Path, pidfile: Path) -> None:
    """Re-run this command in its own session, logging to the run dir; return once its
    ledger answers, printing the URL and the `export` line the chain commands need."""
    from subnetlab.local.testnet import RUN_INFO

    if pidfile.exists():
        fail(f"a testnet is already running (pid file {pidfile}); stop it with "
             "`subnetlab down` first")
    args = [a for a in sys.argv[1:] if a != "--detach"]
    if "--run-dir" not in args:
        args += ["--run-dir", str(run_dir)]
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / RUN_INFO).unlink(missing_ok=True)  # a former run's: not this ledger
        log = (run_dir / "up.log").open("ab")
    except OSError as exc:
        fail(f"--run-dir {run_dir}: {exc.strerror or exc}")
    with log:
        process = subprocess.Popen([sys.executable, "-m", "subnetlab", *args], stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(str(process.pid))
    console = Console(highlight=False, soft_wrap=True)
    console.print(f"testnet starting in the background (pid {process.pid}); "
                  f"log: {run_dir / 'up.log'}; stop it with `subnetlab down`", markup=False)
    ledger = _await_ledger(process, run_dir / RUN_INFO)
    if ledger is None:
        pidfile.unlink(missing_ok=True)
        fail(f"the testnet stopped during setup (exit code {process.returncode}); see "
             f"{run_dir / 'up.log'}")
    console.print(f"ledger: {ledger}", markup=False)
    console.print(f"export {LEDGER_ENV}={ledger}", markup=False)


def _await_ledger(process: subprocess.Popen[bytes], run_info: Path) -> str | None:
    """The detached run's ledger URL, once its ledger answers (it writes `run_info` then);
    None when the run stopped first. No time limit of its own: a run that hangs in setup
    is the log's story, and Ctrl-C leaves the background run going."""
    from subnetlab.cli.shared import progress

    with progress("waiting for the ledger of the background testnet"):
        while process.poll() is None:
            if run_info.exists():
                return str(json.loads(run_info.read_text())["ledger_url"])
            time.sleep(0.2)
    return None


def _run(testnet: Any, duration: float | None, report: Path | None) -> None:
    import httpx

    from subnetlab.cli.up_view import LiveView, Steps
    from subnetlab.local.bootstrap import SetupError
    from subnetlab.local.processes import NeuronProcessError
    from subnetlab.local.report import write_report
    from subnetlab.local.testnet import install_stop_signals, pid_file

    # A pipe or a log file has no width: give the metagraph table room for all its columns.
    console = Console() if sys.stdout.isatty() else Console(width=140)
    install_stop_signals(testnet)
    running_since = time.monotonic()
    try:
        with Steps(console) as steps:
            testnet.start(steps.step, steps.update)
        organic = threading.Thread(target=testnet.organic_loop, daemon=True)
        organic.start()
        console.print(f"testnet up: ledger {testnet.ledger_url}, logs in "
                      f"{testnet.run_dir / 'logs'}, seed {testnet.seed}")
        running_since = time.monotonic()  # --duration counts from here
        with LiveView(console, testnet, running_since) as view:
            while duration is None or time.monotonic() - running_since < duration:
                testnet.poll()
                view.refresh()
                time.sleep(1.0)
    except KeyboardInterrupt:
        console.print("stopping")
    except (NeuronProcessError, SetupError, ValueError) as exc:
        fail(str(exc))
    except httpx.HTTPError as exc:
        fail(f"the ledger at {testnet.ledger_url} failed during setup: {exc}")
    except OSError as exc:
        fail(f"{exc.filename or 'setup'}: {exc.strerror or exc}")
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
        try:
            path = write_report(testnet, report)
        except OSError as exc:
            fail(f"--report {report}: {exc.strerror or exc}")
        console.line()
        console.print(f"report written to {path} and {report / 'summary.json'}")


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
