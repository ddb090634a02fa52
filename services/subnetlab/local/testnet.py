"""`subnetlab up`: a whole testnet on this machine from Subnet/Neuron specs.

Starts the ledger (fresh chain per run, dev genesis plus every key the specs need), creates
each subnet, registers and stakes every neuron, starts miners and validators as child
processes (each with its own log file and port), sends a trickle of organic requests to
the validators' gateways, restarts neurons that crash (with a backoff, up to a limit),
records the metagraph every epoch, and on the end of `--duration`, Ctrl-C or SIGTERM stops
every child and writes the report. Everything that can be checked before starting
(`local.preflight`) is checked before the first process starts.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from subnetlab.chain.model import FaucetConfig, Genesis
from subnetlab.chain.units import TOKEN, rao
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.client import LedgerClient, LedgerClientError
from subnetlab.ledger.documents import uid_of
from subnetlab.ledger.genesis import DEV_ACCOUNTS, DEV_BALANCE
from subnetlab.ledger.memory import new_salt
from subnetlab.ledger.redis_server import EmbeddedRedis
from subnetlab.local.bootstrap import bootstrap_subnet
from subnetlab.local.preflight import Prepared, dev_key_name, preflight
from subnetlab.local.processes import Child, ChildEvent, Supervisor, die_with_parent
from subnetlab.local.provenance import components, neuron_seed, new_seed
from subnetlab.local.vllm_server import VllmServer, local_config, server_key
from subnetlab.neuron.command import copying_from, key_args, role_args, sybil_count
from subnetlab.specs import LOCAL_SIM_ENGINE, Network, Neuron, Subnet
from subnetlab.tasks import KINDS, generate

API_KEY = "subnetlab-up"
RUN_INFO = "run.json"  # in the run dir: how clients (load generators) find this testnet

Say = Callable[[str], object]


@dataclass
class NeuronRun:
    spec: Neuron
    key: Keypair
    netuid: int = 0
    uid: int | None = None
    child: Child | None = None
    gateway_url: str | None = None
    sybils: list[Keypair] = field(default_factory=list)  # a sybil's further hotkeys

    def labelled_keys(self) -> list[tuple[str, Keypair]]:
        """(label, hotkey) of each hotkey the neuron holds, for views and plots: its name,
        then `NAME sybil 1` ... for a sybil's further hotkeys."""
        name = self.spec.metadata.name
        return [(name, self.key), *((f"{name} sybil {i}", key)
                                    for i, key in enumerate(self.sybils, 1))]

    def registered(self, stake: int) -> list[tuple[Keypair, int]]:
        """Every hotkey to register, with the owner's stake on it: the neuron's own with
        `stake`, a sybil's further hotkeys with none (the neuron is staked once)."""
        return [(self.key, stake), *((key, 0) for key in self.sybils)]


@dataclass
class SubnetRun:
    spec: Subnet
    netuid: int
    neurons: list[NeuronRun]
    history: list[dict[str, Any]] = field(default_factory=list)
    last_epoch: int = -1


@dataclass
class Organic:
    """The organic traffic `up` sends, and what it measured."""

    latencies_ms: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    failures: int = 0


