"""Options and helpers of the commands that run a server: `ledger serve`, `miner serve`,
`validator run` and `engine serve`.

Each is declared once here (the log level, the bounded drain on SIGTERM, the Redis a
server keeps its data in), so the servers speak one dialect and no command module imports
another for an option.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from subnetlab.cli.errors import fail
from subnetlab.protocol.bodies import MAX_BODY_BYTES_LIMIT

if TYPE_CHECKING:
    from subnetlab.ledger.redis_server import EmbeddedRedis

LogLevel = Annotated[
    Literal["debug", "info", "warning", "error"], typer.Option("--log-level", help="Log level.")
]


def _drain_seconds(value: float) -> float:
    """`--drain-seconds`, checked while the command line is parsed (NaN included, which
    click's own range check lets through): a bad value is one `error:` line."""
    from subnetlab.protocol.drain import check_drain_seconds

    try:
        return check_drain_seconds(value)
    except ValueError as exc:
        fail(str(exc))


DrainSeconds = Annotated[
    float, typer.Option("--drain-seconds", envvar="SUBNETLAB_DRAIN_SECONDS",
                        callback=_drain_seconds,
                        help="On SIGTERM or Ctrl-C, let requests in flight finish for at most "
                             "this many seconds (0-300), then exit (or "
                             "$SUBNETLAB_DRAIN_SECONDS).")
]


def max_body_bytes_option(envvar: str, what: str = "Largest request body",
                          default_note: str = "") -> Any:
    """`--max-body-bytes`, the body cap of a server (`miner serve`, `validator run`'s
    gateway, `ledger serve`): one flag, one range (1 byte to `MAX_BODY_BYTES_LIMIT`), its
    own environment variable per server."""
    return typer.Option("--max-body-bytes", envvar=envvar, min=1, max=MAX_BODY_BYTES_LIMIT,
                        help=f"{what}; a bigger one is refused with 413 too_large (or "
                             f"${envvar}){default_note}.")


MinerMaxBodyBytes = Annotated[int, max_body_bytes_option("SUBNETLAB_MINER_MAX_BODY_BYTES")]
GatewayMaxBodyBytes = Annotated[int, max_body_bytes_option(
    "SUBNETLAB_GATEWAY_MAX_BODY_BYTES", "Gateway: largest request body")]
LedgerMaxBodyBytes = Annotated[int | None, max_body_bytes_option(
    "SUBNETLAB_LEDGER_MAX_BODY_BYTES", "Largest request body, a batch of extrinsics (one "
    "extrinsic is at most 65536 bytes whatever this says)", " \\[default: 4194304]")]
"""The ledger's: unset means `ledger.node.MAX_BATCH_BYTES` (not imported here: the ledger
loads only when it is run)."""


RedisUrl = Annotated[
    str | None,
    typer.Option(
        "--redis-url",
        help="Redis URL; default: an embedded Redis under $SUBNETLAB_HOME/ledger/ "
        "(~/.subnetlab/ledger/).",
    ),
]
DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Where the embedded Redis keeps its files; default: "
                 "$SUBNETLAB_HOME/ledger/."),
]


def resolve_redis(redis_url: str | None, data_dir: Path | None) -> str:
    """The given URL, or an embedded Redis started (or reused) under the data dir."""
    return owned_redis(redis_url, data_dir)[0]


def owned_redis(redis_url: str | None, data_dir: Path | None) -> tuple[str, EmbeddedRedis | None]:
    """`resolve_redis`, and the embedded Redis when this call started it (so the caller
    stops it when done); None when it was given a URL or reused a running one."""
    if redis_url:
        return redis_url, None
    from subnetlab.ledger.redis_server import EmbeddedRedis, EmbeddedRedisError, default_data_dir

    folder = data_dir or default_data_dir()
    flag = f"--data-dir {folder}" if data_dir else f"data dir {folder}"
    if folder.exists() and not folder.is_dir():
        fail(f"{flag}: exists and is not a directory")
    embedded = EmbeddedRedis(folder)
    started = not embedded.is_running()
    try:
        url = embedded.ensure_running()
    except EmbeddedRedisError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{flag}: {exc.strerror or exc}")
    logging.getLogger("subnetlab.ledger").info("using embedded redis at %s", embedded.socket)
    return url, embedded if started else None
