"""Balance calls: transfer, faucet, sudo_set_faucet.

Every call in this package follows one shape: a *planner* reads the state and the params,
raises `ChainError` on anything wrong, and returns an `Effect`, a closure that performs the
mutation and cannot fail. `state.apply` runs the effect only after planning succeeded, so
a refused extrinsic never leaves a trace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from subnetlab.chain.errors import ChainError, ErrorCode
from subnetlab.chain.model import ChainState, FaucetConfig
from subnetlab.chain.params import Params

Effect = Callable[[], dict[str, Any]]
"""A validated mutation; returns the call's result (what the ledger reports back)."""


def require_balance(state: ChainState, origin: str, amount: int, field: str) -> None:
    """insufficient_balance unless `origin` holds `amount` rao free."""
    free = state.balance(origin)
    if free < amount:
        raise ChainError(
            ErrorCode.INSUFFICIENT_BALANCE,
            f"{amount} rao exceeds the free balance of {free} rao",
            field,
        )


def require_sudo(state: ChainState, origin: str) -> None:
    """not_sudo unless `origin` is the chain's sudo key."""
    if state.sudo is None or origin != state.sudo:
        raise ChainError(ErrorCode.NOT_SUDO, "this call needs the sudo key", "origin")


def transfer(state: ChainState, origin: str, p: Params) -> Effect:
    """Move free balance from the origin to `dest` (a new account is created on credit)."""
    dest = p.address("dest")
    amount = p.int_("amount", lo=1)
    p.done()
    require_balance(state, origin, amount, "amount")

    def effect() -> dict[str, Any]:
        state.debit(origin, amount)
        state.credit(dest, amount)
        return {"dest": dest, "amount": amount}

    return effect


def faucet(state: ChainState, origin: str, p: Params) -> Effect:
    """Mint a testnet drip to the origin, at most once per `cooldown_blocks` per account."""
    p.done()
    config = state.faucet
    if config is None or not state.faucet_enabled:
        raise ChainError(ErrorCode.FAUCET_DISABLED, "the faucet is disabled on this chain")
    acct = state.accounts.get(origin)
    last = acct.last_faucet if acct is not None else -1
    if last >= 0 and state.block - last < config.cooldown_blocks:
        wait = last + config.cooldown_blocks - state.block
        raise ChainError(
            ErrorCode.RATE_LIMITED,
            f"last drip at block {last}; the next is allowed in {wait} block(s)",
            "origin",
        )
    amount = config.amount

    def effect() -> dict[str, Any]:
        acct = state.account_for_update(origin)
        acct.balance += amount
        acct.last_faucet = state.block
        state.total_issuance += amount
        state.total_faucet += amount
        return {"amount": amount}

    return effect


def sudo_set_faucet(state: ChainState, origin: str, p: Params) -> Effect:
    """Turn the faucet on or off (sudo), optionally changing its amount and cooldown.

    The faucet exists only when the genesis enables it: on a chain whose genesis has no
    faucet (a chain meant to hold value), sudo cannot conjure one, so enabling it, or
    configuring it, is refused with faucet_disabled.
    """
    enabled = p.bool_("enabled")
    current = state.faucet
    given = [name for name in ("amount", "cooldown_blocks") if p.has(name)]
    amount = p.opt_int("amount", current.amount if current else 1, lo=1)
    cooldown = p.opt_int("cooldown_blocks", current.cooldown_blocks if current else 0, lo=0)
    p.done()
    require_sudo(state, origin)
    config = None
    if current is not None:
        config = FaucetConfig(amount=amount, cooldown_blocks=cooldown)
    elif enabled or given:
        raise ChainError(
            ErrorCode.FAUCET_DISABLED,
            "this chain's genesis has no faucet, so it cannot be enabled or configured",
            "enabled" if enabled else given[0],
        )

    def effect() -> dict[str, Any]:
        state.faucet = config
        state.faucet_enabled = enabled
        return {"enabled": enabled}

    return effect
