"""Crash safety and the audit: what a receipt called "included" survives a SIGKILL.

The ledger promises (ledger/node.py) that a block is in Redis before any of its receipts is
reported. Here a load of signed transfers runs from several threads against a real ledger
(fast blocks, a snapshot every 5 blocks), the ledger is SIGKILLed mid-load and restarted on
the same Redis, and everything the clients were told is checked against the restarted chain
and against `subnetlab ledger verify`, which replays the block log from genesis.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from subnetlab.chain.extrinsic import chain_identity, sign_extrinsic
from subnetlab.chain.model import DEV_FEE, Genesis
from subnetlab.chain.seal import seal_block, seal_problem
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.redis_server import EmbeddedRedis
from subnetlab.ledger.verify import identity
from tests.integration.chainclient import (
    DEV_BALANCE,
    REDIS_PREFIX,
    ChainClient,
    run_cli,
)
from tests.integration.conftest import (
    LedgerProcess,
    RedisServer,
    start_ledger,
    start_redis_server,
    stop_redis_server,
    wait_until,
)

SENDERS = ("bob", "charlie", "dave", "eve", "ferdie")
PIPELINE = 10  # transfers a sender has in flight: 9 without waiting, the 10th waits
SNAPSHOT_EVERY = 5

StartLedger = Callable[..., LedgerProcess]


@dataclass(frozen=True)
class Sent:
    sender: str
    dest: str
    amount: int
    nonce: int


@dataclass
class Load:
    """What the clients sent, and every receipt that told them "included" (hash -> block)."""

    sent: dict[str, Sent] = field(default_factory=dict)
    included: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def sink_of(name: str) -> Keypair:
    return Keypair.dev(f"durability-sink-{name}")


def drive(url: str, name: str, load: Load, stop: threading.Event) -> None:
    """One sender: pipelines transfers with consecutive nonces until stopped or cut off."""
    sender, dest = Keypair.dev(name), sink_of(name).ss58_address
    nonce = 0
    with httpx.Client(base_url=url, timeout=10) as http:
        chain = chain_identity(http.get("/v1/chain").json())
        while not stop.is_set():
            waiting: list[str] = []
            for i in range(PIPELINE):
                amount = 1_000 + nonce
                ext = sign_extrinsic(sender, "transfer", {"dest": dest, "amount": amount}, nonce,
                                     chain)
                with load.lock:  # recorded first: it may reach a block even if the reply is lost
                    load.sent[ext.hash] = Sent(sender.ss58_address, dest, amount, nonce)
                last = i == PIPELINE - 1
                try:
                    response = http.post("/v1/extrinsics" + ("?wait=inclusion" if last else ""),
                                         content=ext.to_json())
                except httpx.TransportError:
                    return  # the ledger is gone
                if response.status_code not in (200, 202):
                    with load.lock:
                        load.problems.append(f"{name} nonce {nonce}: {response.text}")
                    return
                nonce += 1
                if last:
                    _record(load, name, response.json())
                else:
                    waiting.append(ext.hash)
            for digest in waiting:
                try:
                    response = http.get(f"/v1/extrinsics/{digest}")
                except httpx.TransportError:
                    return
                if response.status_code == 200:
                    _record(load, name, response.json())


def _record(load: Load, name: str, receipt: dict[str, object]) -> None:
    with load.lock:
        if receipt["status"] == "included":
            load.included[str(receipt["hash"])] = int(receipt["block"])  # type: ignore[call-overload]
        elif receipt["status"] == "failed":
            load.problems.append(f"{name}: a transfer failed in its block: {receipt}")


def redis_height(client: redis.Redis) -> int:
    raw = client.get(f"{REDIS_PREFIX}:height")
    return 0 if raw is None else int(raw)


@dataclass
class Backend:
    """A Redis for the ledger, and the CLI arguments that reach it."""

    name: str
    url: str
    cli_args: list[str]  # for both `ledger serve` and `ledger verify`


@pytest.fixture(params=["redis-server", "embedded"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "redis-server":
        server: RedisServer = request.getfixturevalue("system_redis")
        return Backend("redis-server", server.url, ["--redis-url", server.url])
    embedded: EmbeddedRedis = request.getfixturevalue("embedded_redis")
    return Backend("embedded", embedded.url, ["--data-dir", str(embedded.data_dir)])


def test_included_extrinsics_survive_sigkill(
    backend: Backend, ledger_factory: StartLedger, tmp_path: Path
) -> None:
    ledger = ledger_factory(None, [*backend.cli_args, "--snapshot-every", str(SNAPSHOT_EVERY)])
    store = redis.Redis.from_url(backend.url)
    load, stop = Load(), threading.Event()
    threads = [threading.Thread(target=drive, args=(ledger.url, name, load, stop), daemon=True)
               for name in SENDERS]
    for thread in threads:
        thread.start()

    # let the load run past a couple of snapshots, then pull the plug in the middle of it
    def enough() -> bool:
        with load.lock:
            return len(load.included) >= 150 and redis_height(store) >= 3 * SNAPSHOT_EVERY
    wait_until(enough, 60, "150 included transfers")
    assert ledger.process is not None
    ledger.kill(signal.SIGKILL)
    assert ledger.process.returncode == -signal.SIGKILL
    stop.set()
    for thread in threads:
        thread.join(15)
        assert not thread.is_alive()
    assert not load.problems, load.problems
    height_at_crash = redis_height(store)
    snapshot = json.loads(store.get(f"{REDIS_PREFIX}:snapshot") or b"null")
    assert snapshot is not None and snapshot["number"] % SNAPSHOT_EVERY == 0

    # restart on the same Redis: snapshot + replay
    ledger.start()
    assert f"ledger at block {height_at_crash} " in ledger.logs[-1].read_text()
    chain = ChainClient(ledger.url)
    try:
        in_chain: dict[str, int] = {}
        for digest in load.sent:
            response = chain.receipt(digest)
            if response.status_code == 404:
                continue  # queued when the ledger died: never in a block, never reported
            assert response.status_code == 200, response.text
            receipt = response.json()
            assert receipt["status"] == "included", receipt
            in_chain[digest] = receipt["block"]
        lost = {d: (b, in_chain.get(d)) for d, b in load.included.items()
                if in_chain.get(d) != b}
        assert not lost, f"reported included before the crash, not after: {lost}"
        assert max(in_chain.values()) <= height_at_crash

        for name in SENDERS:
            sender = Keypair.dev(name).ss58_address
            mine = [load.sent[d] for d in in_chain if load.sent[d].sender == sender]
            total = sum(s.amount for s in mine)
            assert sorted(s.nonce for s in mine) == list(range(len(mine))), name
            account = chain.account(sender)
            assert account["balance"] == DEV_BALANCE - total - len(mine) * DEV_FEE, name
            assert account["nonce"] == len(mine), name
            assert chain.balance(sink_of(name)) == total, name

        # the chain goes on where it stopped
        bob = Keypair.dev("bob")
        after = chain.call(bob, "transfer", {"dest": sink_of("bob").ss58_address, "amount": 1})
        assert after["block"] > height_at_crash
    finally:
        chain.close()
    ledger.kill(signal.SIGTERM)

    # the audit: replay everything from genesis
    result = run_cli(["ledger", "verify", *backend.cli_args],
                     env={**ledger.env, "COLUMNS": "200"}, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(rf"^height {redis_height(store)} OK$", result.stdout, re.M), result.stdout
    print(f"[{backend.name}] {len(load.sent)} sent, {len(load.included)} reported included "
          f"before the SIGKILL at height {height_at_crash}, {len(in_chain)} in the chain")
    store.close()


# --- the audit catches tampering -----------------------------------------------------------


@dataclass
class Audited:
    """A stopped chain in Redis with transfers in known blocks."""

    url: str
    redis: redis.Redis
    transfer_blocks: list[int]
    env: dict[str, str]
    height: int

    def verify(self) -> tuple[int, str]:
        result = run_cli(["ledger", "verify", "--redis-url", self.url],
                         env={**self.env, "COLUMNS": "300"})
        return result.returncode, result.stdout + result.stderr

    def key(self, number: int) -> str:
        return f"{REDIS_PREFIX}:block:{number}"

    def edit(self, number: int, change: Callable[[dict[str, object]], None]) -> None:
        block = json.loads(self.redis.get(self.key(number)) or b"null")
        change(block)
        self.redis.set(self.key(number), json.dumps(block))


@pytest.fixture(scope="module")
def audited(
    tmp_path_factory: pytest.TempPathFactory, module_redis: RedisServer
) -> Iterator[Audited]:
    ledger = start_ledger(tmp_path_factory.mktemp("audited"), module_redis.url)
    chain = ChainClient(ledger.url)
    alice, bob = Keypair.dev("alice"), Keypair.dev("bob")
    blocks = [chain.call(alice, "transfer", {"dest": bob.ss58_address, "amount": 100 + i})["block"]
              for i in range(4)]
    chain.close()
    ledger.kill(signal.SIGTERM)
    client = redis.Redis.from_url(module_redis.url)
    audited = Audited(module_redis.url, client, blocks, ledger.env, redis_height(client))
    code, output = audited.verify()
    assert code == 0 and f"height {audited.height} OK" in output, output
    yield audited
    client.close()


@pytest.fixture
def restore_blocks(audited: Audited) -> Iterator[None]:
    """Put every block back as it was after a tampering test."""
    saved = {n: audited.redis.get(audited.key(n)) for n in range(1, audited.height + 1)}
    yield
    for number, raw in saved.items():
        assert raw is not None
        audited.redis.set(audited.key(number), raw)


def _set_amount(amount: int) -> Callable[[dict[str, object]], None]:
    def change(block: dict[str, object]) -> None:
        extrinsics = block["extrinsics"]
        assert isinstance(extrinsics, list) and extrinsics[0]["call"] == "transfer"
        extrinsics[0]["params"]["amount"] = amount
    return change


def test_verify_names_the_first_tampered_block(audited: Audited, restore_blocks: None) -> None:
    first, _, third, _ = audited.transfer_blocks
    audited.edit(third, _set_amount(999_999))
    audited.edit(first, _set_amount(999_999))
    code, output = audited.verify()
    assert code == 1, output
    assert f"height {first - 1} FAILED at block {first}:" in output, output
    assert "Traceback" not in output


def test_verify_catches_a_rewritten_state_root(audited: Audited, restore_blocks: None) -> None:
    number = audited.transfer_blocks[1]

    def change(block: dict[str, object]) -> None:
        block["state_root"] = "0x" + "00" * 32
    audited.edit(number, change)
    code, output = audited.verify()
    assert code == 1, output
    assert f"FAILED at block {number}:" in output, output


def test_verify_names_a_missing_block(audited: Audited, restore_blocks: None) -> None:
    number = audited.transfer_blocks[2]
    audited.redis.delete(audited.key(number))
    code, output = audited.verify()
    assert code not in (0, 1), output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), output
    assert f"block {number} is missing" in lines[0], output


@pytest.mark.parametrize("what, says", [
    ("receipt", "receipt 0: replay gives"),
    ("fee", f"fee {DEV_FEE} rao, the stored receipt says"),
    ("hash", "block hash"),
    ("parent_hash", "parent hash"),
], ids=["receipt", "fee", "block_hash", "parent_hash"])
def test_verify_catches_rewritten_receipts_and_hashes(
    audited: Audited, restore_blocks: None, what: str, says: str
) -> None:
    number = audited.transfer_blocks[0]

    def change(block: dict[str, object]) -> None:
        if what == "receipt":  # an included transfer now reads as failed
            receipts = block["receipts"]
            assert isinstance(receipts, list)
            receipts[0].update(ok=False, code="insufficient_balance", message="forged")
        elif what == "fee":  # the transfer paid no fee, says the rewritten receipt
            receipts = block["receipts"]
            assert isinstance(receipts, list)
            receipts[0]["fee"] = 0
        else:
            block[what] = "0x" + "11" * 32
    audited.edit(number, change)
    code, output = audited.verify()
    assert code == 1, f"verify accepted a block with a rewritten {what}: {output}"
    assert f"height {number - 1} FAILED at block {number}:" in output, output
    assert says in output, output
    assert "Traceback" not in output


def _stored_genesis_hash(audited: Audited) -> str:
    """The chain's genesis hash, from its stored genesis (no ledger runs)."""
    raw = audited.redis.get(f"{REDIS_PREFIX}:genesis") or b"{}"
    return identity(Genesis.model_validate_json(raw)).genesis_hash


