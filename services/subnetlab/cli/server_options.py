"""Options and helpers of the commands that run a server: `ledger serve`, `miner serve`,
`validator run` and `engine serve`.

Each is declared once here (the log level, the bounded drain on SIGTERM, the Redis a
server keeps its data in), so the servers speak one dialect and no command module imports
another for an option.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from subnetlab.cli.errors import fail

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
