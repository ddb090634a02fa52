"""The audit: replay a stored block log and check everything a block claims.

A stored block claims a state root, a receipt per extrinsic (what `GET /v1/extrinsics`
reports, its fee included) and a place in the hash chain (its parent's hash, and its own
hash over number, parent, root and extrinsic hashes), and a seal: the genesis authority's
signature of its header (`chain/seal.py`). Replaying its extrinsics from the
previous block's state must reproduce all of them; the first block where one differs is
the one reported.

The node's startup replay and `subnetlab ledger verify` both go through `check_block`, so
the node refuses to start on a log the audit would reject, and vice versa.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from subnetlab.chain.codec import state_root
from subnetlab.chain.execution import Receipt, execute_block
from subnetlab.chain.extrinsic import ChainIdentity, Extrinsic, MalformedExtrinsic
from subnetlab.chain.model import ChainState, Genesis
from subnetlab.chain.seal import seal_problem
from subnetlab.ledger.store import BlockStore, StoreError


def genesis_hash(genesis: Genesis) -> str:
    """The identity of a chain: the hash of its canonical genesis document."""
    encoded = json.dumps(genesis.model_dump(mode="json"), sort_keys=True).encode()
    return "0x" + hashlib.blake2b(encoded, digest_size=32).hexdigest()


def identity(genesis: Genesis) -> ChainIdentity:
    """What an extrinsic for this genesis's chain is signed for (`GET /v1/chain` says the
    same); for code that signs without asking a ledger (tests, simulations)."""
    return ChainIdentity(genesis.chain_id, genesis_hash(genesis))


def block_hash(number: int, parent_hash: str, root: str, ext_hashes: list[str]) -> str:
    """Hash of a block header: number, parent, state root and the ordered extrinsics."""
    body = json.dumps([number, parent_hash, root, ext_hashes], separators=(",", ":")).encode()
    return "0x" + hashlib.blake2b(body, digest_size=32).hexdigest()


@dataclass(frozen=True)
class ChainKeys:
    """What checking a block's place and seal takes from the genesis."""

    genesis_hash: str
    authority: str

    @classmethod
    def of(cls, genesis: Genesis) -> ChainKeys:
        return cls(genesis_hash(genesis), genesis.authority)


@dataclass(frozen=True)
class VerifyResult:
    height: int
    ok: bool
    first_bad_block: int | None = None
    reason: str | None = None


def check_block(state: ChainState, block: dict[str, Any], number: int, parent: str,
                keys: ChainKeys) -> str | None:
    """Replay stored block `number` on `state` (sealed at number - 1); say why it differs.

    Returns None when the block is exactly what replaying it produces. `state` has then
    advanced to the block; after a mismatch it is in no state worth keeping.
    """
    try:
        return _differences(state, block, number, parent, keys)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return f"malformed block record: {type(exc).__name__}: {exc}"


def _differences(state: ChainState, block: dict[str, Any], number: int, parent: str,
                 keys: ChainKeys) -> str | None:
    if block["number"] != number:
        return f"record says it is block {block['number']}"
    if block["parent_hash"] != parent:
        return f"parent hash {block['parent_hash']} is not the previous block's hash {parent}"
    try:
        extrinsics = [Extrinsic.from_dict(e) for e in block["extrinsics"]]
    except MalformedExtrinsic as exc:
        return f"a stored extrinsic is malformed: {exc}"
    replayed = execute_block(state, extrinsics, parent_hash=parent).receipts
    root = state_root(state)
    if root != block["state_root"]:
        return f"state root {root} differs from the stored {block['state_root']}"
    stored = [Receipt.from_dict(r) for r in block["receipts"]]
    if len(stored) != len(replayed):
        return f"{len(stored)} receipts stored for {len(replayed)} extrinsics"
    for mine, theirs in zip(replayed, stored, strict=True):
        if (mine.hash, mine.index, mine.ok, mine.code, mine.fee) != (
            theirs.hash, theirs.index, theirs.ok, theirs.code, theirs.fee
        ):
            return (f"receipt {mine.index}: replay gives {_outcome(mine)}, "
                    f"the stored receipt says {_outcome(theirs)}")
    expected = block_hash(number, parent, root, [r.hash for r in replayed])
    if block["hash"] != expected:
        return f"block hash {block['hash']} differs from the replayed {expected}"
    # last: what the replay cannot check (the timestamp, the seal itself, a block rewritten
    # consistently) only the authority's signature vouches for
    return seal_problem(keys.authority, keys.genesis_hash, number, block["hash"],
                        block["timestamp"], block.get("seal"))


def _outcome(receipt: Receipt) -> str:
    verdict = "ok" if receipt.ok else f"failed ({receipt.code})"
    return f"{receipt.hash} {verdict}, fee {receipt.fee} rao"


def verify_chain(
    store: BlockStore, progress: Callable[[int, int], None] | None = None
) -> VerifyResult:
    """Replay blocks 1..height from the stored genesis; stop at the first mismatch."""
    raw_genesis = store.genesis()
    if raw_genesis is None:
        raise StoreError("no chain in this store: no genesis was ever written")
    try:
        genesis = Genesis.model_validate(raw_genesis)
    except ValidationError as exc:
        raise StoreError(f"the stored genesis is not a valid genesis: {exc}") from None
    state = ChainState.from_genesis(genesis)
    keys = ChainKeys.of(genesis)
    parent = keys.genesis_hash
    height = store.height()
    for number, block in enumerate(store.blocks(1, height), start=1):
        reason = check_block(state, block, number, parent, keys)
        if reason is not None:
            return VerifyResult(number - 1, False, number, reason)
        parent = block["hash"]
        if progress is not None:
            progress(number, height)
    return VerifyResult(height, True)
