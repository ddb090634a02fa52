"""Transaction fees: what a signed extrinsic pays for its place in a block.

As Substrate's transaction-payment pallet does (`ChargeTransactionPayment`), the fee is
withdrawn from the signer's free balance *before* the call dispatches, and it is not
refunded when the call then fails in its block: the block did the work of including it.
So a call is planned against the balance left after the fee, and a signer must afford
fee + whatever the call spends (a transfer's amount, a stake, a burn, a subnet lock).

Fees are burned: `total_issuance` falls by the fee and `total_fees` counts every rao
burned this way, so conservation (issuance = holdings) holds exactly. The schedule (rao
per call name, calls not listed are free) comes from the genesis; see
`model.DEFAULT_FEES` for the dev default.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from subnetlab.chain.errors import ChainError, ErrorCode
from subnetlab.chain.model import ChainState


def fee_for(state: ChainState, call: str) -> int:
    """The fee in rao an extrinsic of `call` pays on this chain (0: free)."""
    return state.fees.get(call, 0)


def require_fee(state: ChainState, origin: str, fee: int) -> None:
    """insufficient_balance naming `fee` unless the origin can pay the fee at all."""
    free = state.balance(origin)
    if free < fee:
        raise ChainError(
            ErrorCode.INSUFFICIENT_BALANCE,
            f"the transaction fee of {fee} rao exceeds the free balance of {free} rao",
            "fee",
        )


def charge_fee(state: ChainState, origin: str, fee: int) -> None:
    """Withdraw and burn the fee (the caller checked it is affordable)."""
    if fee:
        state.debit(origin, fee)
        state.total_issuance -= fee
        state.total_fees += fee


@contextmanager
def fee_withheld(state: ChainState, origin: str, fee: int) -> Iterator[None]:
    """The origin's balance lowered by `fee` for the duration: a dry run of a call
    planned as its block will plan it, after the fee. Restored exactly on exit (the
    account exists: it holds at least the fee), so nothing is changed."""
    if not fee:
        yield
        return
    account = state.accounts[origin]
    account.balance -= fee
    try:
        yield
    finally:
        account.balance += fee


def after_fee(exc: ChainError, fee: int) -> ChainError:
    """A call's insufficient_balance says the fee came first; other errors as they are."""
    if not fee or exc.code != ErrorCode.INSUFFICIENT_BALANCE:
        return exc
    return ChainError(exc.code, f"{exc.reason}, after the transaction fee of {fee} rao",
                      exc.field)
