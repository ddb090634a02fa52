"""`subnetlab ledger serve|verify`: run the chain-ledger, and audit it."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from subnetlab.cli.errors import OneLineCommand, OneLineTyper, fail
from subnetlab.cli.server_options import (
    DataDir,
    DrainSeconds,
    LedgerMaxBodyBytes,
    LogLevel,
    RedisUrl,
    owned_redis,
)

if TYPE_CHECKING:
    from subnetlab.chain.model import Genesis
    from subnetlab.ledger.node import LedgerNode
    from subnetlab.ledger.redis_server import EmbeddedRedis
    from subnetlab.ledger.store import BlockStore
    from subnetlab.ledger.verify import VerifyResult

ledger_app = OneLineTyper(help="Run and audit the chain-ledger.")

ChainId = Annotated[str, typer.Option("--chain-id", help="Chain id (namespace in Redis).")]
DEFAULT_BLOCK_TIME = 12.0
FAST_BLOCK_TIME = 0.25


def refuse_unless_durable(store: BlockStore, url: str, volatile: bool) -> None:
    """Refuse (or, with `volatile`, warn) when the server at `url` may lose acknowledged
    blocks on a crash: receipts are reported once Redis acknowledged the block, and a
    chain that restarts on a store that lost blocks would take its old extrinsics again."""
    from subnetlab.ledger.durability import DURABLE, check_durability

    problems = check_durability(store.client)
    if not problems:
        return
    settings = ", ".join(f"{k} {v}" for k, v in DURABLE.items())
    message = (f"redis at {url} may lose blocks on a crash, though their receipts were "
               f"reported: {'; '.join(problems)} (set {settings})")
    if not volatile:
        fail(f"{message}; give --volatile-redis to run on it anyway")
    logging.getLogger("subnetlab.ledger").warning("%s; running on it (--volatile-redis)",
                                                  message)


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


@ledger_app.command("serve", cls=OneLineCommand)
def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.", min=1, max=65535)] = 9944,
    redis_url: RedisUrl = None,
    data_dir: DataDir = None,
    block_time: Annotated[
        float | None,
        typer.Option("--block-time", help="Seconds per block (default 12).", min=0.01,
                     max=3600),
    ] = None,
    fast: Annotated[
        bool, typer.Option("--fast", help="0.25 s blocks (local runs, tests).")
    ] = False,
    genesis_file: Annotated[
        Path | None, typer.Option("--genesis", help="Genesis JSON; default: the dev genesis.")
    ] = None,
    snapshot_every: Annotated[
        int, typer.Option("--snapshot-every", help="Snapshot the state every K blocks.", min=1)
    ] = 100,
    volatile: Annotated[
        bool,
        typer.Option("--volatile-redis",
                     help="Run on a --redis-url server that does not fsync every write "
                     "(appendonly yes, appendfsync always), which can lose reported "
                     "blocks; without it such a server is refused."),
    ] = False,
    new_chain: Annotated[
        bool,
        typer.Option("--new-chain",
                     help="Start this chain id again from block 0, on purpose: delete what "
                     "the store and the data dir hold of it; the dev genesis gets a new "
                     "salt (a new genesis hash, so old extrinsics are not valid on it)."),
    ] = False,
    authority_key: Annotated[
        Path | None,
        typer.Option("--authority-key",
                     help="File with the secret (BIP-39 phrase or hex seed) of the genesis "
                     "authority, which seals blocks; not needed when it is a dev key."),
    ] = None,
    log_level: LogLevel = "info",
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", min=1, max=65535,
                     help="Also serve /metrics, and nothing else, on this port (for a "
                     "NetworkPolicy that admits scrapers there but not to the API)."),
    ] = None,
    max_body_bytes: LedgerMaxBodyBytes = None,
    drain_seconds: DrainSeconds = 5.0,
) -> None:
    """Run the chain-ledger: FastAPI under uvicorn, blocks persisted to Redis.

    A busy --port (or --metrics-port) is one `error:` line and exit code 2, before
    anything starts. Ctrl-C and SIGTERM stop it (after at most --drain-seconds for the
    requests and streams in flight), and the embedded Redis it started.
    """
    from subnetlab.ledger.genesis import GenesisError, dev_genesis, load_genesis
    from subnetlab.telemetry.logs import configure_logging

    if fast and block_time is not None:
        fail("--fast and --block-time both set the block time: give one of them")
    if metrics_port == port:
        fail(f"--metrics-port {port} is the API's --port: give another one")
    configure_logging(log_level)
    log = logging.getLogger("subnetlab.ledger")
    try:
        genesis = load_genesis(genesis_file) if genesis_file else dev_genesis()
    except GenesisError as exc:
        fail(str(exc))
    # Ctrl-C and SIGTERM end the process only after the `finally` below (uvicorn handles
    # them while it serves, then raises them again: that lands here too)
    previous = {sig: signal.signal(sig, _stopped) for sig in (signal.SIGINT, signal.SIGTERM)}
    sockets: list[socket.socket] = []
    started: EmbeddedRedis | None = None
    stopped_by: int | None = None
    try:
        # the ports first: a busy one is one line, before any Redis is started
        sockets.append(_listen(host, port))
        if metrics_port is not None:  # one server, two listening sockets
            sockets.append(_listen(host, metrics_port, "--metrics-port"))
        url, started = owned_redis(redis_url, data_dir)
        chain = _Chain(genesis, genesis_file is None, data_dir, volatile, new_chain,
                       authority_key)
        _serve(url, redis_url, chain, sockets, host, port, metrics_port, block_time, fast,
               snapshot_every, log, max_body_bytes, drain_seconds)
    except _Stopped as stop:
        stopped_by = stop.signum
    finally:
        for sock in sockets:
            sock.close()
        if started is not None:  # the embedded Redis this command started goes with it
            with contextlib.suppress(Exception):
                started.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stopped_by is not None:
        log.info("ledger stopped (%s)", signal.Signals(stopped_by).name)
        # end as the signal would have ended it (exit status 128 + signal in a shell)
        signal.signal(stopped_by, signal.SIG_DFL)
        signal.raise_signal(stopped_by)


class _Stopped(Exception):  # noqa: N818 (not an error: Ctrl-C or SIGTERM)
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stopped(signum: int, _frame: object) -> None:
    raise _Stopped(signum)


@dataclass(frozen=True)
class _Chain:
    """Which chain `serve` runs, and what it may do to its store (see `_open_chain`)."""

    genesis: Genesis
    dev: bool
    data_dir: Path | None
    volatile: bool
    new_chain: bool
    authority_key: Path | None


def _open_chain(url: str, redis_url: str | None, chain: _Chain, block_time: float,
                snapshot_every: int) -> LedgerNode:
    """The node, after the store's checks: durable (or --volatile-redis), not having lost
    blocks this data dir remembers (or --new-chain), the authority's key at hand."""
    from subnetlab.ledger.authority import AuthorityError, authority_key
    from subnetlab.ledger.memory import ChainMemory, dev_salt, start_new_chain
    from subnetlab.ledger.node import LedgerNode
    from subnetlab.ledger.redis_server import default_data_dir

    folder = chain.data_dir or default_data_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"--data-dir {folder}: {exc.strerror or exc}")
    genesis = chain.genesis
    store = open_store(url, genesis.chain_id)
    memory = ChainMemory(folder, genesis.chain_id, url)
    with redis_errors(url):
        if redis_url:
            refuse_unless_durable(store, url, chain.volatile)
        if chain.new_chain:
            genesis = start_new_chain(memory, store, genesis, chain.dev)
            logging.getLogger("subnetlab.ledger").warning(
                "--new-chain: chain %s starts again at block 0 (salt %r)", genesis.chain_id,
                genesis.salt)
        elif chain.dev:
            genesis = genesis.model_copy(update={"salt": dev_salt(memory, store.genesis())})
        try:
            key = authority_key(genesis, chain.authority_key)
        except AuthorityError as exc:
            fail(str(exc))
        return LedgerNode(store, genesis, authority=key, memory=memory,
                          block_time=block_time, snapshot_every=snapshot_every)


