"""The signed validator-to-miner protocol: headers, every refusal, the stake-ordered gate.

Async code is driven with ``asyncio.run`` inside ordinary tests (no pytest-asyncio). Clocks
are injected, so freshness and rate limits are tested without sleeping; no test asserts a
duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import Headers

from subnetlab.bench.protocol_bench import (
    RouteFigures,
    _round_order,
    cpu_breakdown,
    paired_ratio_spread,
)
from subnetlab.keys import Keypair
from subnetlab.protocol import (
    EPISTULA_VERSION,
    HEADER_NAMES,
    Admission,
    CallerInfo,
    MalformedHeaders,
    QueueFull,
    RateLimit,
    Refusal,
    RefusalCode,
    RequestGuard,
    StakePriorityGate,
    StaticMetagraph,
    busy_refusal,
    encode_json,
    sign_request,
    signed_post,
    signing_message,
    verify_request,
)
from subnetlab.protocol.limits import ReplayCache, ReplayCacheFull, TokenBuckets
from tests.conftest import CliRun

VALIDATOR = Keypair.dev("test-protocol-validator")
MINER = Keypair.dev("test-protocol-miner")
OTHER_MINER = Keypair.dev("test-protocol-other-miner")
NO_PERMIT = Keypair.dev("test-protocol-no-permit")
STRANGER = Keypair.dev("test-protocol-stranger")
NOW_MS = 1_790_000_000_000
BODY = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'


def metagraph() -> StaticMetagraph:
    return StaticMetagraph(
        {
            VALIDATOR.ss58_address: CallerInfo(uid=3, stake=5_000.0, validator_permit=True),
            MINER.ss58_address: CallerInfo(uid=7, stake=10.0, validator_permit=False),
            NO_PERMIT.ss58_address: CallerInfo(uid=9, stake=50.0, validator_permit=False),
        }
    )


@dataclass
class Clocks:
    """The guard's two clocks, moved by hand."""

    ms: int = NOW_MS
    seconds: float = 1_000.0

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)
        self.seconds += seconds


def guard_with(clocks: Clocks, **kwargs: Any) -> RequestGuard:
    return RequestGuard(
        MINER.ss58_address, metagraph(), clock_ms=lambda: clocks.ms,
        monotonic=lambda: clocks.seconds, **kwargs,
    )


def signed(
    key: Keypair = VALIDATOR, body: bytes = BODY, signed_for: str | None = None,
    at_ms: int = NOW_MS,
) -> dict[str, str]:
    return sign_request(key, body, MINER.ss58_address if signed_for is None else signed_for,
                        now_ms=at_ms)


def refusal_of(guard: RequestGuard, headers: Any, body: bytes = BODY) -> Refusal:
    with pytest.raises(Refusal) as info:
        guard.check(headers, body)
    return info.value


# ---- headers and signatures ---------------------------------------------------------------


def test_sign_request_headers_and_signed_message() -> None:
    headers = sign_request(VALIDATOR, BODY, MINER.ss58_address, now_ms=NOW_MS)
    assert set(headers) == set(HEADER_NAMES)
    assert headers["Epistula-Version"] == EPISTULA_VERSION == "2"
    assert headers["Epistula-Timestamp"] == str(NOW_MS)
    assert headers["Epistula-Signed-By"] == VALIDATOR.ss58_address
    assert headers["Epistula-Signed-For"] == MINER.ss58_address
    signature = headers["Epistula-Request-Signature"]
    assert signature.startswith("0x") and len(signature) == 130
    # The message is spelled out here independently of the implementation.
    message = (
        f"{hashlib.sha256(BODY).hexdigest()}.{headers['Epistula-Uuid']}.{NOW_MS}."
        f"{MINER.ss58_address}"
    ).encode()
    assert signing_message(BODY, headers["Epistula-Uuid"], NOW_MS, MINER.ss58_address) == message
    assert VALIDATOR.verify(signature, message)


def test_each_request_gets_a_fresh_uuid4() -> None:
    uuids = {sign_request(VALIDATOR, BODY, "")["Epistula-Uuid"] for _ in range(50)}
    assert len(uuids) == 50
    assert all(u[14] == "4" and u[19] in "89ab" for u in uuids)


