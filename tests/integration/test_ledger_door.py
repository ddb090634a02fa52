"""The door under load: big batches are admitted in slices, in order, between block seals.

A batch is checked in slices with a yield to the event loop between them, so the block
timer fires while a big batch is being checked (blocks are sealed on schedule, not after
the whole batch), and requests are still admitted one after the other in arrival order.
Also `subnetlab bench ledger` end to end, and its refusal of bad options.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import httpx

from subnetlab.keys.keypair import Keypair
from tests.integration.chainclient import ChainClient, run_cli
from tests.integration.conftest import RedisServer

ALICE, BOB = Keypair.dev("alice"), Keypair.dev("bob")
BATCH = 5_000  # MAX_BATCH: thousands of signature checks, several 50 ms block times long


def test_big_batch_spans_block_seals_and_keeps_requests_in_order(
    ledger_factory: object, system_redis: RedisServer, tmp_path: Path
) -> None:
    ledger = ledger_factory(  # type: ignore[operator]
        system_redis.url, extra=["--block-time", "0.05"], fast=False)
    chain = ChainClient(ledger.url)
    nonce = chain.nonce(BOB)
    batch = [chain.sign(BOB, "transfer", {"dest": ALICE.ss58_address, "amount": 1}, nonce + i)
             for i in range(BATCH)]
    follow_up = chain.sign(BOB, "transfer", {"dest": ALICE.ss58_address, "amount": 2},
                           nonce + BATCH)
    body = json.dumps({"extrinsics": [json.loads(e.to_json()) for e in batch]})
    answers: list[httpx.Response] = []

    def send_batch() -> None:
        with httpx.Client(base_url=ledger.url, timeout=120) as http:
            answers.append(http.post("/v1/extrinsics/batch", content=body,
                                     headers={"content-type": "application/json"}))

    sender = threading.Thread(target=send_batch)
    sender.start()
    while chain.receipt(batch[0].hash).status_code == 404:  # the batch's admission began
        time.sleep(0.005)
    # Sent while the batch is (most likely) still being checked: it waits for the door and
    # queues after the batch's last nonce instead of being refused as a nonce gap.
    single = chain.submit(follow_up, wait=False)
    sender.join(120)
    assert single.status_code == 202, single.text
    assert len(answers) == 1 and answers[0].status_code == 200, answers
    results = answers[0].json()["results"]
    assert results == [{"hash": e.hash, "status": "pending"} for e in batch]

    deadline = time.monotonic() + 60
    while chain.receipt(follow_up.hash).json()["status"] == "pending":
        assert time.monotonic() < deadline, "the follow-up was never included"
        time.sleep(0.05)
    receipts = {e.hash: chain.receipt(e.hash).json() for e in [*batch, follow_up]}
    assert {r["status"] for r in receipts.values()} == {"included"}
    blocks = [receipts[e.hash]["block"] for e in batch]
    assert blocks == sorted(blocks), "batch items were included out of nonce order"
    assert len(set(blocks)) >= 2, f"the whole batch waited for one seal: block {blocks[0]}"
    assert receipts[follow_up.hash]["block"] >= blocks[-1]
    assert chain.nonce(BOB) == nonce + BATCH + 1
    chain.close()

    audit = run_cli(["ledger", "verify", "--redis-url", system_redis.url],
                    env={**os.environ, "SUBNETLAB_HOME": str(tmp_path / "home")})
    assert audit.returncode == 0, audit.stderr
    assert "OK" in audit.stdout, audit.stdout


def test_bench_ledger_prints_consistent_figures(tmp_path: Path) -> None:
    env = {**os.environ, "SUBNETLAB_HOME": str(tmp_path / "home")}
    result = run_cli(["bench", "ledger", "--duration", "2", "--rate", "300", "--json"],
                     env=env, timeout=240, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout)
    assert figures["submitted"] == 600 and figures["refused"] == 0, figures
    assert figures["included"] + figures["failed"] == figures["submitted"], figures
    assert figures["set_weights"] + figures["transfers"] == 600, figures
    assert figures["set_weights"] == figures["transfers"], figures  # half and half
    assert 0 < figures["p50_inclusion_ms"] <= figures["p99_inclusion_ms"], figures
    assert figures["p99_inclusion_blocks"] == round(
        figures["p99_inclusion_ms"] / 1000 / figures["block_time_s"], 2), figures
    assert figures["extrinsics_per_second"] > 0, figures
    assert figures["driver_cpu_share"] >= 0, figures
    assert 0 < figures["query_p50_ms"] <= figures["query_p99_ms"], figures
    # the ledger's own CPU (its process_cpu_seconds_total) over the load, per extrinsic
    assert figures["ledger_cpu_s"] > figures["ledger_worker_cpu_s"] > 0, figures  # it has one
    assert figures["ledger_cpu_ms_per_extrinsic"] == round(
        figures["ledger_cpu_s"] * 1000 / (figures["submitted"] + figures["refused"]), 3), figures


def test_bench_ledger_refuses_bad_options(tmp_path: Path) -> None:
    env = {**os.environ, "SUBNETLAB_HOME": str(tmp_path / "home")}
    for args, named in ((["--rate", "0"], "--rate"), (["--duration", "-1"], "--duration"),
                        (["--batch", "5001"], "--batch"), (["--accounts", "1"], "--accounts")):
        result = run_cli(["bench", "ledger", *args], env=env, cwd=tmp_path)
        assert result.returncode != 0, (args, result.stdout)
        assert named in result.stderr and "Traceback" not in result.stderr, result.stderr