@dataclass
class Testnet:
    network: Network
    run_dir: Path
    block_time: float = 0.25
    redis_url: str | None = None
    organic_rate: float = 1.0
    volatile_redis: bool = False
    """Pass --volatile-redis to the ledger: the user accepted a --redis-url that may lose
    blocks on a crash (`subnetlab up --volatile-redis`)."""
    supervisor: Supervisor = field(default_factory=Supervisor)
    subnets: list[SubnetRun] = field(default_factory=list)
    ledger_url: str = ""
    organic: dict[int, Organic] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    running: bool = False
    """Every neuron has started (run.json says so to clients of a detached run)."""
    stop_event: threading.Event = field(default_factory=threading.Event)
    vllm_urls: dict[str, str] = field(default_factory=dict)  # model -> local vLLM server
    prepared: Prepared | None = None
    ledger_problem: str | None = None  # why the last poll could not read the ledger
    seed: int | None = None
    """The run's seed (`up --seed`; a fresh one when None): validators' tasks and choices,
    the organic traffic (local/provenance.py says what it fixes and what it does not)."""

    def __post_init__(self) -> None:
        if self.seed is None:
            self.seed = new_seed()

    # --- start ---------------------------------------------------------------------------

    def prepare(self) -> Prepared:
        """Check the network against this machine (SpecError naming file and field);
        nothing is started or written. `start` calls it when the caller did not."""
        if self.prepared is None:
            self.prepared = preflight(self.network)
        return self.prepared

    def genesis(self) -> Genesis:
        """The dev genesis, plus a balance for every subnet owner the specs name. The
        chain has one block emission: the specs agree on it (`specs._network_problems`)."""
        balances = {Keypair.dev(n).ss58_address: DEV_BALANCE for n in DEV_ACCOUNTS}
        for owner in self.prepare().owners.values():
            balances.setdefault(owner.ss58_address, DEV_BALANCE)
        emission = self.network.subnets[0].spec.emission.block_emission_tokens
        # A new salt per run, with or without --seed: each run is another chain, so nothing
        # signed for an earlier run (same keys, same nonces) is valid on this one.
        return Genesis(balances=balances, sudo=Keypair.dev("alice").ss58_address,
                       faucet=FaucetConfig(), block_emission=int(emission * TOKEN),
                       allow_loopback_axons=True,  # every neuron serves on 127.0.0.1
                       salt=new_salt())

    def start(self, say: Say, update: Say | None = None) -> None:
        """Bring everything up. `say(text)` is called as each step begins (so the previous
        one has finished); `update(text)` with progress within a step (vLLM's start)."""
        prepared = self.prepare()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        logs = self.run_dir / "logs"
        genesis_file = self.run_dir / "genesis.json"
        genesis_file.write_text(self.genesis().model_dump_json(indent=2))
        (self.run_dir / "api-keys").write_text(API_KEY + "\n")
        # the run's own Redis (a fresh chain per run) goes with `up`, however `up` ends
        redis_url = self.redis_url or EmbeddedRedis(self.run_dir / "data").ensure_running(
            preexec_fn=die_with_parent())
        self.redis_url = redis_url
        port = self.supervisor.ports.take()
        self.ledger_url = f"http://127.0.0.1:{port}"
        say(f"starting the ledger on {self.ledger_url}")
        self.supervisor.start(Child(
            "ledger", ["ledger", "serve", "--port", str(port), "--redis-url", redis_url,
                       "--block-time", str(self.block_time), "--genesis", str(genesis_file),
                       "--log-level", "warning",
                       *(["--volatile-redis"] if self.volatile_redis else [])],
            logs / "ledger.log", f"{self.ledger_url}/readyz"))
        self.write_run_info()  # the ledger answers: `up --detach` can print its URL now
        engine_url = self._maybe_start_engine(logs, say)
        self._start_vllm_servers(logs, say, update)
        for subnet in self.network.subnets:
            neurons = [NeuronRun(n, prepared.hotkeys[n.metadata.name],
                                 sybils=prepared.sybils.get(n.metadata.name, []))
                       for n in self.network.neurons_of(subnet.metadata.name)]
            sybils = sum(len(n.sybils) for n in neurons)
            say(f"creating subnet {subnet.metadata.name}, registering and staking "
                f"{len(neurons)} neurons" + (f" (and {sybils} sybil hotkeys)" if sybils else ""))
            netuid = bootstrap_subnet(
                self.ledger_url, prepared.owners[subnet.metadata.name],
                subnet.spec.hyperparameters.model_dump(exclude_defaults=True),
                miners=[pair for n in neurons if n.spec.spec.role == "miner"
                        for pair in n.registered(rao(n.spec.spec.stake))],
                validators=[(n.key, rao(n.spec.spec.stake)) for n in neurons
                            if n.spec.spec.role == "validator"],
            )
            run = SubnetRun(subnet, netuid, neurons)
            self.subnets.append(run)
            self.organic[netuid] = Organic()
            for neuron in neurons:
                neuron.netuid = netuid
                neuron.child = self._child(neuron, logs, engine_url)
        children = [n.child for run in self.subnets for n in run.neurons if n.child]
        say(f"starting {len(children)} miners and validators")
        self.supervisor.start_all(children)
        self.running = True
        self.write_run_info()

    def write_run_info(self) -> None:
        """run.json: the ledger, each validator's gateway and the API key file, so that
        clients of a detached run (`subnetlab bench organic --run-dir`) can find them; the
        run's seed and its `simulated` and `real` parts, for them to report.

        Written first as soon as the ledger answers (`up --detach` prints its URL then),
        with ``"running": false``; again with ``"running": true`` once every neuron has
        started, which is what clients that need the gateways wait for."""
        gateways = [{"subnet": run.spec.metadata.name, "netuid": run.netuid,
                     "neuron": n.spec.metadata.name, "url": n.gateway_url,
                     "fan_out": n.spec.spec.validator.gateway.fan_out}
                    for run in self.subnets for n in run.neurons
                    if n.gateway_url and n.spec.spec.validator]
        write_json(self.run_dir / RUN_INFO, {
            "ledger_url": self.ledger_url, "api_keys_file": str(self.run_dir / "api-keys"),
            "gateways": gateways, "running": self.running, "seed": self.run_seed,
            **components(self.network)})

    def _maybe_start_engine(self, logs: Path, say: Say) -> str | None:
        wanted = any(n.spec.miner and LOCAL_SIM_ENGINE in (
            getattr(n.spec.miner.backend, "url", None), n.spec.miner.copy_from)
            for n in self.network.neurons)
        if not wanted:
            return None
        port = self.supervisor.ports.take()
        say("starting the shared simulated engine (for passthrough and copycat miners)")
        self.supervisor.start(Child("engine", ["engine", "serve", "--port", str(port)],
                                    logs / "engine.log", f"http://127.0.0.1:{port}/healthz"))
        return f"http://127.0.0.1:{port}"

    def _start_vllm_servers(self, logs: Path, say: Say, update: Say | None) -> None:
        """One local vLLM server per distinct model of the vllm miners that give no url."""
        for neuron in self.network.neurons:
            backend = neuron.spec.miner.backend if neuron.spec.miner else None
            if backend is None or backend.type != "vllm" or backend.url:
                continue
            if (key := server_key(backend)) not in self.vllm_urls:
                say(f"starting vLLM for {backend.model}")
                server = VllmServer(local_config(backend, self.supervisor.ports.take()),
                                    logs / f"vllm-{len(self.vllm_urls)}.log")
                self.supervisor.children.append(server.child)
                progress = update or (lambda _text: None)
                self.vllm_urls[key] = server.start(timeout=900, say=progress).url

    def _child(self, neuron: NeuronRun, logs: Path, engine_url: str | None) -> Child:
        """The neuron's process: the spec's own flags (shared with the operator's pods,
        `neuron/command.py`) plus what only this runner knows: ports, keys, local URLs."""
        spec = copying_from(neuron.spec.spec, engine_url)
        name = neuron.spec.metadata.name
        port = self.supervisor.ports.take()  # never one another child was given
        subnet = next(s for s in self.network.subnets if s.metadata.name == spec.subnet)
        backend_url: str | None = None
        if spec.miner is not None and spec.miner.backend.type != "sim":
            backend = spec.miner.backend
            backend_url = backend.url if backend.url != LOCAL_SIM_ENGINE else engine_url
            if backend.type == "vllm" and not backend_url:
                backend_url = self.vllm_urls.get(server_key(backend))
            # preflight checked the spec, and start() started the servers it needs
            assert backend_url, f"Neuron {name}: no local server for miner.backend"
        args = [*role_args(spec, subnet.spec.tasks, backend_url),
                "--netuid", str(neuron.netuid), "--ledger", self.ledger_url,
                "--port", str(port),
                *key_args(spec.wallet, dev_key_name(neuron.spec), sybil_count(spec)),
                "--log-level", "warning"]
        if spec.role == "validator":
            args += ["--redis-url", str(self.redis_url),
                     "--api-keys-file", str(self.run_dir / "api-keys"),
                     "--seed", str(neuron_seed(self.run_seed, name))]
            neuron.gateway_url = f"http://127.0.0.1:{port}"
        return Child(name, args, logs / f"{name}.log", f"http://127.0.0.1:{port}/healthz",
                     port=port)

    # --- while running -------------------------------------------------------------------

    def note(self, text: str) -> None:
        """An event for the view, the log and the report."""
        self.events.append(f"{time.strftime('%H:%M:%S')} {text}")

    def poll(self) -> list[ChildEvent]:
        """Restart crashed neurons; record the metagraph whenever an epoch completed.

        A ledger that does not answer (restarting, overloaded) does not end the run: the
        problem is kept in `ledger_problem` for the view, noted once as an event, and the
        next poll tries again. Returns what the supervisor did, for the caller to show.
        """
        events = self.supervisor.restart_crashed()
        for event in events:
            self.note(event.text)
        if self._follow_moved_gateways():
            self.write_run_info()
        try:
            self._read_ledger()
        except (LedgerClientError, ValueError, KeyError, TypeError) as exc:
            problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if self.ledger_problem is None:
                self.note(f"ledger at {self.ledger_url} not answering ({problem}); retrying")
            self.ledger_problem = problem
            return events
        if self.ledger_problem is not None:
            self.note("ledger answering again")
            self.ledger_problem = None
        return events

    def _follow_moved_gateways(self) -> bool:
        """A validator restarted on another port (its own was taken) serves its gateway
        there: point the organic traffic and run.json at it. True when one moved."""
        moved = False
        for run in self.subnets:
            for neuron in run.neurons:
                if neuron.gateway_url and neuron.child and neuron.child.url() and \
                        neuron.child.url() != neuron.gateway_url:
                    neuron.gateway_url = neuron.child.url()
                    moved = True
        return moved

    def _read_ledger(self) -> None:
        with LedgerClient(self.ledger_url, timeout=10) as ledger:
            for run in self.subnets:
                self._record(run, int(ledger.subnet(run.netuid)["epochs_run"]),
                             ledger.metagraph(run.netuid))

    def _record(self, run: SubnetRun, epoch: int, metagraph: dict[str, Any]) -> None:
        """Note each neuron's uid, and the metagraph when an epoch completed."""
        for neuron in run.neurons:
            neuron.uid = uid_of(metagraph, neuron.key.ss58_address)
        if epoch != run.last_epoch:
            run.last_epoch = epoch
            run.history.append({"epoch": epoch, "block": metagraph["block"],
                                "neurons": metagraph["neurons"]})

    def organic_loop(self) -> None:
        """Organic customers: `organic_rate` requests/s spread over the validators."""
        if self.organic_rate <= 0:
            return
        rng = random.Random(f"{self.run_seed}:organic")
        client = httpx.Client(timeout=30)
        def gateways() -> list[tuple[int, str]]:  # read each time: a gateway may move
            return [(run.netuid, n.gateway_url) for run in self.subnets for n in run.neurons
                    if n.gateway_url]

        while gateways() and not self.stop_event.wait(1.0 / self.organic_rate):
            netuid, url = rng.choice(gateways())
            task = generate(rng.choice(KINDS), rng.randrange(2**31))
            started = time.perf_counter()
            try:
                response = client.post(f"{url}/v1/chat/completions", headers={
                    "Authorization": f"Bearer {API_KEY}"},
                    json={"messages": [{"role": "user", "content": task.prompt}]})
                if response.status_code != 200:
                    self.organic[netuid].failures += 1
                    continue
                record = self.organic[netuid]
                record.latencies_ms.append((time.perf_counter() - started) * 1000)
                record.ratios.append(float(response.json()["subnetlab"]["overhead_ratio"]))
            except httpx.HTTPError:
                self.organic[netuid].failures += 1
        client.close()

    def stop(self) -> None:
        self.stop_event.set()
        self.supervisor.stop_all()
        if self.redis_url and self.redis_url.startswith("unix://"):
            EmbeddedRedis(self.run_dir / "data").stop()

    # --- results -------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """summary.json: per subnet, epochs, N+V ratio, organic latency, neurons."""
        subnets = []
        for run in self.subnets:
            last = run.history[-1]["neurons"] if run.history else []
            by_hotkey = {n["hotkey"]: n for n in last}
            organic = self.organic.get(run.netuid, Organic())
            subnets.append({
                "name": run.spec.metadata.name,
                "netuid": run.netuid,
                "epochs": max(0, run.last_epoch),
                "overhead_ratio": (round(statistics.fmean(organic.ratios), 4)
                                   if organic.ratios else None),
                "organic_latency_ms": quantiles(organic.latencies_ms),
                "organic_requests": len(organic.latencies_ms),
                "organic_failures": organic.failures,
                "neurons": [neuron_summary(n, by_hotkey) for n in run.neurons],
            })
        return {"seed": self.run_seed, **components(self.network), "subnets": subnets,
                "events": self.events}

    @property
    def run_seed(self) -> int:
        """The run's seed (set when the testnet is made)."""
        assert self.seed is not None  # __post_init__ fills it in
        return self.seed