def _serve(url: str, redis_url: str | None, chain: _Chain, sockets: list[socket.socket],
           host: str, port: int, metrics_port: int | None, block_time: float | None,
           fast: bool, snapshot_every: int,
           log: logging.Logger, max_body_bytes: int | None, drain_seconds: float) -> None:
    """The ledger on `sockets` (already listening) until it is stopped."""
    from subnetlab.ledger.app import create_app, metrics_port_only
    from subnetlab.ledger.node import MAX_BATCH_BYTES
    from subnetlab.protocol.drain import DrainingServer

    seconds = FAST_BLOCK_TIME if fast else (block_time or DEFAULT_BLOCK_TIME)
    node = _open_chain(url, redis_url, chain, block_time=seconds,
                       snapshot_every=snapshot_every)
    log.info("ledger %s listening on http://%s:%d (block time %.2fs, genesis %s, sealed by "
             "%s)", node.genesis.chain_id, host, port, node.block_time, node.genesis_hash,
             node.genesis.authority)

    def shut_down() -> None:  # block production stopped: end the process (crash-only)
        server.should_exit = True

    app = create_app(node, on_stop=shut_down,
                     max_body_bytes=MAX_BATCH_BYTES if max_body_bytes is None else max_body_bytes)
    if metrics_port is not None:
        log.info("metrics only on http://%s:%d/metrics", host, metrics_port)
    server = DrainingServer(metrics_port_only(app, metrics_port) if metrics_port else app,
                            drain_seconds, host=host, port=port)
    server.run(sockets=sockets)
    if not server.started:  # uvicorn logged why
        fail(f"could not serve on http://{host}:{port}")
    if node.failure is not None:
        fail(f"block production stopped: {node.failure}; restart the ledger to replay the "
             "stored chain")


