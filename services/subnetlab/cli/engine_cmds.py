"""`subnetlab engine serve`: a simulated engine behind a plain OpenAI-compatible API.

What a passthrough or copycat miner forwards to on a laptop, where no external API is
reachable: the same simulated model the sim backend uses, unsigned, like any hosted API.
It is also a reference model a validator can reach over HTTP (`--reference-backend openai`).
Like vLLM it keeps its own counters at `/metrics` (requests, prompt and generated tokens),
so what its callers account for can be checked against the engine's own figures, and like
vLLM with `--enable-per-request-metrics` each answer carries its (modelled) time in the
engine as `metrics` (time to first token, generation time), which callers count as engine
seconds (`engines.reported_engine_seconds`).
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

import typer

from subnetlab.cli.errors import OneLineTyper
from subnetlab.cli.server_options import DrainSeconds
from subnetlab.neuron.flags import bounds_of, default_of
from subnetlab.specs import SimBackendSpec

engine_app = OneLineTyper(help="A simulated OpenAI-compatible engine.")

_ACCURACY = bounds_of(SimBackendSpec, ("accuracy",))
"""The sim engine's accuracy range, a sim backend's (`SimBackendSpec`: written once)."""


@engine_app.command("serve")
def engine_serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8200,
    accuracy: Annotated[float, typer.Option(
        "--accuracy", min=_ACCURACY["ge"], max=_ACCURACY["le"],
        help="Probability of a right answer to a verifiable task.")
    ] = default_of(SimBackendSpec, ("accuracy",)),
    drain_seconds: DrainSeconds = 5.0,
) -> None:
    """Serve /v1/chat/completions from the simulated engine (labelled simulated)."""
    from fastapi import FastAPI
    from fastapi.responses import Response
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

    from subnetlab.engines import SimBackend, SimModel
    from subnetlab.protocol.drain import DrainingServer

    backend = SimBackend(SimModel(default_accuracy=accuracy), "engine")
    app = FastAPI(title="subnetlab simulated engine")
    registry = CollectorRegistry()
    requests = Counter("subnetlab_engine_requests", "Chat completions answered.",
                       registry=registry)
    prompt_tokens = Counter("subnetlab_engine_prompt_tokens", "Prompt tokens read.",
                            registry=registry)
    generated = Counter("subnetlab_engine_generation_tokens", "Completion tokens generated.",
                        registry=registry)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/chat/completions")
    async def chat(body: dict[str, Any]) -> dict[str, Any]:
        completion = await backend.complete(body)
        requests.inc()
        prompt_tokens.inc(completion.prompt_tokens)
        generated.inc(completion.completion_tokens)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
            "created": int(time.time()), "model": completion.model,
            "system_fingerprint": "simulated",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": completion.text}}],
            "usage": {"prompt_tokens": completion.prompt_tokens,
                      "completion_tokens": completion.completion_tokens,
                      "total_tokens": completion.prompt_tokens + completion.completion_tokens},
            "metrics": per_request_metrics(completion.engine_seconds, backend.model.ttft_s),
        }

    DrainingServer(app, drain_seconds, host=host, port=port).run()


def per_request_metrics(engine_seconds: float | None, ttft_s: float) -> dict[str, float]:
    """A modelled answer's time in vLLM's per-request `metrics` shape (milliseconds)."""
    total = engine_seconds or 0.0
    first = min(ttft_s, total)
    return {"time_to_first_token_ms": first * 1000.0,
            "generation_time_ms": (total - first) * 1000.0}
