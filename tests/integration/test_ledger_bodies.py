"""Request bodies at the ledger's door: size caps before reading, and batch decoding.

A single extrinsic is capped at 64 KiB and a batch body at 4 MiB, both checked from the
Content-Length before a byte is read and, for a body sent without one (chunked), while
it streams in. A batch is decoded one item at a time (`ledger/batch.py`), exactly as
`json.loads` would decode it, with the event loop handed back between slices.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from subnetlab.chain.extrinsic import sign_extrinsic
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.batch import MalformedBatchError, iter_items
from subnetlab.ledger.genesis import dev_genesis
from subnetlab.ledger.node import (
    MAX_BATCH,
    MAX_BATCH_BYTES,
    MAX_EXTRINSIC_BYTES,
    PARSE_SLICE_CHARS,
    LedgerNode,
)
from subnetlab.ledger.redis_server import EmbeddedRedis
from subnetlab.ledger.store import BlockStore
from tests.integration.chainclient import DEV_CHAIN, ChainClient
from tests.integration.conftest import LedgerProcess

ALICE, BOB = Keypair.dev("alice"), Keypair.dev("bob")


# --- the batch decoder, item by item ---------------------------------------------------------


@pytest.mark.parametrize("body", [
    b'{"extrinsics": []}',
    b' {\n "extrinsics" :\t[ 1 , {"a": [2, {"b": null}]} , "x\\u00e9" , [] , 2.5e3 ] }\n ',
    json.dumps({"extrinsics": [{"call": "transfer", "nonce": i, "params": {"amount": i}}
                               for i in range(50)]}).encode(),
    '{"extrinsics": ["é", "\\ud83d\\ude00"]}'.encode(),
])
def test_decoding_item_by_item_equals_json_loads(body: bytes) -> None:
    assert [item for item, _, _ in iter_items(body)] == json.loads(body)["extrinsics"]


def test_items_come_with_their_size_as_sent_and_the_offset_after_them() -> None:
    body = b'{"extrinsics": [10, {"a": 1} , 300]}'
    assert [(size, offset) for _, size, offset in iter_items(body)] == [
        (2, 18), (8, 28), (3, 34)]
    accented = '{"extrinsics": ["é", "x"]}'.encode()  # é is 2 bytes, one character
    assert [size for _, size, _ in iter_items(accented)] == [4, 3]


@pytest.mark.parametrize(("body", "field", "says"), [
    (b"[1", "extrinsics", "must be"),
    (b"", "extrinsics", "must be"),
    (b"{}", "extrinsics", "must be"),
    (b'{"extrinsics": 5}', "extrinsics", "must be"),
    (b'{"extrinsics": {"a": 1}}', "extrinsics", "must be"),
    (b'{"extrinsic": []}', "extrinsic", "unknown key"),
    (b'{"extrinsics": [], "extrinsics": []}', "extrinsics", "a key after"),
    (b'{"extrinsics": [1,]}', None, "not valid JSON"),
    (b'{"extrinsics": [1 2]}', None, "not valid JSON"),
    (b'{"extrinsics": [1]', None, "not valid JSON"),
    (b'{"extrinsics": [1]} trailing', None, "Extra data"),
    (b'{"extrinsics" [1]}', None, "':' delimiter"),
    (b"{extrinsics: [1]}", None, "double quotes"),
    (b"\xff\xfe", None, "utf-8"),
    (b'{"extrinsics": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}", None, "nested too deeply"),
])
def test_malformed_batches_name_the_reason(body: bytes, field: str | None, says: str) -> None:
    with pytest.raises(MalformedBatchError) as bad:
        list(iter_items(body))
    assert bad.value.field == field
    assert says in bad.value.message


# --- the node decodes in slices, yielding to the loop ---------------------------------------


@pytest.fixture
def node(tmp_path: Path) -> Iterator[LedgerNode]:
    """An in-process node on a real (embedded) Redis: the writer's loop is ours to watch."""
    embedded = EmbeddedRedis(tmp_path / "redis")
    url = embedded.ensure_running()
    yield LedgerNode(BlockStore.from_url(url, "subnetlab-dev"), dev_genesis(), block_time=1.0)
    embedded.stop()


def test_a_big_batch_is_decoded_in_slices_between_which_the_loop_runs(
    node: LedgerNode
) -> None:
    """A body of a few big malformed items, the size of the cap: checking its ~70 items
    yields 3 times (every 20 items), decoding it many more (every 128 KiB)."""
    item = {"call": "transfer", "params": {"memo": "x" * 60_000}}
    count = (MAX_BATCH_BYTES - 100) // (len(json.dumps(item)) + 1)
    raw = json.dumps({"extrinsics": [item] * count}).encode()
    assert len(raw) <= MAX_BATCH_BYTES and count <= MAX_BATCH

    async def run() -> tuple[int, int]:
        turns = 0
        done = False

        async def other_work() -> None:  # stands for the block timer and other requests
            nonlocal turns
            while not done:
                turns += 1
                await asyncio.sleep(0)

        watcher = asyncio.create_task(other_work())
        await asyncio.sleep(0)
        outcomes = await node.admit_batch(raw)
        done = True
        await watcher
        return turns, len(outcomes)

    turns, results = asyncio.run(run())
    assert results == count
    # at most a slice and one item decoded between two turns of the loop
    slices = len(raw) // (PARSE_SLICE_CHARS + len(json.dumps(item)))
    assert count // 20 < slices - 10
    assert turns >= slices
    assert node.pending == []  # every item was malformed: nothing queued