def _listen(host: str, port: int, flag: str = "--port") -> socket.socket:
    """A TCP socket bound to host:port (IPv6 when the host is an IPv6 address), checked
    before anything starts; uvicorn listens on it."""
    from subnetlab.neuron.listen import bind_tcp

    try:
        return bind_tcp(host, port)
    except OSError as exc:
        hint = (f"; another process listens there: give another {flag}"
                if exc.errno == errno.EADDRINUSE else "")
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        fail(f"could not listen on http://{host}:{port}: {why}{hint}")


@ledger_app.command("verify", cls=OneLineCommand)
def verify(
    redis_url: RedisUrl = None,
    data_dir: DataDir = None,
    chain_id: ChainId = "subnetlab-dev",
) -> None:
    """Replay the whole block log from genesis: state roots, receipts and block hashes."""
    url, started = owned_redis(redis_url, data_dir)
    try:
        result = _verify(url, chain_id)
    finally:
        if started is not None:  # an embedded Redis this audit started goes with it
            with contextlib.suppress(Exception):
                started.stop()
    console = Console()
    if result.ok:
        console.print(f"height {result.height} OK")
    else:
        console.print(f"height {result.height} FAILED at block {result.first_bad_block}: "
                      f"{result.reason}")
        raise typer.Exit(1)


def _verify(url: str, chain_id: str) -> VerifyResult:
    from subnetlab.ledger.verify import verify_chain

    store = open_store(url, chain_id)
    with redis_errors(url), Progress(
        TextColumn("replaying"), BarColumn(), MofNCompleteColumn(),
        console=Console(stderr=True), transient=True,
    ) as bar:
        task = bar.add_task("blocks", total=store.height())
        return verify_chain(store, lambda done, total: bar.update(task, completed=done))
