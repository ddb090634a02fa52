"""The ledger node: admits signed extrinsics, produces blocks, persists them, reports receipts.

One writer, one asyncio loop: request handlers and the block producer never run at the
same time, so the in-memory state needs no locks and every block is applied in one piece.
A block is written to Redis (atomically, see `store.py`) *before* any of its receipts is
reported or its header is streamed: an extrinsic reported "included" survives a crash.

The node keeps an *open block*. Right after sealing block N (apply its extrinsics, compute
the root, persist), it opens N+1 (`open_block`: the number advances, emission accrues,
due epochs run), so `state` is always the state the next extrinsics will execute in: the
door dry-runs against it, and producing a block applies the queue to it and seals it. The
*sealed* height (`height`) is what the API and the metrics report as the chain's block.
Replay (`execute_block` = open + apply) performs the same steps in the same order, so the
node and `ledger verify` compute the same state roots.

Work per extrinsic is done once: the door's dry run keeps what it parsed (`Queued.memo`)
for the block's plan of the same extrinsic, which re-checks everything that reads the
state; a batch's signatures are checked in a worker process (`signature_worker.py`, started by
`create_app`), the one piece of door work that runs beside the writer's loop.

Every block is sealed with the genesis authority's key (`chain/seal.py`) and, when the
node was given a `ChainMemory`, its height is remembered beside the store before its
receipts are reported, so a restart on a store that lost it is refused (`memory.py`).

Crash-only: when a block cannot be persisted (or block production fails in any other way),
the in-memory state is ahead of the store and cannot be trusted. The node stops: it
refuses everything (`not_ready`, a 503 at the API's edge), answers its waiters the same,
and its process exits non-zero, so a supervisor restarts it and it replays the stored chain.

The node speaks in codes (`Refused`), never in HTTP statuses: the routes (`routes.py`)
and the one map from code to status (`edge.py`) are the API around it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

from subnetlab.chain.codec import from_snapshot, state_root, to_snapshot
from subnetlab.chain.errors import ChainError
from subnetlab.chain.execution import OpenedBlock, Receipt, apply_extrinsics, open_block
from subnetlab.chain.extrinsic import BadSigner, Extrinsic, MalformedExtrinsic, SigningParts
from subnetlab.chain.model import ChainState, Genesis
from subnetlab.chain.params import ParseMemo
from subnetlab.chain.seal import seal_block
from subnetlab.chain.state import CALLS, check_signed
from subnetlab.keys.keypair import Keypair
from subnetlab.keys.keypair import verify as verify_signature
from subnetlab.ledger.authority import authority_key
from subnetlab.ledger.batch import MalformedBatchError, iter_items
from subnetlab.ledger.memory import ChainMemory
from subnetlab.ledger.metrics import LedgerMetrics
from subnetlab.ledger.signature_worker import SignatureWorker, verify_all
from subnetlab.ledger.store import BlockStore, Snapshot, StoreError
from subnetlab.ledger.turns import Turns
from subnetlab.ledger.verify import ChainKeys, block_hash, check_block

log = logging.getLogger(__name__)

MAX_EXTRINSIC_BYTES = 64 * 1024
MAX_BATCH = 5_000
"""Extrinsics one batch request may carry."""
MAX_BATCH_BYTES = 4 * 1024 * 1024
"""Bytes one batch body may have: 5,000 transfers or ~1,700 256-weight `set_weights`."""
PARSE_SLICE_CHARS = 128 * 1024
"""Batch body decoded between two yields to the event loop (see `admit_batch`): about
5 ms of JSON decoding on the CI machine; a whole 4 MiB body takes ~160 ms."""
RECENT_RECEIPTS = 200_000
RECENT_PERSISTED = 100_000
"""Blocks whose `persisted_at` is remembered: 7 hours of fast blocks, 2 MB or so."""
ADMIT_SLICE = 20
"""Batch items checked between two yields to the event loop (see `admit_batch`): a few
milliseconds of door work, so a batch delays a block's seal by about that, not by all of
its own checks (100 `set_weights` of 256 weights take about 25 ms on the CI machine)."""
WORKER_MIN_BATCH = 8
"""Signatures a batch must have for the worker process: below that the round trip costs
more than checking them in process."""


class Refused(Exception):  # noqa: N818 (a verdict, not a fault)
    """An extrinsic refused at the door: nothing was queued, nothing changed.

    `code` says why (a `ChainError` code, or the door's own: `too_large`, `not_ready`,
    `bad_signature`, `already_known`, ...); which HTTP status that is, the API's edge
    decides (`edge.status_of`), so the node stays free of HTTP.
    """

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


@dataclass(frozen=True, slots=True)
class _Checked:
    """An extrinsic through the door's checks that read no chain state, but for the
    signature's own check (its parts are what that check needs)."""

    ext: Extrinsic
    parts: SigningParts


