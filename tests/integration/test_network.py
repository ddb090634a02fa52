"""A real network: ledger, sim miners and validators as separate processes on loopback.

Subnet A: two honest miners, one lazy miner, two honest validators. After a few epochs the
honest miners out-earn the lazy one, validators earn dividends, and the evidence audit of
each validator matches what it set. The protocol's refusals are exercised against a real
miner process. Subnet B (two miners, one gateway validator that never queries on its own)
checks the organic gateway's N+V accounting against the miners' own token counters.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_lib

from subnetlab.chain.model import TOKEN
from subnetlab.keys.keypair import Keypair
from subnetlab.local.bootstrap import bootstrap_subnet
from subnetlab.local.processes import Child, Supervisor
from subnetlab.miner.backends import sum_metric
from subnetlab.protocol.epistula import sign_request
from tests.integration.conftest import free_port, wait_until

HYPER = {"tempo": 10, "weights_rate_limit": 0, "max_registrations_per_block": 64,
         "target_registrations_per_interval": 64, "immunity_period": 1000}
API_KEY = "test-key"


@dataclass
class Net:
    ledger_url: str
    redis_url: str
    netuid: int
    miners: dict[str, Child]
    validators: dict[str, Child]
    gateway_netuid: int
    gateway_miners: dict[str, Child]
    gateway: Child


def _miner(name: str, netuid: int, ledger: str, logs: Path, *extra: str) -> Child:
    port = free_port()
    return Child(name, ["miner", "serve", "--dev-key", name, "--netuid", str(netuid),
                        "--ledger", ledger, "--port", str(port), "--log-level", "warning",
                        *extra],
                 logs / f"{name}.log", f"http://127.0.0.1:{port}/healthz")


def _validator(name: str, netuid: int, ledger: str, redis_url: str, logs: Path,
               *extra: str) -> Child:
    port = free_port()
    return Child(name, ["validator", "run", "--dev-key", name, "--netuid", str(netuid),
                        "--ledger", ledger, "--redis-url", redis_url, "--port", str(port),
                        "--interval", "0.3", "--timeout", "2", "--log-level", "warning",
                        *extra],
                 logs / f"{name}.log", f"http://127.0.0.1:{port}/healthz",
                 env={"SUBNETLAB_API_KEYS": API_KEY})


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    tmp = tmp_path_factory.mktemp("net")
    redis_port = free_port()
    redis_proc = subprocess.Popen(
        ["/usr/bin/redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--dir",
         str(tmp), "--save", ""], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    wait_until(lambda: redis_lib.Redis.from_url(redis_url).ping(), 10, "redis-server")
    supervisor = Supervisor()
    logs = tmp / "logs"
    try:
        ledger_port = free_port()
        ledger = f"http://127.0.0.1:{ledger_port}"
        supervisor.start(Child("ledger", ["ledger", "serve", "--fast", "--port",
                                          str(ledger_port), "--redis-url", redis_url,
                                          "--log-level", "warning"],
                               logs / "ledger.log", f"{ledger}/readyz"))
        alice = Keypair.dev("alice")
        netuid = bootstrap_subnet(
            ledger, alice, HYPER,
            miners=[Keypair.dev(n) for n in ("net-m0", "net-m1", "net-lazy")],
            validators=[(Keypair.dev(n), 1_000 * TOKEN) for n in ("net-v0", "net-v1")],
        )
        gateway_netuid = bootstrap_subnet(
            ledger, alice, HYPER,
            miners=[Keypair.dev(n) for n in ("gw-m0", "gw-m1")],
            validators=[(Keypair.dev("gw-v"), 1_000 * TOKEN)],
        )
        miners = {n: supervisor.start(_miner(n, netuid, ledger, logs, *extra))
                  for n, extra in (("net-m0", ()), ("net-m1", ()),
                                   ("net-lazy", ("--behaviour", "lazy")))}
        gateway_miners = {n: supervisor.start(_miner(n, gateway_netuid, ledger, logs))
                          for n in ("gw-m0", "gw-m1")}
        validators = {n: supervisor.start(_validator(n, netuid, ledger, redis_url, logs))
                      for n in ("net-v0", "net-v1")}
        gateway = supervisor.start(_validator(
            "gw-v", gateway_netuid, ledger, redis_url, logs,
            "--behaviour", "weight-copier", "--fan-out", "2"))
        yield Net(ledger, redis_url, netuid, miners, validators, gateway_netuid,
                  gateway_miners, gateway)
    finally:
        supervisor.stop_all()
        redis_proc.terminate()
        redis_proc.wait(10)


def metagraph(net: Net, netuid: int) -> dict[str, Any]:
    response = httpx.get(f"{net.ledger_url}/v1/subnets/{netuid}/metagraph", timeout=10)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def wait_for_epochs(net: Net, epochs: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        subnet = httpx.get(f"{net.ledger_url}/v1/subnets/{net.netuid}", timeout=10).json()
        evidence = httpx.get(f"{net.ledger_url}/v1/evidence/{net.netuid}", timeout=10).json()
        first_epoch: dict[str, int] = {}
        for digest in evidence["digests"]:
            hotkey = digest["hotkey"]
            first_epoch[hotkey] = min(first_epoch.get(hotkey, digest["epoch"]), digest["epoch"])
        # Bonds (hence dividends) build up one epoch after a validator's first weights: wait
        # until two epochs have closed after the later of the two validators started.
        if len(first_epoch) == 2 and subnet["epochs_run"] >= max(
            epochs, max(first_epoch.values()) + 2
        ):
            return
        time.sleep(0.5)
    raise TimeoutError(f"subnet did not reach {epochs} epochs with both validators setting "
                       f"weights; logs: {[c.tail(400) for c in net.validators.values()]}")


def by_hotkey(net: Net, netuid: int) -> dict[str, dict[str, Any]]:
    return {n["hotkey"]: n for n in metagraph(net, netuid)["neurons"]}


def test_honest_miners_out_earn_the_lazy_one_and_validators_earn_dividends(net: Net) -> None:
    wait_for_epochs(net, 5)
    neurons = by_hotkey(net, net.netuid)
    incentive = {name: neurons[Keypair.dev(name).ss58_address]["incentive"]
                 for name in ("net-m0", "net-m1", "net-lazy")}
    dividends = {name: neurons[Keypair.dev(name).ss58_address]["dividends"]
                 for name in ("net-v0", "net-v1")}
    print("incentive", incentive, "dividends", dividends)
    assert incentive["net-m0"] > incentive["net-lazy"]
    assert incentive["net-m1"] > incentive["net-lazy"]
    assert all(d > 0 for d in dividends.values())


def test_evidence_audit_matches_what_each_validator_set(net: Net) -> None:
    wait_for_epochs(net, 3)
    evidence = httpx.get(f"{net.ledger_url}/v1/evidence/{net.netuid}", timeout=10).json()
    checked = 0
    for name in ("net-v0", "net-v1"):
        hotkey = Keypair.dev(name).ss58_address
        epochs = sorted(d["epoch"] for d in evidence["digests"] if d["hotkey"] == hotkey)
        assert epochs, f"{name} committed no evidence"
        proc = subprocess.run(
            [sys.executable, "-m", "subnetlab", "audit", str(net.netuid), "--validator", hotkey,
             "--epoch", str(epochs[-1]), "--ledger", net.ledger_url, "--redis-url",
             net.redis_url, "--json"],
            capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        verdict = json.loads(proc.stdout)
        assert verdict["ok"] and verdict["recomputed"] == verdict["claimed"]
        checked += 1
    assert checked == 2


def _post(miner: Child, caller: Keypair, signed_for: str, body: bytes,
          now_ms: int | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
    assert miner.health_url is not None
    url = miner.health_url.replace("/healthz", "/v1/chat/completions")
    signed = headers or sign_request(caller, body, signed_for, now_ms=now_ms)
    return httpx.post(url, content=body, headers={"Content-Type": "application/json",
                                                   **signed}, timeout=10)


BODY = json.dumps({"messages": [{"role": "user", "content": "Reverse the string 'abc'."}]}
                  ).encode()


def test_miner_refuses_each_bad_caller_with_its_own_reason(net: Net) -> None:
    wait_for_epochs(net, 2)  # validators hold permits from the first epoch on
    miner = net.miners["net-m0"]
    target = Keypair.dev("net-m0").ss58_address
    validator = Keypair.dev("net-v0")

    ok = _post(miner, validator, target, BODY)
    assert ok.status_code == 200, ok.text
    assert ok.json()["choices"][0]["message"]["content"] == "cba"

    forged = sign_request(validator, BODY, target)
    forged["Epistula-Request-Signature"] = "0x" + "11" * 64
    cases = {
        "bad_signature": _post(miner, validator, target, BODY, headers=forged),
        "stale_request": _post(miner, validator, target, BODY,
                               now_ms=int(time.time() * 1000) - 60_000),
        "unregistered_caller": _post(miner, Keypair.dev("nobody-at-all"), target, BODY),
        "no_validator_permit": _post(miner, Keypair.dev("net-lazy"), target, BODY),
    }
    replayed_headers = sign_request(validator, BODY, target)
    first = _post(miner, validator, target, BODY, headers=replayed_headers)
    assert first.status_code == 200
    cases["replayed_request"] = _post(miner, validator, target, BODY, headers=replayed_headers)
    for code, response in cases.items():
        assert response.status_code in (401, 403), (code, response.text)
        assert response.json()["error"]["code"] == code


def _tokens(miner: Child) -> float:
    assert miner.health_url is not None
    text = httpx.get(miner.health_url.replace("/healthz", "/metrics"), timeout=10).text
    return sum_metric(text, "subnetlab_miner_tokens_generated_total")


@pytest.mark.parametrize("strategy", ["broadcast", "best-of-n", "spot-check"])
def test_gateway_overhead_matches_the_miners_own_counters(net: Net, strategy: str) -> None:
    assert net.gateway.health_url is not None
    url = net.gateway.health_url.replace("/healthz", "/v1/chat/completions")
    deadline = time.monotonic() + 30
    while len(metagraph(net, net.gateway_netuid)["neurons"]) < 3 or not all(
        n["axon"] for n in metagraph(net, net.gateway_netuid)["neurons"]
        if n["hotkey"] != Keypair.dev("gw-v").ss58_address
    ):
        assert time.monotonic() < deadline, "gateway miners never served their axon"
        time.sleep(0.3)
    refused = httpx.post(url, json={"messages": []}, timeout=10)
    assert refused.status_code == 401

    before = {n: _tokens(m) for n, m in net.gateway_miners.items()}
    body = {"messages": [{"role": "user", "content": "Sort ascending: 9, 1, 5, 3. Answer "
                                                      "with the numbers separated by ', '."}]}
    response = httpx.post(url, json=body, timeout=30, headers={
        "Authorization": f"Bearer {API_KEY}", "X-Subnetlab-Strategy": strategy})
    assert response.status_code == 200, response.text
    after = {n: _tokens(m) for n, m in net.gateway_miners.items()}
    spent = sum(after[n] - before[n] for n in after)
    accounting = response.json()["subnetlab"]
    assert accounting["miner_tokens"] == spent
    expected = (spent + accounting["grading_tokens"]) / accounting["delivered_tokens"]
    assert accounting["overhead_ratio"] == pytest.approx(expected, rel=1e-6)
    print(strategy, accounting)


def test_gateway_streams_the_chosen_answer_in_openai_format(net: Net) -> None:
    """A customer's OpenAI client asking for a stream gets chunks, a usage chunk carrying
    the N+V accounting, and [DONE]; the accounting still equals the miners' counters."""
    assert net.gateway.health_url is not None
    url = net.gateway.health_url.replace("/healthz", "/v1/chat/completions")
    before = {n: _tokens(m) for n, m in net.gateway_miners.items()}
    body = {"messages": [{"role": "user", "content": "Reverse the string 'stream'."}],
            "stream": True, "stream_options": {"include_usage": True}}
    events: list[str] = []
    with httpx.stream("POST", url, json=body, timeout=30, headers={
            "Authorization": f"Bearer {API_KEY}", "X-Subnetlab-Strategy": "broadcast"}) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") for line in r.iter_lines() if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    after = {n: _tokens(m) for n, m in net.gateway_miners.items()}
    accounting = usage_chunk["subnetlab"]
    assert accounting["miner_tokens"] == sum(after[n] - before[n] for n in after)
    assert usage_chunk["usage"]["completion_tokens"] == accounting["delivered_tokens"]
