"""The chain's state machine: `apply` an authenticated extrinsic, `advance_block`, and roots.

This is the module the ledger imports. Everything is pure and deterministic: no I/O, no
clock, no randomness; the ledger verifies signatures and passes the authenticated origin
(an SS58 address) and the nonce it signed.

Transaction fees are the signed-extrinsic layer around a call, as in Substrate: `apply`,
`execute` and `plan` dispatch the call alone; `check_signed` (the ledger's door) and
`apply_signed` (a block) add the fee from the genesis schedule (see `fees`).

`apply` mutates the state in place and returns it. A refused extrinsic raises `ChainError`
and leaves the state exactly as it was (same state root): each call is planned (every
check, including the nonce) before anything is written, and the nonce increments only when
the call succeeds. `execute` does the same and returns the call's result (the new netuid,
uid, ...) for the ledger's receipts.

Calls and their params (see the module of each for details):

=========================  ============================================================
transfer                   dest, amount
faucet                     pow_block?, pow_nonce? (when the faucet asks for work)
sudo_set_faucet            enabled, amount?, cooldown_blocks?, block_budget?,
                           interval_budget?, interval_blocks?, pow_difficulty?,
                           pow_window_blocks?
create_subnet              hyperparameters? (partial dict)
set_hyperparameters        netuid, <name>=<value>... (owner or sudo)
sudo_set_hyperparameters   netuid, <name>=<value>... (sudo)
register                   netuid, hotkey
deregister                 netuid, hotkey (the hotkey's owning coldkey)
serve_axon                 netuid, ip, port, protocol? ("http"/"https"), hotkey?
add_stake / remove_stake   hotkey, amount
set_delegate_take          hotkey, take (0..0.18, the hotkey's owner)
set_weights                netuid, uids, weights, version_key?
commit_weights             netuid, commit_hash
reveal_weights             netuid, uids, weights, salt, version_key?
commit_evidence            netuid, epoch, digest
=========================  ============================================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from subnetlab.chain import accounts, neurons, staking, subnets, weights
from subnetlab.chain.accounts import Effect
from subnetlab.chain.blocks import BlockReport, EpochReport, advance_block, run_epoch
from subnetlab.chain.codec import from_snapshot, state_root, to_snapshot
from subnetlab.chain.errors import ChainError, ErrorCode
from subnetlab.chain.fees import after_fee, charge_fee, fee_for, fee_withheld, require_fee
from subnetlab.chain.model import (
    MAX_TAKE,
    ChainState,
    FaucetConfig,
    Genesis,
)
from subnetlab.chain.params import Params, ParseMemo, is_int
from subnetlab.chain.queries import (
    account,
    hotkey_info,
    metagraph,
    pending_commits,
    subnet_info,
    total_holdings,
)
from subnetlab.chain.units import TOKEN
from subnetlab.chain.weights import weights_commit_hash

account_info = account
"""Alias of `account` (the ledger API's name)."""

Planner = Callable[[ChainState, str, Params], Effect]

CALLS: dict[str, Planner] = {
    "transfer": accounts.transfer,
    "faucet": accounts.faucet,
    "sudo_set_faucet": accounts.sudo_set_faucet,
    "create_subnet": subnets.create_subnet,
    "set_hyperparameters": subnets.set_hyperparameters,
    "sudo_set_hyperparameters": subnets.sudo_set_hyperparameters,
    "register": neurons.register,
    "deregister": neurons.deregister,
    "serve_axon": neurons.serve_axon,
    "add_stake": staking.add_stake,
    "remove_stake": staking.remove_stake,
    "set_delegate_take": staking.set_delegate_take,
    "set_weights": weights.set_weights,
    "commit_weights": weights.commit_weights,
    "reveal_weights": weights.reveal_weights,
    "commit_evidence": weights.commit_evidence,
}
"""Every call the chain accepts, by name."""


def genesis_state(genesis: Genesis | None = None) -> ChainState:
    """The state at block 0 for `genesis` (default: an empty dev chain)."""
    return ChainState.from_genesis(genesis if genesis is not None else Genesis())


_NONCE_CODES = {str(ErrorCode.STALE_NONCE), str(ErrorCode.FUTURE_NONCE)}


def _check_nonce(state: ChainState, origin: str, nonce: object) -> None:
    if not is_int(nonce):
        raise ChainError(ErrorCode.INVALID_PARAM, f"must be an integer, got {nonce!r}", "nonce")
    expected = state.nonce(origin)
    given = int(nonce)
    if given < expected:
        raise ChainError(
            ErrorCode.STALE_NONCE,
            f"{given} was already used; the next nonce is {expected}",
            "nonce",
        )
    if given > expected:
        raise ChainError(
            ErrorCode.FUTURE_NONCE, f"{given} leaves a gap; the next nonce is {expected}", "nonce"
        )


def _planner(state: ChainState, origin: str, nonce: object, call: object) -> Planner:
    """The call's planner, once origin, call name and nonce are valid."""
    if not isinstance(origin, str) or not origin:
        raise ChainError(ErrorCode.INVALID_PARAM, "must be an SS58 address", "origin")
    planner = CALLS.get(call) if isinstance(call, str) else None
    if planner is None:
        raise ChainError(ErrorCode.UNKNOWN_CALL, f"{call!r} is not a call of this chain", "call")
    _check_nonce(state, origin, nonce)
    return planner


def plan(state: ChainState, origin: str, nonce: int, call: str, params: object) -> Effect:
    """Validate an extrinsic completely; the returned effect applies it and cannot fail.

    This is the call alone, without its transaction fee (see `check_signed` and
    `apply_signed` for what the ledger does with a signed extrinsic).
    """
    effect = _planner(state, origin, nonce, call)(state, origin, Params(params))

    def with_nonce() -> dict[str, Any]:
        result = effect()
        state.account_for_update(origin).nonce += 1
        return result

    return with_nonce


def check_signed(
    state: ChainState, origin: str, nonce: int, call: str, params: object,
    memo: ParseMemo | None = None,
) -> int:
    """The door's dry run: raise `ChainError` unless the extrinsic would succeed on its own
    in this state, fee included; return its fee. Nothing is changed.

    The call is planned as `apply_signed` will plan it: after the fee is withdrawn, so a
    signer who cannot afford fee + what the call spends is refused here. Passing the same
    `memo` (an empty dict at first) to `apply_signed` later lets that plan reuse the
    parses of this one (see `Params.parsed`): the outcome is the same, only cheaper.
    """
    planner = _planner(state, origin, nonce, call)
    fee = fee_for(state, call)
    require_fee(state, origin, fee)
    with fee_withheld(state, origin, fee):
        try:
            planner(state, origin, Params(params, memo))
        except ChainError as exc:
            raise after_fee(exc, fee) from None
    return fee


def apply_signed(
    state: ChainState, origin: str, nonce: int, call: str, params: object,
    memo: ParseMemo | None = None,
) -> tuple[int, ChainError | None]:
    """What a block does with one authenticated extrinsic; returns (fee paid, error).

    Substrate's order: the nonce is checked, the fee is withdrawn (and burned), then the
    call dispatches. A refused nonce (stale or future) changes nothing. Anything else
    consumes the nonce, so the signed bytes can never be replayed later, when they might
    succeed: a signer who cannot pay the fee pays nothing; a call that fails after the fee
    was withdrawn keeps it spent, and changes nothing else. `memo`: see `check_signed`.
    """
    try:
        planner = _planner(state, origin, nonce, call)
    except ChainError as exc:
        if exc.code not in _NONCE_CODES:
            state.account_for_update(origin).nonce += 1
        return 0, exc
    fee = fee_for(state, call)
    try:
        require_fee(state, origin, fee)
    except ChainError as exc:
        state.account_for_update(origin).nonce += 1
        return 0, exc
    charge_fee(state, origin, fee)
    try:
        effect = planner(state, origin, Params(params, memo))
    except ChainError as exc:
        state.account_for_update(origin).nonce += 1
        return fee, after_fee(exc, fee)
    effect()
    state.account_for_update(origin).nonce += 1
    return fee, None


def execute(
    state: ChainState, origin: str, nonce: int, call: str, params: object
) -> dict[str, Any]:
    """Apply one extrinsic in place and return its result; ChainError leaves state as is."""
    return plan(state, origin, nonce, call, params)()


def apply(state: ChainState, origin: str, nonce: int, call: str, params: object) -> ChainState:
    """Apply one extrinsic in place and return the (same) state; see `execute`."""
    execute(state, origin, nonce, call, params)
    return state


__all__ = [
    "CALLS",
    "MAX_TAKE",
    "TOKEN",
    "BlockReport",
    "ChainError",
    "ChainState",
    "EpochReport",
    "ErrorCode",
    "FaucetConfig",
    "Genesis",
    "account",
    "account_info",
    "advance_block",
    "apply",
    "apply_signed",
    "check_signed",
    "execute",
    "from_snapshot",
    "genesis_state",
    "hotkey_info",
    "metagraph",
    "pending_commits",
    "plan",
    "run_epoch",
    "state_root",
    "subnet_info",
    "to_snapshot",
    "total_holdings",
    "weights_commit_hash",
]
