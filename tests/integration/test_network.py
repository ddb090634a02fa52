"""A real network: ledger, sim miners and validators as separate processes on loopback.

Subnet A: two honest miners, one lazy miner, two honest validators. After a few epochs the
honest miners out-earn the lazy one, validators earn dividends, and the evidence audit of
each validator matches both its own claims and the weights on chain. A validator key with
no process ("liar", played by the test) shows what the audit says when the chain and the
evidence disagree. The protocol's refusals are exercised against a real miner process.

Subnet B (two miners, two gateway validators that never query on their own, so nothing
but the test's requests moves the miners' counters; their reference model is a separate
`subnetlab engine serve`): the organic gateway's N+V accounting, read from the gateway's own
/metrics, equals what the miners' token counters and the reference engine's counter add up
to, in every strategy, spot-check also with every answer re-checked
(`--spot-check-rate 1`).

Subnet C (three miners, one honest validator with spot-check re-checking every answer):
a miner that built a good score and then turns lazy is caught by a spot-check, its moving
score falls to 0, the penalty is in the validator's evidence, and the audit still matches.
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
from prometheus_client.parser import text_string_to_metric_families

from subnetlab.bench.organic_metrics import StrategyFigures, parse_organic
from subnetlab.chain.units import TOKEN
from subnetlab.engines import sum_metric
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.client import LedgerClient
from subnetlab.local.bootstrap import bootstrap_subnet
from subnetlab.local.processes import Child, Supervisor
from subnetlab.protocol.epistula import sign_request
from subnetlab.tasks import OPEN, generate
from subnetlab.validator.evidence import final_moving, load_evidence, store_evidence
from subnetlab.validator.scoring import task_score
from subnetlab.validator.weights import honest_weights
from tests.integration.chainclient import read_ledger
from tests.integration.conftest import (
    free_port,
    miner_child,
    start_redis_server,
    stop_redis_server,
    validator_child,
    wait_until,
)

HYPER = {"tempo": 10, "weights_rate_limit": 0, "max_registrations_per_block": 64,
         "target_registrations_per_interval": 64, "immunity_period": 1000}
API_KEY = "test-key"
OPEN_PROMPT = generate(OPEN, 11).prompt  # sim engines answer open prompts deterministically


@dataclass
class Net:
    ledger_url: str
    redis_url: str
    netuid: int
    miners: dict[str, Child]
    validators: dict[str, Child]
    gateway_netuid: int
    gateway_miners: dict[str, Child]
    gateways: dict[str, Child]
    reference_engine: Child
    check_netuid: int
    check_miners: dict[str, Child]
    checker: Child
    logs: Path


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    tmp = tmp_path_factory.mktemp("net")
    redis_server = start_redis_server(tmp / "redis")
    redis_url = redis_server.url
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
            # net-idle: registered, never served, so never weighted, paid or permitted
            miners=[Keypair.dev(n) for n in ("net-m0", "net-m1", "net-lazy", "net-idle")],
            validators=[(Keypair.dev(n), 1_000 * TOKEN) for n in ("net-v0", "net-v1")]
            + [(Keypair.dev("net-liar"), 10 * TOKEN)],
        )
        gateway_netuid = bootstrap_subnet(
            ledger, alice, HYPER,
            miners=[Keypair.dev(n) for n in ("gw-m0", "gw-m1")],
            validators=[(Keypair.dev(n), 1_000 * TOKEN) for n in ("gw-v", "gw-sc")],
        )
        check_netuid = bootstrap_subnet(
            ledger, alice, HYPER,
            miners=[Keypair.dev(n) for n in ("sc-m0", "sc-m1", "sc-bait")],
            validators=[(Keypair.dev("sc-v"), 1_000 * TOKEN)],
        )
        miners = {n: miner_child(n, netuid, ledger, logs, *extra)
                  for n, extra in (("net-m0", ()), ("net-m1", ()),
                                   ("net-lazy", ("--behaviour", "lazy")))}
        gateway_miners = {n: miner_child(n, gateway_netuid, ledger, logs)
                          for n in ("gw-m0", "gw-m1")}
        check_miners = {n: miner_child(n, check_netuid, ledger, logs)
                        for n in ("sc-m0", "sc-m1", "sc-bait")}
        # The gateways' reference model is an engine of its own, reached over HTTP, so the
        # grading half of N+V is read from the engine's counters, not the validator's.
        engine_port = free_port()
        reference_engine = Child("reference-engine", ["engine", "serve", "--port",
                                                      str(engine_port)],
                                 logs / "reference-engine.log",
                                 f"http://127.0.0.1:{engine_port}/healthz")
        supervisor.start_all([*miners.values(), *gateway_miners.values(),
                              *check_miners.values(), reference_engine], timeout=120)
        reference = ("--reference-backend", "openai", "--reference-url",
                     f"http://127.0.0.1:{engine_port}")
        validators = {n: validator_child(n, netuid, ledger, redis_url, logs, api_key=API_KEY)
                      for n in ("net-v0", "net-v1")}
        gateways = {
            "gw-v": validator_child("gw-v", gateway_netuid, ledger, redis_url, logs,
                                    "--behaviour", "weight-copier", "--fan-out", "2",
                                    *reference, api_key=API_KEY),
            "gw-sc": validator_child("gw-sc", gateway_netuid, ledger, redis_url, logs,
                                     "--behaviour", "weight-copier", "--fan-out", "2",
                                     "--strategy", "spot-check", "--spot-check-rate", "1",
                                     *reference, api_key=API_KEY),
        }
        checker = validator_child("sc-v", check_netuid, ledger, redis_url, logs,
                                  "--strategy", "spot-check", "--spot-check-rate", "1",
                                  "--tasks", "open=1", api_key=API_KEY)
        supervisor.start_all([*validators.values(), *gateways.values(), checker], timeout=120)
        yield Net(ledger, redis_url, netuid, miners, validators, gateway_netuid,
                  gateway_miners, gateways, reference_engine, check_netuid, check_miners,
                  checker, logs)
    finally:
        supervisor.stop_all()
        stop_redis_server(redis_server)


def metagraph(net: Net, netuid: int) -> dict[str, Any]:
    with read_ledger(net.ledger_url) as ledger:
        return ledger.metagraph(netuid)


def epochs_run(net: Net, netuid: int) -> int:
    with read_ledger(net.ledger_url) as ledger:
        return int(ledger.subnet(netuid)["epochs_run"])


def evidence(net: Net, netuid: int) -> list[dict[str, Any]]:
    with read_ledger(net.ledger_url) as ledger:
        return ledger.evidence(netuid)


def wait_for_epochs(net: Net, epochs: int, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    names = ("net-v0", "net-v1")
    while time.monotonic() < deadline:
        first_epoch: dict[str, int] = {}
        for digest in evidence(net, net.netuid):
            hotkey = digest["hotkey"]
            first_epoch[hotkey] = min(first_epoch.get(hotkey, digest["epoch"]), digest["epoch"])
        honest = [first_epoch[k] for k in (Keypair.dev(n).ss58_address for n in names)
                  if k in first_epoch]
        # Bonds (hence dividends) build up one epoch after a validator's first weights: wait
        # until two epochs have closed after the later of the two validators started.
        if len(honest) == 2 and epochs_run(net, net.netuid) >= max(epochs, max(honest) + 2):
            return
        time.sleep(0.5)
    raise TimeoutError(f"subnet did not reach {epochs} epochs with both validators setting "
                       f"weights; logs: {[c.tail(400) for c in net.validators.values()]}")


def by_hotkey(net: Net, netuid: int) -> dict[str, dict[str, Any]]:
    return {n["hotkey"]: n for n in metagraph(net, netuid)["neurons"]}


def run_audit(net: Net, netuid: int, hotkey: str, epoch: int) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "subnetlab", "audit", str(netuid), "--validator", hotkey,
         "--epoch", str(epoch), "--ledger", net.ledger_url, "--redis-url", net.redis_url,
         "--json"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.stdout, proc.stderr
    verdict: dict[str, Any] = json.loads(proc.stdout)
    return proc.returncode, verdict


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


def test_evidence_audit_matches_the_evidence_and_the_chain(net: Net) -> None:
    """Each honest validator's latest evidence recomputes to its claimed weights, and the
    chain holds those weights (its row, u16 max-upscaled, within one u16 step)."""
    wait_for_epochs(net, 3)
    for name in ("net-v0", "net-v1"):
        hotkey = Keypair.dev(name).ss58_address
        epochs = sorted(d["epoch"] for d in evidence(net, net.netuid) if d["hotkey"] == hotkey)
        assert epochs, f"{name} committed no evidence"
        code, verdict = run_audit(net, net.netuid, hotkey, epochs[-1])
        assert code == 0, verdict
        assert verdict["ok"] and verdict["evidence_ok"] and verdict["chain_ok"]
        assert verdict["differs"] == [] and verdict["recomputed"] == verdict["claimed"]
        assert verdict["chain_source"].startswith(("row, set in block", "set_weights in block"))
        weighted = {int(k) for k, v in verdict["claimed"].items() if v}
        assert weighted and weighted <= {int(k) for k in verdict["chain"]}
        # an older epoch's weights have been replaced on chain since: the audit reads them
        # from the set_weights extrinsic of the block its evidence names
        code, older = run_audit(net, net.netuid, hotkey, epochs[0])
        assert code == 0, older
        assert older["chain_source"].startswith("set_weights in block")


def _liar_commits(net: Net, client: LedgerClient, document: dict[str, Any],
                  chain_weights: dict[int, int]) -> int:
    """The liar sets `chain_weights` on chain, then commits `document` as its evidence for
    the current epoch (naming the block of that setting); returns the epoch."""
    liar = Keypair.dev("net-liar")
    uids = sorted(chain_weights)
    receipt = client.submit(liar, "set_weights", {
        "netuid": net.netuid, "uids": uids, "weights": [chain_weights[u] for u in uids]})
    epoch = epochs_run(net, net.netuid)
    document = {**document, "validator": liar.ss58_address, "epoch": epoch,
                "chain": {"call": "set_weights", "block": int(receipt["block"])}}
    digest = store_evidence(redis_lib.Redis.from_url(net.redis_url), document)
    client.submit(liar, "commit_evidence", {"netuid": net.netuid, "epoch": epoch,
                                            "digest": digest})
    return epoch


def test_audit_says_which_side_differs_when_chain_and_evidence_disagree(net: Net) -> None:
    """A validator (the test, signing as "liar") whose evidence is an honest validator's
    self-consistent document: first it sets other weights on chain than the evidence
    claims (the chain differs), then it sets what it claims but claims what the evidence
    does not support (the evidence differs). Both audits fail with exit 1."""
    wait_for_epochs(net, 3)
    honest = Keypair.dev("net-v0").ss58_address
    epoch = max(d["epoch"] for d in evidence(net, net.netuid) if d["hotkey"] == honest)
    digest = next(d["digest"] for d in evidence(net, net.netuid)
                  if d["hotkey"] == honest and d["epoch"] == epoch)
    honest_document = load_evidence(redis_lib.Redis.from_url(net.redis_url), digest)
    assert honest_document is not None
    # The liar has no evidence of its own before this, so its moving scores must start
    # empty (the audit checks moving_before against the prior evidence): it replays the
    # honest validator's records from nothing and claims the weights that gives. The
    # answers were signed for the honest validator, not the liar (the audit would say so:
    # test_audit_names_answers_no_miner_gave_the_validator), so the liar files them in the
    # old format, which has no signatures: the audit notes it cannot prove them.
    records = [{k: v for k, v in r.items() if k != "answer"} for r in honest_document["records"]]
    document = {**honest_document, "moving_before": {}, "records": records, "version": 3}
    document["weights"] = {str(k): v for k, v in honest_weights(final_moving(document)).items()}
    claimed = {int(k): int(v) for k, v in document["weights"].items()}
    uids = sorted(claimed)
    reversed_weights = dict(zip(uids, [claimed[u] for u in reversed(uids)], strict=True))
    assert reversed_weights != claimed
    liar = Keypair.dev("net-liar").ss58_address
    with LedgerClient(net.ledger_url) as client:
        first = _liar_commits(net, client, document, reversed_weights)
        code, verdict = run_audit(net, net.netuid, liar, first)
        print("chain differs:", verdict["reasons"])
        assert code == 1 and verdict["differs"] == ["chain"] and verdict["evidence_ok"]
        assert any(r.startswith("chain (row, set in block") for r in verdict["reasons"])
        assert any("cannot prove" in note for note in verdict["notes"]), verdict["notes"]

        wait_until(lambda: epochs_run(net, net.netuid) > first, 60, "the next epoch")
        top = max(uids, key=lambda u: claimed[u])
        inflated = {**claimed, top: claimed[top] // 3}  # not what its evidence supports
        unsupported = {**document, "weights": {str(k): v for k, v in inflated.items()}}
        second = _liar_commits(net, client, unsupported, inflated)
        code, verdict = run_audit(net, net.netuid, liar, second)
        print("evidence differs:", verdict["reasons"])
        assert code == 1 and verdict["differs"] == ["evidence"] and verdict["chain_ok"]
        # Its second document starts afresh again instead of continuing the first: noted.
        assert any("start afresh" in note for note in verdict["notes"]), verdict["notes"]


def test_audit_names_answers_no_miner_gave_the_validator(net: Net) -> None:
    """A copying validator (the test, signing as "liar") files an honest validator's
    evidence as its own, one answer made up: its weights follow from its records and the
    chain holds them, so only the miners' signatures can tell. `subnetlab audit` fails it
    (exit 1, the evidence differs) and names the made-up answer (its uid and miner) and
    each answer that was given to another validator."""
    wait_for_epochs(net, 3)
    honest = Keypair.dev("net-v1").ss58_address
    entry = max((d for d in evidence(net, net.netuid) if d["hotkey"] == honest),
                key=lambda d: d["epoch"])
    honest_document = load_evidence(redis_lib.Redis.from_url(net.redis_url), entry["digest"])
    assert honest_document is not None and honest_document["version"] == 4
    # the made-up answer: a wrong one (the lazy miner's) turned right, its score made to fit,
    # so rescoring finds nothing wrong
    wrong = [r for r in honest_document["records"] if r["kind"] != OPEN and r.get("answer")
             and r["response"] != generate(r["kind"], int(r["seed"])).expected]
    assert wrong, "no wrong verifiable answer to make right"
    made_up = wrong[0]
    right = generate(made_up["kind"], int(made_up["seed"])).expected
    score = task_score(generate(made_up["kind"], int(made_up["seed"])), right,
                       float(made_up["latency_s"]), float(honest_document["timeout_s"]))
    records = [{**r, "response": right, "score": score} if r is made_up else r
               for r in honest_document["records"]]
    document = {**honest_document, "moving_before": {}, "records": records}
    document["weights"] = {str(k): v for k, v in honest_weights(final_moving(document)).items()}
    with LedgerClient(net.ledger_url) as client:
        wait_until(lambda: epochs_run(net, net.netuid) > entry["epoch"] + 2, 60, "epochs")
        claimed = {int(k): int(v) for k, v in document["weights"].items()}
        epoch = _liar_commits(net, client, document, claimed)
    code, verdict = run_audit(net, net.netuid, Keypair.dev("net-liar").ss58_address, epoch)
    print("fabricated:", verdict["reasons"])
    assert code == 1 and "evidence" in verdict["differs"]
    unsigned = [r for r in verdict["reasons"] if "not signed by its miner" in r]
    assert any(f"uid {made_up['uid']} ({made_up['hotkey']})" in r
               and "not the answer in the signed body" in r for r in unsigned), unsigned
    assert not any("recomputes" in r for r in verdict["reasons"])  # only signatures tell
    assert any(f"given to {honest}" in r for r in unsigned), unsigned


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
    answer = ok.json()
    # the sim engine answers right with probability 0.95: the point here is that the
    # signed call is served (and labelled simulated), not what the engine answers
    assert answer["choices"][0]["message"]["content"], answer
    assert answer["system_fingerprint"] == "simulated", answer

    forged = sign_request(validator, BODY, target)
    forged["Epistula-Request-Signature"] = "0x" + "11" * 64
    cases = {
        "bad_signature": _post(miner, validator, target, BODY, headers=forged),
        "stale_request": _post(miner, validator, target, BODY,
                               now_ms=int(time.time() * 1000) - 60_000),
        "unregistered_caller": _post(miner, Keypair.dev("nobody-at-all"), target, BODY),
        # Not the lazy miner: what it earns becomes stake on its hotkey, and any stake
        # gives a permit on a subnet this small. A uid that never serves earns nothing.
        "no_validator_permit": _post(miner, Keypair.dev("net-idle"), target, BODY),
    }
    replayed_headers = sign_request(validator, BODY, target)
    first = _post(miner, validator, target, BODY, headers=replayed_headers)
    assert first.status_code == 200
    cases["replayed_request"] = _post(miner, validator, target, BODY, headers=replayed_headers)
    for code, response in cases.items():
        assert response.status_code in (401, 403), (code, response.text)
        assert response.json()["error"]["code"] == code


# --- the organic gateway ---------------------------------------------------------------


def _scrape(child: Child) -> str:
    assert child.health_url is not None
    return httpx.get(child.health_url.replace("/healthz", "/metrics"), timeout=10).text


def _tokens(miner: Child) -> float:
    return sum_metric(_scrape(miner), "subnetlab_miner_tokens_generated_total")


def _metric(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == name and labels.items() <= sample.labels.items())


def _gateway_url(child: Child) -> str:
    assert child.health_url is not None
    return child.health_url.replace("/healthz", "/v1/chat/completions")


def _wait_for_axons(net: Net, netuid: int, miners: int) -> None:
    def served() -> bool:
        neurons = metagraph(net, netuid)["neurons"]
        return sum(1 for n in neurons if n["axon"]) >= miners
    wait_until(served, 60, f"{miners} miners serving on subnet {netuid}")


def _uid_of(net: Net, netuid: int) -> dict[str, int]:
    return {n["hotkey"]: int(n["uid"]) for n in metagraph(net, netuid)["neurons"]}


@pytest.mark.parametrize(("gateway", "strategy"), [
    ("gw-v", "broadcast"), ("gw-v", "best-of-n"), ("gw-v", "spot-check"),
    ("gw-sc", "spot-check"),
])
def test_gateway_overhead_metric_equals_the_miners_own_counters(
    net: Net, gateway: str, strategy: str
) -> None:
    """The gateway's `subnetlab_organic_overhead_ratio` (its `_sum` and `_count`,
    differenced around one request) equals (every miner's token counter difference + the
    reference engine's generated-token counter difference) / the counter difference of the
    miner whose answer was delivered: every figure from the process that did the work.
    gw-sc re-checks every spot-check answer."""
    child = net.gateways[gateway]
    url = _gateway_url(child)
    _wait_for_axons(net, net.gateway_netuid, 2)
    assert httpx.post(url, json={"messages": []}, timeout=10).status_code == 401

    names = {Keypair.dev(n).ss58_address: n for n in net.gateway_miners}
    uids = {uid: names[hk] for hk, uid in _uid_of(net, net.gateway_netuid).items() if hk in names}
    before_text = _scrape(child)
    before = {n: _tokens(m) for n, m in net.gateway_miners.items()}
    engine_before = _metric(_scrape(net.reference_engine),
                            "subnetlab_engine_generation_tokens_total")
    body = {"messages": [{"role": "user", "content": "Sort ascending: 9, 1, 5, 3. Answer "
                                                      "with the numbers separated by ', '."}]}
    response = httpx.post(url, json=body, timeout=30, headers={
        "Authorization": f"Bearer {API_KEY}", "X-Subnetlab-Strategy": strategy})
    assert response.status_code == 200, response.text
    after_text = _scrape(child)
    spent = {n: _tokens(m) - before[n] for n, m in net.gateway_miners.items()}
    grading = _metric(_scrape(net.reference_engine),
                      "subnetlab_engine_generation_tokens_total") - engine_before
    # the validator's own count of what it graded with says the same
    assert grading == (_metric(after_text, "subnetlab_validator_reference_tokens_total")
                       - _metric(before_text, "subnetlab_validator_reference_tokens_total"))
    block = response.json()["subnetlab"]
    delivered = spent[uids[block["miner_uid"]]]
    expected = (sum(spent.values()) + grading) / max(1.0, delivered)

    counted = parse_organic(after_text)[strategy].minus(
        parse_organic(before_text).get(strategy, StrategyFigures()))
    print(gateway, strategy, "metric:", counted.overhead.total, "counters:", expected, block)
    assert counted.overhead.count == 1
    assert counted.overhead.total == pytest.approx(expected, rel=1e-9)
    # the response's own figures say the same
    assert block["miner_tokens"] == sum(spent.values())
    assert block["grading_tokens"] == grading and block["delivered_tokens"] == delivered
    # sim miners report (modelled) engine seconds, so the seconds ratio is observed too
    assert counted.seconds.count == 1
    assert counted.seconds.total == pytest.approx(block["overhead_seconds_ratio"], rel=1e-5)
    assert block["simulated"] is True and response.json()["system_fingerprint"] == "simulated"
    # the reference is an engine behind a URL: simulated as far as its answers say so, and
    # only a request graded by one has an answer to say it
    assert block["reference"]["backend"].startswith("openai")
    assert block["reference"]["simulated"] is block["reference"]["used"]
    if gateway == "gw-sc":
        assert block["spot_check"]["checked"] and block["miners_asked"] == 2 and grading > 0
    if strategy == "broadcast":
        assert block["miners_asked"] == 2 and block["reference"]["used"] and grading > 0
    if strategy == "best-of-n":
        assert grading == 0 and not block["reference"]["used"]


def test_gateway_streams_the_chosen_answer_in_openai_format(net: Net) -> None:
    """A customer's OpenAI client asking for a stream gets chunks labelled simulated, a
    usage chunk carrying the N+V accounting, and [DONE]; the accounting still equals the
    miners' counters. Without usage, the block rides on the finish chunk."""
    url = _gateway_url(net.gateways["gw-v"])
    _wait_for_axons(net, net.gateway_netuid, 2)
    before = {n: _tokens(m) for n, m in net.gateway_miners.items()}
    body = {"messages": [{"role": "user", "content": "Reverse the string 'stream'."}],
            "stream": True, "stream_options": {"include_usage": True}}
    headers = {"Authorization": f"Bearer {API_KEY}", "X-Subnetlab-Strategy": "broadcast"}
    with httpx.stream("POST", url, json=body, timeout=30, headers=headers) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") for line in r.iter_lines() if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["system_fingerprint"] for c in chunks} == {"simulated"}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    after = {n: _tokens(m) for n, m in net.gateway_miners.items()}
    accounting = usage_chunk["subnetlab"]
    assert accounting["miner_tokens"] == sum(after[n] - before[n] for n in after)
    assert usage_chunk["usage"]["completion_tokens"] == accounting["delivered_tokens"]
    assert accounting["simulated"] is True and accounting["reference"]["simulated"] is True

    plain = {k: v for k, v in body.items() if k != "stream_options"}
    with httpx.stream("POST", url, json=plain, timeout=30, headers=headers) as r:
        chunks = [json.loads(line.removeprefix("data: ")) for line in r.iter_lines()
                  if line and line != "data: [DONE]"]
    finish = chunks[-1]
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert finish["subnetlab"]["simulated"] is True


# --- spot-check catches a cheater --------------------------------------------------------


def _moving_score(net: Net, uid: int) -> float | None:
    text = _scrape(net.checker)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "subnetlab_validator_moving_score" \
                    and sample.labels.get("uid") == str(uid):
                return float(sample.value)
    return None


def _penalties_in_evidence(net: Net, hotkey: str, after_epoch: int
                           ) -> list[tuple[int, dict[str, Any]]]:
    """(epoch, penalty) for every penalty in `hotkey`'s evidence from `after_epoch` on."""
    store = redis_lib.Redis.from_url(net.redis_url)
    found = []
    for digest in evidence(net, net.check_netuid):
        if digest["hotkey"] != hotkey or digest["epoch"] < after_epoch:
            continue
        document = load_evidence(store, digest["digest"])
        assert document is not None
        found += [(int(digest["epoch"]), p) for p in document.get("penalties", [])]
    return found


def test_spot_check_catches_a_miner_turned_lazy_and_the_audit_still_matches(net: Net) -> None:
    _wait_for_axons(net, net.check_netuid, 3)
    bait = Keypair.dev("sc-bait").ss58_address
    uid = _uid_of(net, net.check_netuid)[bait]
    wait_until(lambda: (_moving_score(net, uid) or 0.0) > 0.5, 60, "the bait's good score")

    # the bait turns lazy: same hotkey, same port, answers "42" to everything
    old = net.check_miners["sc-bait"]
    assert old.health_url is not None
    port = int(old.health_url.rsplit(":", 1)[1].split("/")[0])
    old.stop()
    lazy = miner_child("sc-bait", net.check_netuid, net.ledger_url, net.logs, "--behaviour", "lazy",
                  port=port)
    lazy.start()
    lazy.wait_healthy(60)
    net.check_miners["sc-bait"] = lazy
    try:
        before = _moving_score(net, uid)
        assert before is not None and before > 0.0
        epoch = epochs_run(net, net.check_netuid)
        response = httpx.post(_gateway_url(net.checker), timeout=30, json={
            "messages": [{"role": "user", "content": OPEN_PROMPT}]},
            headers={"Authorization": f"Bearer {API_KEY}"})
        assert response.status_code == 200, response.text
        block = response.json()["subnetlab"]
        print("spot-check:", block, "bait moving score before:", before)
        assert block["spot_check"] == {"checked": True, "caught": [uid]}
        assert block["miners_asked"] == 3 and block["miner_uid"] != uid
        assert _moving_score(net, uid) == 0.0

        hotkey = Keypair.dev("sc-v").ss58_address
        wait_until(lambda: _penalties_in_evidence(net, hotkey, epoch), 90,
                   "the penalty in sc-v's evidence")
        penalised_epoch, penalty = _penalties_in_evidence(net, hotkey, epoch)[0]
        assert penalty["uid"] == uid and penalty["hotkey"] == bait
        miner_uids = {u for hk, u in _uid_of(net, net.check_netuid).items() if hk != hotkey}
        assert {a["uid"] for a in penalty["answers"]} == miner_uids
        code, verdict = run_audit(net, net.check_netuid, hotkey, penalised_epoch)
        assert code == 0, verdict
        assert verdict["ok"] and verdict["chain_ok"] and verdict["claimed"][str(uid)] == 0
    finally:
        lazy.stop()  # started here, not by the fixture's supervisor
