"""Stake calls: add_stake, remove_stake, set_delegate_take.

A stake position is (hotkey, coldkey) -> rao. Staking to a hotkey owned by another coldkey
is delegation (nomination): the hotkey's owner keeps `take` of the dividends the hotkey
earns, the rest is shared by all positions on it pro rata (see `blocks`).
"""

from __future__ import annotations

from typing import Any

from subnetlab.chain.accounts import Effect, require_balance
from subnetlab.chain.errors import ChainError, ErrorCode
from subnetlab.chain.model import MAX_TAKE, ChainState, HotkeyInfo
from subnetlab.chain.params import Params


def known_hotkey(state: ChainState, p: Params) -> tuple[str, HotkeyInfo]:
    """The hotkey named by the `hotkey` param; it must have been registered once."""
    hotkey = p.address("hotkey")
    info = state.hotkeys.get(hotkey)
    if info is None:
        raise ChainError(
            ErrorCode.UNKNOWN_ACCOUNT,
            f"{hotkey} is not a known hotkey (it has never been registered)",
            "hotkey",
        )
    return hotkey, info


def add_stake(state: ChainState, origin: str, p: Params) -> Effect:
    """Move free balance of the origin coldkey into its position on `hotkey`."""
    hotkey, _ = known_hotkey(state, p)
    amount = p.int_("amount", lo=1)
    p.done()
    require_balance(state, origin, amount, "amount")

    def effect() -> dict[str, Any]:
        state.debit(origin, amount)
        state.add_stake_position(hotkey, origin, amount)
        return {"hotkey": hotkey, "amount": amount, "stake": state.stake_of(hotkey, origin)}

    return effect


def remove_stake(state: ChainState, origin: str, p: Params) -> Effect:
    """Move stake of the origin's position on `hotkey` back to its free balance."""
    hotkey, _ = known_hotkey(state, p)
    amount = p.int_("amount", lo=1)
    p.done()
    held = state.stake_of(hotkey, origin)
    if held < amount:
        raise ChainError(
            ErrorCode.INSUFFICIENT_STAKE,
            f"{amount} rao exceeds the {held} rao staked by the origin on {hotkey}",
            "amount",
        )

    def effect() -> dict[str, Any]:
        state.remove_stake_position(hotkey, origin, amount)
        state.credit(origin, amount)
        return {"hotkey": hotkey, "amount": amount, "stake": held - amount}

    return effect


def return_stake(state: ChainState, hotkey: str) -> dict[str, int]:
    """Move every position on `hotkey` back to its coldkey's free balance (an effect step:
    it cannot fail). Returns coldkey -> rao returned."""
    positions = dict(sorted(state.stake.get(hotkey, {}).items()))
    for coldkey, amount in positions.items():
        state.remove_stake_position(hotkey, coldkey, amount)
        state.credit(coldkey, amount)
    return positions


def set_delegate_take(state: ChainState, origin: str, p: Params) -> Effect:
    """The hotkey's owner sets its take, between 0 and MAX_TAKE (18%)."""
    hotkey, info = known_hotkey(state, p)
    take = p.real("take", 0.0, MAX_TAKE)
    p.done()
    if info.owner != origin:
        raise ChainError(ErrorCode.NOT_OWNER, f"{hotkey} belongs to another coldkey", "hotkey")

    def effect() -> dict[str, Any]:
        info.take = take
        return {"hotkey": hotkey, "take": take}

    return effect
