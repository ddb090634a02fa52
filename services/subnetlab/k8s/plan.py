"""What to change on the ledger to match a spec: pure decisions, no I/O.

The reconciler reads the ledger, asks these functions what differs, and submits only
that. Re-running a plan against a ledger that already matches yields nothing, which is
what makes the operator idempotent across retries and restarts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from subnetlab.chain.hyperparameters import Hyperparameters
from subnetlab.ledger.client import TOKEN, LedgerError

DYNAMIC_HYPERPARAMETERS = frozenset({"burn"})
"""Moved by the chain itself (the burn adjusts to registrations): set when the spec
changes it, never "corrected" back on a routine sync."""

TEMPORARY_CODES = frozenset({
    "rate_limited", "too_many_registrations", "insufficient_balance", "stale_nonce",
    "future_nonce", "timeout", "already_known", "subnet_full",
})
"""Ledger refusals that can pass by themselves (the next block, the faucet's cooldown, a
pruned uid): retried with backoff. Anything else is a refusal of what the spec asks."""


def hyperparameter_changes(
    desired: Hyperparameters, current: Mapping[str, Any], include_dynamic: bool
) -> dict[str, Any]:
    """`{name: value}` of every hyperparameter whose ledger value differs from the spec's."""
    wanted = desired.model_dump(mode="json")
    return {
        name: value for name, value in wanted.items()
        if current.get(name) != value
        and (include_dynamic or name not in DYNAMIC_HYPERPARAMETERS)
    }


BURN_PATH = ("spec", "hyperparameters", "burn")


def rao(tokens: float) -> int:
    """Tokens from a spec as integer rao (the spec's float has at most rao precision)."""
    return round(tokens * TOKEN)


def stake_position(account: Mapping[str, Any], hotkey: str) -> int:
    """Rao the account has staked on `hotkey` (0 when it holds no position there)."""
    for position in account.get("stake", []):
        if position.get("hotkey") == hotkey:
            return int(position.get("amount", 0))
    return 0


@dataclass(frozen=True)
class StakeChange:
    call: Literal["add_stake", "remove_stake"]
    amount: int


def stake_change(desired: int, current: int, exact: bool) -> StakeChange | None:
    """The one extrinsic that brings a stake position from `current` towards `desired` rao.

    A position grows by itself (dividends are paid into it), so a routine pass only tops
    it up to `desired`; only when the spec's stake was just changed (`exact`) is the
    position set to exactly `desired`, removing stake if needed.
    """
    if desired > current:
        return StakeChange("add_stake", desired - current)
    if exact and desired < current:
        return StakeChange("remove_stake", current - desired)
    return None


STAKE_PATH = ("spec", "stake")


def touches(diff: Iterable[tuple[Any, ...]], target: tuple[str, ...]) -> bool:
    """Whether a kopf update diff (op, path, old, new) may have changed `target`."""
    for entry in diff:
        path = tuple(entry[1])
        common = min(len(path), len(target))
        if path[:common] == target[:common]:
            return True
    return False


def uid_of(metagraph: Mapping[str, Any], hotkey: str) -> dict[str, Any] | None:
    """The metagraph row of `hotkey`, None when it holds no uid."""
    return next((dict(n) for n in metagraph.get("neurons", []) if n.get("hotkey") == hotkey),
                None)


def is_temporary(error: LedgerError) -> bool:
    """Whether a ledger refusal may pass by itself (retry) or needs a spec change."""
    return error.code in TEMPORARY_CODES or (error.status or 0) >= 500


def backoff(retry: int, cap: float, base: float = 1.0) -> float:
    """Exponential backoff for attempt `retry` (0-based): base, 2 base, 4 base, ... cap."""
    return float(min(cap, base * 2 ** min(retry, 30)))
