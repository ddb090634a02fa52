"""Executing a block: the ordered extrinsics of one block applied to the chain state.

One function serves both the live ledger and the audit replay (`subnetlab ledger verify`),
so replaying the stored block log must reproduce every state root exactly.

Rules:
- every extrinsic's signature is checked again here (the audit trusts nothing stored);
- the signer's transaction fee (the genesis schedule, see `fees`) is withdrawn and burned
  before the call dispatches, and stays spent when the call then fails, as in Substrate;
- an extrinsic that the state machine refuses is recorded with a failed receipt and its
  nonce is still consumed, as in Substrate, so the signed bytes can never be replayed
  later, when they might succeed; a refused nonce (stale or future) consumes nothing;
  see `state.apply_signed`;
- the block opens first, as subtensor's `on_initialize` does: the number advances,
  emission accrues and every subnet whose tempo has come runs its epoch; then the
  extrinsics apply, in order, at that block number.

The two steps are separate functions because the live ledger runs them at different
moments: it opens block N+1 right after sealing block N, so that extrinsics arriving in
between are checked at the door against the state they will really execute in, and applies
them only when it produces the block. The order of operations on the state is the same as
`execute_block`'s, which is what the audit replays; so the state roots are the same too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from subnetlab.chain.blocks import BlockReport
from subnetlab.chain.extrinsic import BadSignature, BadSigner, Extrinsic
from subnetlab.chain.faucet import record_block_hash
from subnetlab.chain.model import ChainState
from subnetlab.chain.params import ParseMemo
from subnetlab.chain.state import advance_block, apply_signed


@dataclass(frozen=True)
class Receipt:
    """What happened to one extrinsic in a block."""

    hash: str
    index: int
    ok: bool
    code: str | None = None
    message: str | None = None
    field: str | None = None
    fee: int = 0
    """rao withdrawn (and burned) for the extrinsic, also when its call failed."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "index": self.index,
            "ok": self.ok,
            "code": self.code,
            "message": self.message,
            "field": self.field,
            "fee": self.fee,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Receipt:
        return cls(
            hash=data["hash"], index=data["index"], ok=data["ok"], code=data.get("code"),
            message=data.get("message"), field=data.get("field"), fee=data.get("fee", 0),
        )


def apply_extrinsic(
    state: ChainState, ext: Extrinsic, index: int, digest: str | None = None,
    trusted: bool = False, memo: ParseMemo | None = None,
) -> Receipt:
    """Apply one signed extrinsic; never raises for a refused one (the receipt says why).

    `trusted` skips the signature check for extrinsics this very process verified at its
    door moments ago; replays of stored blocks never pass it. `memo`: the parses of the
    door's dry run of this extrinsic (see `state.check_signed`).
    """
    if trusted:
        digest = digest or ext.hash
    else:
        try:
            verified = ext.verified_hash()  # the payload encoded once for both
        except (BadSignature, BadSigner) as exc:
            return Receipt(digest or ext.hash, index, False, exc.code, str(exc))
        digest = digest or verified
    fee, error = apply_signed(state, ext.signer, ext.nonce, ext.call, ext.params, memo)
    if error is not None:
        return Receipt(digest, index, False, error.code, error.message, error.field, fee)
    return Receipt(digest, index, True, fee=fee)


@dataclass(frozen=True)
class OpenedBlock:
    """What opening a block did (emission, epochs) and how long it took (mostly epochs)."""

    report: BlockReport
    seconds: float


@dataclass(frozen=True)
class BlockOutcome:
    """A block's receipts, what opening it did (emission, epochs) and how long that took."""

    receipts: list[Receipt]
    report: BlockReport
    open_seconds: float


def open_block(state: ChainState, parent_hash: str | None = None) -> OpenedBlock:
    """Start the next block: the number advances, emission accrues, due epochs run.

    `parent_hash`, the hash of the block just sealed (the genesis hash before block 1), is
    remembered while the faucet asks for work over recent blocks (`faucet.record_block_hash`);
    the live ledger and the replay pass the same one, so their state roots agree.
    """
    started = time.perf_counter()
    if parent_hash is not None:
        record_block_hash(state, state.block, parent_hash)
    report = advance_block(state)
    return OpenedBlock(report, time.perf_counter() - started)


def apply_extrinsics(
    state: ChainState,
    extrinsics: list[Extrinsic],
    hashes: list[str] | None = None,
    trusted: bool = False,
    memos: list[ParseMemo] | None = None,
) -> list[Receipt]:
    """Apply a block's extrinsics in order to an opened block; one receipt each.

    `hashes` (the extrinsics' hashes, when the caller has them) saves recomputing them;
    `memos`, one per extrinsic, carry the parses of their dry runs (`state.check_signed`).
    """
    digests: list[str | None] = list(hashes) if hashes is not None else [None] * len(extrinsics)
    parses: list[ParseMemo | None] = list(memos) if memos is not None else [None] * len(extrinsics)
    return [
        apply_extrinsic(state, ext, i, digest, trusted, memo)
        for i, (ext, digest, memo) in enumerate(zip(extrinsics, digests, parses, strict=True))
    ]


def execute_block(
    state: ChainState,
    extrinsics: list[Extrinsic],
    hashes: list[str] | None = None,
    trusted: bool = False,
    parent_hash: str | None = None,
) -> BlockOutcome:
    """Open the next block, then apply its extrinsics: a stored block, replayed.
    `parent_hash`: see `open_block`."""
    opened = open_block(state, parent_hash)
    receipts = apply_extrinsics(state, extrinsics, hashes, trusted)
    return BlockOutcome(receipts, opened.report, opened.seconds)
