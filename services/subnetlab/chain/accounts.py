"""Balance calls: transfer, faucet, sudo_set_faucet.

Every call in this package follows one shape: a *planner* reads the state and the params,
raises `ChainError` on anything wrong, and returns an `Effect`, a closure that performs the
mutation and cannot fail. `state.apply` runs the effect only after planning succeeded, so
a refused extrinsic never leaves a trace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from annotated_types import Ge, Gt, Le

from subnetlab.chain.errors import ChainError, ErrorCode
from subnetlab.chain.faucet import U64, check_budget, check_work, spend_budget
from subnetlab.chain.model import ChainState, FaucetConfig
from subnetlab.chain.params import Params, check_int

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
    """Mint a testnet drip to the origin: at most once per `cooldown_blocks` per account,
    within the faucet's block and interval budgets, and with a proof of work when the
    faucet asks for one (`pow_block`, `pow_nonce`; read and ignored when it does not).
    See `chain.faucet` for the limits and exactly what the work commits to."""
    pow_block = p.raw("pow_block")
    pow_nonce = p.raw("pow_nonce")
    if pow_block is not None:
        pow_block = check_int(pow_block, "pow_block", lo=0)
    if pow_nonce is not None:
        pow_nonce = check_int(pow_nonce, "pow_nonce", lo=0, hi=U64 - 1)
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
    if config.pow_difficulty > 0:
        check_work(state, config, origin, last, pow_block, pow_nonce)
    check_budget(state, config)
    amount = config.amount

    def effect() -> dict[str, Any]:
        acct = state.account_for_update(origin)
        acct.balance += amount
        acct.last_faucet = state.block
        state.total_issuance += amount
        state.total_faucet += amount
        spend_budget(state, config)
        return {"amount": amount}

    return effect


FAUCET_SETTINGS = tuple(name for name in FaucetConfig.model_fields)
"""What sudo_set_faucet may change: every field of the faucet's config."""


def _faucet_setting(p: Params, name: str, current: FaucetConfig | None) -> int:
    """One optional setting, checked against the config model's own bounds."""
    info = FaucetConfig.model_fields[name]
    lo: int | None = None
    hi: int | None = None
    for rule in info.metadata:
        if isinstance(rule, Ge):
            lo = int(rule.ge)  # type: ignore[call-overload]
        elif isinstance(rule, Gt):
            lo = int(rule.gt) + 1  # type: ignore[call-overload]
        elif isinstance(rule, Le):
            hi = int(rule.le)  # type: ignore[call-overload]
    default = getattr(current, name) if current is not None else info.default
    return p.opt_int(name, default, lo=lo, hi=hi)


def sudo_set_faucet(state: ChainState, origin: str, p: Params) -> Effect:
    """Turn the faucet on or off (sudo), optionally changing any of its settings (amount,
    cooldown_blocks, the budgets, the proof of work: `FAUCET_SETTINGS`).

    The faucet exists only when the genesis enables it: on a chain whose genesis has no
    faucet (a chain meant to hold value), sudo cannot conjure one, so enabling it, or
    configuring it, is refused with faucet_disabled. Settings that contradict each other
    (a budget below one drip) are refused with invalid_param naming the setting.
    """
    enabled = p.bool_("enabled")
    current = state.faucet
    given = [name for name in FAUCET_SETTINGS if p.has(name)]
    settings = {name: _faucet_setting(p, name, current) for name in FAUCET_SETTINGS}
    p.done()
    require_sudo(state, origin)
    config = None
    if current is not None:
        config = current.model_copy(update=settings)
        problem = config.problem()
        if problem is not None:
            raise ChainError(ErrorCode.INVALID_PARAM, problem[1], problem[0])
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
