"""The validator and its organic gateway over real HTTP, in one process.

Sim miners, the gateway and a failing reference engine are real servers on loopback
(uvicorn, or a raw asyncio socket server for the engine), called with real HTTP clients
and signed requests; only the chain is left out: the validator's metagraph is set by hand,
and the miners' guards know the validator from a static metagraph. What needs separate
processes, a ledger and Redis is in tests/integration/test_network.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from subnetlab.engines import OpenAIBackend, SimBackend, SimModel
from subnetlab.keys.keypair import Keypair
from subnetlab.miner.server import Miner, create_miner_app
from subnetlab.protocol.guard import RequestGuard
from subnetlab.protocol.metagraph import CallerInfo, StaticMetagraph
from subnetlab.protocol.priority import StakePriorityGate
from subnetlab.validator.config import ValidatorConfig
from subnetlab.validator.gateway import (
    GatewayConfig,
    authorised,
    create_gateway_app,
    key_digests,
)
from subnetlab.validator.loop import Validator

VALIDATOR = Keypair.dev("unit-gateway-validator")
KEYS = frozenset({"sk-alpha-0123456789", "sk-beta-9876543210"})
GOOD_KEY = "sk-alpha-0123456789"
FAST = SimModel(ttft_s=0.0, tokens_per_s=1e6, default_accuracy=1.0)


def _listening() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """`app` on a loopback port of its own for the block; yields its base URL."""
    sock = _listening()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # raises what stopped the server
        await asyncio.sleep(0.005)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@dataclass
class BrokenEngine:
    """A real HTTP endpoint that fails every request: `500` answers an OpenAI-style error,
    `close` reads the request and hangs up without a word. `hits` counts requests."""

    mode: str
    hits: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").lower().split("\r\n")
            length = next(int(line.split(":", 1)[1]) for line in lines
                          if line.startswith("content-length:"))
            await reader.readexactly(length)
            self.hits += 1
            if self.mode == "500":
                body = json.dumps({"error": {"message": "engine overloaded"}}).encode()
                writer.write(b"HTTP/1.1 500 Internal Server Error\r\n"
                             b"content-type: application/json\r\n"
                             b"content-length: " + str(len(body)).encode() + b"\r\n"
                             b"connection: close\r\n\r\n" + body)
                await writer.drain()
        finally:
            writer.close()

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        sock = _listening()
        server = await asyncio.start_server(self.handle, sock=sock)
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            server.close()
            await server.wait_closed()


def sim_miner(name: str, model: SimModel = FAST, blacklist: tuple[str, ...] = ()) -> Miner:
    """A sim miner that knows the validator as a registered caller with a permit."""
    key = Keypair.dev(name)
    callers = StaticMetagraph({VALIDATOR.ss58_address: CallerInfo(0, 1e12, True)})
    guard = RequestGuard(key.ss58_address, callers, blacklist=blacklist)
    return Miner(key.ss58_address, SimBackend(model, name), guard, StakePriorityGate(4, 16),
                 keys=(key,))


def neuron(uid: int, hotkey: str, url: str) -> dict[str, Any]:
    return {"uid": uid, "hotkey": hotkey, "axon": url, "stake": 1.0,
            "validator_permit": False}


@dataclass
class Site:
    """One validator with its gateway and miners, all serving."""

    validator: Validator
    gateway: str
    miners: dict[int, Miner]
    client: httpx.AsyncClient
    stack: AsyncExitStack = field(repr=False)

    async def chat(self, key: str | None = GOOD_KEY, strategy: str | None = None,
                   **body: Any) -> httpx.Response:
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        if strategy is not None:
            headers["X-Subnetlab-Strategy"] = strategy
        payload = {"messages": [{"role": "user", "content": "Why is the sky blue?"}], **body}
        return await self.client.post(f"{self.gateway}/v1/chat/completions", json=payload,
                                      headers=headers)

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """The gateway's /metrics, read over HTTP: (sample name, labels) -> value."""
        text = (await self.client.get(f"{self.gateway}/metrics")).text
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}