@pytest.mark.parametrize("what", ["timestamp", "other_key", "no_seal", "seal_of_another_block"])
def test_verify_names_a_block_whose_seal_is_not_the_authoritys(
    audited: Audited, restore_blocks: None, what: str
) -> None:
    """What replay cannot check (the timestamp, a block rewritten and sealed again by
    another key) fails on the seal: the genesis authority's signature of the header."""
    number = audited.transfer_blocks[1]
    genesis = _stored_genesis_hash(audited)
    other = json.loads(audited.redis.get(audited.key(number + 1)) or b"null")

    def change(block: dict[str, object]) -> None:
        if what == "timestamp":
            stamp = block["timestamp"]
            assert isinstance(stamp, float)
            block["timestamp"] = stamp - 3600
        elif what == "other_key":  # a forger's seal, over exactly this header
            stamp = block["timestamp"]
            assert isinstance(stamp, float)
            block["seal"] = seal_block(Keypair.dev("mallory"), genesis, number,
                                       str(block["hash"]), stamp)
        elif what == "no_seal":
            del block["seal"]
        else:
            block["seal"] = other["seal"]
    audited.edit(number, change)
    code, output = audited.verify()
    assert code == 1, f"verify accepted a block with {what}: {output}"
    assert f"height {number - 1} FAILED at block {number}: bad seal" in output, output
    assert "Traceback" not in output


