"""`subnetlab miner serve` as real processes against a real ledger (on a real Redis).

Shown here, over real HTTP: each refusal of the protocol answers its own exact status
(blacklist and rate limit included, set from the command line) and is counted under the
caller's hotkey only when the caller is registered; a sybil answers for several hotkeys
from one engine; a copycat answers with the text of the engine it copies and claims no
compute; streamed and whole answers of a sim miner carry the same `simulated` label and
figures; the official OpenAI Python client talks to a miner through a signing transport;
a passthrough miner forwards to its upstream; an upstream that breaks off mid-stream ends
the miner's stream with an error event (a 502 when nothing was sent yet), and each stream
is counted by how it ended; `/metrics` shows backend seconds, tokens and the queue depth
of the requests made; every answer, whole or streamed (a broken one too), is signed by the
hotkey it was asked of; and every way the command can fail to start is one `error:` line,
no traceback.
"""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest

from subnetlab.chain.units import TOKEN
from subnetlab.engines import sum_metric
from subnetlab.keys.keypair import Keypair
from subnetlab.local.bootstrap import bootstrap_subnet
from subnetlab.local.processes import Child, Supervisor
from subnetlab.protocol.answers import AnswerRejected, check_answer, split_stream
from subnetlab.protocol.epistula import UUID, sign_request
from tests.integration.chainclient import read_ledger
from tests.integration.conftest import LedgerProcess, free_port, wait_until
from tests.integration.test_cli_offline import one_error_line

HYPER = {"tempo": 10, "weights_rate_limit": 0, "max_registrations_per_block": 64,
         "target_registrations_per_interval": 64, "immunity_period": 1000}
VALIDATOR = Keypair.dev("mp-validator")
BLACKLISTED = Keypair.dev("mp-blacklisted-validator")
LIMITED = Keypair.dev("mp-rate-limited-validator")
HONEST, STRICT, PASSTHROUGH = (Keypair.dev(n) for n in ("mp-honest", "mp-strict", "mp-pass"))
COPYCAT, FAULTY = Keypair.dev("mp-copycat"), Keypair.dev("mp-faulty")
SYBIL_A, SYBIL_B = Keypair.dev("mp-sybil-a"), Keypair.dev("mp-sybil-b")
NOT_REGISTERED = Keypair.dev("mp-never-registered")
STRICT_BURST = 3  # the strict miner's per-caller burst; its refill takes ~1000 s per token
STRING_TASK = "Reverse the string 'stream'."
OPEN_PROMPT = "Describe what the harbour looks like early in the morning, please."
BREAK, HOLD, REFUSE = "break off", "hold on", "refuse"  # what the faulty upstream does


class FaultyUpstream:
    """An OpenAI-compatible engine that fails on purpose, by the prompt it is sent: a real
    HTTP server on loopback in a thread of the test (no real engine fails on demand).

    - `BREAK`: a stream sends two pieces, then drops the connection mid-body (an engine
      that died mid-answer); a whole answer is dropped before any response.
    - `HOLD`: announces the request on `arrived`, then (a stream after its first piece)
      waits for the event `hold()` returned, then finishes: a stream with a usage chunk
      of `HOLD_STREAM_TOKENS` completion tokens, a whole answer with `HOLD_WHOLE_TOKENS`.
    - `REFUSE`: answers 500 with an OpenAI error body.
    """

    HOLD_STREAM_TOKENS, HOLD_WHOLE_TOKENS = 7, 5

    def __init__(self) -> None:
        self.arrived: queue.Queue[str] = queue.Queue()
        self.release = threading.Event()
        self.release.set()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                try:
                    upstream.answer(self, body["messages"][-1]["content"],
                                    bool(body.get("stream")))
                except OSError:  # the miner hung up first (its client went away)
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def hold(self) -> threading.Event:
        """Make `HOLD` requests wait until the returned event is set."""
        self.release = threading.Event()
        return self.release

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def answer(self, handler: BaseHTTPRequestHandler, prompt: str, stream: bool) -> None:
        release = self.release
        if prompt == REFUSE:
            self._json(handler, 500, {"error": {"message": "engine overloaded"}})
            return
        if prompt == HOLD:
            self.arrived.put("stream" if stream else "whole")
        if not stream:
            if prompt == BREAK:
                handler.close_connection = True  # no response at all
                return
            release.wait(30)
            tokens = self.HOLD_WHOLE_TOKENS
            self._json(handler, 200, {"model": "m", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "Held whole"}}],
                "usage": {"prompt_tokens": 2, "completion_tokens": tokens}})
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        if prompt == BREAK:
            for piece in ("Hello", " wor"):
                self._chunk(handler, self._piece(piece))
            handler.close_connection = True  # no last chunk: the body is cut off
            return
        self._chunk(handler, self._piece("Waiting"))
        release.wait(30)
        usage = {"choices": [], "usage": {"prompt_tokens": 2,
                                          "completion_tokens": self.HOLD_STREAM_TOKENS}}
        for data in (self._piece(" done"), f"data: {json.dumps(usage)}\n\n".encode(),
                     b"data: [DONE]\n\n", b""):
            self._chunk(handler, data)

    @staticmethod
    def _piece(text: str) -> bytes:
        chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
        return f"data: {json.dumps(chunk)}\n\n".encode()

    @staticmethod
    def _chunk(handler: BaseHTTPRequestHandler, data: bytes) -> None:
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        handler.wfile.flush()

    @staticmethod
    def _json(handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any]) -> None:
        raw = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(raw)))
        handler.end_headers()
        handler.wfile.write(raw)