def test_verify_request_accepts_any_header_spelling() -> None:
    headers = signed()
    lower = {k.lower(): v for k, v in headers.items()}
    upper = {k.upper(): v for k, v in headers.items()}
    raw = Headers(raw=[(k.lower().encode(), v.encode()) for k, v in headers.items()])
    for variant in (headers, lower, upper, raw, httpx.Headers(headers)):
        request = verify_request(variant, BODY)
        assert request is not None and request.signed_by == VALIDATOR.ss58_address


@settings(max_examples=40, deadline=None)
@given(body=st.binary(max_size=512), signed_for=st.text(max_size=60), flip=st.integers(0, 511))
def test_signature_covers_every_body_byte(body: bytes, signed_for: str, flip: int) -> None:
    headers = sign_request(VALIDATOR, body, signed_for)
    assert verify_request(headers, body) is not None
    if body:
        tampered = bytearray(body)
        tampered[flip % len(body)] ^= 0x01
        assert verify_request(headers, bytes(tampered)) is None


@settings(max_examples=60, deadline=None)
@given(
    header=st.sampled_from(["Epistula-Timestamp", "Epistula-Uuid", "Epistula-Signed-For"]),
    value=st.text(max_size=40),
)
def test_a_changed_signed_field_never_verifies(header: str, value: str) -> None:
    headers = signed()
    if value == headers[header]:
        return
    with contextlib.suppress(MalformedHeaders):  # refused before the signature: as good
        assert verify_request({**headers, header: value}, BODY) is None


# ---- the guard: happy path ----------------------------------------------------------------


def test_a_good_request_is_admitted_with_uid_and_stake() -> None:
    clocks = Clocks()
    headers = signed()
    admission = guard_with(clocks).check(headers, BODY)
    assert admission == Admission(hotkey=VALIDATOR.ss58_address, uid=3, stake=5_000.0,
                                  request_uuid=headers["Epistula-Uuid"],
                                  signed_for=MINER.ss58_address)


def test_the_guard_reads_starlette_headers() -> None:
    clocks = Clocks()
    headers = signed()
    raw = Headers(raw=[(b"host", b"miner"), (b"content-type", b"application/json")]
                  + [(k.lower().encode(), v.encode()) for k, v in headers.items()])
    assert guard_with(clocks).check(raw, BODY).uid == 3


# ---- the guard: every refusal -------------------------------------------------------------


def _without(name: str) -> dict[str, str]:
    headers = signed()
    del headers[name]
    return headers


