"""Request bodies at the miner's and the gateway's door (protocol/bodies.py).

The body cap (413 `too_large`) is checked from the headers before a byte is read, and
while a chunked body streams in; an unsigned request is refused before its body is read;
JSON nested deeper than `MAX_JSON_DEPTH` is a 400 `too_deep`, not a 500. The apps are
driven over ASGI directly, with a `receive` that counts what the server read.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI

from subnetlab.engines import SimBackend, SimModel
from subnetlab.keys.keypair import Keypair
from subnetlab.miner.server import Miner, create_miner_app
from subnetlab.protocol.bodies import (
    MAX_JSON_DEPTH,
    MAX_PROMPT_BODY_BYTES,
    BodyError,
    check_depth,
    decode_json,
)
from subnetlab.protocol.epistula import sign_request
from subnetlab.protocol.guard import RequestGuard
from subnetlab.protocol.metagraph import CallerInfo, StaticMetagraph
from subnetlab.protocol.priority import StakePriorityGate
from subnetlab.validator.config import ValidatorConfig
from subnetlab.validator.gateway import GatewayConfig, create_gateway_app
from subnetlab.validator.loop import Validator

MINER = Keypair.dev("bodies-miner")
CALLER = Keypair.dev("bodies-validator")
API_KEY = "sk-bodies-0123456789"
PATH = "/v1/chat/completions"
CHUNK = 64 * 1024
CAP = 256 * 1024  # a small cap keeps the tests fast; the default is MAX_PROMPT_BODY_BYTES


def nested(levels: int) -> bytes:
    return b'{"messages": [], "x": ' + b"[" * levels + b"]" * levels + b"}"


# ---- the helper --------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    b"[]", b'{"a": [1, {"b": [2]}]}', b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH,
    b'{"a": "' + b"[" * 1000 + b'"}', b'["\\"' + b"[" * 1000 + b'"]',
])
def test_bodies_within_the_depth_limit_decode_as_json_loads_does(body: bytes) -> None:
    assert decode_json(body) == json.loads(body)


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 1_100, 5_000, 200_000])
def test_deeper_bodies_are_refused_without_recursing(levels: int) -> None:
    for body in (b"[" * levels + b"]" * levels, b'{"a":' * levels + b"1" + b"}" * levels,
                 b"[" * levels):
        with pytest.raises(BodyError) as refused:
            decode_json(body)
        assert (refused.value.status, refused.value.code, refused.value.field) == (
            400, "too_deep", "body")
        assert str(MAX_JSON_DEPTH) in refused.value.message


def test_a_body_the_scan_cannot_read_is_still_refused_not_a_recursion_error() -> None:
    """UTF-16 JSON (which json.loads accepts): if the scan misjudged it, the decoder's own
    RecursionError would still become `too_deep`."""
    body = ("[" * 5_000 + "]" * 5_000).encode("utf-16")
    with pytest.raises(BodyError):
        decode_json(body)
    with pytest.raises(ValueError):
        decode_json(b'{"a": ')
    check_depth(b"[[[")  # unbalanced, shallow: the decoder's business


# ---- driving an app over ASGI, counting what it reads -----------------------------------


@dataclass
class Exchange:
    status: int = 0
    body: bytes = b""
    read: int = 0  # body bytes the app pulled with receive()
    receives: int = 0

    def error(self) -> dict[str, Any]:
        payload: dict[str, Any] = json.loads(self.body)["error"]
        return payload


@dataclass
class Upload:
    headers: dict[str, str]
    chunks: Iterable[bytes] = field(default_factory=list)


async def post(app: FastAPI, upload: Upload) -> Exchange:
    """POST `upload` to `app` (no server, no socket): the chunks are handed out one per
    `receive()`, the last with `more_body: False`."""
    result = Exchange()
    chunks: Iterator[bytes] = iter(upload.chunks)
    pending = next(chunks, None)

    async def receive() -> dict[str, Any]:
        nonlocal pending
        result.receives += 1
        if pending is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        chunk, pending = pending, next(chunks, None)
        result.read += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": pending is not None}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            result.status = message["status"]
        elif message["type"] == "http.response.body":
            result.body += message.get("body", b"")

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": PATH, "raw_path": PATH.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
        "headers": [(k.lower().encode(), v.encode()) for k, v in upload.headers.items()],
    }
    await app(scope, receive, send)
    return result


def run(app: FastAPI, upload: Upload) -> Exchange:
    return asyncio.run(post(app, upload))


def endless() -> Iterator[bytes]:
    """A chunked body far past any cap (640 MiB if it were all read)."""
    return itertools.repeat(b" " * CHUNK, 10_000)


# ---- the miner ---------------------------------------------------------------------------


def miner_app(cap: int = CAP) -> tuple[FastAPI, Miner]:
    callers = StaticMetagraph({CALLER.ss58_address: CallerInfo(0, 1e12, True)})
    guard = RequestGuard(MINER.ss58_address, callers, rate_limit=None)
    model = SimModel(ttft_s=0.0, tokens_per_s=1e6, default_accuracy=1.0)
    miner = Miner(MINER.ss58_address, SimBackend(model, "bodies"), guard,
                  StakePriorityGate(2, 4), max_body_bytes=cap, keys=(MINER,))
    return create_miner_app(miner), miner


def outcomes(miner: Miner) -> dict[str, float]:
    assert miner.metrics is not None
    return {s.labels["outcome"]: s.value
            for family in miner.metrics.registry.collect() for s in family.samples
            if s.name == "subnetlab_miner_requests_total"}


def signed(body: bytes) -> dict[str, str]:
    return {"content-type": "application/json",
            **sign_request(CALLER, body, MINER.ss58_address)}


def test_the_default_cap_is_sized_for_prompts() -> None:
    _, miner = miner_app(MAX_PROMPT_BODY_BYTES)
    assert miner.max_body_bytes == MAX_PROMPT_BODY_BYTES == 1024 * 1024
    with pytest.raises(ValueError, match="max_body_bytes"):
        miner_app(0)


def test_a_signed_request_under_the_cap_is_answered() -> None:
    app, _ = miner_app()
    body = json.dumps({"messages": [{"role": "user", "content": "2+2?"}]}).encode()
    answer = run(app, Upload({**signed(body), "content-length": str(len(body))}, [body]))
    assert answer.status == 200, answer.body
    assert json.loads(answer.body)["object"] == "chat.completion"


def test_an_oversized_content_length_is_refused_before_the_body_is_read() -> None:
    app, miner = miner_app()
    body = b"x" * (CAP + 1)
    headers = {**signed(body), "content-length": str(200 * 1024 * 1024)}
    answer = run(app, Upload(headers, endless()))
    assert answer.status == 413
    assert answer.error()["code"] == "too_large" and answer.error()["field"] == "body"
    assert answer.read == 0 and answer.receives == 0
    assert outcomes(miner) == {"too_large": 1.0}


def test_a_chunked_body_past_the_cap_is_refused_while_it_streams_in() -> None:
    app, _ = miner_app()
    answer = run(app, Upload(signed(b"whatever"), endless()))  # no Content-Length
    assert answer.status == 413 and answer.error()["code"] == "too_large"
    assert answer.read <= CAP + CHUNK  # stopped at the cap, not at 640 MiB


def test_an_unsigned_big_body_is_refused_before_it_is_read() -> None:
    app, miner = miner_app()
    for headers in ({}, {"content-length": str(200 * 1024 * 1024)}):
        answer = run(app, Upload(headers, endless()))
        assert answer.status == 400 and answer.error()["code"] == "malformed_headers"
        assert answer.read == 0 and answer.receives == 0
    assert outcomes(miner) == {"malformed_headers": 2.0}


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 5_000])
def test_a_signed_deeply_nested_body_is_a_400_not_a_500(levels: int) -> None:
    app, miner = miner_app()
    body = nested(levels)
    answer = run(app, Upload(signed(body), [body]))
    assert answer.status == 400, answer.body
    assert answer.error()["code"] == "too_deep" and answer.error()["field"] == "body"
    assert outcomes(miner) == {"too_deep": 1.0}


def test_invalid_json_is_still_a_bad_request() -> None:
    app, _ = miner_app()
    body = b'{"messages": ['
    answer = run(app, Upload(signed(body), [body]))
    assert answer.status == 400 and answer.error()["code"] == "bad_request"


# ---- the gateway -------------------------------------------------------------------------


def gateway_app(cap: int = CAP) -> FastAPI:
    config = ValidatorConfig(Keypair.dev("bodies-gateway"), 1, "http://127.0.0.1:1",
                             "redis://127.0.0.1:1/0", seed=7, timeout_s=1.0, sample_size=1,
                             task_weights={"arithmetic": 1.0})
    validator = Validator(config)
    validator.follower.metagraph = {"neurons": []}  # no miners: a valid request is a 503
    return create_gateway_app(validator, GatewayConfig(frozenset({API_KEY}),
                                                       max_body_bytes=cap))


AUTH = {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}


def test_the_gateway_caps_bodies_by_content_length_and_while_streaming() -> None:
    app = gateway_app()
    declared = run(app, Upload({**AUTH, "content-length": str(200 * 1024 * 1024)}, endless()))
    assert declared.status == 413 and declared.error()["code"] == "too_large"
    assert declared.read == 0
    chunked = run(app, Upload(AUTH, endless()))
    assert chunked.status == 413 and chunked.error()["code"] == "too_large"
    assert chunked.read <= CAP + CHUNK
    unauthorised = run(app, Upload({"content-length": str(200 * 1024 * 1024)}, endless()))
    assert unauthorised.status == 401 and unauthorised.read == 0
    assert GatewayConfig(frozenset({API_KEY})).max_body_bytes == MAX_PROMPT_BODY_BYTES


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 1_100])
def test_the_gateway_answers_deeply_nested_json_with_a_400(levels: int) -> None:
    app = gateway_app()
    answer = run(app, Upload(AUTH, [nested(levels)]))
    assert answer.status == 400, answer.body
    assert answer.error()["code"] == "too_deep" and answer.error()["field"] == "body"
    fine = run(app, Upload(AUTH, [nested(3)]))
    assert fine.status == 503 and fine.error()["code"] == "no_miners"
