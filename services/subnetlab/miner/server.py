"""The miner's HTTP server: a signed, OpenAI-compatible `/v1/chat/completions`.

Every request passes the protocol guard (signature, freshness, replay, registration,
permit, blacklist, rate limit; see docs/protocol.md), then waits for a slot in the
stake-ordered gate, then is answered according to the miner's behaviour:

- honest: the backend answers;
- lazy: a canned wrong answer at once, no compute (what a freeloader does);
- copycat: the answer comes from someone else's engine (`copy_from`, an OpenAI-compatible
  URL), claimed as the miner's own, with no compute of its own;
- passthrough: the backend is an external OpenAI-compatible API (label only: the
  `openai` backend does the forwarding);
- sybil: honest answers, but one engine behind several hotkeys (label only: `subnetlab up`
  points several miners at one backend).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from subnetlab.miner.backends import (
    Backend,
    Completion,
    OpenAIBackend,
    StreamUsage,
    count_tokens,
)
from subnetlab.miner.metrics import MinerMetrics
from subnetlab.protocol.guard import Refusal, RequestGuard, busy_refusal
from subnetlab.protocol.priority import QueueFull, StakePriorityGate
from subnetlab.protocol.sse import DONE, ChunkWriter, wants_usage

MINER_BEHAVIOURS = ("honest", "lazy", "copycat", "passthrough", "sybil")
LAZY_ANSWER = "42"


@dataclass
class Miner:
    """Everything one miner process needs to answer."""

    hotkey: str
    backend: Backend
    guard: RequestGuard
    gate: StakePriorityGate
    behaviour: str = "honest"
    copy_from: OpenAIBackend | None = None
    metrics: MinerMetrics | None = None

    def __post_init__(self) -> None:
        if self.behaviour not in MINER_BEHAVIOURS:
            raise ValueError(f"behaviour {self.behaviour!r} is not one of "
                             f"{', '.join(MINER_BEHAVIOURS)}")
        if self.behaviour == "copycat" and self.copy_from is None:
            raise ValueError("a copycat miner needs copy_from (the engine it copies)")
        if self.metrics is None:
            self.metrics = MinerMetrics()

    async def answer(self, body: dict[str, Any]) -> Completion:
        """The completion this miner's behaviour produces for a request."""
        if self.behaviour == "lazy":
            return Completion(LAZY_ANSWER, f"lazy:{self.backend.name}", 0, 1, 0.0,
                              simulated=True)
        if self.behaviour == "copycat":
            assert self.copy_from is not None
            copied = await self.copy_from.complete(body)
            return Completion(copied.text, self.backend.name, copied.prompt_tokens, 0, 0.0,
                              simulated=False)
        return await self.backend.complete(body)


def completion_body(completion: Completion, hotkey: str) -> dict[str, Any]:
    """An OpenAI `chat.completion` object, plus a `subnetlab` block with the compute."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": completion.model,
        "system_fingerprint": "simulated" if completion.simulated else None,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": completion.text}}],
        "usage": {"prompt_tokens": completion.prompt_tokens,
                  "completion_tokens": completion.completion_tokens,
                  "total_tokens": completion.prompt_tokens + completion.completion_tokens},
        "subnetlab": {"miner": hotkey, "simulated": completion.simulated,
                      "engine_seconds": completion.engine_seconds},
    }


def create_miner_app(miner: Miner) -> FastAPI:
    """The ASGI app of one miner."""
    app = FastAPI(title="subnetlab miner", version="1")
    metrics = miner.metrics
    assert metrics is not None

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "hotkey": miner.hotkey, "behaviour": miner.behaviour}

    @app.get("/metrics")
    async def prometheus() -> Response:
        metrics.queue_depth.set(miner.gate.queue_depth)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        raw = await request.body()
        try:
            admission = miner.guard.check(request.headers, raw)
        except Refusal as refusal:
            metrics.requests.labels(caller="unknown", outcome=refusal.code.value).inc()
            return JSONResponse(status_code=refusal.status, content=refusal.as_json())
        caller = admission.hotkey
        try:
            body = json.loads(raw)
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                raise ValueError("body must be an object with a 'messages' list")
        except ValueError as exc:
            metrics.requests.labels(caller=caller, outcome="bad_request").inc()
            return JSONResponse(status_code=400, content={"error": {
                "code": "bad_request", "message": f"invalid chat request: {exc}"}})
        try:
            if body.get("stream"):
                # the slot is held until the last chunk is sent, and released by the stream
                await miner.gate.acquire(admission.stake)
                metrics.requests.labels(caller=caller, outcome="ok").inc()
                return StreamingResponse(_stream(miner, body, metrics, time.perf_counter()),
                                         media_type="text/event-stream")
            async with miner.gate.slot(admission.stake):
                started = time.perf_counter()
                try:
                    completion = await miner.answer(body)
                except Exception as exc:  # the backend failed: say so, stay up
                    metrics.requests.labels(caller=caller, outcome="backend_error").inc()
                    return JSONResponse(status_code=502, content={"error": {
                        "code": "backend_error", "message": f"{type(exc).__name__}: {exc}"}})
                metrics.backend_seconds.observe(time.perf_counter() - started)
                metrics.tokens.inc(completion.completion_tokens)
                metrics.requests.labels(caller=caller, outcome="ok").inc()
                return JSONResponse(completion_body(completion, miner.hotkey))
        except QueueFull as exc:
            busy = busy_refusal(exc)
            metrics.requests.labels(caller=caller, outcome=busy.code.value).inc()
            return JSONResponse(status_code=busy.status, content=busy.as_json())

    return app


async def _stream(
    miner: Miner, body: dict[str, Any], metrics: MinerMetrics, started: float
) -> AsyncIterator[bytes]:
    """OpenAI-style SSE chunks; a final usage chunk when `stream_options.include_usage`."""
    try:
        async for chunk in _chunks(miner, body, metrics, started):
            yield chunk
    finally:
        miner.gate.release()


async def _chunks(
    miner: Miner, body: dict[str, Any], metrics: MinerMetrics, started: float
) -> AsyncIterator[bytes]:
    produced = 0
    engine: StreamUsage | None = None  # the engine's own counts, when it reports them
    if miner.behaviour in ("lazy", "copycat"):
        completion = await miner.answer(body)
        pieces: AsyncIterator[str | StreamUsage] = _single(completion.text)
        model = completion.model
    else:
        pieces = miner.backend.stream(body)
        model = miner.backend.name
    writer = ChunkWriter(model)
    async for piece in pieces:
        if isinstance(piece, StreamUsage):
            engine = piece
            continue
        produced += count_tokens(piece)
        yield writer.content(piece)
    yield writer.finish()
    prompt_tokens = 0
    if engine is not None:
        prompt_tokens, produced = engine.prompt_tokens, engine.completion_tokens
    if wants_usage(body):
        yield writer.usage(prompt_tokens, produced)
    yield DONE
    metrics.backend_seconds.observe(time.perf_counter() - started)
    metrics.tokens.inc(produced)


async def _single(text: str) -> AsyncIterator[str | StreamUsage]:
    yield text
