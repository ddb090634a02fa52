"""What an organic customer sends and what counts as a good answer (locust-free logic).

`loadtest/locustfile.py` is a thin locust user around these functions, so the rules are
type-checked and unit-tested without gevent. Prompts come from the validator's own
verifiable task generator (`tasks.py`), seeded per user: the same load on any
machine, and answers a real model could get right.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from subnetlab.tasks import KINDS, generate
from subnetlab.validator.gateway import STRATEGIES

STRATEGY_HEADER = "X-Subnetlab-Strategy"


@dataclass(frozen=True)
class LoadConfig:
    """One locust run's settings; every field is checked, with the field named."""

    gateways: tuple[str, ...]
    api_key: str
    strategies: tuple[str, ...]
    stream_fraction: float = 0.0

    def __post_init__(self) -> None:
        if not self.gateways:
            raise ValueError("gateways: at least one gateway URL is needed")
        for url in self.gateways:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"gateways: {url!r} is not an http(s) URL")
        if not self.api_key:
            raise ValueError("api_key: the gateway refuses requests without a key")
        if not self.strategies:
            raise ValueError(f"strategies: give at least one of {', '.join(STRATEGIES)}")
        for strategy in self.strategies:
            if strategy not in STRATEGIES:
                raise ValueError(f"strategies: {strategy!r} is not one of "
                                 f"{', '.join(STRATEGIES)}")
        if not 0.0 <= self.stream_fraction <= 1.0:
            raise ValueError(f"stream_fraction: {self.stream_fraction} is not in [0, 1]")


def parse_list(text: str) -> tuple[str, ...]:
    """A comma-separated command-line list, blanks dropped."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class OrganicRequest:
    """One request: where it goes, how, and under which name locust files it."""

    url: str
    strategy: str
    stream: bool
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def name(self) -> str:
        """Locust's stats key: one row per strategy (and per streaming mode)."""
        return f"{self.strategy} stream" if self.stream else self.strategy


def next_request(config: LoadConfig, rng: random.Random) -> OrganicRequest:
    """A customer's next chat completion: a fresh verifiable prompt, a strategy, a mode."""
    task = generate(rng.choice(KINDS), rng.randrange(2**31))
    strategy = rng.choice(config.strategies)
    stream = rng.random() < config.stream_fraction
    body: dict[str, Any] = {"model": "subnet", "stream": stream,
                            "messages": [{"role": "user", "content": task.prompt}]}
    if stream:  # the usage chunk carries the gateway's N+V accounting
        body["stream_options"] = {"include_usage": True}
    headers = {"Authorization": f"Bearer {config.api_key}", STRATEGY_HEADER: strategy}
    url = f"{rng.choice(config.gateways).rstrip('/')}/v1/chat/completions"
    return OrganicRequest(url, strategy, stream, body, headers)


def streamed_completion(lines: Iterable[str]) -> dict[str, Any]:
    """Reassemble an OpenAI server-sent-event stream into one chat.completion object.

    Every `data:` line is a chunk whose `choices[0].delta.content` adds to the answer;
    `data: [DONE]` ends it. The last chunk that carries a `subnetlab` block (the gateway's
    N+V accounting) or `usage` supplies it.
    """
    content: list[str] = []
    merged: dict[str, Any] = {}
    for raw in lines:
        line = raw.strip()
        if not line.startswith("data:"):
            continue
        data = line.removeprefix("data:").strip()
        if data == "[DONE]":
            break
        chunk = json.loads(data)
        if not isinstance(chunk, dict):
            raise ValueError("a stream chunk is not a JSON object")
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            content.append(delta.get("content") or "")
        for key in ("subnetlab", "usage", "id", "model"):
            if key in chunk and chunk[key] is not None:
                merged[key] = chunk[key]
    merged["choices"] = [{"index": 0, "message": {"role": "assistant",
                                                  "content": "".join(content)}}]
    return merged


def answer_problem(payload: Any, strategy: str) -> str | None:
    """Why a gateway's answer is not a good one, or None when it is.

    Good: an object with a non-empty assistant message, and an N+V accounting block for the
    strategy that was asked for (a gateway that silently used another strategy would make
    the per-strategy figures wrong).
    """
    if not isinstance(payload, dict):
        return "the answer is not a JSON object"
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return "the answer has no choices[0].message.content"
    if not isinstance(content, str) or not content.strip():
        return "the answer's content is empty"
    accounting = payload.get("subnetlab")
    if not isinstance(accounting, dict) or "overhead_ratio" not in accounting:
        return "the answer has no subnetlab accounting block"
    if accounting.get("strategy") != strategy:
        return f"asked for strategy {strategy!r}, got {accounting.get('strategy')!r}"
    return None
