"""The ledger's HTTP routes, one router per part of the API, over the app's node.

Each route reaches the node and the app's settings through dependencies (`NodeDep`,
`SettingsDep`, read from `app.state` where `app.create_app` put them), so the routes are
plain module-level functions: testable alone, and free of the app's assembly. Refusals of
the node propagate as `Refused` and become HTTP in one place (`edge.py`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from subnetlab.chain.extrinsic import Extrinsic
from subnetlab.chain.queries import faucet_info
from subnetlab.chain.state import account_info, metagraph, pending_commits, subnet_info
from subnetlab.keys.ss58 import is_valid_ss58
from subnetlab.ledger.edge import ApiError, error, status_of
from subnetlab.ledger.node import MAX_BATCH, LedgerNode, Refused
from subnetlab.ledger.views import NeuronQueryError, weight_rows
from subnetlab.protocol.bodies import MAX_JSON_DEPTH, BodyError, check_depth
from subnetlab.protocol.bodies import read_capped as read_body

WAIT_TIMEOUT_S = 30.0
EXTRINSIC_SCHEMA = Extrinsic.model_json_schema()
"""The body of POST /v1/extrinsics, for the OpenAPI document."""


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    """What `ledger serve` sets for the API: the cap on every request body, and the cap
    on one extrinsic's (its own `MAX_EXTRINSIC_BYTES`, or the body cap when smaller)."""

    max_body_bytes: int
    extrinsic_cap: int


def get_node(request: Request) -> LedgerNode:
    """The node the app serves (`app.state.node`)."""
    node: LedgerNode = request.app.state.node
    return node


def get_settings(request: Request) -> LedgerSettings:
    """The app's `LedgerSettings` (`app.state.settings`)."""
    settings: LedgerSettings = request.app.state.settings
    return settings


NodeDep = Annotated[LedgerNode, Depends(get_node)]
SettingsDep = Annotated[LedgerSettings, Depends(get_settings)]


async def running(node: NodeDep, request: Request) -> None:
    """Refuse every `/v1/` request once the node stopped: its state is not stored."""
    if node.failure is not None and request.url.path.startswith("/v1/"):
        refusal = node.not_ready()
        raise ApiError(status_of(refusal.code), refusal.code, refusal.message)


# --- health --------------------------------------------------------------------------------

health_routes = APIRouter(tags=["health"])


@health_routes.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@health_routes.get("/readyz", responses={503: {"description": "not ready"}})
async def readyz(node: NodeDep) -> JSONResponse:
    """The chain is loaded and producing blocks."""
    if not node.ready:
        refusal = node.not_ready()
        return error(status_of(refusal.code), refusal.code, refusal.message)
    return JSONResponse({"status": "ready", "block": node.height})


@health_routes.get("/metrics", response_class=Response)
async def metrics(node: NodeDep) -> Response:
    """Prometheus metrics; state series (per neuron, concentration) as of now."""
    node.metrics.pending.set(len(node.pending))
    if node.signatures is not None:
        node.metrics.signature_worker_cpu.set(node.signatures.cpu_seconds)
    if node.failure is None:  # after a failure the open state is not to be trusted
        node.metrics.observe_state(node.state, node.height)
    return Response(generate_latest(node.metrics.registry), media_type=CONTENT_TYPE_LATEST)


# --- extrinsics ----------------------------------------------------------------------------

extrinsic_routes = APIRouter(prefix="/v1/extrinsics", tags=["extrinsics"])


@extrinsic_routes.post(
    "",
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
    node: NodeDep,
    settings: SettingsDep,
    wait: Annotated[Literal["none", "inclusion"], Query()] = "none",
) -> JSONResponse:
    """Submit one signed extrinsic (the body is `Extrinsic` JSON)."""
    body = checked_depth(await read_capped(request, settings.extrinsic_cap))
    _, digest = await node.admit_in_turn(body)
    if wait == "inclusion":
        receipt = await node.wait_for(digest, WAIT_TIMEOUT_S)
        return JSONResponse(status_code=200, content=receipt)
    return JSONResponse(status_code=202, content={"hash": digest, "status": "pending"})