@dataclass
class Net:
    ledger_url: str
    netuid: int
    miners: dict[str, Child]
    upstream: FaultyUpstream

    def url(self, miner: str, path: str = "/v1/chat/completions") -> str:
        health = self.miners[miner].health_url
        assert health is not None
        return health.replace("/healthz", path)


def _env(home: Path) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "SUBNETLAB_LEDGER"} | {
        "SUBNETLAB_HOME": str(home), "HOME": str(home), "COLUMNS": "250"}


def _miner(name: str, key: str, net_args: list[str], logs: Path, *extra: str) -> Child:
    port = free_port()
    return Child(name, ["miner", "serve", "--dev-key", key, "--port", str(port),
                        "--log-level", "warning", *net_args, *extra],
                 logs / f"{name}.log", f"http://127.0.0.1:{port}/healthz")


@pytest.fixture(scope="module")
def net(module_ledger: LedgerProcess, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Net]:
    ledger = module_ledger.url
    netuid = bootstrap_subnet(
        ledger, Keypair.dev("alice"), HYPER,
        miners=[HONEST, STRICT, PASSTHROUGH, SYBIL_A, SYBIL_B, COPYCAT, FAULTY],
        validators=[(k, 1_000 * TOKEN) for k in (VALIDATOR, BLACKLISTED, LIMITED)])

    def permits() -> bool:
        with read_ledger(ledger) as client:
            rows = client.metagraph(netuid)
        held = {n["hotkey"] for n in rows["neurons"] if n["validator_permit"]}
        return {k.ss58_address for k in (VALIDATOR, BLACKLISTED, LIMITED)} <= held

    wait_until(permits, 60, "validator permits")
    logs = tmp_path_factory.mktemp("miner-logs")
    net_args = ["--netuid", str(netuid), "--ledger", ledger]
    supervisor = Supervisor()
    upstream = FaultyUpstream()
    try:
        engine_port = free_port()
        engine = supervisor.start(Child(
            "engine", ["engine", "serve", "--port", str(engine_port)], logs / "engine.log",
            f"http://127.0.0.1:{engine_port}/healthz"), timeout=60)
        miners = {
            "honest": _miner("honest", "mp-honest", net_args, logs, "--accuracy", "1"),
            "strict": _miner("strict", "mp-strict", net_args, logs,
                             "--blacklist", BLACKLISTED.ss58_address, "--rate-limit", "0.001",
                             "--rate-burst", str(STRICT_BURST)),
            "sybil": _miner("sybil", "mp-sybil-a", net_args, logs, "--behaviour", "sybil",
                            "--sybil-key", "mp-sybil-b", "--accuracy", "1"),
            "passthrough": _miner("passthrough", "mp-pass", net_args, logs,
                                  "--behaviour", "passthrough", "--backend", "openai",
                                  "--backend-url", f"http://127.0.0.1:{engine_port}",
                                  "--model", "sim"),
            "copycat": _miner("copycat", "mp-copycat", net_args, logs, "--behaviour", "copycat",
                              "--copy-from", f"http://127.0.0.1:{engine_port}", "--model", "sim"),
            "faulty": _miner("faulty", "mp-faulty", net_args, logs, "--behaviour", "passthrough",
                             "--backend", "openai", "--backend-url", upstream.url,
                             "--model", "m", "--concurrency", "1"),
        }
        supervisor.start_all(list(miners.values()), timeout=90)
        yield Net(ledger, netuid, {**miners, "engine": engine}, upstream)
    finally:
        supervisor.stop_all()
        upstream.close()


