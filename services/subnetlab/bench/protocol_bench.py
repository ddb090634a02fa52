"""What the signed protocol costs: plain vs signed requests to the same handler.

One server process (:mod:`subnetlab.bench.protocol_server`) and one ``httpx.AsyncClient``
in this process. The two routes are measured in alternating rounds (plain, signed, signed,
plain, ...) so that drift in the machine's load hits both alike. A signed request's time
starts before it is signed: signing is part of the signed path.

Besides latency and throughput, the CPU time each side spends per request is reported
(driver: ``time.process_time``; server: its own, read from ``GET /cpu`` between rounds).
On a shared machine wall-clock figures move with everyone else's load; CPU per request
moves much less, so it is the better figure for what the protocol itself costs.

The throughput ratio is also given round by round: each round's signed requests/s over the
plain requests/s of the same round (the two ran back to back), summarised as median and
quartiles. One run's overall ratio moves by several points with the machine's load; the
spread of the paired rounds says how far a single figure can be trusted.

With ``breakdown``, two more routes run in the same rounds and split the signed path's extra
CPU into its parts: ``signing`` signs every request (a fresh signature, as the signed route
does) but sends the plain request, so it costs the client the signing alone; ``headers``
sends the plain request to ``/plain`` with six Epistula headers signed once beforehand, so
it costs both ends the carrying of the headers (the server parses them and checks nothing).
What the signed route costs beyond both is the miner's checks (server) and the interaction
of the two (client, usually within the noise).
"""

from __future__ import annotations

import asyncio
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from subnetlab.bench.errors import BenchError
from subnetlab.bench.processes import free_port, started_server
from subnetlab.bench.protocol_server import BENCH_VALIDATORS, miner_key, neuron_key
from subnetlab.keys import Keypair
from subnetlab.protocol import encode_json, sign_request, signed_post

__all__ = [
    "BREAKDOWN_ROUTES",
    "CpuBreakdown",
    "ProtocolBenchResult",
    "RatioSpread",
    "RouteFigures",
    "cpu_breakdown",
    "paired_ratio_spread",
    "run_protocol_bench",
]

# A small chat-completions-like body: the size of a short organic request.
_BODY = {
    "model": "bench",
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
    "max_tokens": 16,
}
_ROUND_SIZE = 200  # requests per route per round: short rounds, many alternations
_MAX_ROUNDS = 50
BREAKDOWN_ROUTES = ("signing", "headers")
"""The routes ``breakdown`` adds beside ``plain`` and ``signed`` (see the module docstring)."""


@dataclass(frozen=True)
class RouteFigures:
    """One route's figures; CPU is per request, in the driver and in the server process."""

    requests: int
    p50_ms: float
    p99_ms: float
    rps: float
    client_cpu_us: float
    server_cpu_us: float

    def as_json(self) -> dict[str, float]:
        return {"p50_ms": round(self.p50_ms, 3), "p99_ms": round(self.p99_ms, 3),
                "rps": round(self.rps, 1)}

    def cpu_json(self) -> dict[str, float]:
        return {"client": round(self.client_cpu_us, 1), "server": round(self.server_cpu_us, 1)}


@dataclass(frozen=True)
class RatioSpread:
    """Median and quartiles of the per-round signed/plain throughput ratios."""

    median: float
    p25: float
    p75: float
    rounds: int

    def as_json(self) -> dict[str, float | int]:
        return {"median": round(self.median, 3), "p25": round(self.p25, 3),
                "p75": round(self.p75, 3), "rounds": self.rounds}


def paired_ratio_spread(signed_rps: Sequence[float], plain_rps: Sequence[float]) -> RatioSpread:
    """Summarise ``signed_rps[i] / plain_rps[i]`` over rounds that ran side by side.

    Pairing round by round cancels the load drift both routes of one round share; the
    quartiles (inclusive method, so two rounds are enough) show the noise that remains.
    """
    if len(signed_rps) != len(plain_rps):
        raise ValueError(f"{len(signed_rps)} signed rounds but {len(plain_rps)} plain rounds")
    if len(signed_rps) < 2:
        raise ValueError(f"need at least 2 paired rounds, got {len(signed_rps)}")
    if any(not rps > 0 for rps in (*signed_rps, *plain_rps)):
        raise ValueError("every round's requests/s must be positive")
    ratios = [signed / plain for signed, plain in zip(signed_rps, plain_rps, strict=True)]
    p25, median, p75 = statistics.quantiles(ratios, n=4, method="inclusive")
    return RatioSpread(median=median, p25=p25, p75=p75, rounds=len(ratios))