MALFORMED: dict[str, Callable[[], Any]] = {
    "no headers": dict,
    **{f"no {name}": functools.partial(_without, name) for name in HEADER_NAMES},
    "version 1": lambda: {**signed(), "Epistula-Version": "1"},
    "timestamp not a number": lambda: {**signed(), "Epistula-Timestamp": "soon"},
    "negative timestamp": lambda: {**signed(), "Epistula-Timestamp": "-5"},
    "uuid not a uuid": lambda: {**signed(), "Epistula-Uuid": "not-a-uuid"},
    "upper-case uuid": lambda: (lambda h: {**h, "Epistula-Uuid": h["Epistula-Uuid"].upper()})(
        signed()
    ),
    "signed-by not ss58": lambda: {**signed(), "Epistula-Signed-By": "alice"},
    "signature not hex": lambda: {**signed(), "Epistula-Request-Signature": "0x" + "zz" * 64},
    "signature too short": lambda: {**signed(), "Epistula-Request-Signature": "0x" + "ab" * 63},
    "signature without 0x": lambda: {
        **signed(), "Epistula-Request-Signature": "ab" + "cd" * 64,
    },
    "signature with spaces": lambda: {
        **signed(), "Epistula-Request-Signature": "0x" + "ab " * 42 + "ab",
    },
    "header sent twice": lambda: Headers(
        raw=[(k.lower().encode(), v.encode()) for k, v in signed().items()]
        + [(b"epistula-uuid", b"00000000-0000-4000-8000-000000000000")]
    ),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_malformed_headers_are_400(case: str) -> None:
    refusal = refusal_of(guard_with(Clocks()), MALFORMED[case]())
    assert (refusal.status, refusal.code) == (400, RefusalCode.MALFORMED_HEADERS)


def test_forged_signature_is_401() -> None:
    guard = guard_with(Clocks())
    # The stranger signs, but claims to be the validator.
    forged = {**signed(STRANGER), "Epistula-Signed-By": VALIDATOR.ss58_address}
    refusal = refusal_of(guard, forged)
    assert (refusal.status, refusal.code) == (401, RefusalCode.BAD_SIGNATURE)
    # A genuine signature over a different body, or redirected to another miner, is forged too.
    assert refusal_of(guard, signed(), BODY + b" ").code == RefusalCode.BAD_SIGNATURE
    redirected = {**signed(), "Epistula-Signed-For": OTHER_MINER.ss58_address}
    assert refusal_of(guard, redirected).code == RefusalCode.BAD_SIGNATURE


@pytest.mark.parametrize("offset_ms", [-8_001, -60_000, 8_001, 3_600_000])
def test_stale_and_future_timestamps_are_401(offset_ms: int) -> None:
    refusal = refusal_of(guard_with(Clocks()), signed(at_ms=NOW_MS + offset_ms))
    assert (refusal.status, refusal.code) == (401, RefusalCode.STALE_REQUEST)


@pytest.mark.parametrize("offset_ms", [-8_000, 0, 8_000])
def test_timestamps_within_eight_seconds_either_way_are_fresh(offset_ms: int) -> None:
    assert guard_with(Clocks()).check(signed(at_ms=NOW_MS + offset_ms), BODY).uid == 3


def test_a_replay_is_401_until_it_goes_stale() -> None:
    clocks = Clocks()
    guard = guard_with(clocks)
    headers = signed(at_ms=NOW_MS + 8_000)  # dated as far ahead as is allowed
    guard.check(headers, BODY)
    refusal = refusal_of(guard, headers)
    assert (refusal.status, refusal.code) == (401, RefusalCode.REPLAYED_REQUEST)
    clocks.advance(15.0)  # still within 8 s of its timestamp: still remembered
    assert refusal_of(guard, headers).code == RefusalCode.REPLAYED_REQUEST
    clocks.advance(1.5)  # now its timestamp is 8.5 s old: refused as stale, id forgotten
    assert refusal_of(guard, headers).code == RefusalCode.STALE_REQUEST
    guard.check(signed(at_ms=clocks.ms), BODY)  # any later request evicts expired ids
    assert guard.replay_cache_entries == 1


def test_wrong_recipient_is_401_and_broadcast_needs_opt_in() -> None:
    clocks = Clocks()
    refusal = refusal_of(guard_with(clocks), signed(signed_for=OTHER_MINER.ss58_address))
    assert (refusal.status, refusal.code) == (401, RefusalCode.WRONG_RECIPIENT)
    broadcast = signed(signed_for="")
    assert refusal_of(guard_with(clocks), broadcast).code == RefusalCode.WRONG_RECIPIENT
    assert guard_with(clocks, accept_broadcast=True).check(broadcast, BODY).uid == 3


def test_a_guard_for_several_hotkeys_admits_each_and_says_which() -> None:
    """A sybil's one process answers for several hotkeys: each is a valid recipient, the
    admission names the one the request was signed for, and any other is refused."""
    clocks = Clocks()
    guard = guard_with(clocks, also_for=[OTHER_MINER.ss58_address])
    assert guard.recipients == {MINER.ss58_address, OTHER_MINER.ss58_address}
    for hotkey in (MINER.ss58_address, OTHER_MINER.ss58_address):
        assert guard.check(signed(signed_for=hotkey), BODY).signed_for == hotkey
    refusal = refusal_of(guard, signed(signed_for=STRANGER.ss58_address))
    assert (refusal.status, refusal.code) == (401, RefusalCode.WRONG_RECIPIENT)
    broadcast = guard_with(clocks, accept_broadcast=True).check(signed(signed_for=""), BODY)
    assert broadcast.signed_for == MINER.ss58_address


def test_unregistered_caller_is_403() -> None:
    refusal = refusal_of(guard_with(Clocks()), signed(STRANGER))
    assert (refusal.status, refusal.code) == (403, RefusalCode.UNREGISTERED_CALLER)


def test_caller_without_validator_permit_is_403() -> None:
    refusal = refusal_of(guard_with(Clocks()), signed(NO_PERMIT))
    assert (refusal.status, refusal.code) == (403, RefusalCode.NO_VALIDATOR_PERMIT)


def test_blacklisted_caller_is_403_and_the_list_can_be_replaced() -> None:
    clocks = Clocks()
    guard = guard_with(clocks, blacklist=[VALIDATOR.ss58_address])
    refusal = refusal_of(guard, signed())
    assert (refusal.status, refusal.code) == (403, RefusalCode.BLACKLISTED)
    guard.replace_blacklist([])
    assert guard.check(signed(), BODY).uid == 3


def test_rate_limit_is_429_per_caller_and_refills() -> None:
    clocks = Clocks()
    guard = guard_with(clocks, rate_limit=RateLimit(rate=2.0, burst=3.0))
    for _ in range(3):
        guard.check(signed(), BODY)
    refusal = refusal_of(guard, signed())
    assert (refusal.status, refusal.code) == (429, RefusalCode.RATE_LIMITED)
    clocks.advance(0.5)  # one token back at 2/s
    guard.check(signed(at_ms=clocks.ms), BODY)
    assert refusal_of(guard, signed(at_ms=clocks.ms)).code == RefusalCode.RATE_LIMITED


def test_rate_limit_can_be_turned_off() -> None:
    guard = guard_with(Clocks(), rate_limit=None)
    for _ in range(300):
        guard.check(signed(), BODY)


def test_the_first_failing_check_is_the_one_reported() -> None:
    clocks = Clocks()
    guard = guard_with(clocks, blacklist=[STRANGER.ss58_address, NO_PERMIT.ss58_address])
    forged_and_stale = {**signed(STRANGER, at_ms=0), "Epistula-Signed-By": VALIDATOR.ss58_address}
    assert refusal_of(guard, forged_and_stale).code == RefusalCode.BAD_SIGNATURE
    stale_elsewhere = signed(signed_for=OTHER_MINER.ss58_address, at_ms=NOW_MS - 9_000)
    assert refusal_of(guard, stale_elsewhere).code == RefusalCode.STALE_REQUEST
    stranger_elsewhere = signed(STRANGER, signed_for=OTHER_MINER.ss58_address)
    assert refusal_of(guard, stranger_elsewhere).code == RefusalCode.WRONG_RECIPIENT
    assert refusal_of(guard, signed(STRANGER)).code == RefusalCode.UNREGISTERED_CALLER
    assert refusal_of(guard, signed(NO_PERMIT)).code == RefusalCode.NO_VALIDATOR_PERMIT


def test_refused_requests_do_not_use_up_their_uuid() -> None:
    """Only admitted ids are recorded: a refused request cannot fill the replay cache."""
    clocks = Clocks()
    guard = guard_with(clocks)
    headers = signed(STRANGER)
    assert refusal_of(guard, headers).code == RefusalCode.UNREGISTERED_CALLER
    assert guard.replay_cache_entries == 0
    # The metagraph refresh registers the stranger with a permit: swapped in atomically.
    guard.replace_metagraph(StaticMetagraph({
        STRANGER.ss58_address: CallerInfo(uid=1, stake=1.0, validator_permit=True),
    }))
    assert guard.check(headers, BODY).uid == 1
    assert refusal_of(guard, headers).code == RefusalCode.REPLAYED_REQUEST


def test_refusal_json_body() -> None:
    refusal = refusal_of(guard_with(Clocks()), signed(STRANGER))
    body = refusal.as_json()
    assert body["error"]["code"] == "unregistered_caller"
    assert STRANGER.ss58_address in body["error"]["message"]
    busy = busy_refusal(QueueFull("full"))
    assert (busy.status, busy.code, busy.as_json()["error"]["message"]) == (
        429, RefusalCode.BUSY, "full")


@settings(max_examples=60, deadline=None)
@given(
    header=st.sampled_from(HEADER_NAMES),
    value=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=140),
)
def test_no_tampered_header_is_ever_admitted(header: str, value: str) -> None:
    headers = signed()
    if value == headers[header]:
        return
    with pytest.raises(Refusal):
        guard_with(Clocks()).check({**headers, header: value}, BODY)


