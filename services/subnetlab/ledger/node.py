"""The ledger node: admits signed extrinsics, produces blocks, persists them, reports receipts.

One writer, one asyncio loop: request handlers and the block producer never run at the
same time, so the in-memory state needs no locks and every block is applied in one piece.
A block is written to Redis (atomically, see `store.py`) *before* any of its receipts is
reported or its header is streamed: an extrinsic reported "included" survives a crash.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from subnetlab.chain.codec import from_snapshot, state_root, to_snapshot
from subnetlab.chain.errors import ChainError, ErrorCode
from subnetlab.chain.execution import Receipt, execute_block
from subnetlab.chain.extrinsic import BadSignature, BadSigner, Extrinsic, MalformedExtrinsic
from subnetlab.chain.model import ChainState, Genesis
from subnetlab.chain.state import CALLS, plan
from subnetlab.ledger.metrics import LedgerMetrics
from subnetlab.ledger.store import BlockStore, Snapshot, StoreError

log = logging.getLogger(__name__)

MAX_EXTRINSIC_BYTES = 64 * 1024
RECENT_RECEIPTS = 200_000


class Refused(Exception):  # noqa: N818 (a verdict, not a fault)
    """An extrinsic refused at the door: nothing was queued, nothing changed."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


@dataclass
class BlockHeader:
    number: int
    hash: str
    parent_hash: str
    state_root: str
    extrinsics_count: int
    timestamp: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "hash": self.hash,
            "parent_hash": self.parent_hash,
            "state_root": self.state_root,
            "extrinsics_count": self.extrinsics_count,
            "timestamp": self.timestamp,
        }


def genesis_hash(genesis: Genesis) -> str:
    """The identity of a chain: the hash of its canonical genesis document."""
    encoded = json.dumps(genesis.model_dump(mode="json"), sort_keys=True).encode()
    return "0x" + hashlib.blake2b(encoded, digest_size=32).hexdigest()


def block_hash(number: int, parent_hash: str, root: str, ext_hashes: list[str]) -> str:
    """Hash of a block header: number, parent, state root and the ordered extrinsics."""
    body = json.dumps([number, parent_hash, root, ext_hashes], separators=(",", ":")).encode()
    return "0x" + hashlib.blake2b(body, digest_size=32).hexdigest()


def replay(store: BlockStore, genesis: Genesis) -> tuple[ChainState, str]:
    """Rebuild the state from the newest snapshot plus the blocks after it.

    Every replayed block's state root is checked against the stored one; a mismatch means
    the store was tampered with or the code changed its rules, and is refused.
    """
    snapshot = store.latest_snapshot()
    if snapshot is None:
        state = ChainState.from_genesis(genesis)
        parent = genesis_hash(genesis)
        start = 1
    else:
        state = from_snapshot(snapshot.data)
        if state_root(state) != snapshot.state_root:
            raise StoreError(f"snapshot at block {snapshot.number} does not match its state root")
        stored = store.block(snapshot.number)
        parent = stored["hash"] if stored else genesis_hash(genesis)
        start = snapshot.number + 1
    for block in store.blocks(start):
        extrinsics = [Extrinsic.from_dict(e) for e in block["extrinsics"]]
        execute_block(state, extrinsics)
        root = state_root(state)
        if root != block["state_root"]:
            raise StoreError(
                f"block {block['number']}: replayed state root {root} differs from the "
                f"stored {block['state_root']}"
            )
        parent = block["hash"]
    return state, parent