def test_blocks_carry_the_authoritys_seal(audited: Audited) -> None:
    """Every stored block is sealed by the genesis authority (the dev chain's: alice)."""
    genesis = _stored_genesis_hash(audited)
    stored = json.loads(audited.redis.get(f"{REDIS_PREFIX}:genesis") or b"{}")
    assert stored["authority"] == Keypair.dev("alice").ss58_address
    for number in range(1, audited.height + 1):
        block = json.loads(audited.redis.get(audited.key(number)) or b"null")
        assert seal_problem(stored["authority"], genesis, number, block["hash"],
                            block["timestamp"], block["seal"]) is None, number


# --- a second writer on the same chain ------------------------------------------------------


@dataclass
class TwoWriters:
    running: LedgerProcess
    stopped: LedgerProcess
    url: str


def exited(ledger: LedgerProcess) -> bool:
    return ledger.process is not None and ledger.process.poll() is not None


@pytest.fixture(scope="module")
def two_writers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoWriters]:
    """Two ledgers started on one Redis, one chain: one of them must stop writing and exit.

    The second one makes a block a second, the first four: the second stays up long enough
    to be seen ready, then finds its next block already taken.
    """
    workdir = tmp_path_factory.mktemp("two-writers")
    server = start_redis_server(workdir / "redis")
    ledgers: list[LedgerProcess] = []
    try:
        ledgers.append(start_ledger(workdir, server.url, name="first"))
        ledgers.append(start_ledger(workdir, server.url, ["--block-time", "1"], fast=False,
                                    name="second"))
        wait_until(lambda: any(map(exited, ledgers)), 20,
                   "one of two ledgers on one chain to stop producing and exit")
        assert [exited(x) for x in ledgers].count(True) == 1
        stopped, running = ledgers if exited(ledgers[0]) else ledgers[::-1]
        assert httpx.get(f"{running.url}/readyz", timeout=5).status_code == 200
        yield TwoWriters(running, stopped, server.url)
    finally:
        for ledger in ledgers:
            ledger.kill(signal.SIGTERM)
        stop_redis_server(server)