# ---- the guard's state ---------------------------------------------------------------------


def test_replay_cache_is_bounded_and_refuses_rather_than_forgets() -> None:
    cache = ReplayCache(max_entries=2)
    cache.add(("a", "1"), 100)
    cache.add(("a", "2"), 50)
    with pytest.raises(ReplayCacheFull):
        cache.add(("a", "3"), 100)
    cache.evict(now_ms=60)  # the front expires at 100: nothing is dropped early
    assert len(cache) == 2 and cache.seen(("a", "2"))
    cache.evict(now_ms=101)
    assert len(cache) == 0


def test_a_full_replay_cache_is_503() -> None:
    clocks = Clocks()
    guard = guard_with(clocks, replay_cache_size=1)
    guard.check(signed(), BODY)
    refusal = refusal_of(guard, signed())
    assert (refusal.status, refusal.code) == (503, RefusalCode.REPLAY_CACHE_FULL)


def test_token_buckets_drop_only_full_buckets() -> None:
    buckets = TokenBuckets(RateLimit(rate=1.0, burst=2.0), max_keys=2)
    assert buckets.take("a", 0.0) and buckets.take("a", 0.0) and not buckets.take("a", 0.0)
    assert buckets.take("b", 0.0)
    assert buckets.take("c", 0.5)  # a and b are not full yet: kept
    assert len(buckets) == 3 and not buckets.take("a", 0.5)
    assert buckets.take("d", 10.0)  # everyone has refilled: the idle buckets go
    assert len(buckets) == 1