def _post(url: str, caller: Keypair, signed_for: str, body: dict[str, Any] | bytes,
          now_ms: int | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    signed = headers if headers is not None else sign_request(caller, raw, signed_for,
                                                              now_ms=now_ms)
    return httpx.post(url, content=raw, timeout=30,
                      headers={"Content-Type": "application/json", **signed})


def _chat(prompt: str = STRING_TASK, **extra: Any) -> dict[str, Any]:
    return {"model": "sim", "messages": [{"role": "user", "content": prompt}], **extra}


def _metrics(net: Net, miner: str) -> str:
    return httpx.get(net.url(miner, "/metrics"), timeout=10).text


REQUESTS = re.compile(r'^subnetlab_miner_requests_total\{caller="([^"]*)",outcome="([^"]*)"\} '
                      r'(\S+)$', re.MULTILINE)


def _requests(exposition: str) -> dict[tuple[str, str], float]:
    """`subnetlab_miner_requests_total` by (caller, outcome)."""
    return {(caller, outcome): float(n) for caller, outcome, n in REQUESTS.findall(exposition)}


def _counted(net: Net, miner: str, caller: str, outcome: str) -> float:
    return _requests(_metrics(net, miner)).get((caller, outcome), 0.0)


def _data_lines(response: httpx.Response) -> list[str]:
    """The `data:` events (not the signature comment that ends a miner's stream)."""
    return [line.removeprefix("data: ") for line in response.iter_lines()
            if line.startswith("data: ")]


def _events(url: str, caller: Keypair, signed_for: str, body: dict[str, Any]
            ) -> list[dict[str, Any]]:
    """A signed streamed request's chunks, checked to end with [DONE]."""
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **sign_request(caller, raw, signed_for)}
    with httpx.stream("POST", url, content=raw, headers=headers, timeout=30) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = _data_lines(response)
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


# ---- refusals: the exact status of each code, against a running miner ---------------------


EXPECTED_STATUS = {
    "malformed_headers": 400,
    "bad_signature": 401,
    "stale_request": 401,
    "replayed_request": 401,
    "wrong_recipient": 401,
    "unregistered_caller": 403,
    "no_validator_permit": 403,
    "blacklisted": 403,
    "rate_limited": 429,
}