@dataclass
class LedgerNode:
    """The single writer of one chain."""

    store: BlockStore
    genesis: Genesis
    block_time: float = 12.0
    snapshot_every: int = 100
    max_block_extrinsics: int = 10_000
    metrics: LedgerMetrics = field(default_factory=LedgerMetrics)
    state: ChainState = field(init=False)
    parent_hash: str = field(init=False)
    pending: list[tuple[Extrinsic, str]] = field(default_factory=list, init=False)
    pending_hashes: set[str] = field(default_factory=set, init=False)
    pending_per_signer: dict[str, int] = field(default_factory=dict, init=False)
    receipts: OrderedDict[str, tuple[int, Receipt]] = field(
        default_factory=OrderedDict, init=False
    )
    waiters: dict[str, list[asyncio.Future[tuple[int, Receipt]]]] = field(
        default_factory=dict, init=False
    )
    subscribers: set[asyncio.Queue[dict[str, Any]]] = field(default_factory=set, init=False)
    latest: BlockHeader | None = field(default=None, init=False)
    ready: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.store.write_genesis(self.genesis.model_dump(mode="json"))
        self.state, self.parent_hash = replay(self.store, self.genesis)
        height = self.store.height()
        if height:
            stored = self.store.block(height)
            if stored is not None:
                self.latest = _header(stored)
        self.genesis_hash = genesis_hash(self.genesis)
        self.metrics.observe_state(self.state)
        self.ready = True
        log.info("ledger at block %d (chain %s)", self.state.block, self.genesis.chain_id)

    # --- admission ---------------------------------------------------------------------

    def admit(self, body: bytes | dict[str, Any]) -> tuple[Extrinsic, str]:
        """Check an extrinsic at the door and queue it; return it with its hash.

        `Refused` says why not; then nothing was queued and nothing changed.
        """
        if isinstance(body, bytes) and len(body) > MAX_EXTRINSIC_BYTES:
            raise Refused(413, "too_large",
                          f"extrinsic is {len(body)} bytes; at most {MAX_EXTRINSIC_BYTES}")
        try:
            ext = (
                Extrinsic.from_json(body) if isinstance(body, bytes) else Extrinsic.from_dict(body)
            )
        except MalformedExtrinsic as exc:
            raise Refused(400, exc.code, str(exc), exc.field) from None
        if ext.chain_id != self.genesis.chain_id:
            raise Refused(400, "wrong_chain",
                          f"signed for chain '{ext.chain_id}', this is '{self.genesis.chain_id}'",
                          "chain_id")
        if ext.call not in CALLS:
            raise Refused(400, "unknown_call",
                          f"'{ext.call}' is not a call of this chain; known: "
                          + ", ".join(sorted(CALLS)), "call")
        try:
            digest = ext.verified_hash()
        except BadSigner as exc:
            raise Refused(400, exc.code, str(exc), "signer") from None
        except BadSignature as exc:
            raise Refused(401, exc.code, str(exc), "signature") from None
        if digest in self.pending_hashes or digest in self.receipts:
            raise Refused(409, "already_known", f"extrinsic {digest} was already submitted")
        on_chain = self.state.nonce(ext.signer)
        expected = on_chain + self.pending_per_signer.get(ext.signer, 0)
        if ext.nonce < expected:
            raise Refused(409, "stale_nonce",
                          f"nonce {ext.nonce} is already used; next is {expected}", "nonce")
        if ext.nonce > expected:
            raise Refused(409, "future_nonce",
                          f"nonce {ext.nonce} leaves a gap; next is {expected}", "nonce")
        self._dry_run(ext, on_chain)
        self.pending.append((ext, digest))
        self.pending_hashes.add(digest)
        self.pending_per_signer[ext.signer] = self.pending_per_signer.get(ext.signer, 0) + 1
        return ext, digest

    def _dry_run(self, ext: Extrinsic, on_chain_nonce: int) -> None:
        """Plan the call against the current state: refuse now what would surely fail.

        Planning validates everything and writes nothing. Extrinsics queued before this
        one are not taken into account, so one can still fail in its block (its receipt
        then says why); everything wrong on its own is refused here, with a 4xx.
        """
        try:
            plan(self.state, ext.signer, on_chain_nonce, ext.call, ext.params)
        except ChainError as exc:
            raise Refused(status_for(exc.code), exc.code, exc.message, exc.field) from None

    # --- blocks ------------------------------------------------------------------------

    def produce_block(self) -> BlockHeader:
        """Apply the queue, finalise, persist; only then report receipts and the header."""
        started = time.perf_counter()
        batch = self.pending[: self.max_block_extrinsics]
        extrinsics = [ext for ext, _ in batch]
        hashes = [digest for _, digest in batch]
        outcome = execute_block(self.state, extrinsics, hashes, trusted=True)
        receipts = outcome.receipts
        number = self.state.block
        root = state_root(self.state)
        digest = block_hash(number, self.parent_hash, root, hashes)
        header = BlockHeader(number, digest, self.parent_hash, root, len(batch), time.time())
        head = json.dumps({**header.to_dict(), "receipts": [r.to_dict() for r in receipts]},
                          separators=(",", ":"))
        encoded = (head[:-1] + ',"extrinsics":['
                   + ",".join(ext.model_dump_json() for ext in extrinsics) + "]}")
        snapshot = None
        if self.snapshot_every and number % self.snapshot_every == 0:
            snapshot = Snapshot(number, root, to_snapshot(self.state))
        # durable before anything is reported
        self.store.append_block(number, encoded, hashes, snapshot)

        del self.pending[: len(batch)]
        for ext, ext_hash in batch:
            self.pending_hashes.discard(ext_hash)
            left = self.pending_per_signer.get(ext.signer, 0) - 1
            if left > 0:
                self.pending_per_signer[ext.signer] = left
            else:
                self.pending_per_signer.pop(ext.signer, None)
        for ext, receipt in zip(extrinsics, receipts, strict=True):
            self._remember(number, receipt)
            self.metrics.extrinsic(ext.call, "ok" if receipt.ok else receipt.code or "failed")
            for future in self.waiters.pop(receipt.hash, []):
                if not future.done():
                    future.set_result((number, receipt))
        self.parent_hash = digest
        self.latest = header
        self.metrics.block(self.state, time.perf_counter() - started)
        for report in outcome.report.epochs:  # opening the block is almost all epoch work
            self.metrics.epoch_seconds.labels(netuid=str(report.netuid)).observe(
                outcome.open_seconds / len(outcome.report.epochs)
            )
        for queue in list(self.subscribers):
            if queue.full():
                self.subscribers.discard(queue)  # a stalled client does not stall the chain
            else:
                queue.put_nowait(header.to_dict())
        return header

    def _remember(self, number: int, receipt: Receipt) -> None:
        self.receipts[receipt.hash] = (number, receipt)
        while len(self.receipts) > RECENT_RECEIPTS:
            self.receipts.popitem(last=False)

    async def run(self) -> None:
        """Produce a block every `block_time` seconds, on a fixed schedule."""
        next_at = time.monotonic() + self.block_time
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += self.block_time
            try:
                self.produce_block()
            except StoreError:
                log.exception("cannot persist the block; stopping block production")
                self.ready = False
                raise
            if time.monotonic() > next_at + self.block_time:
                next_at = time.monotonic()  # fell behind: do not burst to catch up

    # --- receipts ----------------------------------------------------------------------

    def receipt(self, digest: str) -> dict[str, Any] | None:
        """The receipt of an extrinsic: pending, included or failed; None if unknown."""
        if digest in self.pending_hashes:
            return {"hash": digest, "status": "pending", "block": None, "index": None,
                    "code": None, "message": None, "field": None}
        found = self.receipts.get(digest)
        if found is None:
            location = self.store.receipt_location(digest)
            if location is None:
                return None
            block = self.store.block(location[0])
            if block is None:
                return None
            found = (location[0], Receipt.from_dict(block["receipts"][location[1]]))
        number, receipt = found
        return receipt_view(number, receipt)

    async def wait_for(self, digest: str, timeout: float) -> dict[str, Any] | None:
        """Wait until the extrinsic is in a stored block, or the timeout passes."""
        current = self.receipt(digest)
        if current is None or current["status"] != "pending":
            return current
        future: asyncio.Future[tuple[int, Receipt]] = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(digest, []).append(future)
        try:
            number, receipt = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return self.receipt(digest)
        return receipt_view(number, receipt)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=256)
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self.subscribers.discard(queue)


_STATUS = {
    ErrorCode.NOT_SUDO: 403,
    ErrorCode.NOT_OWNER: 403,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.TOO_MANY_REGISTRATIONS: 429,
    ErrorCode.STALE_NONCE: 409,
    ErrorCode.FUTURE_NONCE: 409,
    ErrorCode.ALREADY_REGISTERED: 409,
}


def status_for(code: str) -> int:
    """HTTP status of a refused call: 403 permission, 429 rate, 409 conflict, else 400."""
    return _STATUS.get(ErrorCode(code), 400) if code in ErrorCode._value2member_map_ else 400


def receipt_view(number: int, receipt: Receipt) -> dict[str, Any]:
    """A receipt as the API shows it."""
    return {
        "hash": receipt.hash,
        "status": "included" if receipt.ok else "failed",
        "block": number,
        "index": receipt.index,
        "code": receipt.code,
        "message": receipt.message,
        "field": receipt.field,
    }


def _header(block: dict[str, Any]) -> BlockHeader:
    return BlockHeader(
        number=block["number"], hash=block["hash"], parent_hash=block["parent_hash"],
        state_root=block["state_root"], extrinsics_count=block["extrinsics_count"],
        timestamp=block["timestamp"],
    )
