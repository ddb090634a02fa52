"""Client side of the faucet's proof of work: find what a drip must carry, when asked.

Why here and not in each client: the CLI (with a progress bar) and the operator (without)
both drip, and both must do exactly the work the chain checks (`chain.faucet`), so the
search is done once, by `chain.faucet.solve`, over what ``GET /v1/faucet`` names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from subnetlab.chain.faucet import solve
from subnetlab.ledger.client import LedgerClient, LedgerError

SLICE = 1 << 15
"""Nonces tried between two progress reports (a few hundredths of a second)."""

Progress = Callable[[int, int], None]
"""progress(nonces tried so far, expected number of tries) after each slice."""

RETRY_CODES = frozenset({"faucet_pow_expired"})
"""A drip refused with these codes is worth one more solve over a newer block."""


def _work(info: dict[str, Any], url: str) -> tuple[int, str, int] | None:
    work = info.get("work")
    if work is None:
        return None
    try:
        block, digest, difficulty = work["block"], work["block_hash"], work["difficulty"]
        valid = (type(block) is int and type(difficulty) is int and isinstance(digest, str)
                 and len(bytes.fromhex(digest.removeprefix("0x"))) == 32)
    except (KeyError, TypeError, ValueError):
        valid = False
    if not valid:
        raise LedgerError("bad_response", f"GET /v1/faucet answered without a valid 'work'; "
                          f"is {url} a subnetlab ledger?")
    return block, digest, difficulty


def faucet_params(
    client: LedgerClient, account: str, progress: Progress | None = None
) -> dict[str, int]:
    """The params of a `faucet` call by `account`: {} when the faucet asks for no work,
    else the `pow_block` and `pow_nonce` of a solved proof over the newest sealed block."""
    return solve_faucet_work(client.faucet(), client.url, client.chain_id(), account, progress)


def solve_faucet_work(
    info: dict[str, Any], url: str, chain_id: str, account: str,
    progress: Progress | None = None,
) -> dict[str, int]:
    """:func:`faucet_params` from a ``GET /v1/faucet`` answer already read: CPU work only,
    so an asyncio caller (the operator) runs it in a thread with no client in it."""
    work = _work(info, url)
    if work is None:
        return {}
    block, digest, difficulty = work
    expected = 1 << difficulty
    start = 0
    while True:
        nonce = solve(chain_id, account, block, digest, difficulty, start, SLICE)
        start += SLICE
        if nonce is not None:
            if progress is not None:
                progress(expected, expected)
            return {"pow_block": block, "pow_nonce": nonce}
        if progress is not None:
            progress(start, expected)
