"""A real vLLM miner in a testnet, on the CPU.

The CPU build of vLLM runs from its own cached environment (`subnetlab.local.vllm_env`,
built here if missing: the test never skips) and serves a tiny Llama-architecture model with
random weights and a tokenizer trained on the package's bundled text (`local.tiny_model`).
The testnet is started from Subnet/Neuron YAML as `subnetlab up -f` starts it: the ledger,
a vLLM server for the vllm miner (its spec names the tiny model, `gpus: 0`, and no url), two
sim miners, the vllm miner, a scoring validator and a gateway validator.

What is shown: the validator loop's signed queries reach vLLM through the miner; the miner
refuses unsigned and forged requests before the engine sees them; answers and streams carry
vLLM's own token counts, equal to the deltas of vLLM's own Prometheus counters; the
gateway's N+V accounting includes exactly the tokens vLLM generated; over the whole run
every token vLLM generated was accounted by the miner; an engine refusal and an unusable
model reach the user with vLLM's own reason. The model's answers are noise (random
weights): this measures the plumbing and the accounting, never quality.

Exact comparisons with vLLM's counters need a quiet engine, so the tests that make them
stop the scoring validator first (`quiet_net`) and wait for vLLM to finish what it runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from subnetlab.engines import EngineCounters, engine_counters, sum_metric
from subnetlab.keys.keypair import Keypair
from subnetlab.local import testnet as local_testnet
from subnetlab.local.tiny_model import SERVED_NAME, BuiltModel, ensure_model
from subnetlab.local.vllm_env import cache_root, ensure_env
from subnetlab.protocol.epistula import sign_request
from subnetlab.specs import load_specs
from tests.integration.chainclient import read_ledger
from tests.integration.conftest import wait_until

SPEC = """\
apiVersion: subnetlab.io/v1alpha1
kind: Subnet
metadata: {{name: cpu-vllm}}
spec:
  hyperparameters: {{tempo: 10, weightsRateLimit: 0, immunityPeriod: 1000,
                    maxRegistrationsPerBlock: 64, targetRegistrationsPerInterval: 64}}
---
apiVersion: subnetlab.io/v1alpha1
kind: Neuron
metadata: {{name: scorer}}
spec: {{subnet: cpu-vllm, role: validator, stake: 1000,
       validator: {{sampleSize: 3, timeoutSeconds: 30, intervalSeconds: 0.5}}}}
---
apiVersion: subnetlab.io/v1alpha1
kind: Neuron
metadata: {{name: gateway}}
spec: {{subnet: cpu-vllm, role: validator, stake: 1000, behaviour: weight-copier,
       validator: {{timeoutSeconds: 30, gateway: {{strategy: broadcast, fanOut: 3}}}}}}
---
apiVersion: subnetlab.io/v1alpha1
kind: Neuron
metadata: {{name: sim-0}}
spec: {{subnet: cpu-vllm, role: miner}}
---
apiVersion: subnetlab.io/v1alpha1
kind: Neuron
metadata: {{name: sim-1}}
spec: {{subnet: cpu-vllm, role: miner}}
---
apiVersion: subnetlab.io/v1alpha1
kind: Neuron
metadata: {{name: vllm-0}}
spec:
  subnet: cpu-vllm
  role: miner
  miner:
    backend: {{type: vllm, model: {model}, gpus: 0}}
