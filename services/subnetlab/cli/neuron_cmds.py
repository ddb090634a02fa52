"""`subnetlab miner serve`, `subnetlab validator run` and `subnetlab audit`."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from subnetlab.cli.errors import OneLineCommand, OneLineGroup, fail
from subnetlab.cli.server_options import DrainSeconds, LogLevel, resolve_redis
from subnetlab.keys.keypair import Keypair
from subnetlab.protocol.bodies import MAX_BODY_BYTES_LIMIT, MAX_PROMPT_BODY_BYTES

miner_app = typer.Typer(help="Run a miner.", no_args_is_help=True, cls=OneLineGroup)
validator_app = typer.Typer(help="Run a validator.", no_args_is_help=True, cls=OneLineGroup)

DEFAULT_LEDGER = os.environ.get("SUBNETLAB_LEDGER", "http://127.0.0.1:9944")

Ledger = Annotated[str, typer.Option("--ledger", envvar="SUBNETLAB_LEDGER",
                                     help="Ledger URL (or $SUBNETLAB_LEDGER).")]
Netuid = Annotated[int, typer.Option("--netuid", help="Subnet.", min=1, max=65535)]
DevKey = Annotated[
    str | None, typer.Option("--dev-key", help="Use the dev key of this name (local testnets).")
]
Wallet = Annotated[str | None, typer.Option("--wallet", "--name", metavar="NAME",
                                            help="Wallet name (as on the chain commands).")]
Hotkey = Annotated[str, typer.Option("--hotkey", help="Hotkey name in the wallet.")]
Port = Annotated[int, typer.Option("--port", help="TCP port.", min=1, max=65535)]
Host = Annotated[str, typer.Option("--host", help="Interface to listen on.")]
def load_hotkey(dev_key: str | None, wallet: str | None, hotkey: str) -> Keypair:
    """The neuron's hotkey: a dev key, or a wallet's hotkey file."""
    if dev_key and wallet:
        fail("--dev-key and --wallet are exclusive: pick one")
    if dev_key:
        return Keypair.dev(dev_key)
    if wallet:
        try:
            from subnetlab.wallet import (  # type: ignore[import-not-found,unused-ignore]
                load_hotkey as load_wallet_hotkey,
            )
        except ImportError:
            fail("wallets are not available in this build; use --dev-key")
        try:
            key: Keypair = load_wallet_hotkey(wallet, hotkey)
        except (OSError, ValueError) as exc:
            fail(f"--wallet {wallet} --hotkey {hotkey}: {exc}")
        return key
    fail("a hotkey is needed: --wallet NAME [--hotkey NAME] or --dev-key NAME")


@miner_app.command("serve", cls=OneLineCommand)
def miner_serve(
    netuid: Netuid = 1,
    ledger: Ledger = DEFAULT_LEDGER,
    dev_key: DevKey = None,
    wallet: Wallet = None,
    hotkey: Hotkey = "default",
    host: Host = "127.0.0.1",
    port: Port = 8091,
    external_host: Annotated[
        str | None, typer.Option("--external-host",
                                 help="Address published on chain for callers (default: --host).")
    ] = None,
    backend: Annotated[
        Literal["sim", "openai", "vllm"], typer.Option("--backend", help="Where answers come from.")
    ] = "sim",
    backend_url: Annotated[
        str | None, typer.Option("--backend-url", help="openai/vllm: the server's base URL.")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="openai/vllm (or copycat's engine): model "
                                                 "name \\[default: default].")
    ] = None,
    accuracy: Annotated[
        float | None, typer.Option("--accuracy", help="sim: probability of a right answer "
                                                     "\\[default: 0.95].")
    ] = None,
    task_accuracy: Annotated[
        str | None, typer.Option("--task-accuracy", metavar="KIND=P,...",
                                 help="sim: accuracy per task kind, e.g. arithmetic=0.9,"
                                      "sorting=0.5 (others keep --accuracy).")
    ] = None,
    ttft: Annotated[
        float | None, typer.Option("--ttft", help="sim: seconds to first token \\[default: 0.03].")
    ] = None,
    tokens_per_s: Annotated[
        float | None, typer.Option("--tokens-per-s", help="sim: generation speed \\[default: 400].")
    ] = None,
    behaviour: Annotated[
        Literal["honest", "lazy", "copycat", "passthrough", "sybil"],
        typer.Option("--behaviour", help="What the miner does (docs/protocol.md)."),
    ] = "honest",
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
        float | None, typer.Option("--rate-limit", help="Requests/s per caller before 429 "
                                                        "rate_limited; 0 turns it off "
                                                        "\\[default: 50].")
    ] = None,
    rate_burst: Annotated[
        float | None, typer.Option("--rate-burst", help="Requests per caller at once "
                                                       "\\[default: 100].")
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1)] = 8,
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", envvar="SUBNETLAB_MINER_MAX_BODY_BYTES",
                          min=1, max=MAX_BODY_BYTES_LIMIT,
                          help="Largest request body; a bigger one is refused with 413 "
                               "too_large (or $SUBNETLAB_MINER_MAX_BODY_BYTES).")
    ] = MAX_PROMPT_BODY_BYTES,
    drain_seconds: DrainSeconds = 5.0,
    log_level: LogLevel = "info",
) -> None:
    """Serve a miner: publish the axon, follow the chain, answer signed requests."""
    from subnetlab.miner.launch import LaunchError, MinerOptions, build_miner, publish
    from subnetlab.miner.server import create_miner_app
    from subnetlab.neuron.follower import ChainFollower
    from subnetlab.neuron.listen import listen, serve
    from subnetlab.protocol.metagraph import StaticMetagraph
    from subnetlab.telemetry.logs import configure_logging

    configure_logging(log_level)
    options = MinerOptions(
        backend=backend, backend_url=backend_url, model=model, accuracy=accuracy,
        task_accuracy=task_accuracy, ttft=ttft, tokens_per_s=tokens_per_s, behaviour=behaviour,
        copy_from=copy_from, sybil_keys=tuple(sybil_key or ()), blacklist=tuple(blacklist or ()),
        rate_limit=rate_limit, rate_burst=rate_burst, concurrency=concurrency,
        max_body_bytes=max_body_bytes)
    keypair = load_hotkey(dev_key, wallet, hotkey)
    sybils = [load_hotkey(name, None, hotkey) if dev_key else load_hotkey(None, wallet, name)
              for name in options.sybil_keys]
    try:
        miner = build_miner(options, keypair, sybils)
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
    ledger: Ledger = DEFAULT_LEDGER,
    dev_key: DevKey = None,
    wallet: Wallet = None,
    hotkey: Hotkey = "default",
    redis_url: Annotated[
        str | None, typer.Option("--redis-url", help="Evidence store; default: embedded.")
    ] = None,
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Gateway port.", min=1, max=65535)] = 8092,
    behaviour: Annotated[
        Literal["honest", "weight-copier", "cabal", "lazy"],
        typer.Option("--behaviour", help="What the validator does (docs/protocol.md)."),
    ] = "honest",
    sample_size: Annotated[int, typer.Option("--sample-size", min=1)] = 4,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Per query, seconds.", min=0.01)
    ] = 5.0,
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between rounds (at least 0.05).")
    ] = 1.0,
    cabal: Annotated[
        str | None, typer.Option("--cabal", metavar="UIDS",
                                 help="cabal (required there): miner uids to boost, 1,2,3.")
    ] = None,
    strategy: Annotated[
        Literal["broadcast", "best-of-n", "spot-check"],
        typer.Option("--strategy", help="Gateway: the default strategy."),
    ] = "broadcast",
    fan_out: Annotated[
        int, typer.Option("--fan-out", help="Gateway: miners per request.", min=1)
    ] = 3,
    spot_check_rate: Annotated[
        float, typer.Option("--spot-check-rate", min=0.0, max=1.0,
                            help="Gateway, spot-check: share of answers re-checked.")
    ] = 0.1,
    spot_check_others: Annotated[
        int, typer.Option("--spot-check-others", min=1, max=8,
                          help="Gateway, spot-check: other miners a re-check asks.")
    ] = 2,
    api_keys_file: Annotated[
        Path | None, typer.Option("--api-keys-file", help="One key per line.")
    ] = None,
    tasks: Annotated[
        str, typer.Option("--tasks", help="Task mix, kind=weight (weights >= 0), e.g. "
                                          "arithmetic=1,open=2.")
    ] = "arithmetic=1,string=1,sorting=1,extraction=1,open=1",
    reference_backend: Annotated[
        Literal["sim", "openai", "vllm"],
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
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", envvar="SUBNETLAB_GATEWAY_MAX_BODY_BYTES",
                          min=1, max=MAX_BODY_BYTES_LIMIT,
                          help="Gateway: largest request body; a bigger one is refused with "
                               "413 too_large (or $SUBNETLAB_GATEWAY_MAX_BODY_BYTES).")
    ] = MAX_PROMPT_BODY_BYTES,
    drain_seconds: DrainSeconds = 5.0,
    log_level: LogLevel = "info",
) -> None:
    """Run a validator: query miners, set weights, commit evidence, serve the gateway."""
    from subnetlab.cli.inputs import parse_uids
    from subnetlab.neuron.listen import listen, serve
    from subnetlab.specs import cabal_problem
    from subnetlab.tasks import parse_task_mix
    from subnetlab.telemetry.logs import configure_logging
    from subnetlab.validator.config import MIN_INTERVAL_S, ValidatorConfig
    from subnetlab.validator.gateway import GatewayConfig, create_gateway_app
    from subnetlab.validator.loop import Validator
    from subnetlab.validator.preflight import PreflightError, check_ledger, check_redis
    from subnetlab.validator.reference import reference_backend as make_reference

    configure_logging(log_level)
    keypair = load_hotkey(dev_key, wallet, hotkey)
    if not interval >= MIN_INTERVAL_S:
        fail(f"--interval {interval}: must be at least {MIN_INTERVAL_S} s")
    try:
        cabal_uids = frozenset(parse_uids(cabal, "--cabal", distinct=False)
                               if cabal is not None else ())
    except ValueError as exc:
        fail(str(exc))
    if problem := cabal_problem(behaviour, cabal_uids, "--behaviour"):
        fail(f"--cabal: {problem}")
    keys = _api_keys(api_keys_file)
    try:
        task_weights = parse_task_mix(tasks)
    except ValueError as exc:
        fail(f"--tasks {tasks!r}: {exc}")
    try:
        reference = make_reference(reference_backend, reference_url, reference_model)
        gateway = GatewayConfig(keys, strategy, fan_out, spot_check_rate,
                                spot_check_others=spot_check_others,
                                max_body_bytes=max_body_bytes)
        sock = listen(host, port)  # before the evidence store, the ledger or the loop
    except ValueError as exc:
        fail(str(exc))
    store = resolve_redis(redis_url, None)
    try:
        config = ValidatorConfig(keypair, netuid, ledger, store, behaviour, sample_size,
                                 timeout, interval, cabal=cabal_uids, task_weights=task_weights)
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
    netuid: Annotated[int, typer.Argument(help="Subnet.", min=1, max=65535)],
    validator: Annotated[str, typer.Option("--validator", help="The validator's hotkey (SS58).")],
    epoch: Annotated[int, typer.Option("--epoch", help="Epoch index of the evidence.", min=0)],
    ledger: Ledger = DEFAULT_LEDGER,
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
