"""The miner's HTTP server: a signed, OpenAI-compatible `/v1/chat/completions`.

Every request passes the protocol guard (signature, freshness, replay, registration,
permit, blacklist, rate limit; see docs/protocol.md), then waits for a slot in the
stake-ordered gate, then is answered according to the miner's behaviour (what each one
does, precisely, is in docs/protocol.md, "Miner behaviours"):

- honest: its own backend answers (sim, vllm, or an OpenAI-compatible server it runs);
- lazy: a canned wrong answer at once, no compute (what a freeloader does);
- copycat: the answer comes from someone else's engine (`copy_from`, an OpenAI-compatible
  URL), claimed as the miner's own, reporting no compute of its own;
- passthrough: every request is forwarded to an upstream OpenAI-compatible API (the
  backend must be `openai`), and its answer, usage and engine seconds (if the upstream
  reports any) are returned as the miner's;
- sybil: one engine behind several registered hotkeys: the one process answers requests
  signed for any of them (`sybil_hotkeys`), honestly, from the same backend.

Every answer is signed by the hotkey it was asked of (protocol/answers.py): a whole answer
in its `Epistula-Answer-*` headers, a stream by an SSE comment after `[DONE]` over every
byte before it; validators refuse unsigned answers and keep the signatures as evidence.

Simulated output is labelled in both forms: a non-streamed answer carries
`system_fingerprint: "simulated"` and `subnetlab.simulated: true`; a stream carries
the same `system_fingerprint` on every chunk and the same `subnetlab` block on its last
chunk before `[DONE]` (the usage chunk, or the finish chunk when no usage was asked for).

Metrics (docs/metrics.md): every request is counted once, by caller and outcome, when its
outcome is known; a stream's when it ends (`ok`, `backend_error`, or `client_gone` when the
client left first). A backend that fails before a stream's first chunk gets the same 502
as a non-streamed request; one that fails later can no longer change the 200, so the
stream ends with an error event (protocol/sse.py) and `[DONE]`. Backend seconds and tokens
are counted for answers delivered whole, so the token counter is the sum of the `usage`
the miner reported.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from subnetlab.engines import (
    Backend,
    Completion,
    OpenAIBackend,
    StreamUsage,
    count_tokens,
)
from subnetlab.keys import Keypair
from subnetlab.miner.metrics import MinerMetrics
from subnetlab.protocol.answers import (
    answer_headers,
    answer_message,
    sha256_hex,
    sign_answer,
    stream_signature_line,
)
from subnetlab.protocol.bodies import (
    MAX_PROMPT_BODY_BYTES,
    BodyError,
    chat_openapi,
    decode_json,
    read_capped,
)
from subnetlab.protocol.epistula import HEADER_NAMES
from subnetlab.protocol.guard import Admission, Refusal, RequestGuard, busy_refusal
from subnetlab.protocol.priority import QueueFull, StakePriorityGate
from subnetlab.protocol.sse import DONE, ChunkWriter, error_event, wants_usage
from subnetlab.specs import MINER_BEHAVIOURS

LAZY_ANSWER = "42"
UNKNOWN_CALLER = "unknown"
"""The `caller` label of a request whose sender is not a registered, verified hotkey."""


def caller_label(refusal: Refusal) -> str:
    """The `caller` label of a refused request: the hotkey of a caller whose signature
    verified and who is registered on the subnet (refused for its permit, the blacklist or
    its rate limit), else `unknown`.

    Why not every `Signed-By`: anyone can mint keys, so labelling forged, stale, replayed or
    unregistered requests by the hotkey they claim would let an attacker add one time
    series per request; registered hotkeys are bounded by the subnet's registrations.
    """
    return refusal.caller or UNKNOWN_CALLER


def backend_error(exc: Exception) -> dict[str, str]:
    """The error object of a failed backend, in a 502 body or a stream's error event."""
    return {"code": "backend_error", "message": f"{type(exc).__name__}: {exc}"}


