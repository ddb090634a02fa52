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
from subnetlab.miner.launch import build_miner
from subnetlab.miner.server import UNKNOWN_CALLER, Miner, caller_label
from subnetlab.miner.settings import MinerSettings, SimSettings, from_serve_flags
from subnetlab.protocol.epistula import sign_request, wall_clock_ms
from subnetlab.protocol.guard import Refusal, RequestGuard
from subnetlab.protocol.limits import RateLimit
from subnetlab.protocol.metagraph import CallerInfo, StaticMetagraph
from subnetlab.protocol.priority import StakePriorityGate
from subnetlab.protocol.sse import ChunkWriter, error_event
from subnetlab.tasks import KINDS, generate, solve

KEY = Keypair.dev("test-miner-a")
SYBIL = Keypair.dev("test-miner-b")


def _message(flags: dict[str, Any]) -> str:
    """The error `miner serve` gives for these flag values (by parameter name)."""
    with pytest.raises(ValueError) as info:
        from_serve_flags(flags)
    return str(info.value)


# ---- settings: every flag that does not apply, or is out of range, is refused -----------


@pytest.mark.parametrize(("options", "flags"), [
    (dict(behaviour="passthrough"), ("--behaviour passthrough", "--backend sim")),
    (dict(behaviour="passthrough", backend="vllm", backend_url="http://x"),
     ("--behaviour passthrough", "--backend vllm")),
    (dict(copy_from="http://x"), ("--copy-from", "copycat")),
    (dict(behaviour="copycat"), ("--behaviour copycat", "--copy-from")),
    (dict(backend_url="http://x"), ("--backend-url", "sim")),
    (dict(backend="openai"), ("--backend openai", "--backend-url")),
    (dict(model="m"), ("--model",)),
    (dict(backend="openai", backend_url="http://x", accuracy=0.5, ttft=0.1),
     ("--accuracy, --ttft", "--backend sim")),
    (dict(backend="vllm", backend_url="http://x", task_accuracy="string=1"),
     ("--task-accuracy", "--backend sim")),
    (dict(accuracy=1.5), ("--accuracy 1.5",)),
    (dict(accuracy=float("nan")), ("--accuracy nan",)),
    (dict(ttft=-1.0), ("--ttft -1",)),
    (dict(tokens_per_s=0.0), ("--tokens-per-s 0",)),
    (dict(behaviour="sybil"), ("--behaviour sybil", "--sybil-key")),
    (dict(sybil_key=("b",)), ("--sybil-key", "honest")),
    (dict(blacklist=("not-an-address",)), ("--blacklist not-an-address",)),
    (dict(rate_limit=-1.0), ("--rate-limit -1",)),
    (dict(rate_limit=float("inf")), ("--rate-limit inf",)),
    (dict(rate_burst=0.5), ("--rate-burst 0.5",)),
    (dict(rate_limit=0.0, rate_burst=10.0), ("--rate-burst", "--rate-limit")),
    (dict(backend="tpu"), ("--backend tpu",)),
    (dict(concurrency=0), ("--concurrency 0",)),
    (dict(max_body_bytes=0), ("--max-body-bytes 0", "at least 1")),
    (dict(max_body_bytes=2**40), ("--max-body-bytes 1099511627776", "at most")),
    (dict(model=""), ("--model", "at least 1 character")),
    (dict(behaviour="sybil", sybil_key=[f"k{i}" for i in range(65)]),
     ("--sybil-key", "at most 64")),
    (dict(blacklist=[f"{KEY.ss58_address},5Fbad"]), ("--blacklist 5Fbad:",)),
])
def test_options_that_do_not_apply_or_are_out_of_range_are_refused(
    options: dict[str, Any], flags: tuple[str, ...]
) -> None:
    message = _message(options)
    assert all(flag in message for flag in flags), message
    assert "\n" not in message


def test_a_url_flag_is_shown_with_its_password_masked() -> None:
    message = _message(dict(copy_from="http://user:hunter2@engine:8000"))
    assert message == ("--copy-from http://user:***@engine:8000: only applies to --behaviour "
                       "copycat, not honest")


