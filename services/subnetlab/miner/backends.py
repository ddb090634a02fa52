"""Where a miner's answers come from: a vLLM server, any OpenAI-compatible endpoint, or a
simulated engine.

Every backend returns a `Completion` with the text and the compute it cost (generated
tokens, and engine seconds where the backend knows them), because the N+V accounting of
the validators adds up exactly these numbers.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from subnetlab.validator.tasks import solve


@dataclass(frozen=True)
class Completion:
    """One answer and what it cost."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    engine_seconds: float | None = None
    simulated: bool = False


class Backend(Protocol):
    """An engine that answers chat requests."""

    name: str

    async def complete(self, body: dict[str, Any]) -> Completion: ...

    def stream(self, body: dict[str, Any]) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...


def prompt_text(body: dict[str, Any]) -> str:
    """The concatenated text of a chat request's messages (what the model reads)."""
    messages = body.get("messages") or []
    parts = [str(m.get("content", "")) for m in messages if isinstance(m, dict)]
    return "\n".join(parts)


def count_tokens(text: str) -> int:
    """A tokenizer-free token estimate (about 4 characters per token), at least 1."""
    return max(1, (len(text) + 3) // 4)


# --------------------------------------------------------------------------------------
# Simulated engine
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimModel:
    """The explicit model of a simulated engine (documented in docs/overhead.md).

    Time to first token is `ttft_s`; generation then runs at `tokens_per_s`. A verifiable
    task is answered right with probability `accuracy[kind]` (default `default_accuracy`),
    else with a near miss. Open prompts get a deterministic paraphrase of the prompt's
    content words. Everything a simulated engine returns is labelled `simulated`.
    """

    ttft_s: float = 0.03
    tokens_per_s: float = 400.0
    default_accuracy: float = 0.95
    accuracy: dict[str, float] = field(default_factory=dict)
    seed: int = 0


class SimBackend:
    """A simulated engine: explicit latency and accuracy, no model, no GPU."""

    def __init__(self, model: SimModel | None = None, name: str = "sim") -> None:
        self.model = model or SimModel()
        self.name = f"sim:{name}"
        self._rng = random.Random(self.model.seed)

    def answer(self, prompt: str) -> str:
        truth = solve(prompt)
        if truth is None:
            words = [w for w in prompt.split() if len(w) > 3][:24]
            return "In short: " + " ".join(words)
        kind = _kind_of(prompt)
        accuracy = self.model.accuracy.get(kind, self.model.default_accuracy)
        if self._rng.random() < accuracy:
            return truth
        return _near_miss(truth, self._rng)

    async def complete(self, body: dict[str, Any]) -> Completion:
        prompt = prompt_text(body)
        text = self.answer(prompt)
        tokens = count_tokens(text)
        seconds = self.model.ttft_s + tokens / self.model.tokens_per_s
        await asyncio.sleep(seconds)
        return Completion(text, self.name, count_tokens(prompt), tokens, seconds, simulated=True)

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[str]:
        text = self.answer(prompt_text(body))
        await asyncio.sleep(self.model.ttft_s)
        words = text.split(" ")
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            await asyncio.sleep(count_tokens(piece) / self.model.tokens_per_s)
            yield piece

    async def aclose(self) -> None:
        return None


def _kind_of(prompt: str) -> str:
    if prompt.startswith("Compute"):
        return "arithmetic"
    if prompt.startswith("Sort"):
        return "sorting"
    if prompt.startswith("Text:"):
        return "extraction"
    return "string"


def _near_miss(truth: str, rng: random.Random) -> str:
    if truth.lstrip("-").isdigit():
        return str(int(truth) + rng.choice([-1, 1, 10]))
    return truth[::-1] if len(truth) > 1 and truth != truth[::-1] else truth + "x"


# --------------------------------------------------------------------------------------
# OpenAI-compatible endpoints (vLLM included)
# --------------------------------------------------------------------------------------


class OpenAIBackend:
    """Any OpenAI-compatible server: a passthrough miner, or vLLM's own API server."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None,
                 timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers,
                                      timeout=timeout)
        self.model = model
        self.name = f"openai:{model}"

    def _request(self, body: dict[str, Any], stream: bool) -> dict[str, Any]:
        request = {k: v for k, v in body.items() if k not in ("model", "stream")}
        request.update(model=self.model, stream=stream)
        if stream:
            request["stream_options"] = {"include_usage": True}
        return request

    async def complete(self, body: dict[str, Any]) -> Completion:
        started = time.perf_counter()
        response = await self.http.post("/v1/chat/completions", json=self._request(body, False))
        response.raise_for_status()
        data = response.json()
        usage = data.get("usage") or {}
        text = data["choices"][0]["message"].get("content") or ""
        return Completion(
            text=text,
            model=str(data.get("model", self.model)),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", count_tokens(text))),
            engine_seconds=time.perf_counter() - started,
        )

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[str]:
        import json

        request = self._request(body, True)
        async with self.http.stream("POST", "/v1/chat/completions", json=request) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                for choice in chunk.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        yield piece

    async def aclose(self) -> None:
        await self.http.aclose()


class VllmBackend(OpenAIBackend):
    """A vLLM OpenAI server beside the miner (a sidecar in a pod, `vllm serve` locally).

    Same API as OpenAIBackend; in addition the engine's own Prometheus counters
    (`vllm:generation_tokens_total`) are read so the N+V accounting can use the engine's
    count rather than the response's.
    """

    def __init__(self, base_url: str, model: str, timeout: float = 120.0) -> None:
        super().__init__(base_url, model, timeout=timeout)
        self.name = f"vllm:{model}"

    async def generation_tokens_total(self) -> float:
        """vLLM's `vllm:generation_tokens_total` counter (summed over its label sets)."""
        response = await self.http.get("/metrics")
        response.raise_for_status()
        return sum_metric(response.text, "vllm:generation_tokens_total")


def sum_metric(exposition: str, name: str) -> float:
    """Sum every sample of metric `name` in a Prometheus text exposition."""
    total = 0.0
    for line in exposition.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total
