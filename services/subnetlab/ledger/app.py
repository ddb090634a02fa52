"""The ledger's HTTP API (FastAPI): submit signed extrinsics, query the chain, follow blocks.

This module only assembles the app: the node and the settings on `app.state`, the lifespan
(block production, the signature worker), the error handlers (`edge.py`) and the routers
(`routes.py`). Every error is a JSON body `{"error": {"code", "message", "field"}}` with a
4xx status, so clients (the CLI, miners, validators, the operator) can branch on `code`.
The one 5xx is 503 `not_ready`: block production stopped (the store failed), and every
`/v1/` request is refused until the process, which exits, is restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from subnetlab.ledger.edge import error, install_error_handlers
from subnetlab.ledger.node import MAX_BATCH_BYTES, MAX_EXTRINSIC_BYTES, LedgerNode
from subnetlab.ledger.routes import ROUTERS, LedgerSettings, running
from subnetlab.ledger.signature_worker import SignatureWorker


def metrics_port_only(app: ASGIApp, port: int) -> ASGIApp:
    """`app`, except that a request reaching the server on `port` gets `/metrics` and
    nothing else (404 `not_found`): the port a NetworkPolicy can open to every scraper
    while the API port stays restricted to the ledger's callers."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        local = scope.get("server") or (None, None)
        if scope["type"] == "http" and local[1] == port and scope["path"] != "/metrics":
            response = error(404, "not_found", f"port {port} serves /metrics only")
            await response(scope, receive, send)
            return
        await app(scope, receive, send)

    return guarded


def create_app(
    node: LedgerNode, produce_blocks: bool = True, on_stop: Callable[[], None] | None = None,
    signature_worker: bool = True, max_body_bytes: int = MAX_BATCH_BYTES,
) -> FastAPI:
    """The API around one node; with `produce_blocks` the app's lifespan runs the chain.

    `on_stop` is called once block production has stopped for good (the node failed);
    the server uses it to shut down, so that the process exits and is restarted. With
    `signature_worker` the lifespan also runs the worker process that checks batches'
    signatures (`ledger/signature_worker.py`), so the writer's loop keeps its core for the rest.
    `max_body_bytes` caps every request body (`ledger serve --max-body-bytes`): a batch's
    whole, and a single extrinsic's up to its own `MAX_EXTRINSIC_BYTES`.
    """
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be at least 1, got {max_body_bytes}")

    async def produce() -> None:
        await node.run()  # returns only when block production stopped
        if on_stop is not None:
            on_stop()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if signature_worker and produce_blocks:
            node.signatures = await SignatureWorker.start()
        task = asyncio.create_task(produce()) if produce_blocks else None
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if node.signatures is not None:
            await node.signatures.aclose()
            node.signatures = None

    app = FastAPI(
        title="subnetlab ledger",
        version="1",
        description="A single-authority chain holding stake, weights and emissions.",
        lifespan=lifespan,
        dependencies=[Depends(running)],
    )
    app.state.node = node
    app.state.settings = LedgerSettings(
        max_body_bytes=max_body_bytes,
        extrinsic_cap=min(MAX_EXTRINSIC_BYTES, max_body_bytes),
    )
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    return app
