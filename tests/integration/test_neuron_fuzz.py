"""Fuzzing the miner's and the gateway's `/v1/chat/completions`: no input may produce a 5xx.

The ledger's fuzzing (test_ledger_fuzz.py) extended to the two other servers, headers
included. Both apps run in this process on one event loop, reached through httpx's ASGI
transport (no socket at all); the gateway's own client reaches its miner the same way.

1. schemathesis: cases generated from each app's own OpenAPI document, which declares the
   chat body and the headers the endpoint checks (the six Epistula headers for the miner;
   `Authorization` and `X-Subnetlab-Strategy` for the gateway).
2. hypothesis, further than a schema can go: requests signed correctly (so arbitrary bodies
   get past the guard into decoding and the backend) with any Epistula header replaced by
   anything or left out; at the gateway, any `Authorization` and strategy, with arbitrary
   bodies behind a valid key.

Every refusal must be a 4xx with an error code. The example counts stay modest (a few
seconds each); the miner answers from its sim backend, so nothing here needs a GPU.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from subnetlab.engines import SimBackend, SimModel
from subnetlab.keys.keypair import Keypair
from subnetlab.miner.server import Miner, create_miner_app
from subnetlab.protocol.epistula import HEADER_NAMES, sign_request
from subnetlab.protocol.guard import RequestGuard
from subnetlab.protocol.metagraph import CallerInfo, StaticMetagraph
from subnetlab.protocol.priority import StakePriorityGate
from subnetlab.validator.config import ValidatorConfig
from subnetlab.validator.gateway import STRATEGIES, GatewayConfig, create_gateway_app
from subnetlab.validator.loop import Validator

MAX_EXAMPLES = 60
PATH = "/v1/chat/completions"
MINER = Keypair.dev("fuzz-miner")
VALIDATOR = Keypair.dev("fuzz-validator")
STRANGER = Keypair.dev("fuzz-stranger")
API_KEY = "sk-fuzz-0123456789"
FUZZ = settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@dataclass
class Servers:
    loop: asyncio.AbstractEventLoop
    miner: httpx.AsyncClient
    gateway: httpx.AsyncClient
    miner_app: Any
    gateway_app: Any

    def post(self, client: httpx.AsyncClient, **kwargs: Any) -> httpx.Response:
        return self.loop.run_until_complete(client.request("POST", PATH, **kwargs))


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    loop = asyncio.new_event_loop()
    callers = StaticMetagraph({VALIDATOR.ss58_address: CallerInfo(0, 1e12, True)})
    guard = RequestGuard(MINER.ss58_address, callers, rate_limit=None)
    model = SimModel(ttft_s=0.0, tokens_per_s=1e6, default_accuracy=1.0)
    miner_app = create_miner_app(Miner(MINER.ss58_address, SimBackend(model, "fuzz"), guard,
                                       StakePriorityGate(4, 16), max_body_bytes=64 * 1024,
                                       keys=(MINER,)))
    config = ValidatorConfig(VALIDATOR, 1, "http://127.0.0.1:1", "redis://127.0.0.1:1/0",
                             seed=7, timeout_s=5.0, sample_size=1,
                             task_weights={"arithmetic": 1.0})
    validator = Validator(config, http=httpx.AsyncClient(
        transport=httpx.ASGITransport(app=miner_app), timeout=5.0))
    validator.follower.metagraph = {"neurons": [{
        "uid": 1, "hotkey": MINER.ss58_address, "axon": "http://127.0.0.1:9", "stake": 1.0,
        "validator_permit": False}]}
    gateway_app = create_gateway_app(validator, GatewayConfig(
        frozenset({API_KEY}), default_strategy="best-of-n", fan_out=1,
        max_body_bytes=64 * 1024))
    miner = httpx.AsyncClient(transport=httpx.ASGITransport(app=miner_app),
                              base_url="http://miner", timeout=10.0)
    gateway = httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway_app),
                                base_url="http://gateway", timeout=10.0)
    yield Servers(loop, miner, gateway, miner_app, gateway_app)
    for client in (miner, gateway, validator.http, validator.reference):
        loop.run_until_complete(client.aclose())
    loop.close()


def assert_no_server_error(response: httpx.Response, sent: object) -> None:
    assert response.status_code < 500, f"{sent!r:.300}: {response.status_code} " \
                                       f"{response.text[:300]}"
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["code"], str) and error["code"], response.text
        assert isinstance(error["message"], str) and error["message"], response.text


# --- 1. schemathesis: cases from each app's OpenAPI document ------------------------------


def schema_cases(app: Any) -> st.SearchStrategy[Any]:
    schema = schemathesis.openapi.from_dict(app.openapi())
    return schema[PATH]["POST"].as_strategy()


def send_case(servers: Servers, client: httpx.AsyncClient, case: Any,
              extra: Callable[[bytes], dict[str, str]] | None = None) -> httpx.Response:
    """Send a schemathesis case; `extra(body)` adds headers (a signature, a valid key)
    over the case's own."""
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url))
    body = kwargs.pop("json", None)
    content: bytes = json.dumps(body).encode() if body is not None else b""
    if isinstance(kwargs.get("data"), bytes | str):
        data = kwargs["data"]
        content = data if isinstance(data, bytes) else data.encode()
    headers = {k: v for k, v in (kwargs.get("headers") or {}).items()
               if k.lower() != "content-length"}
    if extra is not None:
        headers.update(extra(content))
    return servers.loop.run_until_complete(client.post(
        kwargs["url"], content=content, headers=headers, params=kwargs.get("params")))


