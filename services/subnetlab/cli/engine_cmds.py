"""`subnetlab engine serve`: a simulated engine behind a plain OpenAI-compatible API.

What a passthrough or copycat miner forwards to on a laptop, where no external API is
reachable: the same simulated model the sim backend uses, unsigned, like any hosted API.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

import typer

engine_app = typer.Typer(help="A simulated OpenAI-compatible engine.", no_args_is_help=True)


@engine_app.command("serve")
def engine_serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8200,
    accuracy: Annotated[float, typer.Option("--accuracy", min=0, max=1)] = 0.95,
) -> None:
    """Serve /v1/chat/completions from the simulated engine (labelled simulated)."""
    import uvicorn
    from fastapi import FastAPI

    from subnetlab.miner.backends import SimBackend, SimModel

    backend = SimBackend(SimModel(default_accuracy=accuracy), "engine")
    app = FastAPI(title="subnetlab simulated engine")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def chat(body: dict[str, Any]) -> dict[str, Any]:
        completion = await backend.complete(body)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
            "created": int(time.time()), "model": completion.model,
            "system_fingerprint": "simulated",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": completion.text}}],
            "usage": {"prompt_tokens": completion.prompt_tokens,
                      "completion_tokens": completion.completion_tokens,
                      "total_tokens": completion.prompt_tokens + completion.completion_tokens},
        }

    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