@dataclass
class Miner:
    """Everything one miner process needs to answer.

    `sybil_hotkeys` are the further hotkeys a sybil serves with the same engine; the guard
    must accept exactly `hotkey` and those as recipients.
    """

    hotkey: str
    backend: Backend
    guard: RequestGuard
    gate: StakePriorityGate
    behaviour: str = "honest"
    copy_from: OpenAIBackend | None = None
    metrics: MinerMetrics | None = None
    sybil_hotkeys: tuple[str, ...] = ()
    max_body_bytes: int = MAX_PROMPT_BODY_BYTES
    """The body cap of `/v1/chat/completions` (413 `too_large` past it)."""
    keys: tuple[Keypair, ...] = ()
    """The keypairs of `hotkeys`: every answer is signed by the hotkey it was asked of
    (protocol/answers.py), so validators and the audit can prove the miner gave it."""

    def __post_init__(self) -> None:
        if self.behaviour not in MINER_BEHAVIOURS:
            raise ValueError(f"behaviour {self.behaviour!r} is not one of "
                             f"{', '.join(MINER_BEHAVIOURS)}")
        if (self.behaviour == "copycat") != (self.copy_from is not None):
            raise ValueError("copy_from (the engine it copies) is needed by, and only by, "
                             "a copycat miner")
        if self.behaviour == "passthrough" and self.backend.kind != "openai":
            raise ValueError(f"a passthrough miner forwards to an openai backend, not "
                             f"{self.backend.kind}")
        if (self.behaviour == "sybil") != bool(self.sybil_hotkeys):
            raise ValueError("sybil_hotkeys (the other hotkeys one engine serves) are "
                             "needed by, and only by, a sybil miner")
        if len({self.hotkey, *self.sybil_hotkeys}) != 1 + len(self.sybil_hotkeys):
            raise ValueError("a sybil's hotkeys must all differ from each other")
        if self.guard.recipients != frozenset(self.hotkeys):
            raise ValueError("the guard must accept exactly the miner's hotkeys as recipients")
        if self.max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be at least 1, got {self.max_body_bytes}")
        if sorted(k.ss58_address for k in self.keys) != sorted(self.hotkeys):
            raise ValueError("keys must be the keypairs of exactly the miner's hotkeys: it "
                             "signs its answers with them")
        if self.metrics is None:
            self.metrics = MinerMetrics()

    @property
    def hotkeys(self) -> tuple[str, ...]:
        """Every hotkey this process answers for (one, or a sybil's several)."""
        return (self.hotkey, *self.sybil_hotkeys)

    def key_for(self, hotkey: str) -> Keypair:
        """The keypair that signs answers to requests signed for `hotkey`."""
        return next(k for k in self.keys if k.ss58_address == hotkey)

    async def answer(self, body: dict[str, Any]) -> Completion:
        """The completion this miner's behaviour produces for a request."""
        if self.behaviour == "lazy":
            return Completion(LAZY_ANSWER, f"lazy:{self.backend.name}", 0, 1, 0.0,
                              simulated=True)
        if self.behaviour == "copycat":
            assert self.copy_from is not None
            copied = await self.copy_from.complete(body)
            return Completion(copied.text, self.backend.name, copied.prompt_tokens, 0, 0.0,
                              simulated=copied.simulated)
        return await self.backend.complete(body)


def fingerprint(simulated: bool) -> str | None:
    """`system_fingerprint` of a miner's output: `"simulated"` for simulated output."""
    return "simulated" if simulated else None


def subnetlab_block(hotkey: str, simulated: bool, engine_seconds: float | None
                    ) -> dict[str, Any]:
    """The `subnetlab` block of an answer: which hotkey answered, whether it is simulated,
    and the engine seconds the engine reported (None when it reports none)."""
    return {"miner": hotkey, "simulated": simulated, "engine_seconds": engine_seconds}


