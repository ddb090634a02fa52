"""The ledger's signature worker (`ledger/signature_worker.py`) and the door's turns (`turns.py`).

The worker is a real child process; the nodes are in process on real (embedded) Redis, so
the loop and the queue are ours to look at. What must hold: the worker's verdicts are the
in-process verdicts, a dead worker only means checking in process, a node admits exactly
what it admits without a worker, in arrival order, and the worker dies with its ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from subnetlab.chain.extrinsic import ChainIdentity, Extrinsic, chain_identity, sign_extrinsic
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.edge import status_of
from subnetlab.ledger.genesis import dev_genesis
from subnetlab.ledger.node import WORKER_MIN_BATCH, LedgerNode, Refused
from subnetlab.ledger.redis_server import EmbeddedRedis
from subnetlab.ledger.signature_worker import SignatureWorker, Triple, verify_all
from subnetlab.ledger.store import BlockStore
from subnetlab.ledger.turns import Turns
from tests.integration.chainclient import DEV_CHAIN
from tests.integration.conftest import start_ledger, wait_until

ALICE, BOB, CHARLIE = Keypair.dev("alice"), Keypair.dev("bob"), Keypair.dev("charlie")


def _triples() -> list[Triple]:
    """Good signatures and every way of a bad one: other payload, other key, not one."""
    message = b'{"call":"transfer"}'
    good = ALICE.sign(message)
    return [
        (good, message, ALICE.public_key),
        (good, message + b" ", ALICE.public_key),
        (good, message, BOB.public_key),
        (b"\x00" * 64, message, ALICE.public_key),
        (BOB.sign(b"x" * 5000), b"x" * 5000, BOB.public_key),
        (good[:32] + bytes(32), message, ALICE.public_key),
    ]


def test_the_worker_answers_as_the_process_does_and_in_order() -> None:
    triples = _triples()

    async def run() -> tuple[list[bool], list[list[bool]], float]:
        worker = await SignatureWorker.start()
        try:
            assert worker.running
            one = await worker.verify(triples)
            many = await asyncio.gather(*(worker.verify(triples[i:]) for i in range(6)))
            return one, list(many), worker.cpu_seconds
        finally:
            await worker.aclose()

    one, many, cpu = asyncio.run(run())
    assert one == verify_all(triples) == [True, False, False, False, True, False]
    assert many == [verify_all(triples[i:]) for i in range(6)]  # each its own answer
    assert cpu > 0


def test_a_dead_worker_means_checking_in_process() -> None:
    triples = _triples()

    async def run() -> tuple[list[bool], bool]:
        worker = await SignatureWorker.start()
        assert worker.process is not None
        worker.process.kill()
        await worker.process.wait()
        verdicts = await worker.verify(triples)
        running = worker.running
        await worker.aclose()
        return verdicts, running

    verdicts, running = asyncio.run(run())
    assert verdicts == verify_all(triples)
    assert not running


# --- a node with a worker admits what one without admits -------------------------------------


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[list[BlockStore]]:
    """Two empty chains on two embedded Redis servers."""
    servers = [EmbeddedRedis(tmp_path / f"redis-{i}") for i in range(2)]
    try:
        yield [BlockStore.from_url(s.ensure_running(), "subnetlab-dev") for s in servers]
    finally:
        for server in servers:
            server.stop()


def _batch(extrinsics: list[Extrinsic]) -> bytes:
    return ('{"extrinsics":[' + ",".join(e.to_json() for e in extrinsics) + "]}").encode()


def _outcome(outcome: tuple[Extrinsic, str] | Refused) -> tuple[Any, ...]:
    if isinstance(outcome, Refused):
        return ("refused", status_of(outcome.code), outcome.code, outcome.field)
    return ("queued", outcome[1])


def _transfers(key: Keypair, nonces: range, chain: ChainIdentity = DEV_CHAIN) -> list[Extrinsic]:
    """Signed for an in-process node on `dev_genesis()` unless another chain is given."""
    return [sign_extrinsic(key, "transfer", {"dest": CHARLIE.ss58_address, "amount": 1 + n}, n,
                           chain)
            for n in nonces]


def test_a_node_with_a_worker_admits_what_it_admits_without_in_arrival_order(
    stores: list[BlockStore]
) -> None:
    """A batch of alice's nonces 0..11, then her nonce 12 alone (checked in process, so
    ready long before the batch's signatures are back: it must still wait its turn), then
    a batch of bob's with a corrupted signature at item 4 (401 for it, and the nonce gap
    it leaves refuses the rest)."""
    first = _batch(_transfers(ALICE, range(12)))
    single = _transfers(ALICE, range(12, 13))[0].to_json().encode()
    bobs = _transfers(BOB, range(10))
    bad = bobs[4].signature
    bobs[4] = bobs[4].model_copy(update={"signature": bad[:-2] + ("00" if bad[-2:] != "00"
                                                                    else "11")})
    third = _batch(bobs)
    assert len(bobs) >= WORKER_MIN_BATCH

    async def run(node: LedgerNode, worker: bool) -> list[Any]:
        if worker:
            node.signatures = await SignatureWorker.start()
        try:
            batch_a, alone, batch_c = await asyncio.gather(
                node.admit_batch(first), node.admit_in_turn(single), node.admit_batch(third))
        finally:
            if node.signatures is not None:
                await node.signatures.aclose()
        queued = [(q.ext.signer, q.ext.nonce) for q in node.pending]
        return [[_outcome(o) for o in batch_a], _outcome(alone),
                [_outcome(o) for o in batch_c], queued]

    with_worker = asyncio.run(run(LedgerNode(stores[0], dev_genesis()), True))
    without = asyncio.run(run(LedgerNode(stores[1], dev_genesis()), False))
    assert with_worker == without
    batch_a, alone, batch_c, queued = with_worker
    assert all(o[0] == "queued" for o in batch_a) and alone[0] == "queued"
    assert batch_c[4] == ("refused", 401, "bad_signature", "signature")
    assert [o[2] for o in batch_c[5:]] == ["future_nonce"] * 5
    assert queued == ([(ALICE.ss58_address, n) for n in range(13)]
                      + [(BOB.ss58_address, n) for n in range(4)])


# --- turns ------------------------------------------------------------------------------------


def test_turns_keep_arrival_order_when_a_later_request_is_ready_first() -> None:
    order: list[str] = []

    async def run() -> None:
        turns = Turns()

        async def request(name: str, work: int) -> None:
            async with turns.ticket() as my_turn:
                for _ in range(work):  # work before admitting: the first has the most
                    await asyncio.sleep(0)
                await my_turn()
                order.append(name)

        await asyncio.gather(request("a", 30), request("b", 0), request("c", 10))

    asyncio.run(run())
    assert order == ["a", "b", "c"]


def test_a_cancelled_request_does_not_let_the_next_one_jump_the_queue() -> None:
    order: list[str] = []

    async def run() -> None:
        turns = Turns()
        release = asyncio.Event()

        async def first() -> None:
            async with turns.ticket() as my_turn:
                await my_turn()
                await release.wait()  # admitting, with yields
                order.append("first")

        async def waiting() -> None:
            async with turns.ticket() as my_turn:
                await my_turn()
                order.append("cancelled one")

        async def last() -> None:
            async with turns.ticket() as my_turn:
                await my_turn()
                order.append("last")

        tasks = [asyncio.create_task(c()) for c in (first, waiting, last)]
        await asyncio.sleep(0)
        tasks[1].cancel()
        for _ in range(5):
            await asyncio.sleep(0)
        assert order == []  # "last" waits for "first", not for the cancelled one only
        release.set()
        await asyncio.gather(tasks[0], tasks[2])
        with contextlib.suppress(asyncio.CancelledError):
            await tasks[1]

    asyncio.run(run())
    assert order == ["first", "last"]


# --- the served ledger ----------------------------------------------------------------------


def _children_running_the_worker(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid and b"subnetlab.ledger.signature_worker" in cmdline:
            found.append(int(entry))
    return found


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def test_a_served_ledger_checks_batches_in_its_worker_which_dies_with_it(tmp_path: Path) -> None:
    ledger = start_ledger(tmp_path, None, ["--data-dir", str(tmp_path / "data")])
    try:
        assert ledger.process is not None
        workers = _children_running_the_worker(ledger.process.pid)
        assert len(workers) == 1, workers
        with ledger.client() as http:
            chain = chain_identity(http.get("/v1/chain").json())
            body = _batch(_transfers(ALICE, range(WORKER_MIN_BATCH), chain))
            results = http.post("/v1/extrinsics/batch", content=body).json()["results"]
            assert all(r["status"] == "pending" for r in results), results

            def worked() -> bool:
                for line in http.get("/metrics").text.splitlines():
                    if line.startswith("subnetlab_signature_worker_cpu_seconds "):
                        return float(line.split()[1]) > 0
                return False

            wait_until(worked, 10, "the worker's CPU seconds in /metrics")
        ledger.kill(signal.SIGKILL)
        wait_until(lambda: _gone(workers[0]), 10, "the worker to exit with its ledger")
    finally:
        ledger.kill()
        EmbeddedRedis(tmp_path / "data").stop()
