"""The ledger's HTTP API (FastAPI): submit signed extrinsics, query the chain, follow blocks.

Every error is a JSON body `{"error": {"code", "message", "field"}}` with a 4xx status, so
clients (the CLI, miners, validators, the operator) can branch on `code`. The one 5xx is
503 `not_ready`: block production stopped (the store failed), and every `/v1/` request is
refused until the process, which exits, is restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from subnetlab.chain.extrinsic import Extrinsic
from subnetlab.chain.queries import faucet_info
from subnetlab.chain.state import account_info, metagraph, pending_commits, subnet_info
from subnetlab.keys.ss58 import is_valid_ss58
from subnetlab.ledger.node import (
    MAX_BATCH,
    MAX_BATCH_BYTES,
    MAX_EXTRINSIC_BYTES,
    LedgerNode,
    Refused,
)
from subnetlab.ledger.signature_worker import SignatureWorker
from subnetlab.ledger.views import NeuronQueryError, weight_rows
from subnetlab.protocol.bodies import MAX_JSON_DEPTH, BodyError, check_depth
from subnetlab.protocol.bodies import read_capped as read_body

WAIT_TIMEOUT_S = 30.0
EXTRINSIC_SCHEMA = Extrinsic.model_json_schema()
"""The body of POST /v1/extrinsics, for the OpenAPI document."""


def error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse(
        status_code=status, content={"error": {"code": code, "message": message, "field": field}}
    )


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


class ApiError(Exception):
    """Raised by handlers; turned into the JSON error body."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


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
    extrinsic_cap = min(MAX_EXTRINSIC_BYTES, max_body_bytes)

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

    async def running(request: Request) -> None:
        """Refuse every `/v1/` request once the node stopped: its state is not stored."""
        if node.failure is not None and request.url.path.startswith("/v1/"):
            refusal = node.not_ready()
            raise ApiError(refusal.status, refusal.code, refusal.message)

    app = FastAPI(
        title="subnetlab ledger",
        version="1",
        description="A single-authority chain holding stake, weights and emissions.",
        lifespan=lifespan,
        dependencies=[Depends(running)],
    )

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error(exc.status, exc.code, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        return error(422, "invalid_request", str(first.get("msg", "invalid request")), where)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else "http_error"
        return error(exc.status_code, code, str(exc.detail))

    def refuse(exc: Refused) -> JSONResponse:
        node.metrics.refused.labels(code=exc.code).inc()
        return JSONResponse(status_code=exc.status, content=exc.to_dict())

    # --- health --------------------------------------------------------------------------

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "not ready"}})
    async def readyz() -> JSONResponse:
        """The chain is loaded and producing blocks."""
        if not node.ready:
            refusal = node.not_ready()
            return error(refusal.status, refusal.code, refusal.message)
        return JSONResponse({"status": "ready", "block": node.height})

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics; state series (per neuron, concentration) as of now."""
        node.metrics.pending.set(len(node.pending))
        if node.signatures is not None:
            node.metrics.signature_worker_cpu.set(node.signatures.cpu_seconds)
        if node.failure is None:  # after a failure the open state is not to be trusted
            node.metrics.observe_state(node.state, node.height)
        return Response(generate_latest(node.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # --- extrinsics ----------------------------------------------------------------------

    @app.post(
        "/v1/extrinsics",
        tags=["extrinsics"],
        status_code=202,
        # declared, not validated by FastAPI: the handler parses the bytes itself, so each
        # fault gets its own code; the schema lets clients and fuzzers build real bodies
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
            "schema": EXTRINSIC_SCHEMA}}}},
        responses={200: {"description": "included (with wait=inclusion)"},
                   400: {}, 401: {}, 403: {}, 409: {}, 413: {}, 429: {},
                   503: {"description": "block production stopped (not_ready)"}},
    )
    async def submit(
        request: Request,
        wait: Annotated[Literal["none", "inclusion"], Query()] = "none",
    ) -> JSONResponse:
        """Submit one signed extrinsic (the body is `Extrinsic` JSON)."""
        try:
            body = checked_depth(await read_capped(request, extrinsic_cap))
            _, digest = await node.admit_in_turn(body)
            if wait == "inclusion":
                receipt = await node.wait_for(digest, WAIT_TIMEOUT_S)
                return JSONResponse(status_code=200, content=receipt)
        except Refused as exc:
            return refuse(exc)
        return JSONResponse(status_code=202, content={"hash": digest, "status": "pending"})

    @app.post(
        "/v1/extrinsics/batch",
        tags=["extrinsics"],
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
            "schema": {"type": "object", "required": ["extrinsics"], "properties": {
                "extrinsics": {"type": "array", "maxItems": MAX_BATCH,
                               "items": {"type": "object"}}}}}}}},
        responses={400: {}, 413: {}, 503: {"description": "block production stopped"}},
    )
    async def submit_batch(request: Request) -> JSONResponse:
        """Submit many signed extrinsics at once; each gets its own result, in order.

        At most `MAX_BATCH` extrinsics and `max_body_bytes` of body (`MAX_BATCH_BYTES`
        unless `--max-body-bytes` says otherwise; 413 `too_large` past it). The body is
        decoded by hand, a slice at a time (see `LedgerNode.admit_batch`): validating
        thousands of weight lists through a pydantic body model would cost more than
        checking the extrinsics themselves. Each item is held to the single-extrinsic size
        limit (`too_large` in its result).
        """
        try:
            raw = await read_capped(request, max_body_bytes)
            outcomes = await node.admit_batch(raw)
        except Refused as exc:
            return refuse(exc)
        results: list[dict[str, Any]] = []
        for outcome in outcomes:
            if isinstance(outcome, Refused):
                node.metrics.refused.labels(code=outcome.code).inc()
                results.append(outcome.to_dict())
            else:
                results.append({"hash": outcome[1], "status": "pending"})
        return JSONResponse({"results": results})

    @app.get("/v1/extrinsics/{digest}", tags=["extrinsics"], responses={404: {}})
    async def get_receipt(
        digest: Annotated[str, Path(pattern=r"^0x[0-9a-f]{64}$")],
    ) -> dict[str, Any]:
        """The receipt of an extrinsic: pending, included in block N, or failed (code)."""
        receipt = node.receipt(digest)
        if receipt is None:
            raise ApiError(404, "unknown_extrinsic", f"no extrinsic {digest} is known")
        return receipt

    # --- queries -------------------------------------------------------------------------

    @app.get("/v1/chain", tags=["chain"])
    async def chain() -> dict[str, Any]:
        """Chain identity and parameters; `fees`: rao per call (unlisted calls are free)."""
        return {
            "chain_id": node.genesis.chain_id,
            "genesis_hash": node.genesis_hash,
            "block": node.height,
            "block_time": node.block_time,
            "faucet": node.state.faucet_enabled,
            "sudo": node.genesis.sudo,
            "authority": node.genesis.authority,
            "fees": dict(sorted(node.state.fees.items())),
        }

    @app.get("/v1/faucet", tags=["chain"])
    async def faucet() -> dict[str, Any]:
        """The faucet: settings (budgets, proof of work), what it paid in the open block
        and interval, and `work`: the block a proof of work is to be done over (or null)."""
        return faucet_info(node.state)

    @app.get("/v1/accounts/{address}", tags=["chain"], responses={400: {}})
    async def account(address: str) -> dict[str, Any]:
        """Balance, nonce and stake positions of an account (zero for unknown accounts)."""
        if not is_valid_ss58(address):
            raise ApiError(400, "invalid_param", f"{address!r} is not a valid SS58 address",
                           "address")
        return account_info(node.state, address)

    def known_subnet(netuid: int) -> int:
        if netuid not in node.state.subnets:
            raise ApiError(404, "unknown_subnet", f"subnet {netuid} does not exist", "netuid")
        return netuid

    @app.get("/v1/subnets", tags=["chain"])
    async def subnets() -> dict[str, Any]:
        """Every subnet with its hyperparameters."""
        return {"subnets": [subnet_info(node.state, n) for n in sorted(node.state.subnets)]}

    @app.get("/v1/subnets/{netuid}", tags=["chain"], responses={404: {}})
    async def subnet(netuid: Annotated[int, Path(ge=0, le=65535)]) -> dict[str, Any]:
        """One subnet: owner, hyperparameters, size, epochs, total stake."""
        return subnet_info(node.state, known_subnet(netuid))

    @app.get("/v1/subnets/{netuid}/metagraph", tags=["chain"], responses={404: {}})
    async def subnet_metagraph(netuid: Annotated[int, Path(ge=0, le=65535)]) -> dict[str, Any]:
        """Per uid: keys, stake, consensus outputs of the last epoch, activity, axon."""
        return {"netuid": netuid, "block": node.height,
                "neurons": metagraph(node.state, known_subnet(netuid))}

    @app.get("/v1/subnets/{netuid}/weights", tags=["chain"], responses={400: {}, 404: {}})
    async def subnet_weights(
        netuid: Annotated[int, Path(ge=0, le=65535)],
        uid: Annotated[int | None, Query(ge=0, le=65535)] = None,
        hotkey: Annotated[str | None, Query()] = None,
    ) -> dict[str, Any]:
        """Weight rows set on chain (u16, as stored; under commit-reveal, as revealed).

        Every non-empty row, or with `uid` or `hotkey` that neuron's row (even empty).
        `block` is the sealed height: the rows are as that block left them.
        """
        subnet = node.state.subnets[known_subnet(netuid)]
        if hotkey is not None and not is_valid_ss58(hotkey):
            raise ApiError(400, "invalid_param", f"{hotkey!r} is not a valid SS58 address",
                           "hotkey")
        try:
            rows = weight_rows(subnet, uid, hotkey)
        except NeuronQueryError as exc:
            status = 404 if exc.code.startswith("unknown_") else 400
            raise ApiError(status, exc.code, exc.message, exc.field) from None
        return {"netuid": netuid, "block": node.height, "rows": rows}

    @app.get("/v1/subnets/{netuid}/commits", tags=["chain"], responses={400: {}, 404: {}})
    async def subnet_commits(
        netuid: Annotated[int, Path(ge=0, le=65535)],
        hotkey: Annotated[str | None, Query()] = None,
    ) -> dict[str, Any]:
        """Weight commits not yet revealed and still revealable (commit-reveal subnets),
        oldest first, optionally of one hotkey: `hotkey`, `hash`, `block`, `epoch` (when
        committed) and `reveal_epoch` (when the chain accepts the reveal)."""
        if hotkey is not None and not is_valid_ss58(hotkey):
            raise ApiError(400, "invalid_param", f"{hotkey!r} is not a valid SS58 address",
                           "hotkey")
        return {"netuid": netuid, "block": node.height,
                "commits": pending_commits(node.state, known_subnet(netuid), hotkey)}

    @app.get("/v1/blocks/latest", tags=["blocks"], responses={404: {}})
    async def latest_block() -> dict[str, Any]:
        """The newest block header, with `persisted_at` (when it was stored in Redis)."""
        if node.latest is None:
            raise ApiError(404, "no_blocks", "no block has been produced yet")
        return node.header_view(node.latest)

    @app.get("/v1/blocks/{number}", tags=["blocks"], responses={404: {}})
    async def block(number: Annotated[int, Path(ge=1)]) -> dict[str, Any]:
        """A block with its extrinsics and receipts; `persisted_at` as in the header."""
        stored = node.store.block(number)
        if stored is None:
            raise ApiError(404, "unknown_block", f"block {number} does not exist", "number")
        return {**stored, "persisted_at": node.persisted_at.get(number)}

    @app.get("/v1/evidence/{netuid}", tags=["chain"], responses={404: {}})
    async def evidence(
        netuid: Annotated[int, Path(ge=0, le=65535)],
        hotkey: Annotated[str | None, Query()] = None,
        epoch: Annotated[int | None, Query(ge=0)] = None,
    ) -> dict[str, Any]:
        """Evidence digests committed by validators, optionally for one hotkey / epoch."""
        known_subnet(netuid)
        digests = [
            {"hotkey": hk, "epoch": ep, "digest": digest}
            for (net, hk, ep), digest in sorted(node.state.evidence.items())
            if net == netuid and (hotkey is None or hk == hotkey)
            and (epoch is None or ep == epoch)
        ]
        return {"digests": digests}

    @app.get("/v1/stream/blocks", tags=["blocks"])
    async def stream_blocks(request: Request) -> StreamingResponse:
        """Server-sent events: one `block` event per new block header."""
        queue = node.subscribe()

        async def events() -> AsyncIterator[bytes]:
            try:
                if node.latest is not None:
                    yield _sse(node.header_view(node.latest))
                while not await request.is_disconnected():
                    try:
                        header = await asyncio.wait_for(queue.get(), timeout=15.0)
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                    if header is None:
                        break  # block production stopped
                    yield _sse(header)
            finally:
                node.unsubscribe(queue)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    return app


async def read_capped(request: Request, limit: int) -> bytes:
    """The request body, refused (413 `too_large`, field `body`) past `limit` bytes: the
    shared cap of `protocol/bodies.py` (Content-Length before reading, chunked bodies while
    they stream in), its refusal as the ledger's `Refused`."""
    try:
        return await read_body(request, limit)
    except BodyError as exc:
        raise Refused(exc.status, exc.code, exc.message, exc.field) from None


def checked_depth(body: bytes) -> bytes:
    """`body`, refused (400 `too_deep`, field `body`) when its JSON nests deeper than
    `MAX_JSON_DEPTH` levels (the shared check of `protocol/bodies.py`)."""
    try:
        check_depth(body, MAX_JSON_DEPTH)
    except BodyError as exc:
        raise Refused(exc.status, exc.code, exc.message, exc.field) from None
    return body


def _sse(header: dict[str, Any]) -> bytes:
    return f"event: block\ndata: {json.dumps(header)}\n\n".encode()