def test_static_metagraph_from_ledger_rows() -> None:
    rows = [
        {"uid": 0, "hotkey": VALIDATOR.ss58_address, "stake": 10, "validator_permit": True,
         "incentive": 0.0},
        {"uid": 1, "hotkey": MINER.ss58_address, "stake": 0, "validator_permit": False},
    ]
    view = StaticMetagraph.from_neurons(rows)
    assert len(view) == 2
    assert view.lookup(VALIDATOR.ss58_address) == CallerInfo(0, 10.0, True)
    assert view.lookup(STRANGER.ss58_address) is None


# ---- the validator's client ----------------------------------------------------------------


def test_signed_post_signs_exactly_the_bytes_it_sends() -> None:
    guard = RequestGuard(MINER.ss58_address, metagraph())
    seen: list[Admission] = []

    async def app(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = Headers(scope=scope)
        try:
            seen.append(guard.check(headers, body))
            status, answer = 200, body
        except Refusal as refusal:
            status, answer = refusal.status, encode_json(refusal.as_json())
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": answer})

    payload = {"messages": [{"role": "user", "content": "héllo ✓"}], "b": 1, "a": [1.5, None]}

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://miner") as client:
            return [
                await signed_post(client, "/v1/chat/completions", VALIDATOR,
                                  MINER.ss58_address, payload),
                await signed_post(client, "/v1/chat/completions", VALIDATOR,
                                  OTHER_MINER.ss58_address, payload),
            ]

    ok, wrong = asyncio.run(main())
    assert ok.status_code == 200 and json.loads(ok.content) == payload
    assert ok.content == encode_json(payload)
    assert seen[0].hotkey == VALIDATOR.ss58_address
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "wrong_recipient"


# ---- the stake-ordered gate ----------------------------------------------------------------


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def _serve_in_order(stakes: list[float], concurrency: int = 1) -> list[int]:
    """Occupy every slot, queue one waiter per stake (in list order), then free the slots."""
    gate = StakePriorityGate(concurrency=concurrency, max_queue=len(stakes))
    served: list[int] = []
    release = asyncio.Event()

    async def holder() -> None:
        async with gate.slot(1e18):
            await release.wait()

    async def waiter(index: int) -> None:
        async with gate.slot(stakes[index]):
            served.append(index)
            await asyncio.sleep(0)

    holders = [asyncio.create_task(holder()) for _ in range(concurrency)]
    await _settle()
    waiters = []
    for index in range(len(stakes)):
        waiters.append(asyncio.create_task(waiter(index)))
        await _settle()
    assert gate.queue_depth == len(stakes) and gate.in_use == concurrency
    release.set()
    await asyncio.gather(*holders, *waiters)
    assert gate.queue_depth == 0 and gate.in_use == 0
    return served


def test_waiters_are_served_by_stake_then_arrival() -> None:
    stakes = [5.0, 1.0, 9.0, 5.0, 3.0, 9.0]
    assert run(_serve_in_order(stakes)) == [2, 5, 0, 3, 4, 1]


@settings(max_examples=30, deadline=None)
@given(stakes=st.lists(st.integers(0, 5).map(float), max_size=12),
       concurrency=st.integers(1, 3))
def test_service_order_is_stake_descending_fifo_within_equal_stake(
    stakes: list[float], concurrency: int
) -> None:
    served = run(_serve_in_order(stakes, concurrency))
    assert served == sorted(range(len(stakes)), key=lambda i: (-stakes[i], i))


def test_a_free_slot_is_taken_at_once() -> None:
    async def main() -> int:
        gate = StakePriorityGate(concurrency=2, max_queue=0)
        async with gate.slot(0.0), gate.slot(0.0):
            return gate.in_use

    assert run(main()) == 2


def test_when_the_queue_is_full_the_lowest_stake_is_turned_away() -> None:
    async def main() -> tuple[list[str], int]:
        gate = StakePriorityGate(concurrency=1, max_queue=2)
        outcome: list[str] = []
        release = asyncio.Event()

        async def holder() -> None:
            async with gate.slot(100.0):
                await release.wait()

        async def waiter(name: str, stake: float) -> None:
            try:
                async with gate.slot(stake):
                    outcome.append(f"served {name}")
            except QueueFull:
                outcome.append(f"busy {name}")

        tasks = [asyncio.create_task(holder())]
        await _settle()
        for name, stake in [("a", 5.0), ("b", 3.0), ("c", 1.0), ("d", 3.0), ("e", 10.0)]:
            tasks.append(asyncio.create_task(waiter(name, stake)))
            await _settle()
        depth = gate.queue_depth
        release.set()
        await asyncio.gather(*tasks)
        return outcome, depth

    outcome, depth = run(main())
    # c (1) finds the queue full of better stakes; d (3) ties b but came later; e (10)
    # displaces the lowest waiter, b (3).
    assert outcome == ["busy c", "busy d", "busy b", "served e", "served a"]
    assert depth == 2


def test_no_queue_means_busy_at_once() -> None:
    async def main() -> None:
        gate = StakePriorityGate(concurrency=1, max_queue=0)
        async with gate.slot(1.0):
            with pytest.raises(QueueFull):
                await gate.acquire(1e9)

    run(main())


def test_a_cancelled_waiter_leaves_the_queue_and_no_slot_leaks() -> None:
    async def main() -> tuple[list[str], int, int]:
        gate = StakePriorityGate(concurrency=1, max_queue=4)
        served: list[str] = []
        release = asyncio.Event()

        async def holder() -> None:
            async with gate.slot(0.0):
                await release.wait()

        async def waiter(name: str, stake: float) -> None:
            async with gate.slot(stake):
                served.append(name)

        hold = asyncio.create_task(holder())
        await _settle()
        rich = asyncio.create_task(waiter("rich", 9.0))
        poor = asyncio.create_task(waiter("poor", 1.0))
        await _settle()
        rich.cancel()
        await _settle()
        depth = gate.queue_depth
        release.set()
        await asyncio.gather(hold, poor)
        # A slot handed over just as its task is cancelled is passed on, not lost.
        late = asyncio.create_task(waiter("late", 5.0))
        async with gate.slot(0.0):
            await _settle()
            assert gate.queue_depth == 1
        late.cancel()  # its slot was handed over on release, but it has not run yet
        await asyncio.gather(late, return_exceptions=True)
        return served, depth, gate.in_use

    served, depth, in_use = run(main())
    assert served == ["poor"] and depth == 1 and in_use == 0


def test_gate_arguments_are_checked() -> None:
    with pytest.raises(ValueError):
        StakePriorityGate(concurrency=0, max_queue=1)
    with pytest.raises(ValueError):
        StakePriorityGate(concurrency=1, max_queue=-1)

    async def nan_stake() -> None:
        await StakePriorityGate(1, 1).acquire(float("nan"))

    with pytest.raises(ValueError):
        run(nan_stake())


# ---- the benchmark command -----------------------------------------------------------------


def test_bench_protocol_prints_the_figures_as_json(cli: CliRun) -> None:
    proc = cli("bench", "protocol", "--json", "--requests", "200", "--concurrency", "4")
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    for route in ("plain", "signed"):
        assert set(figures[route]) == {"p50_ms", "p99_ms", "rps"}
        assert all(isinstance(figures[route][k], float) for k in ("p50_ms", "p99_ms", "rps"))
    assert isinstance(figures["throughput_ratio"], float)
    assert isinstance(figures["signed_overhead_p50_ms"], float)
    assert set(figures["cpu_us_per_request"]["signed"]) == {"client", "server"}
    spread = figures["throughput_ratio_rounds"]
    assert spread["rounds"] == 2  # 200 requests per route: the minimum of two paired rounds
    assert 0 < spread["p25"] <= spread["median"] <= spread["p75"]


def test_paired_ratio_spread_pairs_rounds_not_totals() -> None:
    # Round 2 ran while the machine was twice as busy: both routes halve, the ratio stays.
    spread = paired_ratio_spread([450.0, 225.0, 440.0], [500.0, 250.0, 550.0])
    assert spread.rounds == 3
    assert spread.median == pytest.approx(0.9)
    assert spread.p25 == pytest.approx(0.85) and spread.p75 == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("signed", "plain", "reason"),
    [
        ([1.0, 2.0], [1.0], "2 signed rounds but 1 plain"),
        ([1.0], [1.0], "at least 2 paired rounds"),
        ([1.0, 0.0], [1.0, 1.0], "must be positive"),
        ([1.0, 1.0], [1.0, float("nan")], "must be positive"),
    ],
)
def test_paired_ratio_spread_refuses_what_cannot_be_paired(
    signed: list[float], plain: list[float], reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        paired_ratio_spread(signed, plain)


def test_bench_protocol_breakdown_splits_the_signed_extra_into_parts(cli: CliRun) -> None:
    proc = cli("bench", "protocol", "--json", "--breakdown", "--requests", "200")
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    breakdown = figures["breakdown"]
    assert set(breakdown["routes"]) == {"signing", "headers"}
    for route in breakdown["routes"].values():
        assert route["rps"] > 0 and route["cpu_us_per_request"]["client"] > 0
    cpu = figures["cpu_us_per_request"]
    client_extra = cpu["signed"]["client"] - cpu["plain"]["client"]
    server_extra = cpu["signed"]["server"] - cpu["plain"]["server"]
    assert sum(breakdown["client_us"].values()) == pytest.approx(client_extra, abs=0.5)
    assert sum(breakdown["server_us"].values()) == pytest.approx(server_extra, abs=0.5)
    # Which part is larger is a measurement, not a property: 200 requests on a busy machine
    # can put either first (CI once measured checks -59 µs). The figures and the command
    # that reproduces them are in docs/BENCHMARKS.md, measured over 10,000 requests.


def test_bench_protocol_prints_the_breakdown_as_a_table(cli: CliRun) -> None:
    proc = cli("bench", "protocol", "--breakdown", "--requests", "100")
    assert proc.returncode == 0, proc.stderr
    assert "extra CPU per request over plain" in proc.stdout
    for part in ("signing", "Epistula headers", "checks", "total"):
        assert part in proc.stdout


def _figures(client_us: float, server_us: float) -> RouteFigures:
    return RouteFigures(requests=100, p50_ms=1.0, p99_ms=2.0, rps=500.0,
                        client_cpu_us=client_us, server_cpu_us=server_us)


def test_cpu_breakdown_attributes_each_difference_to_its_part() -> None:
    parts = cpu_breakdown(
        plain=_figures(1500, 700),
        signing=_figures(1560, 701),
        headers=_figures(1580, 712),
        signed=_figures(1690, 950),
    )
    assert parts.client_signing_us == pytest.approx(60)
    assert parts.client_headers_us == pytest.approx(80)
    assert parts.client_other_us == pytest.approx(50)
    assert parts.server_headers_us == pytest.approx(12)
    assert parts.server_checks_us == pytest.approx(238)
    assert parts.client_total_us == pytest.approx(190)
    assert parts.server_total_us == pytest.approx(250)
    # Noise can make a part negative; it is reported as measured, not clipped.
    noisy = cpu_breakdown(_figures(1500, 700), _figures(1495, 700), _figures(1500, 700),
                          _figures(1600, 900))
    assert noisy.client_signing_us == pytest.approx(-5)
    assert noisy.client_total_us == pytest.approx(100)


def test_round_order_gives_every_route_its_turn_first() -> None:
    assert [_round_order(["plain", "signed"], n) for n in range(3)] == [
        ["plain", "signed"], ["signed", "plain"], ["plain", "signed"]]
    routes = ["plain", "signed", "signing", "headers"]
    orders = [_round_order(routes, n) for n in range(4)]
    assert sorted(order[0] for order in orders) == sorted(routes)
    assert all(sorted(order) == sorted(routes) for order in orders)


def test_bench_protocol_checks_its_arguments(cli: CliRun) -> None:
    proc = cli("bench", "protocol", "--requests", "0")
    assert proc.returncode == 2 and "--requests" in proc.stderr
