"""The faucet's limits: a budget per block and per interval, and an optional proof of work.

Why: without limits, 100 fresh keys drew 1,000 tokens each in a tenth of a second. The
per-account cooldown cannot stop that (keys are free), so the faucet also has a chain-wide
budget (rao per block, rao per interval of `interval_blocks`) and, as btcli's testnet
faucet does, can ask every drip for a proof of work that costs the asker CPU time.

Budget accounting is lazy and deterministic: `FaucetUsage` remembers the block and the
interval window its counters belong to; a counter of an older block or window reads as
zero. Nothing happens at block boundaries, so no block step is involved. Windows are
aligned: the window of block b starts at ``b - b % interval_blocks``.

Proof of work (`pow_difficulty` > 0). A drip names `pow_block` (a sealed block) and
`pow_nonce` (0 <= nonce < 2**64); the work is

    blake2b-256(person=b"subnetlab-faucet",
                u16 len + chain_id UTF-8 || u16 len + account SS58 ASCII
                || u64 pow_block || 32-byte hash of pow_block || u64 pow_nonce)

(integers big-endian) and it must start with `pow_difficulty` zero bits. What it commits
to, and why it cannot be reused or stockpiled:
- the chain id and the block hash (which chains back to the genesis hash): not valid on
  another chain;
- the account: not transferable to another key;
- a recent block hash: `pow_block` must be one of the last `pow_window_blocks` sealed
  blocks, whose hashes the chain keeps (`record_block_hash`), so work cannot be done
  before that block exists, and expires `pow_window_blocks` blocks later;
- `pow_block` must not be older than the account's last drip: a drip at block L used
  work over a block < L, so the same work can never pay twice.
Checking costs one hash; the difficulty is capped (`MAX_POW_DIFFICULTY`) so that solving
stays bounded (2**24 hashes on average at the cap: about 15 s of one core). The settings
and their validation are `model.FaucetConfig`.
"""

from __future__ import annotations

import hashlib

from subnetlab.chain.errors import ChainError, ErrorCode
from subnetlab.chain.model import ChainState, FaucetConfig, FaucetUsage

POW_PERSON = b"subnetlab-faucet"
"""blake2b personalisation of the faucet's work (16 bytes): no other hash can serve."""

U64 = 2**64

def window_start(config: FaucetConfig, block: int) -> int:
    """First block of the interval window holding `block`."""
    return block - block % config.interval_blocks


def minted_in_block(usage: FaucetUsage, block: int) -> int:
    """rao minted so far in `block` (0 when the counter belongs to another block)."""
    return usage.block_minted if usage.block == block else 0


def minted_in_window(usage: FaucetUsage, window: int) -> int:
    """rao minted so far in the window starting at `window`."""
    return usage.window_minted if usage.window == window else 0


def check_budget(state: ChainState, config: FaucetConfig) -> None:
    """faucet_budget_exhausted when one more drip would pass the block or interval budget."""
    block = state.block
    usage = state.faucet_usage
    if minted_in_block(usage, block) + config.amount > config.block_budget:
        raise ChainError(
            ErrorCode.FAUCET_BUDGET_EXHAUSTED,
            f"block_budget: the faucet already paid {minted_in_block(usage, block)} of its "
            f"{config.block_budget} rao for block {block}; try again from block {block + 1}",
        )
    window = window_start(config, block)
    if minted_in_window(usage, window) + config.amount > config.interval_budget:
        next_window = window + config.interval_blocks
        raise ChainError(
            ErrorCode.FAUCET_BUDGET_EXHAUSTED,
            f"interval_budget: the faucet already paid {minted_in_window(usage, window)} of "
            f"its {config.interval_budget} rao for blocks {window}..{next_window - 1}; "
            f"try again from block {next_window}",
        )


def spend_budget(state: ChainState, config: FaucetConfig) -> None:
    """Count one drip of `config.amount` against both budgets (after `check_budget`)."""
    block = state.block
    window = window_start(config, block)
    usage = state.faucet_usage
    state.faucet_usage = FaucetUsage(
        block=block,
        block_minted=minted_in_block(usage, block) + config.amount,
        window=window,
        window_minted=minted_in_window(usage, window) + config.amount,
    )


