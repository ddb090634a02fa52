"""The miner's pure parts: option checks, the sim model, engine seconds, behaviours, labels,
the `caller` label of a refusal, the error event of a broken stream.

What needs a running miner (refusals over HTTP, streams, an OpenAI client, the CLI's
one-line errors) is in tests/integration/test_miner_process.py.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import pytest

from subnetlab.engines import (
    OpenAIBackend,
    SimBackend,
    SimModel,
    StreamUsage,
    VllmBackend,
    completion_of,
    count_tokens,
    reported_engine_seconds,
)
from subnetlab.keys import Keypair
from subnetlab.miner.launch import (
    MinerOptions,
    build_miner,
    check_options,
    parse_blacklist,
    parse_task_accuracy,
)
from subnetlab.miner.server import UNKNOWN_CALLER, Miner, caller_label
from subnetlab.protocol.epistula import sign_request, wall_clock_ms
from subnetlab.protocol.guard import Refusal, RequestGuard
from subnetlab.protocol.limits import RateLimit
from subnetlab.protocol.metagraph import CallerInfo, StaticMetagraph
from subnetlab.protocol.priority import StakePriorityGate
from subnetlab.protocol.sse import ChunkWriter, error_event
from subnetlab.tasks import KINDS, generate, solve

KEY = Keypair.dev("test-miner-a")
SYBIL = Keypair.dev("test-miner-b")


def _message(options: MinerOptions) -> str:
    with pytest.raises(ValueError) as info:
        check_options(options)
    return str(info.value)


# ---- options: every flag that does not apply, or is out of range, is refused ------------


@pytest.mark.parametrize(("options", "flags"), [
    (MinerOptions(behaviour="passthrough"), ("--behaviour passthrough", "--backend sim")),
    (MinerOptions(behaviour="passthrough", backend="vllm", backend_url="http://x"),
     ("--behaviour passthrough", "--backend vllm")),
    (MinerOptions(copy_from="http://x"), ("--copy-from", "copycat")),
    (MinerOptions(behaviour="copycat"), ("--behaviour copycat", "--copy-from")),
    (MinerOptions(backend_url="http://x"), ("--backend-url", "sim")),
    (MinerOptions(backend="openai"), ("--backend openai", "--backend-url")),
    (MinerOptions(model="m"), ("--model",)),
    (MinerOptions(backend="openai", backend_url="http://x", accuracy=0.5, ttft=0.1),
     ("--accuracy, --ttft", "--backend sim")),
    (MinerOptions(backend="vllm", backend_url="http://x", task_accuracy="string=1"),
     ("--task-accuracy", "--backend sim")),
    (MinerOptions(accuracy=1.5), ("--accuracy 1.5",)),
    (MinerOptions(accuracy=float("nan")), ("--accuracy nan",)),
    (MinerOptions(ttft=-1.0), ("--ttft -1",)),
    (MinerOptions(tokens_per_s=0.0), ("--tokens-per-s 0",)),
    (MinerOptions(behaviour="sybil"), ("--behaviour sybil", "--sybil-key")),
    (MinerOptions(sybil_keys=("b",)), ("--sybil-key", "honest")),
    (MinerOptions(blacklist=("not-an-address",)), ("--blacklist not-an-address",)),
    (MinerOptions(rate_limit=-1.0), ("--rate-limit -1",)),
    (MinerOptions(rate_limit=float("inf")), ("--rate-limit inf",)),
    (MinerOptions(rate_burst=0.5), ("--rate-burst 0.5",)),
    (MinerOptions(rate_limit=0.0, rate_burst=10.0), ("--rate-burst", "--rate-limit")),
    (MinerOptions(backend="tpu"), ("--backend tpu",)),
    (MinerOptions(concurrency=0), ("--concurrency 0",)),
])
def test_options_that_do_not_apply_or_are_out_of_range_are_refused(
    options: MinerOptions, flags: tuple[str, ...]
) -> None:
    message = _message(options)
    assert all(flag in message for flag in flags), message
    assert "\n" not in message


@pytest.mark.parametrize(("options", "line"), [
    (MinerOptions(behaviour="copycat"),
     "--copy-from: --behaviour copycat needs it (the engine URL it copies)"),
    (MinerOptions(behaviour="lazy", copy_from="http://x"),
     "--copy-from http://x: only applies to --behaviour copycat, not lazy"),
    (MinerOptions(behaviour="sybil"), "--sybil-key: --behaviour sybil needs it (a NAME for "
                                      "each further hotkey the same engine serves; repeat the "
                                      "flag)"),
    (MinerOptions(sybil_keys=("b", "c")), "--sybil-key b,c: only applies to --behaviour sybil, "
                                          "not honest"),
    (MinerOptions(behaviour="passthrough", backend="vllm", backend_url="http://x"),
     "--backend vllm: --behaviour passthrough forwards to an upstream API: it needs --backend "
     "openai (with its url and model), not vllm"),
])
def test_the_behaviour_rules_are_the_specs_said_in_flags(options: MinerOptions,
                                                         line: str) -> None:
    """`specs.miner_problem` is the one rule for a Neuron's miner settings and these flags."""
    assert _message(options) == line