@extrinsic_routes.post(
    "/batch",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"type": "object", "required": ["extrinsics"], "properties": {
            "extrinsics": {"type": "array", "maxItems": MAX_BATCH,
                           "items": {"type": "object"}}}}}}}},
    responses={400: {}, 413: {}, 503: {"description": "block production stopped"}},
)
async def submit_batch(request: Request, node: NodeDep, settings: SettingsDep) -> JSONResponse:
    """Submit many signed extrinsics at once; each gets its own result, in order.

    At most `MAX_BATCH` extrinsics and `max_body_bytes` of body (`MAX_BATCH_BYTES`
    unless `--max-body-bytes` says otherwise; 413 `too_large` past it). The body is
    decoded by hand, a slice at a time (see `LedgerNode.admit_batch`): validating
    thousands of weight lists through a pydantic body model would cost more than
    checking the extrinsics themselves. Each item is held to the single-extrinsic size
    limit (`too_large` in its result).
    """
    raw = await read_capped(request, settings.max_body_bytes)
    outcomes = await node.admit_batch(raw)
    results: list[dict[str, Any]] = []
    for outcome in outcomes:
        if isinstance(outcome, Refused):
            node.metrics.refused.labels(code=outcome.code).inc()
            results.append(outcome.to_dict())
        else:
            results.append({"hash": outcome[1], "status": "pending"})
    return JSONResponse({"results": results})


@extrinsic_routes.get("/{digest}", responses={404: {}})
async def get_receipt(
    digest: Annotated[str, Path(pattern=r"^0x[0-9a-f]{64}$")], node: NodeDep,
) -> dict[str, Any]:
    """The receipt of an extrinsic: pending, included in block N, or failed (code)."""
    receipt = node.receipt(digest)
    if receipt is None:
        raise ApiError(404, "unknown_extrinsic", f"no extrinsic {digest} is known")
    return receipt


# --- queries -------------------------------------------------------------------------------

chain_routes = APIRouter(prefix="/v1", tags=["chain"])
Netuid = Annotated[int, Path(ge=0, le=65535)]
Hotkey = Annotated[str | None, Query()]


def known_subnet(node: LedgerNode, netuid: int) -> int:
    """`netuid`, or 404 `unknown_subnet` when no such subnet exists."""
    if netuid not in node.state.subnets:
        raise ApiError(404, "unknown_subnet", f"subnet {netuid} does not exist", "netuid")
    return netuid


def valid_address(address: str | None, field: str) -> None:
    """400 `invalid_param` naming `field` unless `address` is None or valid SS58."""
    if address is not None and not is_valid_ss58(address):
        raise ApiError(400, "invalid_param", f"{address!r} is not a valid SS58 address", field)


@chain_routes.get("/chain")
async def chain(node: NodeDep) -> dict[str, Any]:
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


@chain_routes.get("/faucet")
async def faucet(node: NodeDep) -> dict[str, Any]:
    """The faucet: settings (budgets, proof of work), what it paid in the open block
    and interval, and `work`: the block a proof of work is to be done over (or null)."""
    return faucet_info(node.state)


@chain_routes.get("/accounts/{address}", responses={400: {}})
async def account(address: str, node: NodeDep) -> dict[str, Any]:
    """Balance, nonce and stake positions of an account (zero for unknown accounts)."""
    valid_address(address, "address")
    return account_info(node.state, address)


@chain_routes.get("/subnets")
async def subnets(node: NodeDep) -> dict[str, Any]:
    """Every subnet with its hyperparameters."""
    return {"subnets": [subnet_info(node.state, n) for n in sorted(node.state.subnets)]}


@chain_routes.get("/subnets/{netuid}", responses={404: {}})
async def subnet(netuid: Netuid, node: NodeDep) -> dict[str, Any]:
    """One subnet: owner, hyperparameters, size, epochs, total stake."""
    return subnet_info(node.state, known_subnet(node, netuid))


@chain_routes.get("/subnets/{netuid}/metagraph", responses={404: {}})
async def subnet_metagraph(netuid: Netuid, node: NodeDep) -> dict[str, Any]:
    """Per uid: keys, stake, consensus outputs of the last epoch, activity, axon."""
    return {"netuid": netuid, "block": node.height,
            "neurons": metagraph(node.state, known_subnet(node, netuid))}