@pytest.mark.parametrize(("options", "line"), [
    (dict(behaviour="copycat"),
     "--copy-from: --behaviour copycat needs it (the engine URL it copies)"),
    (dict(behaviour="lazy", copy_from="http://x"),
     "--copy-from http://x: only applies to --behaviour copycat, not lazy"),
    (dict(behaviour="sybil"), "--sybil-key: --behaviour sybil needs it (a NAME for "
                                      "each further hotkey the same engine serves; repeat the "
                                      "flag)"),
    (dict(sybil_key=("b", "c")), "--sybil-key b,c: only applies to --behaviour sybil, "
                                          "not honest"),
    (dict(behaviour="passthrough", backend="vllm", backend_url="http://x"),
     "--backend vllm: --behaviour passthrough forwards to an upstream API: it needs --backend "
     "openai (with its url and model), not vllm"),
])
def test_the_behaviour_rules_are_the_specs_said_in_flags(options: dict[str, Any],
                                                         line: str) -> None:
    """`specs.miner_problem` is the one rule for a Neuron's miner settings and these flags."""
    assert _message(options) == line


def test_options_that_apply_are_accepted() -> None:
    for options in (
        dict(),
        dict(accuracy=1.0, task_accuracy="arithmetic=0,sorting=0.5", ttft=0.0,
                     tokens_per_s=10.0),
        dict(behaviour="passthrough", backend="openai", backend_url="http://x",
                     model="m"),
        dict(behaviour="copycat", copy_from="http://x", model="m"),
        dict(behaviour="lazy", accuracy=0.5),  # a lazy sim miner keeps its flags
        dict(behaviour="sybil", sybil_key=("b",)),
        dict(blacklist=(f"{KEY.ss58_address},{SYBIL.ss58_address}",),
                     rate_limit=0.0),
        dict(rate_limit=5.0, rate_burst=1.0),
    ):
        from_serve_flags(options)


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
        from_serve_flags({"task_accuracy": text})
    assert fragment in str(info.value) and str(info.value).startswith("--task-accuracy")


def test_task_accuracy_and_blacklist_parse() -> None:
    sim = from_serve_flags({"task_accuracy": "arithmetic=0.25, sorting = 1"}).sim
    assert sim is not None and sim.task_accuracy == {"arithmetic": 0.25, "sorting": 1.0}
    blacklist = from_serve_flags({"blacklist": [f"{KEY.ss58_address}, {SYBIL.ss58_address}",
                                                KEY.ss58_address]}).blacklist
    assert set(blacklist) == {KEY.ss58_address, SYBIL.ss58_address} and len(blacklist) == 2


def test_build_miner_wires_blacklist_rate_limit_and_sybil_hotkeys() -> None:
    miner = build_miner(from_serve_flags(dict(behaviour="sybil", sybil_key=("b",),
                                              blacklist=(SYBIL.ss58_address,), rate_limit=0.0)),
                        KEY, [SYBIL])
    assert miner.hotkeys == (KEY.ss58_address, SYBIL.ss58_address)
    assert miner.guard.recipients == set(miner.hotkeys)
    assert miner.guard.blacklist == {SYBIL.ss58_address}
    with pytest.raises(ValueError, match="--sybil-key"):
        build_miner(from_serve_flags(dict(behaviour="sybil", sybil_key=("a",))), KEY, [KEY])


def test_the_settings_are_one_model_with_the_specs_defaults() -> None:
    """Made without flags, the settings are the model's defaults (a sim engine with
    `SimBackendSpec`'s); made directly, they keep the rules, said in flags."""
    settings = from_serve_flags({})
    assert settings == MinerSettings() and settings.sim == SimSettings()
    assert settings.rate == RateLimit() and settings.concurrency == 8
    assert from_serve_flags({"rate_limit": 0.0}).rate is None
    remote = from_serve_flags({"backend": "vllm", "backend_url": "http://x", "model": "m"})
    assert remote.sim is None and remote.model == "m"
    with pytest.raises(ValueError, match="--behaviour copycat needs it"):
        MinerSettings(behaviour="copycat")


# ---- the sim model ---------------------------------------------------------------------


def test_the_sim_settings_refuse_impossible_engines() -> None:
    """The sim engine's ranges are `SimBackendSpec`'s: an engine is made from its settings."""
    for bad in ({"ttft_seconds": -0.1}, {"tokens_per_second": 0.0}, {"accuracy": 1.2},
                {"task_accuracy": {"arithmetic": -0.1}}, {"task_accuracy": {"poetry": 0.5}}):
        with pytest.raises(ValueError):
            SimSettings.model_validate(bad)
    engine = SimSettings(accuracy=0.5, ttft_seconds=0.0, tokens_per_second=10.0,
                         task_accuracy={"sorting": 1.0}).engine()
    assert engine == SimModel(ttft_s=0.0, tokens_per_s=10.0, default_accuracy=0.5,
                              accuracy={"sorting": 1.0})


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
    served = {KEY.ss58_address, *fields.get("sybil_hotkeys", ())}
    fields.setdefault("keys", tuple(k for k in (KEY, SYBIL) if k.ss58_address in served))
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