def test_each_refusal_answers_its_own_exact_status(net: Net) -> None:
    """The strict miner runs with `--blacklist BLACKLISTED --rate-limit 0.001 --rate-burst
    3`: a refused request spends nothing, an admitted one a token that takes ~1000 s to
    come back, so the fourth admitted request of one caller is refused, whatever the
    timing."""
    url, me = net.url("strict"), STRICT.ss58_address
    body = json.dumps(_chat()).encode()
    ok = _post(url, VALIDATOR, me, body)
    assert ok.status_code == 200, ok.text
    forged = sign_request(VALIDATOR, body, me)
    forged["Epistula-Request-Signature"] = "0x" + "11" * 64
    replayed = sign_request(VALIDATOR, body, me)
    assert _post(url, VALIDATOR, me, body, headers=replayed).status_code == 200
    responses = {
        "malformed_headers": httpx.post(url, content=body, timeout=30),
        "bad_signature": _post(url, VALIDATOR, me, body, headers=forged),
        "stale_request": _post(url, VALIDATOR, me, body, now_ms=int(time.time() * 1000) - 60_000),
        "replayed_request": _post(url, VALIDATOR, me, body, headers=replayed),
        "wrong_recipient": _post(url, VALIDATOR, HONEST.ss58_address, body),
        "unregistered_caller": _post(url, NOT_REGISTERED, me, body),
        "no_validator_permit": _post(url, HONEST, me, body),
        "blacklisted": _post(url, BLACKLISTED, me, body),
    }
    for _ in range(STRICT_BURST):
        assert _post(url, LIMITED, me, body).status_code == 200
    responses["rate_limited"] = _post(url, LIMITED, me, body)
    got = {code: (r.status_code, r.json()["error"]["code"]) for code, r in responses.items()}
    print(got)
    assert got == {code: (status, code) for code, status in EXPECTED_STATUS.items()}
    # The caller label: a registered caller's hotkey (permit-less, blacklisted, rate
    # limited); `unknown` for what anyone can send (forged, stale, replayed, misaddressed,
    # malformed, unregistered), so a stranger cannot mint new label values.
    named = {"no_validator_permit": HONEST, "blacklisted": BLACKLISTED, "rate_limited": LIMITED}
    counted = _requests(_metrics(net, "strict"))
    labels = {outcome: caller for caller, outcome in counted if outcome in EXPECTED_STATUS}
    assert labels == {code: named[code].ss58_address if code in named else "unknown"
                      for code in EXPECTED_STATUS}
    assert NOT_REGISTERED.ss58_address not in {caller for caller, _ in counted}


# ---- behaviours ----------------------------------------------------------------------------


def test_a_sybil_answers_for_each_of_its_hotkeys_from_one_engine(net: Net) -> None:
    with read_ledger(net.ledger_url) as ledger:
        graph = ledger.metagraph(net.netuid)
    axons = {n["hotkey"]: n["axon"]["url"] for n in graph["neurons"] if n["axon"]}
    assert axons[SYBIL_A.ss58_address] == axons[SYBIL_B.ss58_address]  # one address, two uids
    health = httpx.get(net.url("sybil", "/healthz"), timeout=10).json()
    assert health["hotkeys"] == [SYBIL_A.ss58_address, SYBIL_B.ss58_address]
    tokens = "subnetlab_miner_tokens_generated_total"
    before = sum_metric(httpx.get(net.url("sybil", "/metrics"), timeout=10).text, tokens)
    answered = []
    for key in (SYBIL_A, SYBIL_B):
        response = _post(net.url("sybil"), VALIDATOR, key.ss58_address, _chat())
        assert response.status_code == 200, response.text
        data = response.json()
        assert data["subnetlab"]["miner"] == key.ss58_address
        answered.append((data["choices"][0]["message"]["content"],
                         data["usage"]["completion_tokens"]))
    assert answered[0] == answered[1] == ("maerts", answered[0][1])
    after = sum_metric(httpx.get(net.url("sybil", "/metrics"), timeout=10).text, tokens)
    assert after - before == answered[0][1] + answered[1][1]  # one engine counted both
    other = _post(net.url("sybil"), VALIDATOR, HONEST.ss58_address, _chat())
    assert (other.status_code, other.json()["error"]["code"]) == (401, "wrong_recipient")


def test_a_passthrough_miner_forwards_to_its_upstream(net: Net) -> None:
    """The upstream is `subnetlab engine serve` (the sim engine behind a plain OpenAI API):
    its answer comes back as the miner's, still labelled simulated by the upstream, with
    the engine seconds the upstream reports in vLLM's per-request `metrics`; streaming
    works too."""
    upstream = httpx.post(net.url("engine"), json=_chat(OPEN_PROMPT), timeout=30).json()
    response = _post(net.url("passthrough"), VALIDATOR, PASSTHROUGH.ss58_address,
                     _chat(OPEN_PROMPT))
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["choices"][0]["message"]["content"] == (
        upstream["choices"][0]["message"]["content"])
    assert data["usage"] == upstream["usage"]
    assert data["system_fingerprint"] == "simulated" and data["subnetlab"]["simulated"]
    reported = upstream["metrics"]
    assert data["subnetlab"]["engine_seconds"] == pytest.approx(
        (reported["time_to_first_token_ms"] + reported["generation_time_ms"]) / 1000.0)
    chunks = _events(net.url("passthrough"), VALIDATOR, PASSTHROUGH.ss58_address,
                     _chat(OPEN_PROMPT, stream=True, stream_options={"include_usage": True}))
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == data["choices"][0]["message"]["content"]
    assert chunks[-1]["usage"] == data["usage"]
    assert chunks[-1]["subnetlab"] == {**data["subnetlab"],
                                       "engine_seconds": chunks[-1]["subnetlab"]["engine_seconds"]}
    assert chunks[-1]["subnetlab"]["engine_seconds"] > 0  # this answer's own, from the engine


