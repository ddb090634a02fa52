"""`subnetlab miner serve` as real processes against a real ledger (on a real Redis).

Shown here, over real HTTP: each refusal of the protocol answers its own exact status
(blacklist and rate limit included, set from the command line); a sybil answers for
several hotkeys from one engine; streamed and whole answers of a sim miner carry the same
`simulated` label and figures; the official OpenAI Python client talks to a miner through
a signing transport; a passthrough miner forwards to its upstream; and every way the
command can fail to start is one `error:` line, no traceback.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest

from subnetlab.chain.model import TOKEN
from subnetlab.keys.keypair import Keypair
from subnetlab.local.bootstrap import bootstrap_subnet
from subnetlab.local.processes import Child, Supervisor
from subnetlab.miner.backends import sum_metric
from subnetlab.protocol.epistula import sign_request
from tests.integration.conftest import LedgerProcess, free_port, wait_until
from tests.integration.test_cli_offline import one_error_line

HYPER = {"tempo": 10, "weights_rate_limit": 0, "max_registrations_per_block": 64,
         "target_registrations_per_interval": 64, "immunity_period": 1000}
VALIDATOR = Keypair.dev("mp-validator")
BLACKLISTED = Keypair.dev("mp-blacklisted-validator")
LIMITED = Keypair.dev("mp-rate-limited-validator")
HONEST, STRICT, PASSTHROUGH = (Keypair.dev(n) for n in ("mp-honest", "mp-strict", "mp-pass"))
SYBIL_A, SYBIL_B = Keypair.dev("mp-sybil-a"), Keypair.dev("mp-sybil-b")
NOT_REGISTERED = Keypair.dev("mp-never-registered")
STRICT_BURST = 3  # the strict miner's per-caller burst; its refill takes ~1000 s per token
STRING_TASK = "Reverse the string 'stream'."
OPEN_PROMPT = "Describe what the harbour looks like early in the morning, please."


@dataclass
class Net:
    ledger_url: str
    netuid: int
    miners: dict[str, Child]

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
        miners=[HONEST, STRICT, PASSTHROUGH, SYBIL_A, SYBIL_B],
        validators=[(k, 1_000 * TOKEN) for k in (VALIDATOR, BLACKLISTED, LIMITED)])

    def permits() -> bool:
        rows = httpx.get(f"{ledger}/v1/subnets/{netuid}/metagraph", timeout=10).json()
        held = {n["hotkey"] for n in rows["neurons"] if n["validator_permit"]}
        return {k.ss58_address for k in (VALIDATOR, BLACKLISTED, LIMITED)} <= held

    wait_until(permits, 60, "validator permits")
    logs = tmp_path_factory.mktemp("miner-logs")
    net_args = ["--netuid", str(netuid), "--ledger", ledger]
    supervisor = Supervisor()
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
        }
        supervisor.start_all(list(miners.values()), timeout=90)
        yield Net(ledger, netuid, {**miners, "engine": engine})
    finally:
        supervisor.stop_all()


def _post(url: str, caller: Keypair, signed_for: str, body: dict[str, Any] | bytes,
          now_ms: int | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    signed = headers if headers is not None else sign_request(caller, raw, signed_for,
                                                              now_ms=now_ms)
    return httpx.post(url, content=raw, timeout=30,
                      headers={"Content-Type": "application/json", **signed})


def _chat(prompt: str = STRING_TASK, **extra: Any) -> dict[str, Any]:
    return {"model": "sim", "messages": [{"role": "user", "content": prompt}], **extra}


def _events(url: str, caller: Keypair, signed_for: str, body: dict[str, Any]
            ) -> list[dict[str, Any]]:
    """A signed streamed request's chunks, checked to end with [DONE]."""
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **sign_request(caller, raw, signed_for)}
    with httpx.stream("POST", url, content=raw, headers=headers, timeout=30) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line.removeprefix("data: ") for line in response.iter_lines() if line]
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
    metrics = httpx.get(net.url("strict", "/metrics"), timeout=10).text
    for code in EXPECTED_STATUS:
        assert f'outcome="{code}"' in metrics, code


# ---- behaviours ----------------------------------------------------------------------------


def test_a_sybil_answers_for_each_of_its_hotkeys_from_one_engine(net: Net) -> None:
    graph = httpx.get(f"{net.ledger_url}/v1/subnets/{net.netuid}/metagraph", timeout=10).json()
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
    no engine seconds because the upstream reports none; streaming works too."""
    upstream = httpx.post(net.url("engine"), json=_chat(OPEN_PROMPT), timeout=30).json()
    response = _post(net.url("passthrough"), VALIDATOR, PASSTHROUGH.ss58_address,
                     _chat(OPEN_PROMPT))
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["choices"][0]["message"]["content"] == (
        upstream["choices"][0]["message"]["content"])
    assert data["usage"] == upstream["usage"]
    assert data["system_fingerprint"] == "simulated" and data["subnetlab"]["simulated"]
    assert data["subnetlab"]["engine_seconds"] is None
    chunks = _events(net.url("passthrough"), VALIDATOR, PASSTHROUGH.ss58_address,
                     _chat(OPEN_PROMPT, stream=True, stream_options={"include_usage": True}))
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == data["choices"][0]["message"]["content"]
    assert chunks[-1]["usage"] == data["usage"]
    assert chunks[-1]["subnetlab"] == {**data["subnetlab"], "engine_seconds": None}


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