def hotkey_summary(key: Keypair, row: dict[str, Any] | None) -> dict[str, Any]:
    """One hotkey's metagraph row as the summary shows it (tokens, not rao)."""
    row = row or {}
    return {
        "uid": row.get("uid"),
        "hotkey": key.ss58_address,
        "stake": row.get("stake", 0) / TOKEN,
        "incentive": row.get("incentive", 0.0),
        "dividends": row.get("dividends", 0.0),
        "emission": row.get("emission", 0) / TOKEN,
    }


def neuron_summary(neuron: NeuronRun, by_hotkey: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A neuron's line of summary.json: its own hotkey's row and, for a sybil, `sybils`,
    one row per further hotkey (empty for every other neuron)."""
    own = hotkey_summary(neuron.key, by_hotkey.get(neuron.key.ss58_address))
    return {
        "name": neuron.spec.metadata.name,
        "uid": own.pop("uid"),
        "hotkey": own.pop("hotkey"),
        "role": neuron.spec.spec.role,
        "behaviour": neuron.spec.spec.behaviour,
        **own,
        "sybils": [hotkey_summary(key, by_hotkey.get(key.ss58_address))
                   for key in neuron.sybils],
        "restarts": neuron.child.restarts if neuron.child else 0,
        "given_up": bool(neuron.child and neuron.child.given_up),
    }


def quantiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99)}


def install_stop_signals(testnet: Testnet) -> None:
    """SIGTERM (from `subnetlab down`) stops the run like Ctrl-C does."""

    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` whole or not at all: a reader (`up --detach` waiting for run.json)
    never sees half a file."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=2) + "\n")
    partial.replace(path)


def pid_file() -> Path:
    home = Path(os.environ.get("SUBNETLAB_HOME", Path.home() / ".subnetlab"))
    return home / "up.pid"
