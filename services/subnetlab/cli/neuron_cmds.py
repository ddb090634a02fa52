"""`subnetlab miner serve`, `subnetlab validator run` and `subnetlab audit`."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel

from subnetlab.cli.errors import OneLineCommand, OneLineGroup, fail
from subnetlab.cli.server_options import (
    DrainSeconds,
    GatewayMaxBodyBytes,
    LogLevel,
    MinerMaxBodyBytes,
    resolve_redis,
)
from subnetlab.cli.shared import (
    DEFAULT_LEDGER_URL,
    HotkeyName,
    LedgerUrl,
    Netuid,
    NetuidArg,
    NeuronWallet,
)
from subnetlab.cli.signer import DevKey
from subnetlab.keys.keypair import Keypair
from subnetlab.miner.settings import MinerSettings
from subnetlab.neuron.flags import VALIDATOR_FLAGS, default_of, from_flags, range_text
from subnetlab.protocol.bodies import MAX_PROMPT_BODY_BYTES
from subnetlab.specs import (
    BackendType,
    GatewayStrategy,
    MinerBehaviour,
    ReferenceBackend,
    SimBackendSpec,
    ValidatorBehaviour,
    ValidatorSpec,
)

miner_app = typer.Typer(help="Run a miner.", no_args_is_help=True, cls=OneLineGroup)
validator_app = typer.Typer(help="Run a validator.", no_args_is_help=True, cls=OneLineGroup)

Port = Annotated[int, typer.Option("--port", help="TCP port.", min=1, max=65535)]
Host = Annotated[str, typer.Option("--host", help="Interface to listen on.")]

_M, _VALIDATOR = MinerSettings(), ValidatorSpec()
"""The models' defaults: the commands' defaults for the flags that spell their fields."""


def _spec_help(model: type[BaseModel], path: tuple[str, ...], text: str) -> str:
    """A flag's help with the spec field's range, read from the model (written there once)."""
    bounds = range_text(model, path)
    return f"{text} ({bounds})." if bounds else text


def _sim_help(field: str, text: str) -> str:
    """A sim flag's help: its range and default, both `SimBackendSpec`'s."""
    return _spec_help(SimBackendSpec, (field,), f"{text} \\[default: "
                      f"{default_of(SimBackendSpec, (field,)):g}]")


def _m_help(field: str, text: str) -> str:
    """A `miner serve` flag's help with the `MinerSettings` field's range."""
    return _spec_help(MinerSettings, (field,), text)


def _v_help(path: str | tuple[str, ...], text: str) -> str:
    """A `validator run` flag's help with the `ValidatorSpec` field's range."""
    return _spec_help(ValidatorSpec, (path,) if isinstance(path, str) else path, text)


def load_hotkey(dev_key: str | None, wallet: str | None, hotkey: str) -> Keypair:
    """The neuron's hotkey: a dev key, or a wallet's hotkey file."""
    if dev_key and wallet:
        fail("--dev-key and --wallet are exclusive: pick one")
    if dev_key:
        return Keypair.dev(dev_key)
    if wallet:
        from subnetlab.wallet import load_hotkey as load_wallet_hotkey

        try:
            key: Keypair = load_wallet_hotkey(wallet, hotkey)
        except (OSError, ValueError) as exc:
            fail(f"--wallet {wallet} --hotkey {hotkey}: {exc}")
        return key
    fail("a hotkey is needed: --wallet NAME [--hotkey NAME] or --dev-key NAME")


@miner_app.command("serve", cls=OneLineCommand)
def miner_serve(
    netuid: Netuid = 1,
    ledger: LedgerUrl = DEFAULT_LEDGER_URL,
    dev_key: DevKey = None,
    wallet: NeuronWallet = None,
    hotkey: HotkeyName = "default",
    host: Host = "127.0.0.1",
    port: Port = 8091,
    external_host: Annotated[
        str | None, typer.Option("--external-host",
                                 help="Address published on chain for callers (default: --host).")
    ] = None,
    backend: Annotated[
        BackendType, typer.Option("--backend", help="Where answers come from.")
    ] = _M.backend,
    backend_url: Annotated[
        str | None, typer.Option("--backend-url", help="openai/vllm: the server's base URL.")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="openai/vllm (or copycat's engine): model "
                                                 "name \\[default: default].")
    ] = None,
    accuracy: Annotated[
        float | None, typer.Option("--accuracy", help=_sim_help(
            "accuracy", "sim: probability of a right answer"))
    ] = None,
    task_accuracy: Annotated[
        str | None, typer.Option("--task-accuracy", metavar="KIND=P,...",
                                 help="sim: accuracy per task kind, e.g. arithmetic=0.9,"
                                      "sorting=0.5 (others keep --accuracy).")
    ] = None,
    ttft: Annotated[
        float | None, typer.Option("--ttft", help=_sim_help("ttft_seconds",
                                                            "sim: seconds to first token"))
    ] = None,
    tokens_per_s: Annotated[
        float | None, typer.Option("--tokens-per-s", help=_sim_help(
            "tokens_per_second", "sim: generation speed, tokens/s"))
    ] = None,
    behaviour: Annotated[
        MinerBehaviour, typer.Option("--behaviour", help="What the miner does (docs/protocol.md)."),
    ] = _M.behaviour,
    copy_from: Annotated[
        str | None, typer.Option("--copy-from", help="copycat: the engine URL it copies.")
    ] = None,
    sybil_key: Annotated[
        list[str] | None, typer.Option(
            "--sybil-key", metavar="NAME",
            help="sybil: a further hotkey the same engine serves (repeat; a dev key name "
                 "with --dev-key, a hotkey of --wallet otherwise).")
    ] = None,
    blacklist: Annotated[
        list[str] | None, typer.Option(
            "--blacklist", metavar="HOTKEY",
            help="Refuse this caller (SS58; repeat or comma-separate): 403 blacklisted.")
    ] = None,
    rate_limit: Annotated[
        float, typer.Option("--rate-limit", help=_m_help(
            "rate_limit", "Requests/s per caller before 429 rate_limited; 0 turns it off"))
    ] = _M.rate_limit,
    rate_burst: Annotated[
        float | None, typer.Option("--rate-burst", help=_m_help(
            "rate_burst", f"Requests per caller at once \\[default: {_M.rate_burst:g}]"))
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", help=_m_help("concurrency",
                                                        "Requests served at once"))
    ] = _M.concurrency,
    max_body_bytes: MinerMaxBodyBytes = _M.max_body_bytes,
    drain_seconds: DrainSeconds = 5.0,
    log_level: LogLevel = "info",
) -> None:
    """Serve a miner: publish the axon, follow the chain, answer signed requests."""
    from subnetlab.miner.launch import LaunchError, build_miner, publish
    from subnetlab.miner.server import create_miner_app
    from subnetlab.miner.settings import from_serve_flags
    from subnetlab.neuron.follower import ChainFollower
    from subnetlab.neuron.listen import listen, serve
    from subnetlab.protocol.metagraph import StaticMetagraph
    from subnetlab.telemetry.logs import configure_logging

    configure_logging(log_level)
    try:
        settings = from_serve_flags({
            "behaviour": behaviour, "backend": backend, "backend_url": backend_url,
            "model": model, "accuracy": accuracy, "ttft": ttft, "tokens_per_s": tokens_per_s,
            "task_accuracy": task_accuracy, "copy_from": copy_from, "sybil_key": sybil_key,
            "blacklist": blacklist, "rate_limit": rate_limit, "rate_burst": rate_burst,
            "concurrency": concurrency, "max_body_bytes": max_body_bytes})
    except ValueError as exc:
        fail(str(exc))
    keypair = load_hotkey(dev_key, wallet, hotkey)
    sybils = [load_hotkey(name, None, hotkey) if dev_key else load_hotkey(None, wallet, name)
              for name in settings.sybil_keys]
    try:
        miner = build_miner(settings, keypair, sybils)
        sock = listen(host, port)
    except ValueError as exc:
        fail(str(exc))
    try:
        first = asyncio.run(publish(ledger, netuid, [keypair, *sybils], external_host or host,
                                    port))
    except LaunchError as exc:
        sock.close()
        fail(str(exc))
    guard = miner.guard

    def on_metagraph(metagraph: dict[str, Any]) -> None:
        guard.replace_metagraph(StaticMetagraph.from_neurons(metagraph["neurons"]))

    on_metagraph(first)
    app = create_miner_app(miner)
    follower = ChainFollower(ledger, netuid, on_metagraph)

    @app.on_event("startup")
    async def start() -> None:
        app.state.follow = asyncio.create_task(follower.run())

    serve(app, sock, drain_seconds)


@validator_app.command("run", cls=OneLineCommand)
def validator_run(
    netuid: Netuid = 1,
    ledger: LedgerUrl = DEFAULT_LEDGER_URL,
    dev_key: DevKey = None,
    wallet: NeuronWallet = None,
    hotkey: HotkeyName = "default",
    redis_url: Annotated[
        str | None, typer.Option("--redis-url", help="Evidence store; default: embedded.")
    ] = None,
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Gateway port.", min=1, max=65535)] = 8092,
    behaviour: Annotated[
        ValidatorBehaviour,
        typer.Option("--behaviour", help="What the validator does (docs/protocol.md)."),
    ] = "honest",
    sample_size: Annotated[
        int, typer.Option("--sample-size", help=_v_help("sample_size", "Miners per round"))
    ] = _VALIDATOR.sample_size,
    timeout: Annotated[
        float, typer.Option("--timeout", help=_v_help("timeout_seconds", "Per query, seconds"))
    ] = _VALIDATOR.timeout_seconds,
    interval: Annotated[
        float, typer.Option("--interval", help=_v_help("interval_seconds",
                                                       "Seconds between rounds"))
    ] = _VALIDATOR.interval_seconds,
    cabal: Annotated[
        str | None, typer.Option("--cabal", metavar="UIDS",
                                 help="cabal (required there): miner uids to boost, 1,2,3.")
    ] = None,
    strategy: Annotated[
        GatewayStrategy, typer.Option("--strategy", help="Gateway: the default strategy."),
    ] = _VALIDATOR.gateway.strategy,
    fan_out: Annotated[
        int, typer.Option("--fan-out", help=_v_help(("gateway", "fan_out"),
                                                    "Gateway: miners per request"))
    ] = _VALIDATOR.gateway.fan_out,
    spot_check_rate: Annotated[
        float, typer.Option("--spot-check-rate", help=_v_help(
            ("gateway", "spot_check_rate"), "Gateway, spot-check: share of answers re-checked"))
    ] = _VALIDATOR.gateway.spot_check_rate,
    spot_check_others: Annotated[
        int, typer.Option("--spot-check-others", help=_v_help(
            ("gateway", "spot_check_others"), "Gateway, spot-check: other miners a re-check "
                                              "asks."))
    ] = _VALIDATOR.gateway.spot_check_others,
    api_keys_file: Annotated[
        Path | None, typer.Option("--api-keys-file", help="One key per line.")
    ] = None,
    tasks: Annotated[
        str, typer.Option("--tasks", help="Task mix, kind=weight (weights >= 0), e.g. "
                                          "arithmetic=1,open=2.")
    ] = "arithmetic=1,string=1,sorting=1,extraction=1,open=1",
    reference_backend: Annotated[
        ReferenceBackend,
        typer.Option("--reference-backend", help="The reference model grading open prompts "
                                                 "and organic answers; sim is a simulated "
                                                 "oracle."),
    ] = "sim",
    reference_url: Annotated[
        str | None, typer.Option("--reference-url", help="openai/vllm: the server's base URL.")
    ] = None,
    reference_model: Annotated[
        str | None, typer.Option("--reference-model", help="openai/vllm: model name "
                                                           "\\[default: default].")
    ] = None,
    ledger_wait: Annotated[
        float, typer.Option("--ledger-wait", min=0.0, max=600.0,
                            help="Seconds to wait for the ledger at startup.")
    ] = 30.0,
    max_body_bytes: GatewayMaxBodyBytes = MAX_PROMPT_BODY_BYTES,
    drain_seconds: DrainSeconds = 5.0,
    seed: Annotated[
        int | None, typer.Option("--seed", min=0, max=2**63 - 1,
                                 help="Seed of the validator's tasks and choices (whom to "
                                      "ask, spot-checks); `subnetlab up --seed` gives each "
                                      "validator one. Default: unseeded.")
    ] = None,
    log_level: LogLevel = "info",
) -> None:
    """Run a validator: query miners, set weights, commit evidence, serve the gateway."""
    from subnetlab.neuron.listen import listen, serve
    from subnetlab.specs import cabal_problem
    from subnetlab.tasks import parse_task_mix
    from subnetlab.telemetry.logs import configure_logging
    from subnetlab.validator.config import ValidatorConfig
    from subnetlab.validator.gateway import GatewayConfig, create_gateway_app
    from subnetlab.validator.loop import Validator
    from subnetlab.validator.preflight import PreflightError, check_ledger, check_redis
    from subnetlab.validator.reference import reference_backend as make_reference

    configure_logging(log_level)
    keypair = load_hotkey(dev_key, wallet, hotkey)
    try:
        # The reference flags' own checks first: their errors name the flag combination.
        reference = make_reference(reference_backend, reference_url, reference_model)
        spec = validator_spec({
            "sample_size": sample_size, "timeout": timeout, "interval": interval,
            "strategy": strategy, "fan_out": fan_out, "spot_check_rate": spot_check_rate,
            "spot_check_others": spot_check_others, "cabal": cabal,
            "reference_backend": reference_backend, "reference_url": reference_url,
            "reference_model": reference_model})
    except ValueError as exc:
        fail(str(exc))
    if problem := cabal_problem(behaviour, spec.cabal, "--behaviour"):
        fail(f"--cabal: {problem}")
    keys = _api_keys(api_keys_file)
    try:
        task_weights = parse_task_mix(tasks)
    except ValueError as exc:
        fail(f"--tasks {tasks!r}: {exc}")
    try:
        gateway = GatewayConfig.from_spec(spec.gateway, keys, max_body_bytes=max_body_bytes)
        sock = listen(host, port)  # before the evidence store, the ledger or the loop
    except ValueError as exc:
        fail(str(exc))
    store = resolve_redis(redis_url, None)
    try:
        config = replace(ValidatorConfig.from_spec(spec, keypair, netuid, ledger, store,
                                                   behaviour, task_weights), seed=seed)
        asyncio.run(check_ledger(ledger, netuid, ledger_wait))
        check_redis(store)
    except (ValueError, PreflightError) as exc:
        sock.close()
        fail(str(exc))
    validator = Validator(config, reference)
    app = create_gateway_app(validator, gateway)

    @app.on_event("startup")
    async def start() -> None:
        app.state.loop = asyncio.create_task(validator.run())

    serve(app, sock, drain_seconds)


def validator_spec(params: Mapping[str, Any]) -> ValidatorSpec:
    """The `ValidatorSpec` that `validator run`'s flags spell, by parameter name: the inverse
    of `neuron.command.role_args`, checked by the model alone (a `ValueError` names the flag)."""
    from subnetlab.cli.inputs import parse_uids

    cabal = params["cabal"]
    reference = {name: params[f"reference_{name}"] for name in ("backend", "url", "model")
                 if params[f"reference_{name}"] is not None}
    return from_flags(ValidatorSpec, VALIDATOR_FLAGS, params, {
        "cabal": parse_uids(cabal, "--cabal", distinct=False) if cabal is not None else [],
        "reference": reference})


def _api_keys(path: Path | None) -> frozenset[str]:
    """Gateway API keys: a file (one per line), else SUBNETLAB_API_KEYS (comma-separated)."""
    if path is not None:
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            fail(f"--api-keys-file {path}: {exc.strerror}")
        keys = frozenset(line.strip() for line in lines if line.strip())
    else:
        keys = frozenset(k.strip() for k in os.environ.get("SUBNETLAB_API_KEYS", "").split(",")
                         if k.strip())
    if not keys:
        fail("the gateway needs API keys: --api-keys-file FILE or SUBNETLAB_API_KEYS=k1,k2")
    return keys


def audit(
    netuid: NetuidArg,
    validator: Annotated[str, typer.Option("--validator", help="The validator's hotkey (SS58).")],
    epoch: Annotated[int, typer.Option("--epoch", help="Epoch index of the evidence.", min=0)],
    ledger: LedgerUrl = DEFAULT_LEDGER_URL,
    redis_url: Annotated[
        str | None, typer.Option("--redis-url", help="Evidence store; default: embedded.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recompute a validator's weights from its evidence; compare them with its claims and
    with the chain (exit 1 on a mismatch, saying which side differs)."""
    import json

    import redis

    from subnetlab.cli.shared import check_address
    from subnetlab.ledger.client import LedgerClient, LedgerClientError
    from subnetlab.validator.audit import audit_evidence
    from subnetlab.validator.evidence import load_evidence

    check_address(validator, "--validator")
    try:
        with LedgerClient(ledger) as client:
            digests = client.evidence(netuid, hotkey=validator, epoch=epoch)
            if not digests:
                fail(f"no evidence committed by {validator} on subnet {netuid} for epoch "
                     f"{epoch}")
            digest = str(digests[0]["digest"])
            store = resolve_redis(redis_url, None)
            try:
                evidence_store = redis.Redis.from_url(store)
            except ValueError as exc:
                fail(f"--redis-url {store}: {exc}")
            try:
                document = load_evidence(evidence_store, digest)
                if document is None:
                    fail(f"evidence {digest} is committed on chain but missing from the "
                         "evidence store")
                # The prior evidence is read from the same store: moving_before continues it.
                result = audit_evidence(client, netuid, validator, epoch, digest, document,
                                        lambda prior: load_evidence(evidence_store, prior))
            except redis.RedisError as exc:
                fail(f"--redis-url {store}: {exc}")
    except (LedgerClientError, ValueError) as exc:
        fail(f"--ledger {ledger}: {exc}")
    if as_json:
        typer.echo(json.dumps({"digest": digest, **result.as_json()}))
    else:
        verdict = "MATCH" if result.ok else f"MISMATCH ({' and '.join(result.differs)} differ)"
        typer.echo(f"{verdict}: evidence {digest} ({len(document.get('records', []))} records, "
                   f"{len(document.get('penalties', []))} penalties); chain: "
                   f"{result.chain_source}")
        for reason in result.reasons:
            typer.echo(f"  - {reason}")
        for note in result.notes:
            typer.echo(f"  note: {note}")
    if not result.ok:
        raise typer.Exit(1)
