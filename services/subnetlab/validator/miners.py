"""Asking miners: which neurons to ask, a sample of them, and one signed request to one.

Shared by the scoring rounds and the organic gateway, which ask miners the same way.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

from subnetlab.keys.keypair import Keypair
from subnetlab.protocol.answers import AnswerRejected, check_answer, evidence_form
from subnetlab.protocol.client import signed_post
from subnetlab.protocol.epistula import UUID
from subnetlab.protocol.metagraph import occupied


@dataclass(frozen=True)
class MinerAnswer:
    """What one miner returned for one request, and what it cost.

    `refused`: the miner answered with an error status (it spent no engine time);
    `simulated`: the miner labelled its answer simulated. An answer whose miner signature
    is missing or wrong is a failed answer (`error` "answer_" + the reason): nothing in
    the evidence could prove the miner gave it.
    """

    uid: int
    hotkey: str
    text: str
    latency_s: float
    completion_tokens: int
    engine_seconds: float | None
    ok: bool
    error: str | None = None
    simulated: bool = False
    refused: bool = False
    signed: dict[str, Any] | None = None
    """The miner's checked signature of this answer, as the evidence keeps it
    (protocol/answers.py `evidence_form`); None for a failed answer."""


def miners_of(metagraph: dict[str, Any], own_hotkey: str) -> list[dict[str, Any]]:
    """The neurons worth asking: a hotkey holds the uid, it serves an axon, and it is not
    this validator."""
    return [n for n in occupied(metagraph.get("neurons", []))
            if n.get("axon") and n["hotkey"] != own_hotkey]


def sample(pool: list[dict[str, Any]], k: int, rng: random.Random) -> list[dict[str, Any]]:
    """k miners at random, k clamped to the pool: never "sample larger than population"."""
    return rng.sample(pool, min(k, len(pool)))


def axon_url(neuron: dict[str, Any]) -> str:
    axon = neuron["axon"]
    if isinstance(axon, str):
        return axon.rstrip("/")
    return str(axon.get("url") or f"{axon.get('protocol', 'http')}://{axon['ip']}:{axon['port']}")


async def ask(
    http: httpx.AsyncClient, keypair: Keypair, neuron: dict[str, Any], body: dict[str, Any],
    timeout_s: float,
) -> MinerAnswer:
    """Query one miner with a signed request; any failure is an answer with ok=False.

    `timeout_s` is a deadline for the whole exchange: httpx's own timeout bounds each
    phase (connect, each read) separately, so a miner trickling bytes could otherwise hold
    a round far past it. A miner past the deadline answers `timeout`.
    """
    started = time.perf_counter()
    uid, hotkey = neuron["uid"], neuron["hotkey"]
    try:
        async with asyncio.timeout(timeout_s):
            response = await signed_post(http, f"{axon_url(neuron)}/v1/chat/completions",
                                         keypair, hotkey, body, timeout=timeout_s)
        latency = time.perf_counter() - started
        if response.status_code != 200:
            code = response.json().get("error", {}).get("code", str(response.status_code))
            return MinerAnswer(uid, hotkey, "", latency, 0, 0.0, False, code, refused=True)
        try:
            signed = check_answer(response.headers, response.content,
                                  response.request.headers[UUID], response.request.content,
                                  keypair.ss58_address, hotkey)
        except AnswerRejected as bad:
            return MinerAnswer(uid, hotkey, "", latency, 0, None, False, f"answer_{bad.reason}")
        data = response.json()
        usage = data.get("usage") or {}
        extra = data.get("subnetlab") or {}
        seconds = extra.get("engine_seconds")
        return MinerAnswer(
            uid, hotkey, data["choices"][0]["message"]["content"] or "", latency,
            int(usage.get("completion_tokens", 0)),
            float(seconds) if isinstance(seconds, int | float) else None, True,
            simulated=bool(extra.get("simulated")) or data.get("system_fingerprint") == "simulated",
            signed=evidence_form(signed, response.content),
        )
    except TimeoutError:
        return MinerAnswer(uid, hotkey, "", time.perf_counter() - started, 0, None, False,
                           "timeout")
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        latency = time.perf_counter() - started
        return MinerAnswer(uid, hotkey, "", latency, 0, None, False, type(exc).__name__)
