"""`subnetlab ledger serve|verify`: run the chain-ledger, and audit it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from subnetlab.cli.errors import fail

if TYPE_CHECKING:
    from subnetlab.ledger.store import BlockStore

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


@contextmanager
def redis_errors(url: str) -> Iterator[None]:
    """Turn what Redis and the store raise into one `error:` line and exit code 2.

    Exit 1 stays reserved for a failed audit; a traceback is never the answer.
    """
    import redis

    from subnetlab.ledger.store import StoreError

    try:
        yield
    except StoreError as exc:
        fail(str(exc))
    except redis.RedisError as exc:
        fail(f"cannot use redis at {url}: {exc}")
    except OSError as exc:
        fail(f"cannot reach redis at {url}: {exc}")


def open_store(url: str, chain_id: str) -> BlockStore:
    """The chain's store in Redis at `url`; a URL Redis cannot parse names --redis-url."""
    from subnetlab.ledger.store import BlockStore

    try:
        return BlockStore.from_url(url, chain_id)
    except ValueError as exc:
        fail(f"--redis-url {url!r}: {exc}")


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
    from subnetlab.telemetry.logs import configure_logging

    configure_logging(log_level)
    log = logging.getLogger("subnetlab.ledger")
    try:
        genesis = load_genesis(genesis_file) if genesis_file else dev_genesis()
    except GenesisError as exc:
        fail(str(exc))
    url = resolve_redis(redis_url, data_dir)
    store = open_store(url, genesis.chain_id)
    with redis_errors(url):
        node = LedgerNode(store, genesis, block_time=0.25 if fast else block_time,
                          snapshot_every=snapshot_every)
    log.info("ledger %s listening on http://%s:%d (block time %.2fs)", genesis.chain_id, host,
             port, node.block_time)

    def shut_down() -> None:  # block production stopped: end the process (crash-only)
        server.should_exit = True

    app = create_app(node, on_stop=shut_down)
    server = uvicorn.Server(uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False,
        timeout_graceful_shutdown=5,
    ))
    server.run()
    if not server.started:  # uvicorn logged why (e.g. the port is taken)
        fail(f"could not listen on http://{host}:{port}")
    if node.failure is not None:
        fail(f"block production stopped: {node.failure}; restart the ledger to replay the "
             "stored chain")


@ledger_app.command("verify")
def verify(
    redis_url: RedisUrl = None,
    data_dir: DataDir = None,
    chain_id: ChainId = "subnetlab-dev",
) -> None:
    """Replay the whole block log from genesis: state roots, receipts and block hashes."""
    from subnetlab.ledger.verify import verify_chain

    url = resolve_redis(redis_url, data_dir)
    store = open_store(url, chain_id)
    console = Console()
    with redis_errors(url), Progress(
        TextColumn("replaying"), BarColumn(), MofNCompleteColumn(),
        console=Console(stderr=True), transient=True,
    ) as bar:
        task = bar.add_task("blocks", total=store.height())
        result = verify_chain(store, lambda done, total: bar.update(task, completed=done))
    if result.ok:
        console.print(f"height {result.height} OK")
    else:
        console.print(f"height {result.height} FAILED at block {result.first_bad_block}: "
                      f"{result.reason}")
        raise typer.Exit(1)
