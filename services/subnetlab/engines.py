"""Where answers come from: a vLLM server, any OpenAI-compatible endpoint, or a
simulated engine.

Miners serve their answers from these engines and validators ask them for reference
answers, so the engine clients sit on the floor beneath both (see the import contract in
pyproject.toml).

Every backend returns a `Completion` with the text and the compute it cost (generated
tokens, and engine seconds where the engine itself reports them), because the N+V
accounting of the validators adds up exactly these numbers. Engine seconds are never the
miner's own stopwatch: an HTTP round trip includes queueing, the network and the
upstream's overhead, so a figure the engine does not report is `None`, not a guess.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from subnetlab.tasks import solve


@dataclass(frozen=True)
class Completion:
    """One answer and what it cost."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    engine_seconds: float | None = None
    simulated: bool = False


@dataclass(frozen=True)
class StreamUsage:
    """The engine's own figures for a streamed answer (its last item, when known).

    A stream yields text pieces; an engine that reports usage (vLLM, OpenAI with
    `stream_options.include_usage`, the sim engine) ends it with one of these, so the
    miner counts the engine's tokens rather than estimating them from the text, and
    carries its engine seconds and its `simulated` label to the stream's last chunk.
    """

    prompt_tokens: int
    completion_tokens: int
    engine_seconds: float | None = None
    simulated: bool = False


class Backend(Protocol):
    """An engine that answers chat requests.

    `kind` is the `--backend` it was made from (`sim`, `openai`, `vllm`); `simulated` says
    whether everything it produces is simulated (known before it answers, so a stream can
    label its first chunk).
    """

    name: str
    kind: str
    simulated: bool

    async def complete(self, body: dict[str, Any]) -> Completion: ...

    def stream(self, body: dict[str, Any]) -> AsyncGenerator[str | StreamUsage, None]: ...

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

    The values are not checked here: their ranges are `SimBackendSpec`'s, and settings from
    people reach an engine through that model (`miner.settings.SimSettings.engine`).
    """

    ttft_s: float = 0.03
    tokens_per_s: float = 400.0
    default_accuracy: float = 0.95
    accuracy: dict[str, float] = field(default_factory=dict)
    seed: int = 0




class SimBackend:
    """A simulated engine: explicit latency and accuracy, no model, no GPU."""

    kind = "sim"
    simulated = True

    def __init__(self, model: SimModel | None = None, name: str = "sim") -> None:
        self.model = model or SimModel()
        self.name = f"sim:{name}"

    def answer(self, prompt: str) -> str:
        """The engine's answer to `prompt`: a function of the model's seed, the engine's
        name and the prompt alone.

        Why not one generator per engine: requests from real processes arrive in an order
        that differs from run to run, so a shared stream would give a prompt another answer
        in each run; drawn per prompt, two runs that ask the same prompts get the same
        answers (as a greedy-decoding model would), and engines of different names still
        err on different prompts."""
        truth = solve(prompt)
        if truth is None:
            words = [w for w in prompt.split() if len(w) > 3][:24]
            return "In short: " + " ".join(words)
        kind = _kind_of(prompt)
        accuracy = self.model.accuracy.get(kind, self.model.default_accuracy)
        rng = random.Random(f"{self.model.seed}:{self.name}:{prompt}")
        if rng.random() < accuracy:
            return truth
        return _near_miss(truth, rng)

    async def complete(self, body: dict[str, Any]) -> Completion:
        prompt = prompt_text(body)
        text = self.answer(prompt)
        tokens = count_tokens(text)
        seconds = self.model.ttft_s + tokens / self.model.tokens_per_s
        await asyncio.sleep(seconds)
        return Completion(text, self.name, count_tokens(prompt), tokens, seconds, simulated=True)

    async def stream(self, body: dict[str, Any]) -> AsyncGenerator[str | StreamUsage, None]:
        """The answer word by word at the modelled speed, then the same token counts and
        modelled seconds a non-streamed answer reports, labelled simulated."""
        prompt = prompt_text(body)
        text = self.answer(prompt)
        seconds = self.model.ttft_s
        await asyncio.sleep(self.model.ttft_s)
        words = text.split(" ")
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            pause = count_tokens(piece) / self.model.tokens_per_s
            seconds += pause
            await asyncio.sleep(pause)
            yield piece
        yield StreamUsage(count_tokens(prompt), count_tokens(text), seconds, simulated=True)

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


def reported_engine_seconds(payload: Mapping[str, Any]) -> float | None:
    """The engine seconds an OpenAI-compatible response reports itself, else `None`.

    vLLM started with `--enable-per-request-metrics` adds a `metrics` object to each
    response (and to a stream's usage chunk): `time_to_first_token_ms` (from the moment
    the scheduler took the request to its first token) and `generation_time_ms` (first to
    last token). Their sum is the time the request was running in the engine, queueing
    excluded: the engine's own figure, which is what the N+V accounting adds up. Any
    other upstream reports nothing, and nothing is guessed.
    """
    metrics = payload.get("metrics")
    if not isinstance(metrics, Mapping):
        return None
    parts = (metrics.get("time_to_first_token_ms"), metrics.get("generation_time_ms"))
    total = 0.0
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, int | float):
            return None
        if not (math.isfinite(part) and part >= 0):
            return None
        total += part
    return total / 1000.0


def labelled_simulated(payload: Mapping[str, Any]) -> bool:
    """Whether an upstream labelled its answer simulated (`system_fingerprint`), as this
    project's sim engine (`subnetlab engine serve`) and sim miners do."""
    return payload.get("system_fingerprint") == "simulated"