def test_a_copycat_answers_with_the_engine_it_copies_and_claims_no_compute(net: Net) -> None:
    """`--copy-from` is `subnetlab engine serve`: the copycat's answer, whole or streamed,
    is the engine's text, signed as its own, with no tokens or engine seconds of its own
    (and the engine's `simulated` label kept); its token counter does not move."""
    url, me = net.url("copycat"), COPYCAT.ss58_address
    engine = httpx.post(net.url("engine"), json=_chat(OPEN_PROMPT), timeout=30).json()
    copied_text = engine["choices"][0]["message"]["content"]
    before = _metrics(net, "copycat")
    whole = _post(url, VALIDATOR, me, _chat(OPEN_PROMPT))
    assert whole.status_code == 200, whole.text
    data = whole.json()
    assert data["choices"][0]["message"]["content"] == copied_text
    assert data["usage"]["prompt_tokens"] == engine["usage"]["prompt_tokens"]
    assert data["usage"]["completion_tokens"] == 0
    assert data["subnetlab"] == {"miner": me, "simulated": True, "engine_seconds": 0.0}
    assert data["system_fingerprint"] == "simulated"
    chunks = _events(url, VALIDATOR, me, _chat(OPEN_PROMPT, stream=True,
                                                stream_options={"include_usage": True}))
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == copied_text
    assert chunks[-1]["usage"] == data["usage"] and chunks[-1]["subnetlab"] == data["subnetlab"]
    after = _metrics(net, "copycat")
    tokens = "subnetlab_miner_tokens_generated_total"
    assert sum_metric(after, tokens) == sum_metric(before, tokens) == 0
    ok = (VALIDATOR.ss58_address, "ok")
    assert _requests(after)[ok] - _requests(before).get(ok, 0.0) == 2


# ---- signed answers ---------------------------------------------------------------------------


def _raw_stream(url: str, signed_for: str, body: dict[str, Any]) -> tuple[bytes, bytes, str]:
    """(request bytes, the whole stream's bytes, request uuid) of one signed stream."""
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **sign_request(VALIDATOR, raw, signed_for)}
    with httpx.stream("POST", url, content=raw, headers=headers, timeout=30) as response:
        assert response.status_code == 200, response.read()
        return raw, response.read(), headers[UUID]


def test_every_answer_is_signed_by_the_hotkey_it_was_asked_of(net: Net) -> None:
    """Whole answers carry the signature in headers (a sybil signs with each hotkey it is
    asked of); a stream, whole or broken off by its backend, ends with the signature
    comment over every byte before it. A byte changed, or another requester, fails."""
    for key in (SYBIL_A, SYBIL_B):
        response = _post(net.url("sybil"), VALIDATOR, key.ss58_address, _chat())
        assert response.status_code == 200, response.text
        request = response.request
        signed = check_answer(response.headers, response.content, request.headers[UUID],
                              request.content, VALIDATOR.ss58_address, key.ss58_address)
        assert signed.signed_by == key.ss58_address and signed.valid()
        with pytest.raises(AnswerRejected) as other:
            check_answer(response.headers, response.content, request.headers[UUID],
                         request.content, LIMITED.ss58_address, key.ss58_address)
        assert other.value.reason == "bad_signature"
    for name, key, body in (("honest", HONEST, _chat(stream=True)),
                            ("faulty", FAULTY, _chat(BREAK, stream=True))):
        raw, stream, request_uuid = _raw_stream(net.url(name), key.ss58_address, body)
        payload, signature = split_stream(stream)
        assert payload.endswith(b"data: [DONE]\n\n")
        headers = {"Epistula-Answer-Signed-By": key.ss58_address}
        assert check_answer(headers, payload, request_uuid, raw, VALIDATOR.ss58_address,
                            key.ss58_address, signature=signature).valid()
        with pytest.raises(AnswerRejected):
            check_answer(headers, payload.replace(b"data:", b"data: ", 1), request_uuid, raw,
                         VALIDATOR.ss58_address, key.ss58_address, signature=signature)


