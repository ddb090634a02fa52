"""A chain's identity across a lost store: no restart at block 0, no replay of old extrinsics.

A real ledger on a real redis-server; the store is then wiped (FLUSHALL: what a Redis that
kept nothing on disk looks like after a restart). The ledger remembers, in its data dir,
the genesis hash and the last block it served, so it refuses to start on the wiped store;
`--new-chain` starts a new chain on purpose, under another genesis hash, on which the old
chain's signed extrinsics are refused (`wrong_genesis`).
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import redis

from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.client import LedgerClient
from subnetlab.neuron.chain_writer import ChainWriter
from tests.integration.chainclient import DEV_BALANCE, ChainClient, run_cli
from tests.integration.conftest import RedisServer, free_port, start_ledger

ALICE, BOB = Keypair.dev("alice"), Keypair.dev("bob")


def _serve_refused(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """`ledger serve ARGS` that must exit 2 with one `error:` line; that line."""
    result = run_cli(["ledger", "serve", "--fast", "--port", str(free_port()), *args],
                     env=env, cwd=cwd, timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_a_wiped_store_is_refused_and_a_new_chain_is_started_only_on_purpose(
    tmp_path: Path, system_redis: RedisServer
) -> None:
    url = system_redis.url
    ledger = start_ledger(tmp_path, url)
    chain = ChainClient(ledger.url)
    old_genesis = chain.identity().genesis_hash
    transfer = chain.sign(ALICE, "transfer", {"dest": BOB.ss58_address, "amount": 12345})
    response = chain.submit(transfer, wait=True)
    assert response.json()["status"] == "included", response.text
    served = response.json()["block"]
    chain.close()
    ledger.kill(signal.SIGTERM)

    client = redis.Redis.from_url(url)
    client.flushall()  # the store lost everything; the ledger's data dir did not

    line = _serve_refused(["--redis-url", url], ledger.env, tmp_path)
    for fragment in ("lost blocks", f"already served block {served}", old_genesis,
                     "--new-chain"):
        assert fragment in line, line
    assert client.dbsize() == 0, "a refused start wrote to the store"

    renewed = start_ledger(tmp_path, url, ["--new-chain"], name="renewed")
    chain = ChainClient(renewed.url)
    try:
        new_genesis = chain.identity().genesis_hash
        assert new_genesis != old_genesis
        replayed = chain.submit(transfer, wait=False)  # signed for the lost chain
        assert replayed.status_code == 400, replayed.text
        error = replayed.json()["error"]
        assert (error["code"], error["field"]) == ("wrong_genesis", "genesis_hash"), error
        assert old_genesis in error["message"] and new_genesis in error["message"]
        assert chain.balance(ALICE) == DEV_BALANCE
        assert chain.balance(BOB) == DEV_BALANCE
        chain.call(ALICE, "transfer", {"dest": BOB.ss58_address, "amount": 1})
    finally:
        chain.close()
        renewed.kill(signal.SIGTERM)

    # a plain restart continues the new chain (its salt is remembered), no flag needed
    again = start_ledger(tmp_path, url, name="again")
    chain = ChainClient(again.url)
    try:
        assert chain.identity().genesis_hash == new_genesis
        assert chain.balance(BOB) == DEV_BALANCE + 1
    finally:
        chain.close()
        again.kill(signal.SIGTERM)
    client.close()


def test_a_store_that_lost_its_last_blocks_is_refused(
    tmp_path: Path, system_redis: RedisServer
) -> None:
    """Not only an empty store: one behind the height the ledger served (an old backup)."""
    url = system_redis.url
    ledger = start_ledger(tmp_path, url)
    chain = ChainClient(ledger.url)
    chain.wait_blocks(3)
    chain.close()
    ledger.kill(signal.SIGTERM)
    client = redis.Redis.from_url(url)
    prefix = "subnetlab:subnetlab-dev"
    height = int(client.get(f"{prefix}:height") or 0)
    client.delete(f"{prefix}:block:{height}", f"{prefix}:snapshot", f"{prefix}:snapshot:data")
    client.set(f"{prefix}:height", height - 1)

    line = _serve_refused(["--redis-url", url], ledger.env, tmp_path)
    assert f"holds block {height - 1}" in line and f"served block {height}" in line, line
    assert int(client.get(f"{prefix}:height") or 0) == height - 1
    client.close()


def test_new_chain_with_the_old_genesis_file_is_refused_until_its_salt_changes(
    tmp_path: Path, system_redis: RedisServer
) -> None:
    """A genesis from a file is the user's: `--new-chain` will not start a chain with the
    old chain's genesis hash (its extrinsics would be valid again), nor delete anything."""
    url = system_redis.url
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps({"chain_id": "subnetlab-dev", "salt": "one"}))
    ledger = start_ledger(tmp_path, url, ["--genesis", str(path)])
    chain = ChainClient(ledger.url)
    chain.wait_blocks(2)
    old_genesis = chain.identity().genesis_hash
    chain.close()
    ledger.kill(signal.SIGTERM)
    client = redis.Redis.from_url(url)
    keys = sorted(client.keys())

    line = _serve_refused(["--redis-url", url, "--genesis", str(path), "--new-chain"],
                          ledger.env, tmp_path)
    assert "--new-chain" in line and '"salt"' in line, line
    assert sorted(client.keys()) == keys, "a refused --new-chain deleted something"

    path.write_text(json.dumps({"chain_id": "subnetlab-dev", "salt": "two"}))
    renewed = start_ledger(tmp_path, url, ["--genesis", str(path), "--new-chain"],
                           name="renewed")
    chain = ChainClient(renewed.url)
    assert chain.identity().genesis_hash != old_genesis
    chain.wait_blocks(1)
    assert chain.get_json("/v1/blocks/1")["parent_hash"] == chain.identity().genesis_hash
    chain.close()
    renewed.kill(signal.SIGTERM)
    client.close()


def test_long_running_clients_follow_a_new_chain(tmp_path: Path, system_redis: RedisServer) -> None:
    """A LedgerClient and a neuron's ChainWriter read the chain's identity once; after the
    ledger started a new chain they meet `wrong_genesis` once, read it again, and sign for
    the new chain."""
    ledger = start_ledger(tmp_path, system_redis.url)
    client = LedgerClient(ledger.url)
    writer = ChainWriter(ledger.url, BOB)
    loop = asyncio.new_event_loop()
    try:
        client.submit(ALICE, "transfer", {"dest": BOB.ss58_address, "amount": 1})
        loop.run_until_complete(writer.submit("transfer", {"dest": ALICE.ss58_address,
                                                           "amount": 1}))
        old = client.genesis_hash()
        ledger.kill(signal.SIGTERM)
        ledger.args.append("--new-chain")
        ledger.start()

        receipt = client.submit(ALICE, "transfer", {"dest": BOB.ss58_address, "amount": 2})
        assert receipt["status"] == "included" and client.genesis_hash() != old
        receipt = loop.run_until_complete(writer.submit("transfer", {
            "dest": ALICE.ss58_address, "amount": 2}))
        assert receipt["status"] == "included"
        assert writer.client.known_identity is not None
        assert writer.client.known_identity.genesis_hash == client.genesis_hash()
    finally:
        loop.run_until_complete(writer.aclose())
        loop.close()
        client.close()
        ledger.kill(signal.SIGTERM)