def test_options_that_apply_are_accepted() -> None:
    for options in (
        MinerOptions(),
        MinerOptions(accuracy=1.0, task_accuracy="arithmetic=0,sorting=0.5", ttft=0.0,
                     tokens_per_s=10.0),
        MinerOptions(behaviour="passthrough", backend="openai", backend_url="http://x",
                     model="m"),
        MinerOptions(behaviour="copycat", copy_from="http://x", model="m"),
        MinerOptions(behaviour="lazy", accuracy=0.5),  # a lazy sim miner keeps its flags
        MinerOptions(behaviour="sybil", sybil_keys=("b",)),
        MinerOptions(blacklist=(f"{KEY.ss58_address},{SYBIL.ss58_address}",),
                     rate_limit=0.0),
        MinerOptions(rate_limit=5.0, rate_burst=1.0),
    ):
        check_options(options)


@pytest.mark.parametrize(("text", "fragment"), [
    ("arithmetic", "'arithmetic' is not kind=accuracy"),
    ("poetry=0.5", "unknown task kind 'poetry'"),
    ("open=0.5", "unknown task kind 'open'"),
    ("string=0.5,string=0.6", "task kind 'string' is given twice"),
    ("sorting=high", "accuracy of 'sorting' is not a number: 'high'"),
    ("sorting=1.01", "accuracy of 'sorting' must be in [0, 1], got 1.01"),
    ("sorting=nan", "must be in [0, 1]"),
    (" , ", "at least one"),
])
def test_task_accuracy_is_checked(text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_task_accuracy(text)
    assert fragment in str(info.value) and str(info.value).startswith("--task-accuracy")


def test_task_accuracy_and_blacklist_parse() -> None:
    assert parse_task_accuracy("arithmetic=0.25, sorting = 1") == {"arithmetic": 0.25,
                                                                  "sorting": 1.0}
    assert parse_blacklist([f"{KEY.ss58_address}, {SYBIL.ss58_address}", KEY.ss58_address]
                           ) == {KEY.ss58_address, SYBIL.ss58_address}


def test_build_miner_wires_blacklist_rate_limit_and_sybil_hotkeys() -> None:
    miner = build_miner(MinerOptions(behaviour="sybil", sybil_keys=("b",),
                                     blacklist=(SYBIL.ss58_address,), rate_limit=0.0),
                        KEY, [SYBIL])
    assert miner.hotkeys == (KEY.ss58_address, SYBIL.ss58_address)
    assert miner.guard.recipients == set(miner.hotkeys)
    assert miner.guard.blacklist == {SYBIL.ss58_address}
    with pytest.raises(ValueError, match="--sybil-key"):
        build_miner(MinerOptions(behaviour="sybil", sybil_keys=("a",)), KEY, [KEY])


# ---- the sim model ---------------------------------------------------------------------


def test_the_sim_model_refuses_impossible_settings() -> None:
    for bad in ({"ttft_s": -0.1}, {"tokens_per_s": 0.0}, {"default_accuracy": 1.2},
                {"accuracy": {"arithmetic": -0.1}}, {"accuracy": {"poetry": 0.5}}):
        with pytest.raises(ValueError):
            SimModel(**bad)


def test_accuracy_per_task_kind_decides_which_kinds_are_answered_right() -> None:
    backend = SimBackend(SimModel(default_accuracy=1.0, accuracy={"arithmetic": 0.0}))
    for kind in KINDS:
        for seed in range(20):
            task = generate(kind, seed)
            right = backend.answer(task.prompt) == solve(task.prompt)
            assert right == (kind != "arithmetic"), (kind, seed)


def test_a_sim_stream_reports_the_same_figures_as_the_whole_answer() -> None:
    backend = SimBackend(SimModel(ttft_s=0.0, tokens_per_s=1e6, default_accuracy=1.0))
    body = {"messages": [{"role": "user", "content": generate("string", 3).prompt}]}
    whole = asyncio.run(backend.complete(body))

    async def collect() -> list[str | StreamUsage]:
        return [piece async for piece in backend.stream(body)]

    pieces = asyncio.run(collect())
    usage = pieces[-1]
    assert isinstance(usage, StreamUsage)
    assert "".join(p for p in pieces if isinstance(p, str)) == whole.text
    assert (usage.prompt_tokens, usage.completion_tokens) == (whole.prompt_tokens,
                                                              whole.completion_tokens)
    assert usage.simulated and whole.simulated
    assert usage.engine_seconds is not None and usage.engine_seconds > 0


# ---- engine seconds: only what the engine itself reports --------------------------------


VLLM_METRICS = {"time_to_first_token_ms": 41.5, "generation_time_ms": 958.5,
                "queue_time_ms": 12.0, "mean_itl_ms": 30.9, "tokens_per_second": 32.0}


def _chat(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "choices": [{"message": {"content": "hello"}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2}, **extra}


def test_engine_seconds_come_from_vllms_per_request_metrics_only() -> None:
    assert reported_engine_seconds({"metrics": VLLM_METRICS}) == pytest.approx(1.0)
    assert reported_engine_seconds({}) is None  # an upstream that reports nothing
    for broken in ({"time_to_first_token_ms": None, "generation_time_ms": 3.0},
                   {"time_to_first_token_ms": 1.0},
                   {"time_to_first_token_ms": -1.0, "generation_time_ms": 3.0},
                   {"time_to_first_token_ms": True, "generation_time_ms": 3.0},
                   {"time_to_first_token_ms": float("nan"), "generation_time_ms": 3.0}):
        assert reported_engine_seconds({"metrics": broken}) is None, broken
    assert reported_engine_seconds({"metrics": "fast"}) is None


def test_an_upstream_answer_keeps_its_usage_engine_seconds_and_label() -> None:
    plain = completion_of(_chat(), "m")
    assert (plain.prompt_tokens, plain.completion_tokens) == (5, 2)
    assert plain.engine_seconds is None and not plain.simulated
    vllm = completion_of(_chat(metrics=VLLM_METRICS), "m")
    assert vllm.engine_seconds == pytest.approx(1.0)
    assert completion_of(_chat(system_fingerprint="simulated"), "m").simulated


# ---- behaviours --------------------------------------------------------------------------


def _miner(**kwargs: Any) -> Miner:
    guard = RequestGuard(KEY.ss58_address, StaticMetagraph(),
                         also_for=kwargs.pop("also_for", ()))
    fields: dict[str, Any] = {"backend": SimBackend(), "behaviour": "honest", **kwargs}
    return Miner(KEY.ss58_address, guard=guard, gate=StakePriorityGate(1, 1), **fields)


def test_behaviours_need_what_they_use_and_nothing_else() -> None:
    upstream = OpenAIBackend("http://127.0.0.1:9", "m")
    with pytest.raises(ValueError, match="passthrough"):
        _miner(behaviour="passthrough")
    with pytest.raises(ValueError, match="passthrough"):
        _miner(behaviour="passthrough", backend=VllmBackend("http://127.0.0.1:9", "m"))
    assert _miner(behaviour="passthrough", backend=upstream).backend.kind == "openai"
    with pytest.raises(ValueError, match="copycat"):
        _miner(behaviour="copycat")
    with pytest.raises(ValueError, match="copycat"):
        _miner(copy_from=upstream)
    with pytest.raises(ValueError, match="sybil"):
        _miner(behaviour="sybil")
    with pytest.raises(ValueError, match="guard"):
        _miner(behaviour="sybil", sybil_hotkeys=(SYBIL.ss58_address,))
    sybil = _miner(behaviour="sybil", sybil_hotkeys=(SYBIL.ss58_address,),
                   also_for=(SYBIL.ss58_address,))
    assert sybil.hotkeys == (KEY.ss58_address, SYBIL.ss58_address)
    with pytest.raises(ValueError, match="differ"):
        _miner(behaviour="sybil", sybil_hotkeys=(KEY.ss58_address,))


# ---- stream labels -----------------------------------------------------------------------


def _event(raw: bytes) -> dict[str, Any]:
    text = raw.decode()
    assert text.startswith("data: ") and text.endswith("\n\n")
    event: dict[str, Any] = json.loads(text[6:])
    return event


def test_chunk_writer_labels_every_chunk_and_carries_extra_fields() -> None:
    writer = ChunkWriter("m", fingerprint="simulated")
    block = {"subnetlab": {"simulated": True}}
    chunks = [_event(writer.content("a")), _event(writer.finish(extra=block)),
              _event(writer.usage(1, count_tokens("a"), block))]
    assert {c["system_fingerprint"] for c in chunks} == {"simulated"}
    assert chunks[1]["subnetlab"] == chunks[2]["subnetlab"] == block["subnetlab"]
    unlabelled = replace(writer, fingerprint=None)
    assert _event(unlabelled.content("a"))["system_fingerprint"] is None
    assert _event(unlabelled.finish(fingerprint="simulated"))["system_fingerprint"] == "simulated"


def test_the_error_event_carries_the_same_error_object_as_a_502_body() -> None:
    event = _event(error_event("backend_error", "EngineError: engine answered 500: down"))
    assert event == {"error": {"code": "backend_error",
                               "message": "EngineError: engine answered 500: down"}}


# ---- the caller label: only a verified, registered hotkey, never what a stranger claims ----


def test_a_refusal_names_the_caller_only_once_it_is_verified_and_registered() -> None:
    """Forged, stale, replayed, misaddressed and unregistered requests are `unknown` (anyone
    can mint keys); a registered caller refused for its permit, the blacklist or its rate
    limit is labelled with its hotkey."""
    caller, permitless, banned, stranger = (
        Keypair.dev(n) for n in ("tm-caller", "tm-permitless", "tm-banned", "tm-stranger"))
    graph = StaticMetagraph({caller.ss58_address: CallerInfo(0, 10.0, True),
                             permitless.ss58_address: CallerInfo(1, 1.0, False),
                             banned.ss58_address: CallerInfo(2, 10.0, True)})
    guard = RequestGuard(KEY.ss58_address, graph, blacklist=[banned.ss58_address],
                         rate_limit=RateLimit(rate=0.001, burst=1.0))
    body, me = b'{"messages": []}', KEY.ss58_address
    admitted = sign_request(caller, body, me)
    guard.check(admitted, body)  # spends the caller's one token: its next one is refused
    forged = {**sign_request(caller, body, me), "Epistula-Request-Signature": "0x" + "11" * 64}
    requests = {
        "bad_signature": forged,
        "stale_request": sign_request(caller, body, me, now_ms=wall_clock_ms() - 60_000),
        "replayed_request": admitted,
        "wrong_recipient": sign_request(caller, body, SYBIL.ss58_address),
        "unregistered_caller": sign_request(stranger, body, me),
        "no_validator_permit": sign_request(permitless, body, me),
        "blacklisted": sign_request(banned, body, me),
        "rate_limited": sign_request(caller, body, me),
    }
    labels = {}
    for code, headers in requests.items():
        with pytest.raises(Refusal) as refused:
            guard.check(headers, body)
        assert refused.value.code.value == code
        labels[code] = caller_label(refused.value)
    assert labels == {
        "bad_signature": UNKNOWN_CALLER, "stale_request": UNKNOWN_CALLER,
        "replayed_request": UNKNOWN_CALLER, "wrong_recipient": UNKNOWN_CALLER,
        "unregistered_caller": UNKNOWN_CALLER,
        "no_validator_permit": permitless.ss58_address, "blacklisted": banned.ss58_address,
        "rate_limited": caller.ss58_address,
    }
