"""The listening socket of a miner or a validator, bound before anything else starts.

Why a module of its own: `miner serve` and `validator run` both take `--host` and `--port`.
Left to uvicorn, a port in use or a host that is no address of this machine shows up only
once the server starts (after the axon is published, after the validator's loop task is
running), as uvicorn's own log line and its exit code. Binding first turns either into a
`ValueError` naming the flag, which the command prints as one `error:` line before it has
started or changed anything; uvicorn is then handed the socket already bound.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

__all__ = ["bind_tcp", "listen", "serve"]


def bind_tcp(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host:port` (not yet listening: uvicorn listens on it with
    its own backlog); `OSError` when the host does not resolve or the bind fails.

    The socket is made with the protocol getaddrinfo names (`IPPROTO_TCP`), never 0:
    asyncio sets TCP_NODELAY only on accepted connections whose protocol is IPPROTO_TCP,
    and without it every response on a kept-alive connection waited about 40 ms for the
    client's delayed ACK (Nagle). `socket.create_server` makes protocol-0 sockets, which
    is how the ledger answered each request in 44 ms whatever the request."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to `host:port`; `ValueError` naming `--host` (a name that does not
    resolve, an address not on this machine) or `--port` (in use, not allowed)."""
    try:
        return bind_tcp(host, port)
    except socket.gaierror as exc:
        raise ValueError(f"--host {host}: {exc.strerror or exc}") from None
    except OSError as exc:
        flag = f"--host {host}" if exc.errno == errno.EADDRNOTAVAIL else f"--port {port}"
        raise ValueError(f"{flag}: cannot listen on {host}:{port}: "
                         f"{exc.strerror or exc}") from None


def serve(app: Any, sock: socket.socket, drain_seconds: float) -> None:
    """Serve the ASGI `app` on the socket :func:`listen` bound, quietly (no access log);
    on SIGTERM or Ctrl-C drain for at most `drain_seconds`, then exit (protocol/drain.py)."""
    from subnetlab.protocol.drain import DrainingServer

    DrainingServer(app, drain_seconds).run(sockets=[sock])