def test_the_schemas_declare_the_headers_they_check(servers: Servers) -> None:
    def header_names(app: Any) -> set[str]:
        operation = app.openapi()["paths"][PATH]["post"]
        assert "requestBody" in operation
        return {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert header_names(servers.miner_app) == set(HEADER_NAMES)
    assert header_names(servers.gateway_app) == {"Authorization", "X-Subnetlab-Strategy"}


def test_schemathesis_cases_at_the_miner_get_no_server_error(servers: Servers) -> None:
    def signed(body: bytes) -> dict[str, str]:
        return sign_request(VALIDATOR, body, MINER.ss58_address)

    @FUZZ
    @given(case=schema_cases(servers.miner_app), sign=st.booleans())
    def check(case: Any, sign: bool) -> None:
        response = send_case(servers, servers.miner, case, signed if sign else None)
        assert_no_server_error(response, (case.headers, case.body))
    check()


def test_schemathesis_cases_at_the_gateway_get_no_server_error(servers: Servers) -> None:
    def keyed(_: bytes) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}"}

    @FUZZ
    @given(case=schema_cases(servers.gateway_app), key=st.booleans())
    def check(case: Any, key: bool) -> None:
        response = send_case(servers, servers.gateway, case, keyed if key else None)
        assert_no_server_error(response, (case.headers, case.body))
    check()


# --- 2. hypothesis: signed requests, fuzzed headers, arbitrary bodies ---------------------

HEADER_TEXT = st.one_of(
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
    st.sampled_from(["", "2", "1", "0", "-1", "99999999999999999999", "0x", "0x" + "ab" * 64,
                     "0x" + "zz" * 64, MINER.ss58_address, STRANGER.ss58_address, " 2 ",
                     "1e3", "NaN"]),
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=5)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
MESSAGE = st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant"]),
                           "content": st.text(max_size=60)}),
    st.fixed_dictionaries({"role": JSON, "content": JSON}),
    JSON,
)
CHAT = st.fixed_dictionaries(
    {"messages": st.one_of(st.lists(MESSAGE, max_size=4), JSON)},
    optional={"model": JSON, "stream": st.one_of(st.booleans(), JSON),
              "max_tokens": st.one_of(st.integers(-5, 10**9), JSON),
              "stream_options": st.one_of(st.fixed_dictionaries(
                  {"include_usage": st.booleans()}), JSON),
              "temperature": JSON},
)
BODIES = st.one_of(
    CHAT.map(lambda v: json.dumps(v).encode()),
    JSON.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.integers(60, 3_000).map(lambda n: b'{"messages": ' + b"[" * n + b"]" * n + b"}"),
)


@FUZZ
@given(body=BODIES,
       replaced=st.dictionaries(st.sampled_from(HEADER_NAMES), st.none() | HEADER_TEXT,
                                max_size=3),
       signer=st.sampled_from([VALIDATOR, VALIDATOR, VALIDATOR, STRANGER]))
def test_signed_requests_with_fuzzed_epistula_headers_get_no_server_error(
    servers: Servers, body: bytes, replaced: dict[str, str | None], signer: Keypair
) -> None:
    headers: dict[str, str] = sign_request(signer, body, MINER.ss58_address)
    for name, value in replaced.items():  # None: the header is left out
        headers.pop(name)
        if value is not None:
            headers[name] = value
    response = servers.post(servers.miner, content=body, headers=headers)
    assert_no_server_error(response, (body, replaced))


@FUZZ
@given(body=BODIES,
       authorization=st.one_of(st.just(f"Bearer {API_KEY}"), st.just(f"Bearer {API_KEY}"),
                               st.none(), HEADER_TEXT,
                               HEADER_TEXT.map(lambda t: f"Bearer {t}")),
       strategy=st.one_of(st.none(), st.sampled_from(STRATEGIES), HEADER_TEXT))
def test_gateway_requests_with_fuzzed_authorization_get_no_server_error(
    servers: Servers, body: bytes, authorization: str | None, strategy: str | None
) -> None:
    headers = {"content-type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    if strategy is not None:
        headers["X-Subnetlab-Strategy"] = strategy
    response = servers.post(servers.gateway, content=body, headers=headers)
    assert_no_server_error(response, (body, authorization, strategy))
