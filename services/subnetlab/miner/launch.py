"""From a miner's settings to a miner that is published and ready to serve.

Why a module of its own: the settings are checked when they are made (`MinerSettings`,
whose errors name `miner serve`'s flags); what is left to check here needs the keys or the
ledger. Every failure is a `ValueError` (naming the flag) or a :class:`LaunchError` (the
ledger or the chain said no, naming the reason and `--ledger`), which the command turns
into one `error:` line. The ledger is asked, and the axon published, *before* the HTTP
server starts: a refusal there used to surface as a traceback from inside uvicorn's
startup. :func:`build_miner` is pure; :func:`publish` is the only I/O.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from subnetlab.engines import Backend, OpenAIBackend, SimBackend, VllmBackend
from subnetlab.keys import Keypair
from subnetlab.ledger.client import (
    AsyncLedgerClient,
    LedgerClientError,
    LedgerError,
    subnet_route,
)
from subnetlab.miner.server import Miner
from subnetlab.miner.settings import MinerSettings
from subnetlab.protocol.guard import RequestGuard
from subnetlab.protocol.metagraph import StaticMetagraph
from subnetlab.protocol.priority import StakePriorityGate

__all__ = ["LaunchError", "build_miner", "publish"]

MAX_QUEUE = 256
DEFAULT_MODEL = "default"
"""The model name sent to an openai or vllm server (or a copycat's engine) when `--model`
is not given."""


class LaunchError(RuntimeError):
    """The miner cannot start: the ledger is unreachable, or the chain refused serve_axon."""


def _backend(settings: MinerSettings, name: str) -> Backend:
    if settings.sim is not None:
        return SimBackend(settings.sim.engine(), name=name)
    assert settings.backend_url is not None  # MinerSettings: a remote backend needs it
    model = settings.model or DEFAULT_MODEL
    if settings.backend == "vllm":
        return VllmBackend(settings.backend_url, model)
    return OpenAIBackend(settings.backend_url, model, os.environ.get("OPENAI_API_KEY"))


def build_miner(settings: MinerSettings, key: Keypair, sybils: Sequence[Keypair] = ()) -> Miner:
    """The miner the settings describe, signing as `key` and each of a sybil's `sybils`."""
    hotkeys = [key.ss58_address, *(k.ss58_address for k in sybils)]
    if len(set(hotkeys)) != len(hotkeys):
        raise ValueError("--sybil-key: each names a different hotkey, none the miner's own")
    guard = RequestGuard(key.ss58_address, StaticMetagraph(), also_for=hotkeys[1:],
                         blacklist=frozenset(settings.blacklist), rate_limit=settings.rate)
    copy_from = (OpenAIBackend(settings.copy_from, settings.model or DEFAULT_MODEL)
                 if settings.copy_from else None)
    return Miner(key.ss58_address, _backend(settings, key.ss58_address[:8]), guard,
                 StakePriorityGate(settings.concurrency, MAX_QUEUE), settings.behaviour,
                 copy_from, sybil_hotkeys=tuple(hotkeys[1:]),
                 max_body_bytes=settings.max_body_bytes, keys=(key, *sybils))


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