def pow_active(state: ChainState) -> bool:
    """Whether drips need work (the faucet's config asks for it)."""
    return state.faucet is not None and state.faucet.pow_difficulty > 0


def record_block_hash(state: ChainState, number: int, digest: str) -> None:
    """Remember the hash of sealed block `number` for the work; forget older ones.

    Called as the next block opens. Kept only while the work is required, and only the
    last `pow_window_blocks` of them: the chain never holds more than it checks against.
    """
    if not pow_active(state):
        if state.block_hashes:
            state.block_hashes = {}
        return
    assert state.faucet is not None
    oldest = number - state.faucet.pow_window_blocks + 1
    kept = {n: h for n, h in state.block_hashes.items() if n >= oldest}
    kept[number] = digest
    state.block_hashes = kept


def _prefixed(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def work_prefix(chain_id: str, account: str, block: int, block_hash: str) -> hashlib.blake2b:
    """The hasher fed with everything but the nonce (solvers copy it for each nonce)."""
    hasher = hashlib.blake2b(digest_size=32, person=POW_PERSON)
    hasher.update(_prefixed(chain_id.encode("utf-8")))
    hasher.update(_prefixed(account.encode("ascii")))
    hasher.update(block.to_bytes(8, "big"))
    hasher.update(bytes.fromhex(block_hash.removeprefix("0x")))
    return hasher


def meets(digest: bytes, difficulty: int) -> bool:
    """Whether `digest` starts with `difficulty` zero bits."""
    return int.from_bytes(digest, "big") >> (len(digest) * 8 - difficulty) == 0


def work_digest(chain_id: str, account: str, block: int, block_hash: str, nonce: int) -> bytes:
    """The work's hash for one nonce (see the module doc)."""
    hasher = work_prefix(chain_id, account, block, block_hash)
    hasher.update(nonce.to_bytes(8, "big"))
    return hasher.digest()


def solve(
    chain_id: str, account: str, block: int, block_hash: str, difficulty: int,
    start: int, count: int,
) -> int | None:
    """The first nonce in [start, start + count) whose work meets `difficulty`, or None.

    Solvers call it in slices, to show progress and to notice when their block expires.
    """
    prefix = work_prefix(chain_id, account, block, block_hash)
    shift = 256 - difficulty
    for nonce in range(start, min(start + count, U64)):
        hasher = prefix.copy()
        hasher.update(nonce.to_bytes(8, "big"))
        if int.from_bytes(hasher.digest(), "big") >> shift == 0:
            return nonce
    return None


def check_work(
    state: ChainState, config: FaucetConfig, origin: str, last_drip: int,
    pow_block: int | None, pow_nonce: int | None,
) -> None:
    """Refuse a drip whose proof of work is missing, expired, reused or insufficient."""
    difficulty = config.pow_difficulty
    if pow_block is None or pow_nonce is None:
        raise ChainError(
            ErrorCode.FAUCET_POW_REQUIRED,
            f"is required: this faucet asks for a proof of work of {difficulty} zero bits "
            "(pow_block and pow_nonce; `subnetlab faucet` solves it)",
            "pow_nonce" if pow_block is not None else "pow_block",
        )
    block_hash = state.block_hashes.get(pow_block)
    oldest = state.block - config.pow_window_blocks
    if block_hash is None or pow_block < oldest:
        raise ChainError(
            ErrorCode.FAUCET_POW_EXPIRED,
            f"block {pow_block} is not one of the last {config.pow_window_blocks} sealed "
            f"blocks (the chain is at block {state.block}); redo the work over a recent block",
            "pow_block",
        )
    if pow_block < last_drip:
        raise ChainError(
            ErrorCode.FAUCET_POW_EXPIRED,
            f"block {pow_block} is older than this account's last drip (block {last_drip}); "
            "work over a newer block is needed",
            "pow_block",
        )
    digest = work_digest(state.chain_id, origin, pow_block, block_hash, pow_nonce)
    if not meets(digest, difficulty):
        raise ChainError(
            ErrorCode.FAUCET_POW_INVALID,
            f"the work for block {pow_block} and this nonce has fewer than {difficulty} "
            "leading zero bits",
            "pow_nonce",
        )
