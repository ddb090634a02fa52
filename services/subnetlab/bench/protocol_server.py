"""The server side of `subnetlab bench protocol`: one trivial handler behind two routes.

``POST /plain`` echoes the request body; ``POST /signed`` does exactly the same after the
full miner-side path (:class:`~subnetlab.protocol.guard.RequestGuard`: headers, signature,
freshness, replay, recipient, metagraph lookup, blacklist, rate limit; then a slot of the
:class:`~subnetlab.protocol.priority.StakePriorityGate`). Both routes share the app, the
server and the handler, so the difference between them is the protocol's cost alone.

The synthetic metagraph has ``uids`` neurons; the first ``validators`` hold permits. Keys
are public dev keys (:meth:`Keypair.dev`), so the bench driver can derive the same ones
instead of receiving secrets. Run as ``python -m subnetlab.bench.protocol_server --port P``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from subnetlab.keys import Keypair
from subnetlab.protocol import (
    CallerInfo,
    QueueFull,
    RateLimit,
    Refusal,
    RequestGuard,
    StakePriorityGate,
    StaticMetagraph,
    busy_refusal,
)

BENCH_UIDS = 256
BENCH_VALIDATORS = 64
_JSON = "application/json"


def miner_key() -> Keypair:
    """The hotkey of the benchmark's miner (a public dev key)."""
    return Keypair.dev("bench-protocol-miner")


def neuron_key(uid: int) -> Keypair:
    """The hotkey of uid ``uid`` of the synthetic subnet (a public dev key)."""
    return Keypair.dev(f"bench-protocol-neuron-{uid}")


def synthetic_metagraph(uids: int = BENCH_UIDS, validators: int = BENCH_VALIDATORS) -> (
    StaticMetagraph
):
    """``uids`` neurons; the first ``validators`` hold permits and more stake than the rest."""
    return StaticMetagraph(
        {
            neuron_key(uid).ss58_address: CallerInfo(
                uid=uid,
                stake=float(1_000_000 * (validators - uid) if uid < validators else uid),
                validator_permit=uid < validators,
            )
            for uid in range(uids)
        }
    )


def create_app(uids: int = BENCH_UIDS, validators: int = BENCH_VALIDATORS) -> FastAPI:
    """The benchmark app; the rate limit is set far above what one client can send."""
    guard = RequestGuard(
        miner_key().ss58_address,
        synthetic_metagraph(uids, validators),
        rate_limit=RateLimit(rate=1e9, burst=1e9),
    )
    gate = StakePriorityGate(concurrency=64, max_queue=1024)
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    async def echo(body: bytes) -> Response:
        """The trivial handler both routes share: a tiny JSON answer."""
        return Response(body, media_type=_JSON)

    @app.get("/readyz")
    async def readyz() -> Response:
        return Response(b'{"ready":true}', media_type=_JSON)

    @app.get("/cpu")
    async def cpu() -> Response:
        """This process's CPU seconds so far: the driver reads it between rounds."""
        return Response(json.dumps({"cpu_s": time.process_time()}).encode(), media_type=_JSON)

    @app.post("/plain")
    async def plain(request: Request) -> Response:
        return await echo(await request.body())

    @app.post("/signed")
    async def signed(request: Request) -> Response:
        body = await request.body()
        try:
            admission = guard.check(request.headers, body)
            async with gate.slot(admission.stake):
                return await echo(body)
        except QueueFull as full:
            refusal = busy_refusal(full)
        except Refusal as refused:
            refusal = refused
        return JSONResponse(refusal.as_json(), status_code=refusal.status)

    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the benchmark app on loopback until terminated (then drained like every
    server: protocol/drain.py)."""
    from subnetlab.protocol.drain import DEFAULT_DRAIN_SECONDS, DrainingServer

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--uids", type=int, default=BENCH_UIDS)
    parser.add_argument("--validators", type=int, default=BENCH_VALIDATORS)
    args = parser.parse_args(argv)
    DrainingServer(create_app(args.uids, args.validators), DEFAULT_DRAIN_SECONDS,
                   host="127.0.0.1", port=args.port).run()


if __name__ == "__main__":
    main()