class OpenAIBackend:
    """Any OpenAI-compatible server: a passthrough miner's upstream, or vLLM's own server.

    Token counts are the upstream's `usage`; engine seconds only where the upstream
    reports them (:func:`reported_engine_seconds`), else `None`; an answer the upstream
    labels simulated stays labelled simulated.
    """

    kind = "openai"
    simulated = False

    def __init__(self, base_url: str, model: str, api_key: str | None = None,
                 timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers,
                                      timeout=timeout)
        self.model = model
        self.name = f"openai:{model}"

    def _request(self, body: dict[str, Any], stream: bool) -> dict[str, Any]:
        request = {k: v for k, v in body.items()
                   if k not in ("model", "stream", "stream_options")}
        request.update(model=self.model, stream=stream)
        if stream:
            request["stream_options"] = {"include_usage": True}
        return request

    async def complete(self, body: dict[str, Any]) -> Completion:
        response = await self.http.post("/v1/chat/completions", json=self._request(body, False))
        raise_for_engine(response)
        return completion_of(response.json(), self.model)

    async def stream(self, body: dict[str, Any]) -> AsyncGenerator[str | StreamUsage, None]:
        """The engine's text pieces, then its usage chunk's figures (when it sends one).

        An upstream that ignores `stream` and answers with one JSON completion (a plain
        engine such as `subnetlab engine serve`) is streamed as one piece.
        """
        request = self._request(body, True)
        async with self.http.stream("POST", "/v1/chat/completions", json=request) as response:
            if response.is_error:
                await response.aread()
            raise_for_engine(response)
            if response.headers.get("content-type", "").startswith("application/json"):
                whole = completion_of(json.loads(await response.aread()), self.model)
                yield whole.text
                yield StreamUsage(whole.prompt_tokens, whole.completion_tokens,
                                  whole.engine_seconds, whole.simulated)
                return
            simulated = False
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                simulated = simulated or labelled_simulated(chunk)
                for choice in chunk.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        yield piece
                if usage := chunk.get("usage"):
                    yield StreamUsage(int(usage.get("prompt_tokens", 0)),
                                      int(usage.get("completion_tokens", 0)),
                                      reported_engine_seconds(chunk), simulated)

    async def aclose(self) -> None:
        await self.http.aclose()