def completion_body(completion: Completion, hotkey: str) -> dict[str, Any]:
    """An OpenAI `chat.completion` object, plus a `subnetlab` block with the compute."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": completion.model,
        "system_fingerprint": fingerprint(completion.simulated),
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": completion.text}}],
        "usage": {"prompt_tokens": completion.prompt_tokens,
                  "completion_tokens": completion.completion_tokens,
                  "total_tokens": completion.prompt_tokens + completion.completion_tokens},
        "subnetlab": subnetlab_block(hotkey, completion.simulated, completion.engine_seconds),
    }


def create_miner_app(miner: Miner) -> FastAPI:
    """The ASGI app of one miner."""
    app = FastAPI(title="subnetlab miner", version="1")
    metrics = miner.metrics
    assert metrics is not None

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "hotkey": miner.hotkey, "hotkeys": list(miner.hotkeys),
                "behaviour": miner.behaviour, "backend": miner.backend.kind}

    @app.get("/metrics")
    async def prometheus() -> Response:
        metrics.queue_depth.set(miner.gate.queue_depth)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/chat/completions",
              openapi_extra=chat_openapi(list(HEADER_NAMES), miner.max_body_bytes),
              responses={400: {}, 401: {}, 403: {}, 413: {}, 429: {}, 502: {}, 503: {}})
    async def chat(request: Request) -> Response:
        try:
            # headers, then the declared size, before a byte of the body is read
            miner.guard.check_headers(request.headers)
            raw = await read_capped(request, miner.max_body_bytes)
            admission = miner.guard.check(request.headers, raw)
        except Refusal as refusal:
            metrics.requests.labels(caller=caller_label(refusal),
                                    outcome=refusal.code.value).inc()
            return JSONResponse(status_code=refusal.status, content=refusal.as_json())
        except BodyError as too_large:
            metrics.requests.labels(caller=UNKNOWN_CALLER, outcome=too_large.code).inc()
            return JSONResponse(status_code=too_large.status, content=too_large.as_json())
        caller = admission.hotkey
        try:
            body = decode_json(raw)
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                raise ValueError("body must be an object with a 'messages' list")
        except BodyError as too_deep:
            metrics.requests.labels(caller=caller, outcome=too_deep.code).inc()
            return JSONResponse(status_code=too_deep.status, content=too_deep.as_json())
        except ValueError as exc:
            metrics.requests.labels(caller=caller, outcome="bad_request").inc()
            return JSONResponse(status_code=400, content={"error": {
                "code": "bad_request", "message": f"invalid chat request: {exc}"}})
        try:
            if body.get("stream"):
                # the slot is held until the stream ends, and released by the stream
                await miner.gate.acquire(admission.stake)
                return await _start_stream(miner, body, _StreamSigner.of(miner, admission, raw),
                                           metrics)
            async with miner.gate.slot(admission.stake):
                started = time.perf_counter()
                try:
                    completion = await miner.answer(body)
                except Exception as exc:  # the backend failed: say so, stay up
                    metrics.requests.labels(caller=caller, outcome="backend_error").inc()
                    return JSONResponse(status_code=502, content={"error": backend_error(exc)})
                metrics.backend_seconds.observe(time.perf_counter() - started)
                metrics.tokens.inc(completion.completion_tokens)
                metrics.requests.labels(caller=caller, outcome="ok").inc()
                response = JSONResponse(completion_body(completion, admission.signed_for))
                signed = sign_answer(miner.key_for(admission.signed_for), bytes(response.body),
                                     admission.request_uuid, raw, admission.hotkey)
                response.headers.update(answer_headers(signed))
                return response
        except QueueFull as exc:
            busy = busy_refusal(exc)
            metrics.requests.labels(caller=caller, outcome=busy.code.value).inc()
            return JSONResponse(status_code=busy.status, content=busy.as_json())

    return app


@dataclass
class _StreamSigner:
    """Signs a stream as it goes out: a running digest of every byte sent, signed after
    `[DONE]` (the stream rule of protocol/answers.py)."""

    key: Keypair
    admission: Admission
    request_sha256: str
    hasher: Any

    @classmethod
    def of(cls, miner: Miner, admission: Admission, raw: bytes) -> _StreamSigner:
        return cls(miner.key_for(admission.signed_for), admission, sha256_hex(raw),
                   hashlib.sha256())

    @property
    def hotkey(self) -> str:
        return self.admission.signed_for

    def sent(self, chunk: bytes) -> bytes:
        self.hasher.update(chunk)
        return chunk

    def final_line(self) -> bytes:
        """The signature comment over everything sent so far."""
        message = answer_message(self.hasher.hexdigest(), self.admission.request_uuid,
                                 self.request_sha256, self.admission.hotkey)
        return stream_signature_line("0x" + self.key.sign(message).hex())


@dataclass
class _Tally:
    """What a stream produced, filled in by `_chunks` once the engine's figures are known."""

    tokens: int = 0