# --- caps, over real HTTP --------------------------------------------------------------------


def _assert_too_large(response: httpx.Response, limit: int, field: str = "body") -> None:
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("too_large", field), error
    assert f"at most {limit}" in error["message"], error


def _chunks(body: bytes, size: int = 16 * 1024) -> Iterator[bytes]:
    for at in range(0, len(body), size):
        yield body[at : at + size]


def test_single_extrinsic_over_the_cap_is_refused_by_its_content_length(
    module_ledger: LedgerProcess
) -> None:
    chain = ChainClient(module_ledger.url)
    ext = chain.sign(ALICE, "transfer", {"dest": BOB.ss58_address, "amount": 1,
                                         "memo": "y" * MAX_EXTRINSIC_BYTES})
    body = ext.to_json().encode()
    response = chain.http.post("/v1/extrinsics", content=body,
                               headers={"content-type": "application/json"})
    _assert_too_large(response, MAX_EXTRINSIC_BYTES)
    assert str(len(body)) in response.json()["error"]["message"]  # the declared size
    assert chain.receipt(ext.hash).status_code == 404
    chain.close()


def test_single_extrinsic_streamed_without_length_is_cut_off_at_the_cap(
    module_ledger: LedgerProcess
) -> None:
    chain = ChainClient(module_ledger.url)
    ext = chain.sign(ALICE, "transfer", {"dest": BOB.ss58_address, "amount": 1,
                                         "memo": "z" * MAX_EXTRINSIC_BYTES})
    response = chain.http.post("/v1/extrinsics", content=_chunks(ext.to_json().encode()),
                               headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers  # sent chunked
    _assert_too_large(response, MAX_EXTRINSIC_BYTES)
    assert "over" in response.json()["error"]["message"]
    assert chain.receipt(ext.hash).status_code == 404
    chain.close()


def _batch_over_the_cap() -> tuple[bytes, str]:
    """A batch of valid signed transfers, padded with whitespace past the byte cap."""
    ext = sign_extrinsic(ALICE, "transfer", {"dest": BOB.ss58_address, "amount": 1}, 10**6,
                         DEV_CHAIN)
    body = '{"extrinsics": [' + ext.to_json() + " " * MAX_BATCH_BYTES + "]}"
    return body.encode(), ext.hash


@pytest.mark.parametrize("chunked", [False, True], ids=["content_length", "chunked"])
def test_batch_over_the_byte_cap_is_refused_naming_the_limit(
    module_ledger: LedgerProcess, chunked: bool
) -> None:
    chain = ChainClient(module_ledger.url)
    body, digest = _batch_over_the_cap()
    response = chain.http.post("/v1/extrinsics/batch",
                               content=_chunks(body) if chunked else body,
                               headers={"content-type": "application/json"})
    _assert_too_large(response, MAX_BATCH_BYTES)
    assert chain.receipt(digest).status_code == 404
    assert chain.http.get("/readyz").status_code == 200
    chain.close()


def test_batch_with_too_many_items_is_refused_whole(module_ledger: LedgerProcess) -> None:
    chain = ChainClient(module_ledger.url)
    nonce = chain.nonce(BOB)
    first = chain.sign(BOB, "transfer", {"dest": ALICE.ss58_address, "amount": 1}, nonce)
    items = [json.loads(first.to_json()), *([0] * MAX_BATCH)]
    response = chain.http.post("/v1/extrinsics/batch", json={"extrinsics": items})
    _assert_too_large(response, MAX_BATCH, "extrinsics")
    chain.wait_blocks(2)
    assert chain.receipt(first.hash).status_code == 404  # nothing of it was admitted
    assert chain.nonce(BOB) == nonce
    chain.close()


@pytest.mark.parametrize(("body", "field"), [
    (b'{"extrinsics": [], "more": 1}', "extrinsics"),
    (b'{"txs": []}', "txs"),
    (b'{"extrinsics": [0, 1, 2', None),
])
def test_batch_of_the_wrong_shape_is_a_400_naming_the_field(
    module_ledger: LedgerProcess, body: bytes, field: str | None
) -> None:
    with httpx.Client(base_url=module_ledger.url, timeout=30) as http:
        response = http.post("/v1/extrinsics/batch", content=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "malformed_batch"
    assert response.json()["error"]["field"] == field


@pytest.mark.parametrize("levels", [65, 5_000])
def test_a_deeply_nested_extrinsic_is_a_400_too_deep_naming_the_body(
    module_ledger: LedgerProcess, levels: int
) -> None:
    """The shared depth limit (protocol/bodies.py, 64 levels), checked before decoding."""
    body = b'{"call": "transfer", "params": ' + b"[" * levels + b"]" * levels + b"}"
    with httpx.Client(base_url=module_ledger.url, timeout=30) as http:
        response = http.post("/v1/extrinsics", content=body)
        shallow = http.post("/v1/extrinsics", content=b'{"call": "transfer", "params": [[]]}')
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "too_deep"
    assert response.json()["error"]["field"] == "body"
    assert shallow.status_code == 400 and shallow.json()["error"]["code"] != "too_deep"
