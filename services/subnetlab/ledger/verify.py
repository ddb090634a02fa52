"""The audit: replay a chain's whole block log from genesis and check every state root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from subnetlab.chain.codec import state_root
from subnetlab.chain.execution import execute_block
from subnetlab.chain.extrinsic import Extrinsic
from subnetlab.chain.model import ChainState, Genesis
from subnetlab.ledger.store import BlockStore, StoreError


@dataclass(frozen=True)
class VerifyResult:
    height: int
    ok: bool
    first_bad_block: int | None = None
    reason: str | None = None


def verify_chain(
    store: BlockStore, progress: Callable[[int, int], None] | None = None
) -> VerifyResult:
    """Replay blocks 1..height from the stored genesis; stop at the first mismatch."""
    raw_genesis = store.genesis()
    if raw_genesis is None:
        raise StoreError("no chain in this store: no genesis was ever written")
    state = ChainState.from_genesis(Genesis.model_validate(raw_genesis))
    height = store.height()
    for block in store.blocks(1, height):
        number = int(block["number"])
        execute_block(state, [Extrinsic.from_dict(e) for e in block["extrinsics"]])
        root = state_root(state)
        if root != block["state_root"]:
            return VerifyResult(number - 1, False, number,
                                f"state root {root} differs from the stored {block['state_root']}")
        if progress is not None:
            progress(number, height)
    return VerifyResult(height, True)