def test_second_writer_is_refused_not_forked(two_writers: TwoWriters, tmp_path: Path) -> None:
    running = ChainClient(two_writers.running.url)
    try:
        height = running.height()
        assert running.wait_for_height(height + 3, timeout=10) >= height + 3  # still producing
    finally:
        running.close()
    stopped = two_writers.stopped
    assert stopped.process is not None
    assert stopped.process.returncode > 0, "crash-only: the stopped ledger exits non-zero"
    log = stopped.logs[-1].read_text()
    assert "another ledger is writing this chain" in log
    assert "error: block production stopped" in log
    assert "Traceback" not in log
    two_writers.running.kill(signal.SIGTERM)
    result = run_cli(["ledger", "verify", "--redis-url", two_writers.url],
                     env=two_writers.running.env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^height \d+ OK$", result.stdout, re.M), result.stdout


def test_ledger_whose_store_failed_refuses_and_exits(
    ledger_factory: StartLedger, system_redis: RedisServer
) -> None:
    """The store refuses a block: the waiting client hears 503 not_ready, the process exits
    non-zero, nothing of that block is stored, and a restart replays and goes on."""
    ledger = ledger_factory(system_redis.url, ["--block-time", "3"], fast=False)
    store = redis.Redis.from_url(system_redis.url)
    chain = ChainClient(ledger.url)
    eve, bob = Keypair.dev("eve"), Keypair.dev("bob")
    try:
        ext = chain.sign(eve, "transfer", {"dest": bob.ss58_address, "amount": 1})
        with chain.block_stream() as headers:
            next(headers)  # the newest block, however old
            sealed = next(headers)["number"]  # just made: the next one is 3 s away
        # another writer takes the chain: the ledger's next block cannot be stored
        store.set(f"{REDIS_PREFIX}:height", sealed + 1_000)
        # admitted and then woken by the failure, or (if that came first) refused at once
        response = chain.submit(ext, wait=True)
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["code"] == "not_ready", error
        assert "another ledger is writing this chain" in error["message"], error
        with contextlib.suppress(httpx.TransportError):  # or already nobody listening
            assert httpx.get(f"{ledger.url}/readyz", timeout=5).status_code == 503
        wait_until(lambda: exited(ledger), 20, "the failed ledger to exit")
        assert ledger.process is not None and ledger.process.returncode > 0
        assert "error: block production stopped" in ledger.logs[-1].read_text()
        assert store.hget(f"{REDIS_PREFIX}:receipts", ext.hash) is None

        # the supervisor's part: the chain is ours again, restart, replay, go on
        store.set(f"{REDIS_PREFIX}:height", sealed)
        ledger.start()
        assert f"ledger at block {sealed} " in ledger.logs[-1].read_text()
        assert chain.receipt(ext.hash).status_code == 404  # queued, never stored: resubmit
        resubmitted = chain.submit(ext, wait=True)
        assert resubmitted.status_code == 200, resubmitted.text
        assert resubmitted.json()["status"] == "included"
        assert resubmitted.json()["block"] > sealed
    finally:
        chain.close()
        store.close()