def completion_of(data: Mapping[str, Any], model: str) -> Completion:
    """A `Completion` from an OpenAI `chat.completion` object: the upstream's own usage,
    engine seconds and label (see :class:`OpenAIBackend`)."""
    usage = data.get("usage") or {}
    text = data["choices"][0]["message"].get("content") or ""
    return Completion(
        text=text,
        model=str(data.get("model", model)),
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", count_tokens(text))),
        engine_seconds=reported_engine_seconds(data),
        simulated=labelled_simulated(data),
    )


class EngineError(RuntimeError):
    """The engine refused or failed a request; the message carries the engine's reason."""


def raise_for_engine(response: httpx.Response) -> None:
    """Raise EngineError with the engine's own message (OpenAI's `error.message`, vLLM's
    `message`, else the start of the body) when the response is an error."""
    if not response.is_error:
        return
    try:
        data = response.json()
        error = data.get("error", data) if isinstance(data, dict) else {}
        message = str(error.get("message") or error) if isinstance(error, dict) else str(error)
    except ValueError:
        message = response.text[:300]
    raise EngineError(f"engine answered {response.status_code}: {message}")


class VllmBackend(OpenAIBackend):
    """A vLLM OpenAI server beside the miner (a sidecar in a pod, a local server elsewhere).

    Same API as OpenAIBackend: per request, the token counts are vLLM's own `usage` (in the
    response, or in the usage chunk that ends a stream) and the engine seconds are vLLM's
    own per-request timing (`metrics`, see :func:`reported_engine_seconds`), which vLLM
    sends when it runs with `--enable-per-request-metrics` (the local server and the pod's
    sidecar are started so); without it they are `None`.
    """

    kind = "vllm"

    def __init__(self, base_url: str, model: str, timeout: float = 120.0) -> None:
        super().__init__(base_url, model, timeout=timeout)
        self.name = f"vllm:{model}"


@dataclass(frozen=True)
class EngineCounters:
    """A snapshot of vLLM's own Prometheus counters (each summed over its label sets): the
    ground truth the miner's per-request figures are checked against (tests/integration/
    test_vllm.py reads them from vLLM's `/metrics`)."""

    generation_tokens: float
    prompt_tokens: float
    requests_finished: float
    time_to_first_token_count: float
    time_to_first_token_seconds: float
    e2e_latency_count: float
    e2e_latency_seconds: float

    def minus(self, before: EngineCounters) -> EngineCounters:
        """What happened between `before` and this snapshot."""
        return EngineCounters(*(a - b for a, b in zip(
            self.as_tuple(), before.as_tuple(), strict=True)))

    def as_tuple(self) -> tuple[float, ...]:
        return (self.generation_tokens, self.prompt_tokens, self.requests_finished,
                self.time_to_first_token_count, self.time_to_first_token_seconds,
                self.e2e_latency_count, self.e2e_latency_seconds)


def engine_counters(exposition: str) -> EngineCounters:
    """vLLM's counters from its Prometheus text exposition."""
    return EngineCounters(
        generation_tokens=sum_metric(exposition, "vllm:generation_tokens_total"),
        prompt_tokens=sum_metric(exposition, "vllm:prompt_tokens_total"),
        requests_finished=sum_metric(exposition, "vllm:request_success_total"),
        time_to_first_token_count=sum_metric(exposition,
                                             "vllm:time_to_first_token_seconds_count"),
        time_to_first_token_seconds=sum_metric(exposition,
                                               "vllm:time_to_first_token_seconds_sum"),
        e2e_latency_count=sum_metric(exposition, "vllm:e2e_request_latency_seconds_count"),
        e2e_latency_seconds=sum_metric(exposition, "vllm:e2e_request_latency_seconds_sum"),
    )


def sum_metric(exposition: str, name: str) -> float:
    """Sum every sample of metric `name` in a Prometheus text exposition."""
    total = 0.0
    for line in exposition.splitlines():
        if line.startswith(name) and len(line) > len(name) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total