@chain_routes.get("/subnets/{netuid}/weights", responses={400: {}, 404: {}})
async def subnet_weights(
    netuid: Netuid,
    node: NodeDep,
    uid: Annotated[int | None, Query(ge=0, le=65535)] = None,
    hotkey: Hotkey = None,
) -> dict[str, Any]:
    """Weight rows set on chain (u16, as stored; under commit-reveal, as revealed).

    Every non-empty row, or with `uid` or `hotkey` that neuron's row (even empty).
    `block` is the sealed height: the rows are as that block left them.
    """
    subnet = node.state.subnets[known_subnet(node, netuid)]
    valid_address(hotkey, "hotkey")
    try:
        rows = weight_rows(subnet, uid, hotkey)
    except NeuronQueryError as exc:
        status = 404 if exc.code.startswith("unknown_") else 400
        raise ApiError(status, exc.code, exc.message, exc.field) from None
    return {"netuid": netuid, "block": node.height, "rows": rows}


@chain_routes.get("/subnets/{netuid}/commits", responses={400: {}, 404: {}})
async def subnet_commits(netuid: Netuid, node: NodeDep, hotkey: Hotkey = None) -> dict[str, Any]:
    """Weight commits not yet revealed and still revealable (commit-reveal subnets),
    oldest first, optionally of one hotkey: `hotkey`, `hash`, `block`, `epoch` (when
    committed) and `reveal_epoch` (when the chain accepts the reveal)."""
    valid_address(hotkey, "hotkey")
    return {"netuid": netuid, "block": node.height,
            "commits": pending_commits(node.state, known_subnet(node, netuid), hotkey)}


@chain_routes.get("/evidence/{netuid}", responses={404: {}})
async def evidence(
    netuid: Netuid,
    node: NodeDep,
    hotkey: Hotkey = None,
    epoch: Annotated[int | None, Query(ge=0)] = None,
) -> dict[str, Any]:
    """Evidence digests committed by validators, optionally for one hotkey / epoch."""
    known_subnet(node, netuid)
    digests = [
        {"hotkey": hk, "epoch": ep, "digest": digest}
        for (net, hk, ep), digest in sorted(node.state.evidence.items())
        if net == netuid and (hotkey is None or hk == hotkey)
        and (epoch is None or ep == epoch)
    ]
    return {"digests": digests}


# --- blocks --------------------------------------------------------------------------------

block_routes = APIRouter(prefix="/v1", tags=["blocks"])


@block_routes.get("/blocks/latest", responses={404: {}})
async def latest_block(node: NodeDep) -> dict[str, Any]:
    """The newest block header, with `persisted_at` (when it was stored in Redis)."""
    if node.latest is None:
        raise ApiError(404, "no_blocks", "no block has been produced yet")
    return node.header_view(node.latest)


@block_routes.get("/blocks/{number}", responses={404: {}})
async def block(number: Annotated[int, Path(ge=1)], node: NodeDep) -> dict[str, Any]:
    """A block with its extrinsics and receipts; `persisted_at` as in the header."""
    stored = node.store.block(number)
    if stored is None:
        raise ApiError(404, "unknown_block", f"block {number} does not exist", "number")
    return {**stored, "persisted_at": node.persisted_at.get(number)}


@block_routes.get("/stream/blocks")
async def stream_blocks(request: Request, node: NodeDep) -> StreamingResponse:
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


ROUTERS = (health_routes, extrinsic_routes, chain_routes, block_routes)
"""Every router of the API, in the order `create_app` includes them."""


# --- bodies --------------------------------------------------------------------------------


async def read_capped(request: Request, limit: int) -> bytes:
    """The request body, refused (`too_large`, field `body`) past `limit` bytes: the
    shared cap of `protocol/bodies.py` (Content-Length before reading, chunked bodies while
    they stream in), its refusal as the ledger's `Refused`."""
    try:
        return await read_body(request, limit)
    except BodyError as exc:
        raise Refused(exc.code, exc.message, exc.field) from None


def checked_depth(body: bytes) -> bytes:
    """`body`, refused (`too_deep`, field `body`) when its JSON nests deeper than
    `MAX_JSON_DEPTH` levels (the shared check of `protocol/bodies.py`)."""
    try:
        check_depth(body, MAX_JSON_DEPTH)
    except BodyError as exc:
        raise Refused(exc.code, exc.message, exc.field) from None
    return body


def _sse(header: dict[str, Any]) -> bytes:
    return f"event: block\ndata: {json.dumps(header)}\n\n".encode()