@dataclass(frozen=True)
class CpuBreakdown:
    """Where the signed route's extra CPU per request goes, in µs (client, then server).

    Each part is a difference of two routes' CPU per request, so on a busy machine a small
    part can come out slightly negative: it is then zero within the noise.
    """

    client_signing_us: float
    client_headers_us: float
    client_other_us: float
    server_headers_us: float
    server_checks_us: float

    @property
    def client_total_us(self) -> float:
        return self.client_signing_us + self.client_headers_us + self.client_other_us

    @property
    def server_total_us(self) -> float:
        return self.server_headers_us + self.server_checks_us

    def as_json(self) -> dict[str, dict[str, float]]:
        return {
            "client_us": {"signing": round(self.client_signing_us, 1),
                          "headers": round(self.client_headers_us, 1),
                          "other": round(self.client_other_us, 1)},
            "server_us": {"headers": round(self.server_headers_us, 1),
                          "checks": round(self.server_checks_us, 1)},
        }


def cpu_breakdown(
    plain: RouteFigures, signing: RouteFigures, headers: RouteFigures, signed: RouteFigures
) -> CpuBreakdown:
    """Split ``signed``'s extra CPU over ``plain`` using the two breakdown routes.

    Client: signing is what ``signing`` costs over plain, headers what ``headers`` costs over
    plain, other the rest of the signed route's extra. Server: headers is what parsing the
    six headers costs (``headers`` over plain), checks the rest (signature verification,
    freshness, replay, metagraph, gate). The parts add up to the signed route's extra.
    """
    client_signing = signing.client_cpu_us - plain.client_cpu_us
    client_headers = headers.client_cpu_us - plain.client_cpu_us
    server_headers = headers.server_cpu_us - plain.server_cpu_us
    return CpuBreakdown(
        client_signing_us=client_signing,
        client_headers_us=client_headers,
        client_other_us=signed.client_cpu_us - plain.client_cpu_us - client_signing
        - client_headers,
        server_headers_us=server_headers,
        server_checks_us=signed.server_cpu_us - plain.server_cpu_us - server_headers,
    )


@dataclass
class _Samples:
    latencies_ms: list[float] = field(default_factory=list)
    round_rps: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0

    def figures(self) -> RouteFigures:
        ordered = sorted(self.latencies_ms)
        n = len(ordered)
        return RouteFigures(
            requests=n,
            p50_ms=statistics.median(ordered),
            p99_ms=ordered[max(0, math.ceil(0.99 * n) - 1)],
            rps=n / self.elapsed_s,
            client_cpu_us=self.client_cpu_s / n * 1e6,
            server_cpu_us=self.server_cpu_s / n * 1e6,
        )


@dataclass(frozen=True)
class ProtocolBenchResult:
    plain: RouteFigures
    signed: RouteFigures
    concurrency: int
    ratio_spread: RatioSpread
    breakdown_routes: dict[str, RouteFigures] = field(default_factory=dict)
    """The ``signing`` and ``headers`` routes' figures when a breakdown was asked for."""

    @property
    def breakdown(self) -> CpuBreakdown | None:
        """The signed route's extra CPU split into parts (``None`` without a breakdown)."""
        if not self.breakdown_routes:
            return None
        return cpu_breakdown(self.plain, self.breakdown_routes["signing"],
                             self.breakdown_routes["headers"], self.signed)

    @property
    def throughput_ratio(self) -> float:
        return self.signed.rps / self.plain.rps

    @property
    def signed_overhead_p50_ms(self) -> float:
        return self.signed.p50_ms - self.plain.p50_ms

    def as_json(self) -> dict[str, object]:
        figures: dict[str, object] = {
            "plain": self.plain.as_json(),
            "signed": self.signed.as_json(),
            "throughput_ratio": round(self.throughput_ratio, 3),
            "throughput_ratio_rounds": self.ratio_spread.as_json(),
            "signed_overhead_p50_ms": round(self.signed_overhead_p50_ms, 3),
            "cpu_us_per_request": {
                "plain": self.plain.cpu_json(),
                "signed": self.signed.cpu_json(),
            },
            "requests": self.plain.requests,
            "concurrency": self.concurrency,
        }
        breakdown = self.breakdown
        if breakdown is not None:
            figures["breakdown"] = {
                **breakdown.as_json(),
                "routes": {
                    name: {**route.as_json(), "cpu_us_per_request": route.cpu_json()}
                    for name, route in self.breakdown_routes.items()
                },
            }
        return figures


@contextmanager
def started_protocol_server(timeout: float = 30.0) -> Iterator[str]:
    """Start the benchmark server in a child process; yield its base URL; stop it."""
    with tempfile.TemporaryDirectory(prefix="subnetlab-bench-") as tmp:
        port = free_port()
        argv = [sys.executable, "-m", "subnetlab.bench.protocol_server", "--port", str(port)]
        with started_server(argv, "bench server", port, Path(tmp) / "server.log",
                            timeout) as base:
            yield base


