"""`subnetlab ledger serve|verify`: run the chain-ledger, and audit it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from subnetlab.cli.errors import fail

ledger_app = typer.Typer(help="Run and audit the chain-ledger.", no_args_is_help=True)

RedisUrl = Annotated[
    str | None,
    typer.Option(
        "--redis-url", help="Redis URL; default: an embedded Redis under ~/.subnetlab/ledger/."
    ),
]
DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Where the embedded Redis keeps its files."),
]
ChainId = Annotated[str, typer.Option("--chain-id", help="Chain id (namespace in Redis).")]


def resolve_redis(redis_url: str | None, data_dir: Path | None) -> str:
    """The given URL, or an embedded Redis started (or reused) under the data dir."""
    if redis_url:
        return redis_url
    from subnetlab.ledger.redis_server import DEFAULT_DATA_DIR, EmbeddedRedis, EmbeddedRedisError

    embedded = EmbeddedRedis(data_dir or DEFAULT_DATA_DIR)
    try:
        url = embedded.ensure_running()
    except EmbeddedRedisError as exc:
        fail(str(exc))
    logging.getLogger("subnetlab.ledger").info("using embedded redis at %s", embedded.socket)
    return url


@ledger_app.command("serve")
def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.", min=1, max=65535)] = 9944,
    redis_url: RedisUrl = None,
    data_dir: DataDir = None,
    block_time: Annotated[
        float, typer.Option("--block-time", help="Seconds per block.", min=0.01, max=3600)
    ] = 12.0,
    fast: Annotated[
        bool, typer.Option("--fast", help="0.25 s blocks (local runs, tests).")
    ] = False,
    genesis_file: Annotated[
        Path | None, typer.Option("--genesis", help="Genesis JSON; default: the dev genesis.")
    ] = None,
    snapshot_every: Annotated[
        int, typer.Option("--snapshot-every", help="Snapshot the state every K blocks.", min=1)
    ] = 100,
    log_level: Annotated[str, typer.Option("--log-level", help="debug|info|warning")] = "info",
) -> None:
    """Run the chain-ledger: FastAPI under uvicorn, blocks persisted to Redis."""
    import uvicorn

    from subnetlab.ledger.app import create_app
    from subnetlab.ledger.genesis import GenesisError, dev_genesis, load_genesis
    from subnetlab.ledger.node import LedgerNode
    from subnetlab.ledger.store import BlockStore, StoreError
    from subnetlab.telemetry.logs import configure_logging

    configure_logging(log_level)
    log = logging.getLogger("subnetlab.ledger")
    try:
        genesis = load_genesis(genesis_file) if genesis_file else dev_genesis()
    except GenesisError as exc:
        fail(str(exc))
    url = resolve_redis(redis_url, data_dir)
    try:
        store = BlockStore.from_url(url, genesis.chain_id)
        node = LedgerNode(store, genesis, block_time=0.25 if fast else block_time,
                          snapshot_every=snapshot_every)
    except StoreError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot reach redis at {url}: {exc}")
    except Exception as exc:  # redis.ConnectionError and friends
        if type(exc).__module__.startswith("redis"):
            fail(f"cannot use redis at {url}: {exc}")
        raise
    log.info("ledger %s listening on http://%s:%d (block time %.2fs)", genesis.chain_id, host,
             port, node.block_time)
    uvicorn.run(create_app(node), host=host, port=port, log_level="warning", access_log=False)


@ledger_app.command("verify")
def verify(
    redis_url: RedisUrl = None,
    data_dir: DataDir = None,
    chain_id: ChainId = "subnetlab-dev",
) -> None:
    """Replay the whole block log from genesis and check every state root."""
    from subnetlab.ledger.store import BlockStore, StoreError
    from subnetlab.ledger.verify import verify_chain

    url = resolve_redis(redis_url, data_dir)
    store = BlockStore.from_url(url, chain_id)
    console = Console()
    try:
        with Progress(TextColumn("replaying"), BarColumn(), MofNCompleteColumn(),
                      console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("blocks", total=store.height())
            result = verify_chain(store, lambda done, total: bar.update(task, completed=done))
    except StoreError as exc:
        fail(str(exc))
    if result.ok:
        console.print(f"height {result.height} OK")
    else:
        console.print(f"height {result.height} FAILED at block {result.first_bad_block}: "
                      f"{result.reason}")
        raise typer.Exit(1)
