"""The ledger's HTTP API on its happy paths, against a real ledger process and a real Redis.

One ledger (fast blocks) serves the whole module; a subnet with small hyperparameters
(tempo 5, no weights rate limit) is set up once: two registered hotkeys with stake, the
first setting weights on both.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from subnetlab.chain.model import DEFAULT_FEES, DEV_FEE
from subnetlab.chain.weights import weights_commit_hash
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.client import LedgerClient, LedgerError
from tests.integration.chainclient import DEV_BALANCE, DEV_CHAIN, TOKEN, ChainClient, address
from tests.integration.conftest import LedgerProcess, free_port, start_ledger

ALICE, BOB, CHARLIE, DAVE = (Keypair.dev(n) for n in ("alice", "bob", "charlie", "dave"))
TEMPO = 5
VALIDATOR_STAKE = 3_000 * TOKEN
MINER_STAKE = 1_000 * TOKEN


@dataclass
class Net:
    ledger: LedgerProcess
    chain: ChainClient
    netuid: int
    validator: Keypair  # uid 0, most stake, sets weights
    miner: Keypair  # uid 1
    weights_block: int


@pytest.fixture(scope="module")
def net(module_ledger: LedgerProcess) -> Iterator[Net]:
    chain = ChainClient(module_ledger.url)
    netuid = chain.create_subnet(ALICE, {
        "tempo": TEMPO, "weights_rate_limit": 0, "immunity_period": 100,
        "max_registrations_per_block": 8,
    })
    validator, miner = Keypair.dev("api-validator"), Keypair.dev("api-miner")
    for hotkey in (validator, miner):
        chain.call(CHARLIE, "register", {"netuid": netuid, "hotkey": hotkey.ss58_address})
    chain.call(CHARLIE, "add_stake", {"hotkey": validator.ss58_address, "amount": VALIDATOR_STAKE})
    chain.call(CHARLIE, "add_stake", {"hotkey": miner.ss58_address, "amount": MINER_STAKE})
    receipt = chain.call(validator, "set_weights",
                         {"netuid": netuid, "uids": [0, 1], "weights": [1, 3]})
    yield Net(module_ledger, chain, netuid, validator, miner, int(receipt["block"]))
    chain.close()


def test_health_and_readiness(net: Net) -> None:
    health = net.chain.http.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    ready = net.chain.http.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert isinstance(body["block"], int) and body["block"] >= 1


def test_chain_info(net: Net) -> None:
    info = net.chain.get_json("/v1/chain")
    assert info["chain_id"] == "subnetlab-dev"
    assert info["genesis_hash"].startswith("0x") and len(info["genesis_hash"]) == 66
    assert info["block_time"] == 0.25  # --fast
    assert info["faucet"] is True
    assert info["sudo"] == ALICE.ss58_address
    assert info["authority"] == ALICE.ss58_address  # seals the dev chain's blocks
    # a dev chain started afresh has a salt of its own: another chain than any before it
    assert info["genesis_hash"] != DEV_CHAIN.genesis_hash
    # blocks keep coming
    assert net.chain.wait_for_height(info["block"] + 2, timeout=10) >= info["block"] + 2


def test_accounts(net: Net) -> None:
    ferdie = net.chain.account(Keypair.dev("ferdie"))  # a dev account no test touches
    assert ferdie["balance"] == DEV_BALANCE
    assert ferdie["nonce"] == 0
    assert ferdie["stake"] == [] and ferdie["total_stake"] == 0
    stranger = net.chain.account(Keypair.dev("api-never-seen"))
    assert (stranger["balance"], stranger["nonce"], stranger["stake"]) == (0, 0, [])
    # the coldkey that staked sees its positions and the hotkeys it owns
    charlie = net.chain.account(CHARLIE)
    positions = {p["hotkey"]: p["amount"] for p in charlie["stake"]}
    assert positions[net.validator.ss58_address] >= VALIDATOR_STAKE
    assert positions[net.miner.ss58_address] >= MINER_STAKE
    assert set(charlie["hotkeys"]) >= {net.validator.ss58_address, net.miner.ss58_address}
    bad = net.chain.http.get("/v1/accounts/not-an-address")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_param"


def test_transfer_with_wait_inclusion(net: Net) -> None:
    chain = net.chain
    dest = Keypair.dev("api-transfer-dest")
    before, nonce = chain.balance(DAVE), chain.nonce(DAVE)
    ext = chain.sign(DAVE, "transfer", {"dest": dest.ss58_address, "amount": 12_345})
    response = chain.submit(ext, wait=True)
    assert response.status_code == 200, response.text
    receipt = response.json()
    assert receipt["status"] == "included"
    assert receipt["hash"] == ext.hash
    assert isinstance(receipt["block"], int) and receipt["block"] >= 1
    assert receipt["code"] is None
    assert receipt["fee"] == DEV_FEE  # the dev genesis charges transfers

    # the receipt endpoint says the same
    again = chain.receipt(ext.hash)
    assert again.status_code == 200
    assert again.json() == receipt

    # the block holds the extrinsic, byte for byte what was signed, with its receipt
    block = chain.block(receipt["block"])
    assert block["number"] == receipt["block"]
    index = receipt["index"]
    assert json.loads(ext.to_json()) == block["extrinsics"][index]
    assert block["receipts"][index]["hash"] == ext.hash
    assert block["receipts"][index]["ok"] is True

    assert chain.balance(DAVE) == before - 12_345 - DEV_FEE
    assert chain.nonce(DAVE) == nonce + 1
    assert chain.balance(dest) == 12_345


def test_fees_are_charged_burned_and_checked_at_the_door(net: Net) -> None:
    """A fee leaves the signer and total issuance; the door refuses an unaffordable one."""
    chain = net.chain
    assert chain.get_json("/v1/chain")["fees"] == DEFAULT_FEES
    poor = Keypair.dev("api-fee-poor")
    chain.call(DAVE, "transfer", {"dest": poor.ss58_address, "amount": DEV_FEE + 10})
    # a transfer of 11 rao needs DEV_FEE + 11: refused at the door, nothing touched
    too_much = chain.sign(poor, "transfer", {"dest": address(BOB), "amount": 11})
    refused = chain.submit(too_much, wait=True)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["field"]) == ("insufficient_balance", "amount")
    assert f"after the transaction fee of {DEV_FEE} rao" in error["message"]
    assert chain.receipt(too_much.hash).status_code == 404
    assert (chain.balance(poor), chain.nonce(poor)) == (DEV_FEE + 10, 0)
    # exactly affordable: included, and the fee is gone from the supply
    receipt = chain.call(poor, "transfer", {"dest": address(BOB), "amount": 10})
    assert receipt["fee"] == DEV_FEE
    assert chain.balance(poor) == 0
    # now it cannot pay even the fee: refused naming the fee
    broke = chain.submit(chain.sign(poor, "transfer", {"dest": address(BOB), "amount": 1}))
    assert broke.status_code == 400, broke.text
    assert (broke.json()["error"]["code"], broke.json()["error"]["field"]) == (
        "insufficient_balance", "fee")
    assert str(DEV_FEE) in broke.json()["error"]["message"]
    # a free call on the receipt says fee 0
    free = chain.call(net.validator, "commit_evidence",
                      {"netuid": net.netuid, "epoch": 0, "digest": "0x" + "fe" * 32})
    assert free["fee"] == 0


def test_submit_without_wait_is_pending_then_included(net: Net) -> None:
    chain = net.chain
    ext = chain.sign(DAVE, "transfer", {"dest": address(BOB), "amount": 7})
    response = chain.submit(ext, wait=False)
    assert response.status_code == 202, response.text
    assert response.json() == {"hash": ext.hash, "status": "pending"}
    deadline = time.monotonic() + 10
    while True:
        receipt = chain.receipt(ext.hash)
        assert receipt.status_code == 200, receipt.text
        if receipt.json()["status"] != "pending":
            break
        assert time.monotonic() < deadline, "still pending after 10 s"
        time.sleep(0.05)
    assert receipt.json()["status"] == "included"
    assert ext.hash in {r["hash"] for r in chain.block(receipt.json()["block"])["receipts"]}


def test_subnet_metagraph_and_epochs(net: Net) -> None:
    chain = net.chain
    info = chain.subnet(net.netuid)
    assert info["owner"] == ALICE.ss58_address
    assert info["hyperparameters"]["tempo"] == TEMPO
    assert info["hyperparameters"]["weights_rate_limit"] == 0
    assert info["n"] == 2
    assert net.netuid in {s["netuid"] for s in chain.get_json("/v1/subnets")["subnets"]}

    neurons = chain.metagraph(net.netuid)
    assert [n["uid"] for n in neurons] == [0, 1]
    assert [n["hotkey"] for n in neurons] == [net.validator.ss58_address, net.miner.ss58_address]
    assert all(n["coldkey"] == CHARLIE.ss58_address for n in neurons)
    assert neurons[0]["stake"] >= VALIDATOR_STAKE and neurons[1]["stake"] >= MINER_STAKE
    assert neurons[0]["last_update"] == net.weights_block
    registered = [n["block_at_registration"] for n in neurons]
    assert all(isinstance(b, int) and 1 <= b < net.weights_block for b in registered)
    assert registered[0] <= registered[1]  # registered in that order
    assert all(n["axon"] is None for n in neurons)  # nobody served yet (see below)
    for n in neurons:
        assert isinstance(n["active"], bool)
        assert 0.0 <= n["consensus"] <= 1.0 and 0.0 <= n["validator_trust"] <= 1.0

    # a few epochs later the weights have been turned into incentive and dividends
    epochs = info["epochs_run"]
    deadline = time.monotonic() + 30
    while True:
        info = chain.subnet(net.netuid)
        neurons = chain.metagraph(net.netuid)
        if info["epochs_run"] >= epochs + 3 and neurons[1]["incentive"] > 0:
            break
        assert time.monotonic() < deadline, f"no incentive after epochs: {neurons}"
        time.sleep(0.2)
    assert neurons[0]["validator_permit"] is True
    assert neurons[0]["dividends"] > 0
    assert neurons[1]["incentive"] > neurons[0]["incentive"]  # weights were 1:3
    assert neurons[0]["stake"] > VALIDATOR_STAKE  # dividends are paid as stake
    assert [n["active"] for n in neurons] == [True, True]  # both updated within the cutoff
    # Yuma drops self-weights: the validator's weight on itself (uid 0) counts for nothing
    assert neurons[1]["consensus"] > 0 and neurons[0]["consensus"] == 0
    assert neurons[0]["validator_trust"] > 0  # its weight on uid 1 agrees with consensus
    assert neurons[1]["validator_trust"] == 0  # the miner set no weights
    assert [n["block_at_registration"] for n in neurons] == registered  # unchanged

    # the axon a neuron serves shows in the metagraph
    served = chain.call(net.miner, "serve_axon",
                        {"netuid": net.netuid, "ip": "10.1.2.3", "port": 8091})
    axon = chain.metagraph(net.netuid)[1]["axon"]
    assert axon == {"ip": "10.1.2.3", "port": 8091, "protocol": "http",
                    "block": served["block"], "url": "http://10.1.2.3:8091"}
    assert chain.metagraph(net.netuid)[0]["axon"] is None


def test_set_weights_then_metagraph_last_update(net: Net) -> None:
    chain = net.chain
    receipt = chain.call(net.miner, "set_weights",  # the validator's view: keeps uid 1 ahead
                         {"netuid": net.netuid, "uids": [0, 1], "weights": [1, 3]})
    neurons = chain.metagraph(net.netuid)
    assert neurons[1]["last_update"] == receipt["block"]


def test_weights_endpoint(net: Net) -> None:
    """The rows set on chain, u16 as stored (1:3 max-upscaled), one row by uid or hotkey."""
    chain = net.chain
    path = f"/v1/subnets/{net.netuid}/weights"
    body = chain.get_json(path)
    assert body["netuid"] == net.netuid
    assert isinstance(body["block"], int) and body["block"] >= net.weights_block
    rows = {row["uid"]: row for row in body["rows"]}
    assert rows[0] == {"uid": 0, "hotkey": net.validator.ss58_address,
                       "last_update": rows[0]["last_update"],
                       "weights": {"0": 21845, "1": 65535}}
    assert rows[0]["last_update"] >= net.weights_block
    assert all(row["weights"] for row in body["rows"]), "empty rows are left out"
    by_uid = chain.get_json(f"{path}?uid=0")["rows"]
    by_hotkey = chain.get_json(f"{path}?hotkey={net.validator.ss58_address}")["rows"]
    assert by_uid == by_hotkey == [rows[0]]
    both = chain.get_json(f"{path}?uid=0&hotkey={net.validator.ss58_address}")["rows"]
    assert both == [rows[0]]

    # a neuron that set no weights has its (empty) row when asked for
    newcomer = Keypair.dev("api-weights-newcomer")
    chain.call(CHARLIE, "register", {"netuid": net.netuid, "hotkey": newcomer.ss58_address})
    row = chain.get_json(f"{path}?hotkey={newcomer.ss58_address}")["rows"]
    assert len(row) == 1 and row[0]["weights"] == {} and row[0]["hotkey"] == newcomer.ss58_address
    assert row[0]["uid"] not in {r["uid"] for r in chain.get_json(path)["rows"]}

    # the HTTP client says the same
    with LedgerClient(net.ledger.url) as client:
        assert client.weights(net.netuid, uid=0)["rows"] == [rows[0]]
        assert client.weights(net.netuid, hotkey=net.validator.ss58_address)["rows"] == [rows[0]]
        with pytest.raises(LedgerError) as unknown:
            client.weights(net.netuid, uid=9999)
        assert (unknown.value.code, unknown.value.field, unknown.value.status) == (
            "unknown_uid", "uid", 404)


@pytest.mark.parametrize(("query", "status", "code", "field"), [
    ("uid=9999", 404, "unknown_uid", "uid"),
    (f"hotkey={Keypair.dev('api-weights-stranger').ss58_address}", 404, "unknown_hotkey",
     "hotkey"),
    ("hotkey=not-an-address", 400, "invalid_param", "hotkey"),
    ("uid=-1", 422, "invalid_request", "query.uid"),
    ("uid=abc", 422, "invalid_request", "query.uid"),
    ("uid=1&hotkey=VALIDATOR", 400, "invalid_param", "hotkey"),  # it holds uid 0, not 1
])
def test_weights_endpoint_bad_queries(
    net: Net, query: str, status: int, code: str, field: str
) -> None:
    query = query.replace("VALIDATOR", net.validator.ss58_address)
    response = net.chain.http.get(f"/v1/subnets/{net.netuid}/weights?{query}")
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["field"] == field


def test_weights_endpoint_unknown_subnet(net: Net) -> None:
    response = net.chain.http.get("/v1/subnets/999/weights")
    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "unknown_subnet", "message": "subnet 999 does not exist", "field": "netuid"}


def test_weights_endpoint_under_commit_reveal_shows_the_reveal(net: Net) -> None:
    """A commit changes no row; the reveal, in its epoch, is what the endpoint shows."""
    chain = net.chain
    netuid = chain.create_subnet(ALICE, {
        "tempo": 16, "weights_rate_limit": 0, "commit_reveal_weights_enabled": True,
        "commit_reveal_period": 1, "immunity_period": 100})
    hotkey = Keypair.dev("api-weights-reveal")
    chain.call(BOB, "register", {"netuid": netuid, "hotkey": hotkey.ss58_address})
    uids, values, salt = [0], [7], [1, 2, 3]
    commit_hash = weights_commit_hash(hotkey.ss58_address, netuid, uids, values, salt)
    committed = chain.call(hotkey, "commit_weights",
                           {"netuid": netuid, "commit_hash": commit_hash})["block"]
    path = f"/v1/subnets/{netuid}/weights"
    assert chain.get_json(path)["rows"] == []
    assert chain.get_json(f"{path}?uid=0")["rows"][0]["weights"] == {}
    info = chain.subnet(netuid)  # an epoch may have run since the commit's block (tempo 16)
    committed_in = info["epochs_run"] - (1 if info["last_epoch_block"] > committed else 0)
    deadline = time.monotonic() + 30
    while chain.subnet(netuid)["epochs_run"] < committed_in + 1:
        assert time.monotonic() < deadline, "no epoch after the commit"
        time.sleep(0.1)
    commits = chain.get_json(f"/v1/subnets/{netuid}/commits?hotkey={hotkey.ss58_address}")
    assert commits["commits"] == [{"hotkey": hotkey.ss58_address, "hash": commit_hash,
                                   "block": committed, "epoch": committed_in,
                                   "reveal_epoch": committed_in + 1}]
    with LedgerClient(net.ledger.url) as client:
        assert client.commits(netuid) == commits["commits"]
        assert client.commits(netuid, hotkey=net.validator.ss58_address) == []
    receipt = chain.call(hotkey, "reveal_weights",
                         {"netuid": netuid, "uids": uids, "weights": values, "salt": salt})
    rows = chain.get_json(path)["rows"]
    assert rows == [{"uid": 0, "hotkey": hotkey.ss58_address, "last_update": receipt["block"],
                     "weights": {"0": 65535}}]
    assert chain.get_json(f"/v1/subnets/{netuid}/commits")["commits"] == []


@pytest.mark.parametrize(("path", "status", "code", "field"), [
    ("/v1/subnets/999/commits", 404, "unknown_subnet", "netuid"),
    ("/v1/subnets/NETUID/commits?hotkey=not-an-address", 400, "invalid_param", "hotkey"),
    ("/v1/subnets/-1/commits", 422, "invalid_request", "path.netuid"),
])
def test_commits_endpoint_bad_queries(net: Net, path: str, status: int, code: str,
                                      field: str) -> None:
    response = net.chain.http.get(path.replace("NETUID", str(net.netuid)))
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["field"] == field


def test_blocks_latest_and_by_number(net: Net) -> None:
    chain = net.chain
    latest = chain.get_json("/v1/blocks/latest")
    assert {"number", "hash", "parent_hash", "state_root", "extrinsics_count",
            "timestamp", "persisted_at"} <= set(latest)
    number = latest["number"]
    assert number >= 2
    stored = chain.block(number)
    assert stored["hash"] == latest["hash"]
    # stored in Redis after it was sealed: the moment its receipts could first be reported
    assert stored["persisted_at"] == latest["persisted_at"] >= latest["timestamp"]
    assert stored["parent_hash"] == chain.block(number - 1)["hash"]
    assert len(stored["extrinsics"]) == stored["extrinsics_count"] == len(stored["receipts"])

    # the block where the weights were set holds that extrinsic and its receipt
    weights_block = chain.block(net.weights_block)
    calls = [(e["call"], e["signer"]) for e in weights_block["extrinsics"]]
    assert ("set_weights", net.validator.ss58_address) in calls

    missing = chain.http.get("/v1/blocks/99999999")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "unknown_block"
    assert chain.http.get("/v1/blocks/0").status_code == 422


def test_unknown_things_are_404_with_codes(net: Net) -> None:
    http = net.chain.http
    unknown = http.get("/v1/extrinsics/0x" + "ab" * 32)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_extrinsic"
    bad_digest = http.get("/v1/extrinsics/0x1234")
    assert bad_digest.status_code == 422
    assert bad_digest.json()["error"]["code"] == "invalid_request"
    subnet = http.get("/v1/subnets/999/metagraph")
    assert subnet.status_code == 404
    assert subnet.json()["error"]["code"] == "unknown_subnet"


def test_block_stream(net: Net) -> None:
    numbers: list[int] = []
    started = time.monotonic()
    with net.chain.block_stream() as headers:
        for header in headers:
            assert {"number", "hash", "parent_hash", "state_root"} <= set(header)
            assert header["persisted_at"] >= header["timestamp"]
            numbers.append(header["number"])
            if len(numbers) == 4:
                break
    assert time.monotonic() - started < 15
    assert numbers == sorted(set(numbers)), f"block numbers not strictly increasing: {numbers}"
    assert numbers[-1] - numbers[0] == 3, f"blocks were skipped: {numbers}"


def _metric(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
            **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, f"{name}{labels} not in /metrics"
    return samples[key]


def _gini(amounts: list[float]) -> float:
    xs = sorted(amounts)
    n, total = len(xs), sum(xs)
    if n == 0 or total <= 0:
        return 0.0
    return 2 * sum((i + 1) * x for i, x in enumerate(xs)) / (n * total) - (n + 1) / n


def test_metrics(net: Net) -> None:
    chain = net.chain
    chain.call(DAVE, "transfer", {"dest": address(BOB), "amount": 1})
    label = str(net.netuid)
    for _ in range(20):  # read metrics between two epochs, so stakes do not move under us
        before = [n["stake"] for n in chain.metagraph(net.netuid)]
        samples = chain.metrics()
        height = chain.height()
        if [n["stake"] for n in chain.metagraph(net.netuid)] == before:
            break
    else:
        pytest.fail("stakes kept moving while reading /metrics")

    assert 1 <= _metric(samples, "subnetlab_block_height") <= height
    assert _metric(samples, "subnetlab_extrinsics_total", call="transfer", result="ok") >= 1
    assert _metric(samples, "subnetlab_extrinsics_total", call="set_weights", result="ok") >= 1
    gini = _metric(samples, "subnetlab_gini", netuid=label, of="stake")
    assert gini == pytest.approx(_gini([s / TOKEN for s in before]), abs=1e-9)
    assert 0 < gini < 1  # 3000 vs 1000 tokens (plus what the epochs paid)
    assert _metric(samples, "subnetlab_nakamoto_coefficient", netuid=label, of="stake") == 1
    assert _metric(samples, "subnetlab_gini", netuid=label, of="emission") >= 0
    assert _metric(samples, "subnetlab_nakamoto_coefficient", netuid=label, of="emission") >= 1
    stake = _metric(samples, "subnetlab_neuron_stake", netuid=label, uid="0",
                    hotkey=net.validator.ss58_address)
    assert stake == pytest.approx(before[0] / TOKEN)


# --- the door plans against the open block: the one the extrinsic will execute in ---------


def test_register_right_after_another_registration_is_admitted(net: Net) -> None:
    """max_registrations_per_block=1: a registration in block B must not block one in B+1."""
    chain = net.chain
    netuid = chain.create_subnet(ALICE, {"tempo": 10_000, "immunity_period": 100})
    refused: list[str] = []
    for i in range(3):
        first = Keypair.dev(f"api-door-a{i}")
        second = Keypair.dev(f"api-door-b{i}")
        chain.wait_blocks(1)  # a block with no registration in it yet
        chain.call(BOB, "register", {"netuid": netuid, "hotkey": first.ss58_address})
        # submitted right after block B was stored: it can only land in block B+1
        response = chain.submit(
            chain.sign(BOB, "register", {"netuid": netuid, "hotkey": second.ss58_address}),
            wait=True,
        )
        if response.status_code != 200:
            refused.append(response.text)
    assert not refused, f"registrations for the next block refused at the door: {refused}"


def test_set_weights_admitted_when_the_next_block_is_out_of_the_rate_limit(net: Net) -> None:
    """weights_rate_limit=L, weights set in block B: a set_weights for block B+L is valid."""
    chain = net.chain
    limit = 4
    netuid = chain.create_subnet(ALICE, {"tempo": 10_000, "weights_rate_limit": limit})
    hotkey = Keypair.dev("api-door-rate")
    chain.call(BOB, "register", {"netuid": netuid, "hotkey": hotkey.ss58_address})
    params = {"netuid": netuid, "uids": [0], "weights": [1]}
    set_at = chain.call(hotkey, "set_weights", params)["block"]
    refused: list[str] = []
    attempts = 0
    with chain.block_stream() as headers:
        for header in headers:
            if header["number"] != set_at + limit - 1:
                continue
            # block set_at + limit - 1 is stored: this one goes into block set_at + limit
            attempts += 1
            response = chain.submit(chain.sign(hotkey, "set_weights", params), wait=True)
            if response.status_code == 200:
                set_at = response.json()["block"]
            else:
                refused.append(f"would execute in block {set_at + limit}: {response.text}")
            if refused or attempts == 3:
                break
    assert not refused, f"set_weights refused although out of the rate limit: {refused}"


def test_a_metrics_port_serves_metrics_and_nothing_else(tmp_path: Path) -> None:
    """`--metrics-port`: the port a NetworkPolicy opens to scrapers (the Helm chart's
    `metrics` port) answers /metrics and refuses the API, which stays on --port."""
    metrics_port = free_port()
    ledger = start_ledger(tmp_path, None, ["--data-dir", str(tmp_path / "data"),
                                           "--metrics-port", str(metrics_port)])
    try:
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
        assert scraped.status_code == 200 and "subnetlab_block_height" in scraped.text
        for path in ("/v1/chain", "/readyz", "/docs"):
            refused = httpx.get(f"http://127.0.0.1:{metrics_port}{path}", timeout=5)
            assert refused.status_code == 404, path
            assert refused.json()["error"]["code"] == "not_found"
        assert httpx.post(f"http://127.0.0.1:{metrics_port}/v1/extrinsics", json={},
                          timeout=5).status_code == 404
        with ledger.client() as api:  # the API port serves everything, /metrics included
            assert api.get("/v1/chain").status_code == 200
            assert api.get("/metrics").status_code == 200
    finally:
        ledger.kill(signal.SIGTERM)  # it stops the embedded Redis it started (SIGKILL cannot)
    clash = subprocess.run([sys.executable, "-m", "subnetlab", "ledger", "serve",
                            "--port", "9944", "--metrics-port", "9944"],
                           capture_output=True, text=True, timeout=60, check=False)
    assert clash.returncode == 2 and "--metrics-port 9944 is the API's --port" in clash.stderr
