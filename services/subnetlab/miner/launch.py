"""From `subnetlab miner serve`'s options to a miner that is published and ready to serve.

Why a module of its own: every option is checked here, before anything starts, and every
failure is a `ValueError` (bad options, naming the flag) or a :class:`LaunchError` (the
ledger or the chain said no, naming the reason and `--ledger`), which the command turns
into one `error:` line. The ledger is asked, and the axon published, *before* the HTTP
server starts: a refusal there used to surface as a traceback from inside uvicorn's
startup. The option checks are pure; :func:`publish` is the only I/O.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from subnetlab.engines import Backend, OpenAIBackend, SimBackend, SimModel, VllmBackend
from subnetlab.keys import InvalidAddress, Keypair, ss58_decode
from subnetlab.ledger.client import (
    AsyncLedgerClient,
    LedgerClientError,
    LedgerError,
    subnet_route,
)
from subnetlab.miner.server import Miner
from subnetlab.neuron.flags import MINER_FLAGS, SIM_FLAGS, default_of, from_flags
from subnetlab.protocol.bodies import MAX_BODY_BYTES_LIMIT, MAX_PROMPT_BODY_BYTES
from subnetlab.protocol.guard import RequestGuard
from subnetlab.protocol.limits import RateLimit
from subnetlab.protocol.metagraph import StaticMetagraph
from subnetlab.protocol.priority import StakePriorityGate
from subnetlab.specs import MinerSpec, MinerWords, SimBackendSpec, miner_problem
from subnetlab.tasks import KINDS, parse_kind_values
from subnetlab.urls import check_http_url

__all__ = [
    "BACKENDS",
    "DEFAULT_BURST",
    "DEFAULT_RATE",
    "LaunchError",
    "MinerOptions",
    "build_miner",
    "check_options",
    "parse_blacklist",
    "parse_task_accuracy",
    "publish",
    "sim_spec",
]

BACKENDS = ("sim", "openai", "vllm")
DEFAULT_RATE = RateLimit().rate
DEFAULT_BURST = RateLimit().burst
MAX_QUEUE = 256


class LaunchError(RuntimeError):
    """The miner cannot start: the ledger is unreachable, or the chain refused serve_axon."""


@dataclass(frozen=True)
class MinerOptions:
    """What `miner serve` was given; `None` means the flag was not given."""

    backend: str = "sim"
    backend_url: str | None = None
    model: str | None = None
    accuracy: float | None = None
    task_accuracy: str | None = None
    ttft: float | None = None
    tokens_per_s: float | None = None
    behaviour: str = "honest"
    copy_from: str | None = None
    sybil_keys: tuple[str, ...] = ()
    blacklist: tuple[str, ...] = ()
    rate_limit: float | None = None
    rate_burst: float | None = None
    concurrency: int = default_of(MinerSpec, ("concurrency",))
    max_body_bytes: int = MAX_PROMPT_BODY_BYTES


def check_options(o: MinerOptions) -> None:
    """Refuse options that are missing, out of range, or do not apply to the backend and
    behaviour chosen (a flag that would be ignored is an error, not a silent no-op)."""
    if o.backend not in BACKENDS:
        raise ValueError(f"--backend {o.backend}: must be one of {', '.join(BACKENDS)}")
    remote = o.backend in ("openai", "vllm")
    if remote and not o.backend_url:
        raise ValueError(f"--backend {o.backend} needs --backend-url (its server's base URL)")
    if not remote and o.backend_url is not None:
        raise ValueError(f"--backend-url applies only to --backend openai or vllm, "
                         f"not {o.backend}")
    check_http_url("--backend-url", o.backend_url)
    if o.model is not None and not (remote or o.behaviour == "copycat"):
        raise ValueError("--model applies only to --backend openai or vllm, or to the engine "
                         "a --behaviour copycat copies")
    sim_only = {"--accuracy": o.accuracy, "--task-accuracy": o.task_accuracy,
                "--ttft": o.ttft, "--tokens-per-s": o.tokens_per_s}
    given = [flag for flag, value in sim_only.items() if value is not None]
    if given and o.backend != "sim":
        raise ValueError(f"{', '.join(given)} apply only to --backend sim, not {o.backend}")
    sim_spec(o)  # the sim flags' ranges are SimBackendSpec's
    if o.task_accuracy is not None:
        parse_task_accuracy(o.task_accuracy)
    _check_behaviour(o)
    check_http_url("--copy-from", o.copy_from)
    parse_blacklist(o.blacklist)
    _check_number("--rate-limit", o.rate_limit, lo=0.0, hi=1e9)
    _check_number("--rate-burst", o.rate_burst, lo=1.0, hi=1e9)
    if o.rate_burst is not None and o.rate_limit == 0:
        raise ValueError("--rate-burst applies only with a --rate-limit above 0 "
                         "(0 turns rate limiting off)")
    from_flags(MinerSpec, MINER_FLAGS, {"concurrency": o.concurrency})
    if not 1 <= o.max_body_bytes <= MAX_BODY_BYTES_LIMIT:
        raise ValueError(f"--max-body-bytes {o.max_body_bytes}: must be in "
                         f"[1, {MAX_BODY_BYTES_LIMIT}]")


_FLAG_WORDS = MinerWords(behaviour="--behaviour", backend="--backend",
                         sybil_needs="a NAME for each further hotkey the same engine "
                                     "serves; repeat the flag")


def _check_behaviour(o: MinerOptions) -> None:
    """The spec's miner rules (`specs.miner_problem`), said in flags: `--copy-from URL: only
    applies to --behaviour copycat, not honest`."""
    problem = miner_problem(o.behaviour, o.backend, o.copy_from is not None,
                            bool(o.sybil_keys), _FLAG_WORDS)
    if problem is None:
        return
    field, reason = problem
    flag, value = {"copy_from": ("--copy-from", o.copy_from),
                   "sybil": ("--sybil-key", ",".join(o.sybil_keys)),
                   "backend": ("--backend", o.backend)}[field]
    raise ValueError(f"{flag} {value}: {reason}" if value else f"{flag}: {reason}")


def _check_number(flag: str, value: float | None, lo: float, hi: float) -> None:
    if value is None:
        return
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ValueError(f"{flag} {value}: must be a number in [{lo:g}, {hi:g}]")


def sim_spec(o: MinerOptions) -> SimBackendSpec:
    """The sim engine's settings: the flags given, `SimBackendSpec`'s defaults for the
    others; a `ValueError` names the flag (`--ttft -1.0: must be at least 0`)."""
    given = [flag for flag in SIM_FLAGS if getattr(o, flag.param) is not None]
    return from_flags(SimBackendSpec, given, {f.param: getattr(o, f.param) for f in given})


def parse_task_accuracy(text: str) -> dict[str, float]:
    """`--task-accuracy arithmetic=0.9,sorting=0.5`: the sim model's accuracy per task kind
    (kinds not named keep `--accuracy`)."""
    try:
        accuracy = parse_kind_values(text, KINDS, "accuracy", lambda p: 0 <= p <= 1,
                                     "in [0, 1]")
    except ValueError as exc:
        raise ValueError(f"--task-accuracy: {exc}") from None
    if not accuracy:
        raise ValueError(f"--task-accuracy {text!r}: name at least one KIND=P "
                         f"(e.g. arithmetic=0.9,sorting=0.5)")
    return accuracy


def parse_blacklist(values: Iterable[str]) -> frozenset[str]:
    """`--blacklist` hotkeys (repeatable, or comma-separated), each a valid SS58 address."""
    hotkeys: set[str] = set()
    for value in values:
        for address in (a.strip() for a in value.split(",")):
            if not address:
                continue
            try:
                ss58_decode(address)
            except InvalidAddress as exc:
                raise ValueError(f"--blacklist {address}: {exc}") from None
            hotkeys.add(address)
    return frozenset(hotkeys)


def _rate_limit(o: MinerOptions) -> RateLimit | None:
    if o.rate_limit == 0:
        return None
    return RateLimit(rate=DEFAULT_RATE if o.rate_limit is None else o.rate_limit,
                     burst=DEFAULT_BURST if o.rate_burst is None else o.rate_burst)


def _backend(o: MinerOptions, name: str) -> Backend:
    model = o.model or "default"
    if o.backend == "sim":
        sim = sim_spec(o)
        return SimBackend(SimModel(
            ttft_s=sim.ttft_seconds, tokens_per_s=sim.tokens_per_second,
            default_accuracy=sim.accuracy,
            accuracy=parse_task_accuracy(o.task_accuracy) if o.task_accuracy else {},
        ), name=name)
    assert o.backend_url is not None  # check_options
    if o.backend == "vllm":
        return VllmBackend(o.backend_url, model)
    return OpenAIBackend(o.backend_url, model, os.environ.get("OPENAI_API_KEY"))


def build_miner(o: MinerOptions, key: Keypair, sybils: Sequence[Keypair] = ()) -> Miner:
    """The miner the options describe (check them first with :func:`check_options`)."""
    check_options(o)
    hotkeys = [key.ss58_address, *(k.ss58_address for k in sybils)]
    if len(set(hotkeys)) != len(hotkeys):
        raise ValueError("--sybil-key: each names a different hotkey, none the miner's own")
    guard = RequestGuard(key.ss58_address, StaticMetagraph(), also_for=hotkeys[1:],
                         blacklist=parse_blacklist(o.blacklist), rate_limit=_rate_limit(o))
    copy_from = OpenAIBackend(o.copy_from, o.model or "default") if o.copy_from else None
    return Miner(key.ss58_address, _backend(o, key.ss58_address[:8]), guard,
                 StakePriorityGate(o.concurrency, MAX_QUEUE), o.behaviour, copy_from,
                 sybil_hotkeys=tuple(hotkeys[1:]), max_body_bytes=o.max_body_bytes)


async def publish(ledger: str, netuid: int, keys: Sequence[Keypair], ip: str,
                  port: int) -> dict[str, Any]:
    """Check the ledger and the subnet, publish each hotkey's axon at `ip:port`, and return
    the subnet's metagraph (the guard's first view); raise :class:`LaunchError`."""
    try:
        async with AsyncLedgerClient(ledger, timeout=30) as client:
            try:
                await client.subnet(netuid)
            except LedgerError as exc:
                if exc.status == 404:
                    raise LaunchError(f"--netuid {netuid}: no such subnet on the ledger at "
                                      f"{ledger}") from None
                raise LaunchError(f"the ledger at {ledger} (--ledger) answered {exc.status} "
                                  f"to GET {subnet_route(netuid)}") from None
            for key in keys:
                try:
                    await client.submit(key, "serve_axon", {"netuid": netuid, "ip": ip,
                                                            "port": port, "protocol": "http"})
                except LedgerError as exc:
                    raise LaunchError(f"serve_axon refused for {key.ss58_address} on subnet "
                                      f"{netuid} (--ledger {ledger}): {exc.code}: "
                                      f"{exc.message}") from None
            return await client.metagraph(netuid)
    except (LedgerClientError, ValueError) as exc:
        reason = str(exc) or type(exc).__name__
        raise LaunchError(f"cannot reach the ledger at {ledger} (--ledger): {reason}") from None