@asynccontextmanager
async def site(miners: dict[int, Miner], reference_url: str | None = None,
               dead_uids: tuple[int, ...] = (), **gateway: Any) -> AsyncIterator[Site]:
    """Serve `miners` (uid -> miner) and a gateway before a validator whose metagraph
    lists them (and, for each of `dead_uids`, an axon nobody listens on)."""
    config = ValidatorConfig(VALIDATOR, 1, "http://127.0.0.1:1", "redis://127.0.0.1:1/0",
                             seed=7, timeout_s=5.0, sample_size=len(miners) + len(dead_uids),
                             task_weights={"arithmetic": 1.0})
    validator = Validator(config, None if reference_url is None
                          else OpenAIBackend(reference_url, "reference"))
    async with AsyncExitStack() as stack:
        neurons = [neuron(uid, m.hotkey, await stack.enter_async_context(
            serving(create_miner_app(m)))) for uid, m in miners.items()]
        for uid in dead_uids:
            closed = _listening()  # bound, never listening: connections are refused
            stack.callback(closed.close)
            port = closed.getsockname()[1]
            neurons.append(neuron(uid, Keypair.dev(f"dead-{uid}").ss58_address,
                                  f"http://127.0.0.1:{port}"))
        validator.follower.metagraph = {"neurons": neurons}
        url = await stack.enter_async_context(serving(create_gateway_app(
            validator, GatewayConfig(KEYS, **gateway))))
        client = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
        stack.push_async_callback(validator.http.aclose)
        stack.push_async_callback(validator.reference.aclose)
        yield Site(validator, url, miners, client, stack)


def served_by_miners(miners: dict[int, Miner], outcome: str = "ok") -> float:
    """Requests the miners' own counters say ended with `outcome`, whatever the caller
    label (only this test's validator calls them)."""
    total = 0.0
    for miner in miners.values():
        assert miner.metrics is not None
        for family in miner.metrics.registry.collect():
            total += sum(s.value for s in family.samples
                         if s.name == "subnetlab_miner_requests_total"
                         and s.labels.get("outcome") == outcome)
    return total


# --- API keys --------------------------------------------------------------------------


def test_key_check_needs_bearer_and_an_exact_key() -> None:
    digests = key_digests(KEYS)
    assert authorised(f"Bearer {GOOD_KEY}", digests)
    assert authorised("Bearer sk-beta-9876543210 ", digests)
    for header in ("", "Bearer ", "Bearer", f"bearer {GOOD_KEY}", f"Basic {GOOD_KEY}",
                   GOOD_KEY, f"Bearer {GOOD_KEY[:-1]}", f"Bearer {GOOD_KEY}0",
                   f"Bearer {GOOD_KEY.upper()}", "Bearer sk-alpha-0123456789,sk-beta"):
        assert not authorised(header, digests), header


def test_a_wrong_key_is_refused_exactly_like_a_missing_one() -> None:
    """Missing, wrong, near-miss and wrong-scheme keys all get the same 401 body, which
    names no key; no miner is asked and nothing is counted as served."""

    async def scenario() -> None:
        async with site({1: sim_miner("gw-key-m1")}) as s:
            wrong = ["sk-wrong", GOOD_KEY[:-1], GOOD_KEY + "x", "sk-beta-"]
            refusals = [await s.chat(key=None)] + [await s.chat(key=k) for k in wrong]
            basic = await s.client.post(f"{s.gateway}/v1/chat/completions", json={
                "messages": []}, headers={"Authorization": f"Basic {GOOD_KEY}"})
            refusals.append(basic)
            before = await s.metrics()
            assert served_by_miners(s.miners) == 0
            bodies = {r.content for r in refusals}
            assert [r.status_code for r in refusals] == [401] * len(refusals)
            assert len(bodies) == 1, bodies
            assert refusals[0].json() == {"error": {
                "code": "unauthorized",
                "message": "a valid API key is required (Authorization: Bearer KEY)"}}
            for response in refusals:
                shown = response.text + json.dumps(dict(response.headers))
                assert not any(part in shown for k in KEYS for part in (k, k[:6])), shown
            assert not any(name == "subnetlab_organic_requests_total"
                           for name, _ in before)
            ok = await s.chat()
            assert ok.status_code == 200, ok.text
            assert served_by_miners(s.miners) == 1

    asyncio.run(scenario())


# --- a failing reference model ---------------------------------------------------------