Send = Callable[[int], Awaitable[httpx.Response]]


async def _round(send: Send, count: int, concurrency: int) -> tuple[list[float], float]:
    """``count`` requests from ``concurrency`` workers: (latencies in ms, elapsed s)."""
    latencies: list[float] = []
    next_index = iter(range(count))
    failures: list[str] = []

    async def worker() -> None:
        for index in next_index:
            start = time.perf_counter()
            try:
                response = await send(index)
            except httpx.HTTPError as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append((time.perf_counter() - start) * 1000.0)
            if response.status_code != 200:
                failures.append(f"{response.status_code} {response.text[:200]}")

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
    elapsed = time.perf_counter() - start
    if failures:
        raise BenchError(f"{len(failures)} of {count} requests failed, first: {failures[0]}")
    return latencies, elapsed


async def _server_cpu_s(client: httpx.AsyncClient, base: str) -> float:
    response = await client.get(f"{base}/cpu")
    response.raise_for_status()
    return float(response.json()["cpu_s"])


def _round_order(routes: Sequence[str], number: int) -> list[str]:
    """Round ``number``'s order: rotate by one each round, so each route runs first in turn.

    With two routes this alternates (plain, signed), (signed, plain), ...; with more, every
    route also follows every other, so load drift inside a round hits none in particular.
    """
    shift = number % len(routes)
    return [*routes[shift:], *routes[:shift]]


async def _bench(base: str, requests: int, concurrency: int,
                 breakdown: bool) -> ProtocolBenchResult:
    miner = miner_key().ss58_address
    validators: list[Keypair] = [neuron_key(uid) for uid in range(BENCH_VALIDATORS)]
    plain_headers = {"Content-Type": "application/json"}
    # Signed once, before the run: the "headers" route carries them without signing.
    presigned = {**plain_headers, **sign_request(validators[0], encode_json(_BODY), miner)}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:

        def to_plain(headers: dict[str, str]) -> Send:
            """The plain request with ``headers``: the plain route, and the headers-only one."""
            async def send(_index: int) -> httpx.Response:
                return await client.post(f"{base}/plain", content=encode_json(_BODY),
                                         headers=headers)
            return send

        async def send_signed(index: int) -> httpx.Response:
            key = validators[index % len(validators)]
            return await signed_post(client, f"{base}/signed", key, miner, _BODY)

        async def send_signing(index: int) -> httpx.Response:
            body = encode_json(_BODY)
            sign_request(validators[index % len(validators)], body, miner)
            return await client.post(f"{base}/plain", content=body, headers=plain_headers)

        sends: dict[str, Send] = {"plain": to_plain(plain_headers), "signed": send_signed}
        if breakdown:
            sends |= {"signing": send_signing, "headers": to_plain(presigned)}
        warmup = max(concurrency, min(500, requests // 5))
        for send in sends.values():
            await _round(send, warmup, concurrency)
        samples = {route: _Samples() for route in sends}
        rounds = max(2, min(_MAX_ROUNDS, requests // _ROUND_SIZE))
        for number in range(rounds):
            count = requests // rounds + (1 if number < requests % rounds else 0)
            for route in _round_order(list(sends), number):
                server_before = await _server_cpu_s(client, base)
                client_before = time.process_time()
                latencies, elapsed = await _round(sends[route], count, concurrency)
                client_cpu = time.process_time() - client_before
                server_cpu = await _server_cpu_s(client, base) - server_before
                sample = samples[route]
                sample.latencies_ms.extend(latencies)
                sample.round_rps.append(len(latencies) / elapsed)
                sample.elapsed_s += elapsed
                sample.client_cpu_s += client_cpu
                sample.server_cpu_s += server_cpu
    return ProtocolBenchResult(
        plain=samples["plain"].figures(),
        signed=samples["signed"].figures(),
        concurrency=concurrency,
        ratio_spread=paired_ratio_spread(samples["signed"].round_rps, samples["plain"].round_rps),
        breakdown_routes={route: samples[route].figures() for route in BREAKDOWN_ROUTES
                          if route in samples},
    )


def run_protocol_bench(
    base: str, requests: int, concurrency: int, *, breakdown: bool = False
) -> ProtocolBenchResult:
    """Measure ``requests`` calls per route against a running server.

    The routes are ``plain`` and ``signed``, and with ``breakdown`` also ``signing`` and
    ``headers`` (see the module docstring).
    """
    return asyncio.run(_bench(base, requests, concurrency, breakdown))