# ---- a backend that fails, and a client that leaves ------------------------------------------


def _signed_stream(net: Net, prompt: str) -> tuple[str, bytes, dict[str, str]]:
    raw = json.dumps(_chat(prompt, stream=True)).encode()
    headers = {"Content-Type": "application/json",
               **sign_request(VALIDATOR, raw, FAULTY.ss58_address)}
    return net.url("faulty"), raw, headers


def test_an_upstream_failing_mid_stream_ends_the_stream_with_an_error_event(net: Net) -> None:
    """Once a stream's 200 has gone out, a backend failure can only be told in the stream:
    the pieces already made, then `data: {"error": {...}}` and `[DONE]` (the OpenAI client
    raises APIError on it); before the first piece it is a 502 with the reason, as for a
    whole answer. Each is counted `backend_error` under the caller."""
    me, caller = FAULTY.ss58_address, VALIDATOR.ss58_address
    failed_before = _counted(net, "faulty", caller, "backend_error")
    url, raw, headers = _signed_stream(net, BREAK)
    with httpx.stream("POST", url, content=raw, headers=headers, timeout=30) as response:
        assert response.status_code == 200
        lines = _data_lines(response)
    assert lines[-1] == "[DONE]"
    events = [json.loads(line) for line in lines[:-1]]
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1])
    assert text == "Hello wor"
    error = events[-1]["error"]
    assert error["code"] == "backend_error" and "RemoteProtocolError" in error["message"], error

    with signing_client(VALIDATOR, me) as http:
        client = openai.OpenAI(base_url=net.url("faulty", "/v1"), api_key="unused",
                               http_client=http, max_retries=0)
        messages: Any = [{"role": "user", "content": BREAK}]
        pieces = []
        with pytest.raises(openai.APIError) as broken:
            for chunk in client.chat.completions.create(model="m", messages=messages,
                                                        stream=True):
                pieces.append(chunk.choices[0].delta.content or "")
    assert "".join(pieces) == "Hello wor"
    assert isinstance(broken.value.body, dict)
    assert broken.value.body["code"] == "backend_error"

    whole = _post(url, VALIDATOR, me, _chat(BREAK))
    assert whole.status_code == 502 and whole.json()["error"]["code"] == "backend_error"
    assert "RemoteProtocolError" in whole.json()["error"]["message"]
    refused = _post(url, VALIDATOR, me, _chat(REFUSE, stream=True))  # fails before a piece
    assert refused.status_code == 502, refused.text
    assert refused.json()["error"] == {
        "code": "backend_error", "message": "EngineError: engine answered 500: engine overloaded"}
    assert _counted(net, "faulty", caller, "backend_error") - failed_before == 4


def test_a_client_that_leaves_mid_stream_is_counted_and_frees_its_slot(net: Net) -> None:
    """The faulty miner serves one request at a time (`--concurrency 1`): a client that
    reads the first piece of a held stream and hangs up is counted `client_gone`, and the
    slot it held serves the next request."""
    caller = VALIDATOR.ss58_address
    gone_before = _counted(net, "faulty", caller, "client_gone")
    release = net.upstream.hold()
    url, raw, headers = _signed_stream(net, HOLD)
    with httpx.stream("POST", url, content=raw, headers=headers, timeout=30) as response:
        assert response.status_code == 200
        first = next(line for line in response.iter_lines() if line.startswith("data: "))
    assert json.loads(first.removeprefix("data: "))["choices"][0]["delta"]["content"] == "Waiting"
    assert net.upstream.arrived.get(timeout=30) == "stream"
    wait_until(lambda: _counted(net, "faulty", caller, "client_gone") == gone_before + 1, 30,
               "the miner to count the client that left")
    release.set()
    nxt = _post(url, VALIDATOR, FAULTY.ss58_address, _chat(HOLD))
    assert nxt.status_code == 200, nxt.text
    assert net.upstream.arrived.get(timeout=30) == "whole"