async def _start_stream(miner: Miner, body: dict[str, Any], signer: _StreamSigner,
                        metrics: MinerMetrics) -> Response:
    """Start a streamed answer (its gate slot already acquired; the stream releases it).

    The first chunk is made before the status line goes out, so a backend that fails
    before producing anything gets a 502 with the reason, like a non-streamed request.
    """
    events = _stream(miner, body, signer, metrics)
    try:
        first = await anext(events)
    except Exception as exc:  # the stream has counted it and released the slot
        return JSONResponse(status_code=502, content={"error": backend_error(exc)})
    return StreamingResponse(_resume(first, events), media_type="text/event-stream")


async def _resume(first: bytes, rest: AsyncGenerator[bytes, None]) -> AsyncIterator[bytes]:
    """`first`, then the rest of the stream it came from (closed when this one is)."""
    try:
        yield first
        async for chunk in rest:
            yield chunk
    finally:
        await rest.aclose()


async def _stream(miner: Miner, body: dict[str, Any], signer: _StreamSigner,
                  metrics: MinerMetrics) -> AsyncGenerator[bytes, None]:
    """The SSE events of one answer, counted once, by how the stream ended.

    `ok` when the last event went out; `backend_error` when the backend failed: before the
    first event the exception is raised for `_start_stream`'s 502, after it the stream
    ends with an error event and `[DONE]`; `client_gone` when the client left first (the
    server cancels or closes this generator: neither is an `Exception`). Whatever the end,
    the gate slot is released. Every event goes through `signer`, and a stream that ends
    (well or with an error event) ends with the signature comment over all of it.
    """
    caller = signer.admission.hotkey
    started = time.perf_counter()
    tally = _Tally()
    outcome, sent = "client_gone", False
    try:
        async for chunk in _chunks(miner, body, signer.hotkey, tally):
            sent = True
            yield signer.sent(chunk)
        outcome = "ok"
        yield signer.final_line()
    except Exception as exc:
        outcome = "backend_error"
        if not sent:
            raise
        yield signer.sent(error_event(**backend_error(exc)))
        yield signer.sent(DONE)
        yield signer.final_line()
    finally:
        miner.gate.release()
        metrics.requests.labels(caller=caller, outcome=outcome).inc()
        if outcome == "ok":
            metrics.backend_seconds.observe(time.perf_counter() - started)
            metrics.tokens.inc(tally.tokens)


async def _chunks(
    miner: Miner, body: dict[str, Any], hotkey: str, tally: _Tally
) -> AsyncIterator[bytes]:
    """OpenAI-style SSE chunks; a final usage chunk when `stream_options.include_usage`."""
    produced = 0
    engine: StreamUsage | None = None  # the engine's own figures, when it reports them
    if miner.behaviour in ("lazy", "copycat"):
        completion = await miner.answer(body)
        pieces: AsyncGenerator[str | StreamUsage, None] = _single(completion)
        model, simulated = completion.model, completion.simulated
    else:
        pieces = miner.backend.stream(body)
        model, simulated = miner.backend.name, miner.backend.simulated
    writer = ChunkWriter(model, fingerprint=fingerprint(simulated))
    async with aclosing(pieces):
        async for piece in pieces:
            if isinstance(piece, StreamUsage):
                engine = piece
                continue
            produced += count_tokens(piece)
            yield writer.content(piece)
    prompt_tokens, engine_seconds = 0, None
    if engine is not None:
        prompt_tokens, produced = engine.prompt_tokens, engine.completion_tokens
        engine_seconds, simulated = engine.engine_seconds, simulated or engine.simulated
    tally.tokens = produced
    block = {"subnetlab": subnetlab_block(hotkey, simulated, engine_seconds)}
    label = fingerprint(simulated)
    if wants_usage(body):
        yield writer.finish(fingerprint=label)
        yield writer.usage(prompt_tokens, produced, block, fingerprint=label)
    else:
        yield writer.finish(extra=block, fingerprint=label)
    yield DONE


async def _single(completion: Completion) -> AsyncGenerator[str | StreamUsage, None]:
    """A whole answer as a stream of one piece, then its figures."""
    yield completion.text
    yield StreamUsage(completion.prompt_tokens, completion.completion_tokens,
                      completion.engine_seconds, completion.simulated)