@dataclass(frozen=True, slots=True)
class Queued:
    """An admitted extrinsic waiting for its block: its hash, and the parses of its dry
    run at the door, which the block's plan of it reuses (see `state.check_signed`)."""

    ext: Extrinsic
    digest: str
    memo: ParseMemo


@dataclass
class BlockHeader:
    number: int
    hash: str
    parent_hash: str
    state_root: str
    extrinsics_count: int
    timestamp: float
    seal: str
    """The authority's signature of the header (`chain/seal.py`)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "hash": self.hash,
            "parent_hash": self.parent_hash,
            "state_root": self.state_root,
            "extrinsics_count": self.extrinsics_count,
            "timestamp": self.timestamp,
            "seal": self.seal,
        }


def replay(store: BlockStore, genesis: Genesis) -> tuple[ChainState, str, int]:
    """Rebuild the sealed state from the newest snapshot plus the blocks after it.

    Returns the state, the newest block's hash and the height. Every replayed block is
    checked as the audit checks it (`check_block`: seal, state root, receipts, hash chain);
    a mismatch means the store was tampered with or the code changed its rules, and is
    refused.
    """
    keys = ChainKeys.of(genesis)
    snapshot = store.latest_snapshot()
    if snapshot is None:
        state = ChainState.from_genesis(genesis)
        parent = keys.genesis_hash
        height = 0
    else:
        state = from_snapshot(snapshot.data)
        if state_root(state) != snapshot.state_root:
            raise StoreError(f"snapshot at block {snapshot.number} does not match its state root")
        stored = store.block(snapshot.number)
        if stored is None:
            raise StoreError(f"block {snapshot.number} of the snapshot is missing from the store")
        parent = stored["hash"]
        height = snapshot.number
    for block in store.blocks(height + 1):
        height += 1
        reason = check_block(state, block, height, parent, keys)
        if reason is not None:
            raise StoreError(f"block {height}: {reason}")
        parent = block["hash"]
    return state, parent, height


@dataclass
class LedgerNode:
    """The single writer of one chain.

    `authority` seals its blocks: the genesis authority's key (by default the dev key the
    genesis names, see `ledger/authority.py`). `memory`, when given, is what the ledger
    remembers of the chain beside the store: a store that lost blocks is refused
    (`LostStoreError`) before anything is written to it.
    """

    store: BlockStore
    genesis: Genesis
    block_time: float = 12.0
    snapshot_every: int = 100
    max_block_extrinsics: int = 10_000
    metrics: LedgerMetrics = field(default_factory=LedgerMetrics)
    authority: Keypair | None = None
    memory: ChainMemory | None = None
    state: ChainState = field(init=False)
    parent_hash: str = field(init=False)
    pending: list[Queued] = field(default_factory=list, init=False)
    pending_hashes: set[str] = field(default_factory=set, init=False)
    pending_per_signer: dict[str, int] = field(default_factory=dict, init=False)
    receipts: OrderedDict[str, tuple[int, Receipt]] = field(
        default_factory=OrderedDict, init=False
    )
    waiters: dict[str, list[asyncio.Future[tuple[int, Receipt]]]] = field(
        default_factory=dict, init=False
    )
    subscribers: set[asyncio.Queue[dict[str, Any] | None]] = field(
        default_factory=set, init=False
    )
    latest: BlockHeader | None = field(default=None, init=False)
    persisted_at: OrderedDict[int, float] = field(default_factory=OrderedDict, init=False)
    height: int = field(default=0, init=False)
    """The sealed height: the newest block in the store. `state` is one block ahead."""
    failure: str | None = field(default=None, init=False)
    """Why block production stopped; None while the node runs (see `stop`)."""
    turns: Turns = field(default_factory=Turns, init=False)
    """Requests admit their extrinsics one after the other, in arrival order, even when a
    batch yields to the loop or waits for its signatures (see `admit_batch`)."""
    signatures: SignatureWorker | None = field(default=None, init=False)
    """The worker process checking batches' signatures; None: all in process (the
    default; `create_app` starts one for a served ledger)."""

    def __post_init__(self) -> None:
        self.sealer = self.authority or authority_key(self.genesis)
        if self.sealer.ss58_address != self.genesis.authority:
            raise ValueError(f"the authority key {self.sealer.ss58_address} is not the "
                             f"genesis authority {self.genesis.authority}")
        self.genesis_hash = ChainKeys.of(self.genesis).genesis_hash
        if self.memory is not None:  # before anything is written to the store
            self.memory.check(self.genesis_hash, self.store.height())
        self.store.write_genesis(self.genesis.model_dump(mode="json"))
        self.state, self.parent_hash, self.height = replay(self.store, self.genesis)
        if self.memory is not None:
            self.memory.start(self.genesis_hash, self.genesis.salt)
            self.memory.record(self.height)
        if self.height:
            stored = self.store.block(self.height)
            if stored is not None:
                self.latest = _header(stored)
        self._observe_opening(open_block(self.state, self.parent_hash))
        self.metrics.observe_state(self.state, self.height)
        log.info("ledger at block %d (chain %s)", self.height, self.genesis.chain_id)

    @property
    def ready(self) -> bool:
        """Loaded and producing blocks: false for good once block production stopped."""
        return self.failure is None

    def not_ready(self) -> Refused:
        """The refusal for everything once block production stopped (see `stop`)."""
        return Refused("not_ready",
                       f"the ledger stopped producing blocks and must restart: {self.failure}")

    # --- admission ---------------------------------------------------------------------

    def admit(self, body: bytes | Any, size: int) -> tuple[Extrinsic, str]:
        """Check an extrinsic at the door and queue it; return it with its hash.

        `body` is the request body, or a batch item already decoded; `size` is its bytes
        in the request either way. `Refused` says why not; then nothing was queued and
        nothing changed. The checks, in order: size, shape, chain, call, signer,
        signature (here, in process), then against the open block: already known, nonce,
        dry run.
        """
        checked = self._check_alone(body, size)
        parts = checked.parts
        return self._admit_checked(
            checked, verify_signature(parts.signature, parts.payload, parts.public_key))

    def _check_alone(self, body: bytes | Any, size: int) -> _Checked:
        """The checks that read no chain state (all but the signature's own check)."""
        if self.failure is not None:
            raise self.not_ready()
        if size > MAX_EXTRINSIC_BYTES:
            raise Refused("too_large",
                          f"extrinsic is {size} bytes; at most {MAX_EXTRINSIC_BYTES}", "body")
        try:
            ext = (
                Extrinsic.from_json(body) if isinstance(body, bytes) else Extrinsic.from_dict(body)
            )
        except MalformedExtrinsic as exc:
            raise Refused(exc.code, str(exc), exc.field) from None
        if ext.chain_id != self.genesis.chain_id:
            raise Refused("wrong_chain",
                          f"signed for chain '{ext.chain_id}', this is '{self.genesis.chain_id}'",
                          "chain_id")
        if ext.genesis_hash != self.genesis_hash:
            raise Refused("wrong_genesis",
                          f"signed for the chain with genesis {ext.genesis_hash}, this chain's "
                          f"genesis is {self.genesis_hash} (GET /v1/chain): an extrinsic of "
                          "another chain, or of this chain id before it started again",
                          "genesis_hash")
        if ext.call not in CALLS:
            raise Refused("unknown_call",
                          f"'{ext.call}' is not a call of this chain; known: "
                          + ", ".join(sorted(CALLS)), "call")
        try:
            return _Checked(ext, ext.signing_parts())
        except BadSigner as exc:
            raise Refused(exc.code, str(exc), "signer") from None

    def _admit_checked(self, checked: _Checked, signature_ok: bool) -> tuple[Extrinsic, str]:
        """The rest of `admit`, once the signature's verdict is known."""
        if self.failure is not None:
            raise self.not_ready()
        ext, digest = checked.ext, checked.parts.hash
        if not signature_ok:
            exc = ext.bad_signature()
            raise Refused(exc.code, str(exc), "signature")
        if digest in self.pending_hashes or digest in self.receipts:
            raise Refused("already_known",
                          f"extrinsic {digest} was already submitted (the same signed bytes)",
                          "signature")
        on_chain = self.state.nonce(ext.signer)
        expected = on_chain + self.pending_per_signer.get(ext.signer, 0)
        if ext.nonce < expected:
            raise Refused("stale_nonce",
                          f"nonce {ext.nonce} is already used; next is {expected}", "nonce")
        if ext.nonce > expected:
            raise Refused("future_nonce",
                          f"nonce {ext.nonce} leaves a gap; next is {expected}", "nonce")
        memo: ParseMemo = {}
        self._dry_run(ext, on_chain, memo)
        self.pending.append(Queued(ext, digest, memo))
        self.pending_hashes.add(digest)
        self.pending_per_signer[ext.signer] = self.pending_per_signer.get(ext.signer, 0) + 1
        return ext, digest

    async def admit_in_turn(self, body: bytes) -> tuple[Extrinsic, str]:
        """`admit` one extrinsic in its turn: after every request that arrived before it."""
        async with self.turns.ticket() as my_turn:
            checked = self._check_alone(body, len(body))
            parts = checked.parts
            ok = verify_signature(parts.signature, parts.payload, parts.public_key)
            await my_turn()
            return self._admit_checked(checked, ok)

    async def admit_batch(self, raw: bytes) -> list[tuple[Extrinsic, str] | Refused]:
        """Decode a batch body and `admit` each item in order; each gets its own outcome.

        Decoding and checking a big batch are the writer's longest pieces of work (JSON,
        signatures, dry runs), so they yield to the event loop: decoding every
        `PARSE_SLICE_CHARS` of body, checking every `ADMIT_SLICE` items. The block timer
        fires on time and blocks are sealed in between, instead of after the whole batch.
        The body is decoded completely before anything is admitted, so a body that is not
        valid JSON is refused whole (`Refused` `malformed_batch`, as is one with more
        than `MAX_BATCH` items, `too_large`), and nothing is queued.

        First every item gets the checks that read no chain state, and the signatures
        of those that pass go to the signature worker (`signatures`, when there is one
        and the batch has at least `WORKER_MIN_BATCH` of them; in process otherwise),
        while the loop serves other requests and seals blocks. Then, in the request's
        turn (`turns`: after every request that arrived before it, so a client's
        consecutive nonces spread over several requests still queue in order), each item
        is checked against the open block and queued. A block sealed meanwhile changes
        nothing for the items after it: each is checked against the open block, as if it
        had arrived a moment later. Every item meets the checks of `admit`, in its order.
        """
        outcomes: list[tuple[Extrinsic, str] | Refused] = []
        async with self.turns.ticket() as my_turn:
            items = await self._decode_batch(raw)
            checked: list[_Checked | Refused] = []
            for i, (item, size) in enumerate(items):
                if i and i % ADMIT_SLICE == 0:
                    await asyncio.sleep(0)
                try:
                    checked.append(self._check_alone(item, size))
                except Refused as exc:
                    checked.append(exc)
            verdicts = iter(await self._verify([c for c in checked if isinstance(c, _Checked)]))
            await my_turn()
            for i, item_checked in enumerate(checked):
                if i and i % ADMIT_SLICE == 0:
                    await asyncio.sleep(0)
                if isinstance(item_checked, Refused):
                    outcomes.append(item_checked)
                    continue
                try:
                    outcomes.append(self._admit_checked(item_checked, next(verdicts)))
                except Refused as exc:
                    outcomes.append(exc)
        return outcomes

    async def _verify(self, checked: list[_Checked]) -> list[bool]:
        """Each item's signature verdict: from the worker for a batch worth sending."""
        triples = [(c.parts.signature, c.parts.payload, c.parts.public_key) for c in checked]
        if self.signatures is not None and len(triples) >= WORKER_MIN_BATCH:
            return await self.signatures.verify(triples)
        return verify_all(triples)

    async def _decode_batch(self, raw: bytes) -> list[tuple[Any, int]]:
        """The batch's items with their sizes, decoded in slices between yields to the
        loop. Sizes come from the body itself: re-encoding each item to measure it cost
        as much as checking its signature."""
        items: list[tuple[Any, int]] = []
        pause_at = PARSE_SLICE_CHARS
        try:
            for item, size, offset in iter_items(raw):
                if len(items) == MAX_BATCH:
                    raise Refused("too_large",
                                  f"more than {MAX_BATCH} extrinsics; at most {MAX_BATCH}",
                                  "extrinsics")
                items.append((item, size))
                if offset >= pause_at:
                    await asyncio.sleep(0)
                    pause_at = offset + PARSE_SLICE_CHARS
        except MalformedBatchError as exc:
            raise Refused("malformed_batch", exc.message, exc.field) from None
        return items

    def _dry_run(self, ext: Extrinsic, on_chain_nonce: int, memo: ParseMemo) -> None:
        """Plan the call, after its fee, against the open block: refuse now what would
        surely fail, an unaffordable fee included (insufficient_balance naming the fee).

        The open block is the state the extrinsic executes in (its number, its per-block
        counters, the epochs that ran when it opened), so rate limits and per-block
        registration limits are judged for the right block. Planning validates everything
        and writes nothing. Extrinsics queued before this one are not taken into account,
        so one can still fail in its block (its receipt then says why); everything wrong
        on its own is refused here, with its code. What the plan parsed is kept in `memo`
        for the block's plan of the same extrinsic.
        """
        try:
            check_signed(self.state, ext.signer, on_chain_nonce, ext.call, ext.params, memo)
        except ChainError as exc:
            raise Refused(exc.code, exc.message, exc.field) from None

    # --- blocks ------------------------------------------------------------------------

    def produce_block(self) -> BlockHeader:
        """Apply the queue to the open block, seal, persist; report; open the next block."""
        started = time.perf_counter()
        batch = self.pending[: self.max_block_extrinsics]
        extrinsics = [queued.ext for queued in batch]
        hashes = [queued.digest for queued in batch]
        receipts = apply_extrinsics(self.state, extrinsics, hashes, trusted=True,
                                    memos=[queued.memo for queued in batch])
        number = self.state.block
        root = state_root(self.state)
        digest = block_hash(number, self.parent_hash, root, hashes)
        sealed_at = time.time()
        seal = seal_block(self.sealer, self.genesis_hash, number, digest, sealed_at)
        header = BlockHeader(number, digest, self.parent_hash, root, len(batch), sealed_at,
                             seal)
        head = json.dumps({**header.to_dict(), "receipts": [r.to_dict() for r in receipts]},
                          separators=(",", ":"))
        encoded = (head[:-1] + ',"extrinsics":['
                   + ",".join(ext.model_dump_json() for ext in extrinsics) + "]}")
        snapshot = None
        if self.snapshot_every and number % self.snapshot_every == 0:
            snapshot = Snapshot(number, root, to_snapshot(self.state))  # the sealed state
        # durable before anything is reported
        self.store.append_block(number, encoded, hashes, snapshot)
        if self.memory is not None:  # remembered before any receipt is reported
            self.memory.record(number)
        self._persisted_at(number, time.time())  # the earliest a receipt can be reported
        self.height = number

        del self.pending[: len(batch)]
        self.pending_hashes.difference_update(hashes)
        for ext in extrinsics:
            left = self.pending_per_signer.get(ext.signer, 0) - 1
            if left > 0:
                self.pending_per_signer[ext.signer] = left
            else:
                self.pending_per_signer.pop(ext.signer, None)
        outcomes: Counter[tuple[str, str]] = Counter()
        for ext, receipt in zip(extrinsics, receipts, strict=True):
            self._remember(number, receipt)
            outcomes[ext.call, "ok" if receipt.ok else receipt.code or "failed"] += 1
            waiting = self.waiters.pop(receipt.hash, None) if self.waiters else None
            for future in waiting or ():
                if not future.done():
                    future.set_result((number, receipt))
        for (call, result), count in outcomes.items():
            self.metrics.extrinsic(call, result, count)
        self.parent_hash = digest
        self.latest = header
        # before any waiter or request runs again: they all see block number + 1 open
        self._observe_opening(open_block(self.state, self.parent_hash))
        self.metrics.block(self.height, time.perf_counter() - started)
        for queue in list(self.subscribers):
            if queue.full():
                self.subscribers.discard(queue)  # a stalled client does not stall the chain
            else:
                queue.put_nowait(self.header_view(header))
        return header

    def _persisted_at(self, number: int, when: float) -> None:
        self.persisted_at[number] = when
        while len(self.persisted_at) > RECENT_PERSISTED:
            self.persisted_at.popitem(last=False)

    def header_view(self, header: BlockHeader) -> dict[str, Any]:
        """A header as the API shows it: with `persisted_at`, the wall-clock moment this
        process had the block stored in Redis (its receipts are reported only after), or
        None for a block stored before this process started or long ago.

        `timestamp` is when the block was sealed, before it was stored; it is part of the
        stored block. `persisted_at` cannot be (it is known only once the block is), so it
        is kept in memory for the last `RECENT_PERSISTED` blocks.
        """
        return {**header.to_dict(), "persisted_at": self.persisted_at.get(header.number)}

    def _observe_opening(self, opened: OpenedBlock) -> None:
        """Epoch durations: opening a block is almost all epoch work, shared among them."""
        for report in opened.report.epochs:
            self.metrics.epoch_seconds.labels(netuid=str(report.netuid)).observe(
                opened.seconds / len(opened.report.epochs)
            )

    def _remember(self, number: int, receipt: Receipt) -> None:
        self.receipts[receipt.hash] = (number, receipt)
        while len(self.receipts) > RECENT_RECEIPTS:
            self.receipts.popitem(last=False)

    async def run(self) -> None:
        """Produce a block every `block_time` seconds, on a fixed schedule, until stopped.

        Returns only once block production failed (see `stop`); the caller then ends the
        process, non-zero, so that a supervisor restarts it.
        """
        next_at = time.monotonic() + self.block_time
        while self.failure is None:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += self.block_time
            try:
                self.produce_block()
            except StoreError as exc:
                self.stop(f"cannot persist block {self.height + 1}: {exc}")
            except Exception as exc:  # any other fault leaves the state half-applied too
                log.exception("block production failed")
                self.stop(f"block {self.height + 1} failed: {type(exc).__name__}: {exc}")
            if time.monotonic() > next_at + self.block_time:
                next_at = time.monotonic()  # fell behind: do not burst to catch up

    def stop(self, reason: str) -> None:
        """Stop for good: refuse everything, answer waiters `not_ready`, end block streams.

        The open state may hold a block that was applied but never stored, so nothing is
        served from it any more; the store is the truth, and a restart replays it.
        """
        if self.failure is not None:
            return
        self.failure = reason
        log.error("block production stopped: %s", reason)
        refusal = self.not_ready()
        for futures in self.waiters.values():
            for future in futures:
                if not future.done():
                    future.set_exception(refusal)
        self.waiters.clear()
        for queue in list(self.subscribers):
            if not queue.full():
                queue.put_nowait(None)  # end of stream
        self.subscribers.clear()

    # --- receipts ----------------------------------------------------------------------

    def receipt(self, digest: str) -> dict[str, Any] | None:
        """The receipt of an extrinsic: pending, included or failed; None if unknown."""
        if digest in self.pending_hashes:
            return {"hash": digest, "status": "pending", "block": None, "index": None,
                    "code": None, "message": None, "field": None, "fee": None}
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
        """Wait until the extrinsic is in a stored block, or the timeout passes.

        Raises `Refused` (`not_ready`) when block production stops meanwhile.
        """
        if self.failure is not None:
            raise self.not_ready()
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

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        """A queue of new block headers; None marks the end (block production stopped)."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=256)
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self.subscribers.discard(queue)


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
        "fee": receipt.fee,
    }


def _header(block: dict[str, Any]) -> BlockHeader:
    return BlockHeader(
        number=block["number"], hash=block["hash"], parent_hash=block["parent_hash"],
        state_root=block["state_root"], extrinsics_count=block["extrinsics_count"],
        timestamp=block["timestamp"], seal=block["seal"],
    )