"""
PROMPT = "Sort ascending: 9, 1, 5, 3. Answer with the numbers separated by ', '."


@dataclass
class Net:
    testnet: local_testnet.Testnet
    engine_url: str  # the vLLM server `subnetlab up` started for the vllm miner

    def neuron(self, name: str) -> local_testnet.NeuronRun:
        return next(n for run in self.testnet.subnets for n in run.neurons
                    if n.spec.metadata.name == name)

    def miner_url(self, name: str, path: str) -> str:
        child = self.neuron(name).child
        assert child is not None and child.health_url is not None
        return child.health_url.replace("/healthz", path)

    def engine(self) -> EngineCounters:
        return engine_counters(httpx.get(f"{self.engine_url}/metrics", timeout=10).text)

    def miner_metric(self, name: str, metric: str) -> float:
        text = httpx.get(self.miner_url(name, "/metrics"), timeout=10).text
        return sum_metric(text, metric)


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model() -> BuiltModel:
    """The cached CPU vLLM environment and tiny model (built here on a cold cache)."""
    return ensure_model(ensure_env(), cache_root())


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory, tiny_model: BuiltModel) -> Iterator[Net]:
    """The testnet, started from YAML as `subnetlab up -f` starts it: the vllm miner's spec
    names the tiny model and no url, so the testnet starts a vLLM server for it."""
    tmp = tmp_path_factory.mktemp("vllm-net")
    spec = tmp / "cpu-vllm.yaml"
    spec.write_text(SPEC.format(model=tiny_model.served_name))
    testnet = local_testnet.Testnet(load_specs([spec]), tmp / "run", block_time=0.25,
                                    organic_rate=0)
    try:
        testnet.start(lambda text: None if text.startswith("starting vLLM") else print(text))
        yield Net(testnet, testnet.vllm_urls[tiny_model.served_name])
    finally:
        testnet.stop()


def _permits_and_axons(net: Net) -> bool:
    run = net.testnet.subnets[0]
    with read_ledger(net.testnet.ledger_url) as ledger:
        graph = ledger.metagraph(run.netuid)
    rows = {n["hotkey"]: n for n in graph["neurons"]}
    validators = [n for n in run.neurons if n.spec.spec.role == "validator"]
    miners = [n for n in run.neurons if n.spec.spec.role == "miner"]
    return (all(rows.get(v.key.ss58_address, {}).get("validator_permit") for v in validators)
            and all(rows.get(m.key.ss58_address, {}).get("axon") for m in miners))


@pytest.fixture(scope="module")
def quiet_net(net: Net) -> Net:
    """The net with the scoring validator stopped and vLLM idle: counters then move only
    for the requests a test sends."""
    wait_until(lambda: _permits_and_axons(net), 60, "validator permits and miner axons")
    scorer = net.neuron("scorer").child
    assert scorer is not None
    scorer.stop()

    def idle() -> bool:
        text = httpx.get(f"{net.engine_url}/metrics", timeout=10).text
        return (sum_metric(text, "vllm:num_requests_running")
                + sum_metric(text, "vllm:num_requests_waiting")) == 0

    wait_until(idle, 60, "vLLM to finish the scorer's last requests")
    return net


def _signed(net: Net, miner: str, body: dict[str, Any], caller: str = "gateway",
            stream: bool = False) -> httpx.Response:
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json",
               **sign_request(net.neuron(caller).key, raw, net.neuron(miner).key.ss58_address)}
    url = net.miner_url(miner, "/v1/chat/completions")
    if not stream:
        return httpx.post(url, content=raw, headers=headers, timeout=120)
    with httpx.stream("POST", url, content=raw, headers=headers, timeout=120) as response:
        response.read()
        return response


def _body(**extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": PROMPT}], **extra}


# --- tests --------------------------------------------------------------------------------


def test_the_validator_loop_queries_the_vllm_miner_through_the_signed_protocol(
    net: Net,
) -> None:
    scorer = net.neuron("scorer").key.ss58_address

    def scorer_answered() -> bool:
        text = httpx.get(net.miner_url("vllm-0", "/metrics"), timeout=10).text
        line = [row for row in text.splitlines() if row.startswith(
            "subnetlab_miner_requests_total{") and f'caller="{scorer}"' in row
            and 'outcome="ok"' in row]
        return bool(line) and float(line[0].rsplit(" ", 1)[1]) >= 3

    wait_until(scorer_answered, 90, "three of the scorer's queries answered by the vllm miner")
    engine = net.engine()  # a fresh server: its counters count this testnet's work only
    print("engine since the testnet started:", engine)
    assert engine.requests_finished >= 3
    assert engine.generation_tokens >= 3
    assert net.miner_metric("vllm-0", "subnetlab_miner_tokens_generated_total") >= 3


def test_refused_requests_never_reach_the_engine(quiet_net: Net) -> None:
    net = quiet_net
    before = net.engine()
    url = net.miner_url("vllm-0", "/v1/chat/completions")
    unsigned = httpx.post(url, json=_body(), timeout=30)
    forged_headers = sign_request(net.neuron("gateway").key, json.dumps(_body()).encode(),
                                  net.neuron("vllm-0").key.ss58_address)
    forged_headers["Epistula-Request-Signature"] = "0x" + "11" * 64
    forged = httpx.post(url, content=json.dumps(_body()).encode(), timeout=30,
                        headers={"Content-Type": "application/json", **forged_headers})
    stranger = _signed_by(net, Keypair.dev("not-registered-anywhere"), _body())
    not_chat = _signed(net, "vllm-0", {"prompt": "no messages"})
    codes = {r.status_code: r.json()["error"]["code"]
             for r in (unsigned, forged, stranger, not_chat)}
    print(codes)
    assert unsigned.status_code in (400, 401) and forged.status_code == 401
    assert forged.json()["error"]["code"] == "bad_signature"
    assert stranger.status_code == 403
    assert stranger.json()["error"]["code"] == "unregistered_caller"
    assert not_chat.status_code == 400 and "messages" in not_chat.json()["error"]["message"]
    assert net.engine().minus(before).requests_finished == 0


def test_the_engines_refusal_reaches_the_caller_with_its_reason(quiet_net: Net) -> None:
    net = quiet_net
    before = net.engine()
    tokens_before = net.miner_metric("vllm-0", "subnetlab_miner_tokens_generated_total")
    response = _signed(net, "vllm-0", _body(max_tokens=100_000))
    error = response.json()["error"]
    print(response.status_code, error)
    assert response.status_code == 502 and error["code"] == "backend_error"
    assert error["message"].startswith("EngineError: engine answered 400: ")
    assert "max_tokens" in error["message"] or "context length" in error["message"]
    assert net.engine().minus(before).generation_tokens == 0
    assert net.miner_metric("vllm-0", "subnetlab_miner_tokens_generated_total") == tokens_before


def _signed_by(net: Net, caller: Keypair, body: dict[str, Any]) -> httpx.Response:
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json",
               **sign_request(caller, raw, net.neuron("vllm-0").key.ss58_address)}
    return httpx.post(net.miner_url("vllm-0", "/v1/chat/completions"), content=raw,
                      headers=headers, timeout=30)


def test_an_answer_carries_vllms_own_token_counts(quiet_net: Net) -> None:
    net = quiet_net
    before = net.engine()
    miner_before = net.miner_metric("vllm-0", "subnetlab_miner_tokens_generated_total")
    response = _signed(net, "vllm-0", _body(max_tokens=32, temperature=0))
    assert response.status_code == 200, response.text
    data = response.json()
    spent = net.engine().minus(before)
    print("usage", data["usage"], "engine", spent)
    assert data["model"] == SERVED_NAME
    assert data["subnetlab"]["simulated"] is False and data["system_fingerprint"] is None
    assert spent.requests_finished == 1
    assert data["usage"]["completion_tokens"] == spent.generation_tokens >= 1
    assert data["usage"]["prompt_tokens"] == spent.prompt_tokens >= 1
    assert (net.miner_metric("vllm-0", "subnetlab_miner_tokens_generated_total")
            - miner_before) == spent.generation_tokens


def test_streaming_through_the_miner_matches_the_whole_answer(quiet_net: Net) -> None:
    net = quiet_net
    whole = _signed(net, "vllm-0", _body(max_tokens=48, temperature=0))
    assert whole.status_code == 200, whole.text
    before = net.engine()
    response = _signed(net, "vllm-0", _body(max_tokens=48, temperature=0, stream=True,
                                            stream_options={"include_usage": True}),
                       stream=True)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    pieces = [c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]]
    usage = [c["usage"] for c in chunks if c.get("usage")]
    spent = net.engine().minus(before)
    print(f"{len(pieces)} chunks, usage {usage}, engine {spent}")
    assert len([p for p in pieces if p]) >= 2, "a stream of one piece streams nothing"
    assert "".join(pieces) == whole.json()["choices"][0]["message"]["content"]
    assert len(usage) == 1
    assert usage[0]["completion_tokens"] == spent.generation_tokens
    assert usage[0]["completion_tokens"] == whole.json()["usage"]["completion_tokens"]
    assert usage[0]["prompt_tokens"] == spent.prompt_tokens
    assert spent.requests_finished == 1 and spent.time_to_first_token_count == 1


def test_gateway_nv_accounting_counts_the_tokens_vllm_generated(quiet_net: Net) -> None:
    net = quiet_net
    gateway = net.neuron("gateway").gateway_url
    sims = ("sim-0", "sim-1")
    tokens = "subnetlab_miner_tokens_generated_total"
    sim_before = {n: net.miner_metric(n, tokens) for n in sims}
    before = net.engine()
    response = httpx.post(f"{gateway}/v1/chat/completions", json=_body(max_tokens=40),
                          headers={"Authorization": "Bearer subnetlab-up",
                                   "X-Subnetlab-Strategy": "broadcast"}, timeout=120)
    assert response.status_code == 200, response.text
    accounting = response.json()["subnetlab"]
    vllm_tokens = net.engine().minus(before).generation_tokens
    sim_tokens = sum(net.miner_metric(n, tokens) - sim_before[n] for n in sims)
    print("accounting", accounting, "vllm", vllm_tokens, "sim", sim_tokens)
    assert accounting["miners_asked"] == 3
    assert vllm_tokens >= 1
    assert accounting["miner_tokens"] == sim_tokens + vllm_tokens
    expected = (accounting["miner_tokens"] + accounting["grading_tokens"]) / max(
        1, accounting["delivered_tokens"])
    assert accounting["overhead_ratio"] == pytest.approx(expected, rel=1e-6)


def test_every_token_vllm_generated_was_accounted_by_the_miner(quiet_net: Net) -> None:
    """Over the whole run (the scorer's loop included), vLLM's own counter equals the
    miner's: no engine work is missing from what the miner reported."""
    net = quiet_net
    engine = net.engine()
    miner = net.miner_metric("vllm-0", "subnetlab_miner_tokens_generated_total")
    print(f"vLLM generated {engine.generation_tokens:.0f} tokens in "
          f"{engine.requests_finished:.0f} requests; the miner accounted {miner:.0f}")
    assert engine.requests_finished >= 5
    assert miner == engine.generation_tokens


def _up(tmp_path: Path, model: str) -> subprocess.CompletedProcess[str]:
    spec = tmp_path / "bad.yaml"
    spec.write_text(SPEC.format(model=model))
    return subprocess.run(
        [sys.executable, "-m", "subnetlab", "up", "-f", str(spec), "--duration", "5",
         "--run-dir", str(tmp_path / "run")], capture_output=True, text=True, timeout=600,
        env={**os.environ, "SUBNETLAB_HOME": str(tmp_path / "home")}, check=False)


def test_up_refuses_a_hub_model_on_the_cpu_build(tmp_path: Path, tiny_model: BuiltModel) -> None:
    proc = _up(tmp_path, "Qwen/Qwen2.5-0.5B-Instruct")
    print(proc.stderr[-600:])
    assert proc.returncode == 2
    assert "miner.backend.model: 'Qwen/Qwen2.5-0.5B-Instruct': on the CPU build" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list((tmp_path / "run" / "logs").glob("vllm-*.log"))  # vLLM never started


def test_up_reports_vllms_own_reason_when_the_model_folder_is_unusable(
    tmp_path: Path, tiny_model: BuiltModel
) -> None:
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    started = time.monotonic()
    proc = _up(tmp_path, str(empty))
    print(f"refused after {time.monotonic() - started:.0f} s: {proc.stderr[-600:]}")
    assert proc.returncode == 2
    assert "vLLM exited with 1 after" in proc.stderr
    assert f"Invalid repository ID or local directory specified: '{empty}'" in " ".join(
        proc.stderr.split())
    assert "Traceback" not in proc.stderr