def test_metrics_show_backend_seconds_tokens_and_queue_depth(net: Net) -> None:
    """With its one slot held by a stream, a second request waits: `queue_depth` is 1 until
    the upstream lets go, then 0; both answers are counted `ok` with a backend time each,
    and the token counter adds exactly the usage the upstream reported."""
    upstream, caller = net.upstream, VALIDATOR.ss58_address
    before = _metrics(net, "faulty")
    release = upstream.hold()
    url, raw, headers = _signed_stream(net, HOLD)

    def stream() -> list[str]:
        with httpx.stream("POST", url, content=raw, headers=headers, timeout=60) as response:
            assert response.status_code == 200
            return _data_lines(response)

    with ThreadPoolExecutor(2) as pool:
        streamed = pool.submit(stream)
        assert upstream.arrived.get(timeout=30) == "stream"  # the slot is taken
        whole = pool.submit(_post, url, VALIDATOR, FAULTY.ss58_address, _chat(HOLD))
        wait_until(lambda: "subnetlab_miner_queue_depth 1.0" in _metrics(net, "faulty"), 30,
                   "the second request to queue")
        release.set()
        lines, answer = streamed.result(timeout=60), whole.result(timeout=60)
    assert upstream.arrived.get(timeout=30) == "whole"
    assert lines[-1] == "[DONE]" and answer.status_code == 200, answer.text
    after = _metrics(net, "faulty")
    assert "subnetlab_miner_queue_depth 0.0" in after
    delta = {name: sum_metric(after, name) - sum_metric(before, name) for name in (
        "subnetlab_miner_backend_seconds_count", "subnetlab_miner_backend_seconds_sum",
        "subnetlab_miner_tokens_generated_total")}
    assert delta["subnetlab_miner_backend_seconds_count"] == 2
    assert delta["subnetlab_miner_backend_seconds_sum"] > 0
    assert delta["subnetlab_miner_tokens_generated_total"] == (
        FaultyUpstream.HOLD_STREAM_TOKENS + FaultyUpstream.HOLD_WHOLE_TOKENS)
    assert answer.json()["usage"]["completion_tokens"] == FaultyUpstream.HOLD_WHOLE_TOKENS
    ok = (caller, "ok")
    assert _requests(after)[ok] - _requests(before).get(ok, 0.0) == 2


# ---- simulated output is labelled in both forms ---------------------------------------------


def test_streamed_and_whole_answers_carry_the_same_simulated_label(net: Net) -> None:
    url, me = net.url("honest"), HONEST.ss58_address
    whole = _post(url, VALIDATOR, me, _chat()).json()
    assert whole["system_fingerprint"] == "simulated"
    assert whole["subnetlab"]["simulated"] is True and whole["subnetlab"]["miner"] == me
    assert whole["subnetlab"]["engine_seconds"] > 0

    chunks = _events(url, VALIDATOR, me,
                     _chat(stream=True, stream_options={"include_usage": True}))
    assert {c["system_fingerprint"] for c in chunks} == {"simulated"}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == whole["choices"][0]["message"]["content"] == "maerts"
    last = chunks[-1]
    assert last["choices"] == [] and last["usage"] == whole["usage"]
    assert last["subnetlab"]["simulated"] is True and last["subnetlab"]["miner"] == me
    assert last["subnetlab"]["engine_seconds"] > 0

    plain = _events(url, VALIDATOR, me, _chat(stream=True))
    assert {c["system_fingerprint"] for c in plain} == {"simulated"}
    assert not any("usage" in c for c in plain)
    assert plain[-1]["choices"][0]["finish_reason"] == "stop"
    assert plain[-1]["subnetlab"]["simulated"] is True


# ---- the official OpenAI client -------------------------------------------------------------


def signing_client(caller: Keypair, miner: str) -> openai.DefaultHttpxClient:
    """The OpenAI client's own HTTP client, with a request hook that adds Epistula headers
    signed by `caller` for `miner` over the exact body bytes the OpenAI client serialised."""

    def sign(request: httpx2.Request) -> None:
        request.headers.update(sign_request(caller, request.read(), miner))

    return openai.DefaultHttpxClient(event_hooks={"request": [sign]}, timeout=30)