@pytest.mark.parametrize("mode", ["500", "close"])
def test_a_failing_reference_model_is_a_503_json_error_counted_and_logged(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Broadcast and a re-checked spot-check grade with the reference model: when it fails
    (an HTTP 500, or a connection closed without an answer) the customer gets the same
    OpenAI-style 503 as when no miner answers, streamed or not; the failure is counted per
    strategy, logged in one line and shown in /healthz. Best-of-n needs no reference and
    still answers."""
    engine = BrokenEngine(mode)

    async def scenario() -> None:
        async with engine.serving() as reference_url, site(
                {1: sim_miner("gw-ref-m1"), 2: sim_miner("gw-ref-m2")}, reference_url,
                fan_out=2, spot_check_rate=1.0, spot_check_others=1) as s:
            failed = []
            for strategy in ("broadcast", "spot-check"):
                for stream in (False, True):
                    failed.append((strategy, await s.chat(strategy=strategy, stream=stream)))
            for strategy, response in failed:
                assert response.status_code == 503, (strategy, response.text)
                assert response.headers["content-type"] == "application/json"
                assert response.json() == {"error": {
                    "code": "reference_unavailable",
                    "message": "the validator's reference model failed, so no answer "
                               "could be graded; retry later"}}
                assert "engine overloaded" not in response.text
            assert engine.hits == len(failed)  # every failure reached the real endpoint
            # every miner asked answered: it is the grading that failed, not the miners
            assert served_by_miners(s.miners) == 2 * 2 + 2 * 2
            health = (await s.client.get(f"{s.gateway}/healthz")).json()
            assert health["reference"] == "unreachable"
            best = await s.chat(strategy="best-of-n")
            assert best.status_code == 200, best.text
            assert best.json()["subnetlab"]["reference"]["used"] is False
            samples = await s.metrics()
            counter = "subnetlab_organic_requests_total"
            for strategy in ("broadcast", "spot-check"):
                labels = (("outcome", "reference_unavailable"), ("strategy", strategy))
                assert samples[(counter, labels)] == 2.0
                assert (counter, (("outcome", "ok"), ("strategy", strategy))) not in samples
                assert ("subnetlab_validator_reference_tokens_total",
                        (("purpose", strategy),)) not in samples
            assert samples[(counter, (("outcome", "ok"), ("strategy", "best-of-n")))] == 1.0
            overhead = {labels: v for (name, labels), v in samples.items()
                        if name == "subnetlab_organic_overhead_ratio_count"}
            assert overhead == {(("strategy", "best-of-n"),): 1.0}

    with caplog.at_level(logging.WARNING, logger="subnetlab.validator.gateway"):
        asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records if r.name == "subnetlab.validator.gateway"]
    assert len(lines) == 4, lines
    for line, strategy in zip(lines, ("broadcast", "broadcast", "spot-check", "spot-check"),
                              strict=True):
        assert "\n" not in line
        assert line.startswith(f"organic request failed: strategy={strategy} "
                               "outcome=reference_unavailable reference=openai:reference")
        expected = "engine overloaded" if mode == "500" else "RemoteProtocolError"
        assert expected in line, line


# --- the validator's own metrics -------------------------------------------------------


def test_validator_metrics_count_every_query_by_outcome_and_time_the_scoring() -> None:
    """Rounds over an honest miner, a miner that is always wrong (accuracy 0 for
    arithmetic), one that blacklists the validator and an axon nobody listens on: the
    counters on /metrics equal the answers the rounds returned, by outcome, and what the
    miners' own counters say they served; the latency histogram holds one observation
    per answer that came back, the scoring histogram one per answer scored."""
    rounds = 3
    wrong = SimModel(ttft_s=0.0, tokens_per_s=1e6, accuracy={"arithmetic": 0.0})
    miners = {1: sim_miner("gw-met-honest"), 2: sim_miner("gw-met-wrong", wrong),
              3: sim_miner("gw-met-refuses", blacklist=(VALIDATOR.ss58_address,))}

    async def scenario() -> None:
        async with site(miners, dead_uids=(4,)) as s:
            answers = [a for _ in range(rounds) for a in await s.validator.scoring.run()]
            samples = await s.metrics()
            by_outcome: dict[str, int] = {}
            for answer in answers:
                outcome = "ok" if answer.ok else str(answer.error)
                by_outcome[outcome] = by_outcome.get(outcome, 0) + 1
            assert by_outcome == {"ok": 2 * rounds, "blacklisted": rounds,
                                  "ConnectError": rounds}
            queries = {dict(labels)["outcome"]: v for (name, labels), v in samples.items()
                       if name == "subnetlab_validator_queries_total"}
            assert queries == {k: float(v) for k, v in by_outcome.items()}
            assert served_by_miners(miners) == 2 * rounds
            assert served_by_miners(miners, "blacklisted") == rounds
            latency = "subnetlab_validator_miner_latency_seconds"
            assert samples[(f"{latency}_count", ())] == 2 * rounds
            ok_latency = sum(a.latency_s for a in answers if a.ok)
            assert samples[(f"{latency}_sum", ())] == pytest.approx(ok_latency)
            assert samples[(f"{latency}_bucket", (("le", "+Inf"),))] == 2 * rounds
            scoring = "subnetlab_validator_scoring_seconds"
            assert samples[(f"{scoring}_count", ())] == len(answers) == 4 * rounds
            assert samples[(f"{scoring}_sum", ())] > 0
            moving = {int(dict(labels)["uid"]): v for (name, labels), v in samples.items()
                      if name == "subnetlab_validator_moving_score"}
            assert moving == pytest.approx(s.validator.board.moving)
            assert moving[1] > 0.9 and moving[2] == moving[3] == moving[4] == 0.0

    asyncio.run(scenario())
