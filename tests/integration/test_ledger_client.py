"""The one ledger client, both faces, against a real ledger process.

Why: the CLI, bootstrap and bench (sync face) and the neurons (async face) share its
routes, decoding, errors and nonce policy; these tests pin what they rely on: refusals as
one `LedgerError` with the ledger's code, a local nonce counter that re-syncs when another
tool used the key, batches, and the block stream.
"""

from __future__ import annotations

import asyncio

import pytest

from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.client import (
    AsyncLedgerClient,
    LedgerClient,
    LedgerError,
    LedgerUnreachable,
)
from tests.integration.conftest import LedgerProcess, free_port

ALICE, BOB, CAROL = Keypair.dev("alice"), Keypair.dev("bob"), Keypair.dev("carol")


def transfer(amount: int, dest: Keypair = BOB) -> dict[str, object]:
    return {"dest": dest.ss58_address, "amount": amount}


def test_refusals_and_silence_are_two_exception_types() -> None:
    """No ledger: LedgerUnreachable naming the URL, from both faces."""
    url = f"http://127.0.0.1:{free_port()}"
    with LedgerClient(url) as client, pytest.raises(LedgerUnreachable, match=url):
        client.chain()

    async def silent() -> None:
        async with AsyncLedgerClient(url) as client:
            await client.metagraph(1)

    with pytest.raises(LedgerUnreachable, match=url):
        asyncio.run(silent())


def test_the_sync_face_numbers_nonces_locally_and_resyncs(ledger: LedgerProcess) -> None:
    with LedgerClient(ledger.url) as client, LedgerClient(ledger.url) as other:
        with pytest.raises(LedgerError) as unknown:
            client.subnet(999)
        assert (unknown.value.code, unknown.value.status) == ("unknown_subnet", 404)

        start = client.nonce(ALICE.ss58_address)
        pending = [client.submit(ALICE, "transfer", transfer(1), wait=False)
                   for _ in range(3)]  # three in one block: numbered locally, no refusal
        assert client.nonces.known(ALICE.ss58_address) == start + 3
        client.wait_for_receipt(str(pending[-1]["hash"]))

        other.submit(ALICE, "transfer", transfer(2))  # another tool used the same key
        receipt = client.submit(ALICE, "transfer", transfer(3))  # stale_nonce: re-synced
        assert receipt["status"] == "included"
        assert client.nonce(ALICE.ss58_address) == start + 5

        ahead = client.nonce(ALICE.ss58_address) + 5  # a counter that ran ahead
        client.nonces.resynced(ALICE.ss58_address, ahead, "future_nonce", ahead)
        assert client.submit(ALICE, "transfer", transfer(4))["status"] == "included"

        with pytest.raises(LedgerError) as poor:
            client.submit(CAROL, "transfer", transfer(10**30 // 10**12, ALICE))
        assert poor.value.code == "insufficient_balance"


def test_a_batch_is_submitted_with_locally_numbered_nonces(ledger: LedgerProcess) -> None:
    with LedgerClient(ledger.url) as client:
        batch = [client.sign(ALICE, "transfer", transfer(5 + i)) for i in range(4)]
        assert [ext.nonce for ext in batch] == list(range(batch[0].nonce, batch[0].nonce + 4))
        results = client.submit_batch(batch)
        assert [r.get("hash") for r in results] == [ext.hash for ext in batch]
        assert client.wait_for_receipt(batch[-1].hash)["status"] == "included"


def test_the_async_face_reads_submits_and_follows_blocks(ledger: LedgerProcess) -> None:
    async def scenario() -> tuple[dict[str, object], list[int], bool]:
        opened = asyncio.Event()
        async with AsyncLedgerClient(ledger.url) as client:
            receipts = await asyncio.gather(  # two signers side by side, one key twice
                client.submit(ALICE, "transfer", transfer(6)),
                client.submit(ALICE, "transfer", transfer(7)),
                client.submit(BOB, "transfer", transfer(8, ALICE)),
            )
            with pytest.raises(LedgerError) as unknown:
                await client.metagraph(999)
            assert unknown.value.code == "unknown_subnet"
            numbers: list[int] = []
            async for header in client.blocks(on_open=opened.set):
                numbers.append(int(header["number"]))
                if len(numbers) == 2:
                    break
            return receipts[0], numbers, opened.is_set()

    receipt, numbers, opened = asyncio.run(scenario())
    assert receipt["status"] == "included"
    assert opened and numbers[1] == numbers[0] + 1