def test_the_openai_client_talks_to_a_miner_through_a_signing_transport(net: Net) -> None:
    me = HONEST.ss58_address
    base = net.url("honest", "/v1")
    with signing_client(VALIDATOR, me) as http:
        client = openai.OpenAI(base_url=base, api_key="unused", http_client=http,
                               max_retries=0)
        messages: Any = [{"role": "user", "content": STRING_TASK}]
        whole = client.chat.completions.create(model="sim", messages=messages)
        assert whole.choices[0].message.content == "maerts"
        assert whole.system_fingerprint == "simulated"
        assert whole.usage is not None and whole.usage.completion_tokens >= 1
        assert (whole.model_extra or {})["subnetlab"]["simulated"] is True

        stream = client.chat.completions.create(
            model="sim", messages=messages, stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "maerts"
        assert {c.system_fingerprint for c in chunks} == {"simulated"}
        assert chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens

    with signing_client(NOT_REGISTERED, me) as http:
        stranger = openai.OpenAI(base_url=base, api_key="unused", http_client=http,
                                 max_retries=0)
        with pytest.raises(openai.PermissionDeniedError) as refused:
            stranger.chat.completions.create(model="sim", messages=messages)
    assert refused.value.status_code == 403
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["code"] == "unregistered_caller"


# ---- the command: one error line for each way it cannot start --------------------------


def _serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "subnetlab", "miner", "serve", *args],
                          capture_output=True, text=True, timeout=120, check=False,
                          env=_env(tmp_path / "home"))


@pytest.mark.parametrize(("args", "fragments"), [
    (["--log-level", "foo"], ["--log-level", "'foo' is not one of", "'debug'"]),
    (["--behaviour", "passthrough"], ["--behaviour passthrough", "--backend sim"]),
    (["--copy-from", "http://127.0.0.1:9"], ["--copy-from", "copycat"]),
    (["--backend-url", "http://127.0.0.1:9"], ["--backend-url", "--backend openai or vllm"]),
    (["--backend", "openai", "--backend-url", "http://127.0.0.1:9", "--ttft", "0.1"],
     ["--ttft", "--backend sim"]),
    (["--behaviour", "sybil"], ["--behaviour sybil", "--sybil-key"]),
    (["--task-accuracy", "poetry=1"], ["--task-accuracy", "poetry"]),
    (["--blacklist", "5Fnot-an-address"], ["--blacklist 5Fnot-an-address"]),
    (["--rate-limit", "0", "--rate-burst", "5"], ["--rate-burst", "--rate-limit"]),
    (["--ledger", "http://127.0.0.1:{free}"], ["cannot reach the ledger at", "(--ledger)"]),
])
def test_bad_options_and_an_unreachable_ledger_are_one_error_line(
    tmp_path: Path, args: list[str], fragments: list[str]
) -> None:
    args = [a.replace("{free}", str(free_port())) for a in args]
    line = one_error_line(_serve(tmp_path, "--dev-key", "mp-cli", *args))
    assert all(f in line for f in fragments), line


def test_refusals_by_the_chain_are_one_error_line(net: Net, tmp_path: Path) -> None:
    ledger = ["--ledger", net.ledger_url]
    line = one_error_line(_serve(tmp_path, "--dev-key", "mp-never-registered", "--netuid",
                                 str(net.netuid), "--port", str(free_port()), *ledger))
    assert line.startswith(f"error: serve_axon refused for {NOT_REGISTERED.ss58_address} on "
                           f"subnet {net.netuid} (--ledger {net.ledger_url}): not_registered")
    line = one_error_line(_serve(tmp_path, "--dev-key", "mp-honest", "--netuid", "4242",
                                 "--port", str(free_port()), *ledger))
    assert line == f"error: --netuid 4242: no such subnet on the ledger at {net.ledger_url}"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_error_line(_serve(tmp_path, "--dev-key", "mp-honest", "--netuid",
                                     str(net.netuid), "--port", str(port), *ledger))
    assert line.startswith(f"error: --port {port}: cannot listen on 127.0.0.1:{port}")
