"""Transaction fees: the genesis schedule, the door's dry run, and what a block charges.

Signed extrinsics go through `apply_extrinsic` (what a block and `ledger verify` run) and
`check_signed` (what the ledger's door runs); every rao is accounted for: a fee leaves the
signer and total issuance, and `total_fees` counts it.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from subnetlab.chain.codec import from_snapshot, to_snapshot
from subnetlab.chain.errors import ChainError, ErrorCode
from subnetlab.chain.execution import Receipt, apply_extrinsic, execute_block
from subnetlab.chain.extrinsic import Extrinsic, sign_extrinsic
from subnetlab.chain.model import DEFAULT_FEES, DEV_FEE, ChainState, Genesis
from subnetlab.chain.state import CALLS, check_signed, genesis_state, state_root
from subnetlab.chain.units import TOKEN
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.verify import identity
from tests.unit.state_support import TEST_HP, check_conservation

E = ErrorCode
RICH, POOR, DEST, HOTKEY = (Keypair.dev(f"fees-{n}") for n in ("rich", "poor", "dest", "hk"))
FREE_CALLS = {"set_weights", "commit_weights", "reveal_weights", "serve_axon",
              "commit_evidence", "faucet", "sudo_set_faucet", "sudo_set_hyperparameters",
              "set_hyperparameters"}
PAYING_CALLS = {"transfer", "add_stake", "remove_stake", "register", "deregister",
                "create_subnet", "set_delegate_take"}


def genesis(poor_balance: int = DEV_FEE - 1, **overrides: Any) -> Genesis:
    return Genesis(**{
        "balances": {RICH.ss58_address: 10_000 * TOKEN, POOR.ss58_address: poor_balance},
        "sudo": RICH.ss58_address,
        "default_hyperparameters": TEST_HP,
        **overrides,
    })


class Signer:
    """Signs with each key's next nonce, as a wallet does."""

    def __init__(self) -> None:
        self.nonces: dict[str, int] = {}

    def __call__(self, key: Keypair, call: str, **params: Any) -> Extrinsic:
        nonce = self.nonces.get(key.ss58_address, 0)
        self.nonces[key.ss58_address] = nonce + 1
        return sign_extrinsic(key, call, params, nonce, identity(Genesis()))


def apply(state: ChainState, ext: Extrinsic) -> Receipt:
    """One extrinsic applied as a block applies it; conservation checked after."""
    receipt = apply_extrinsic(state, ext, 0)
    check_conservation(state)
    return receipt


def test_the_default_schedule_charges_value_moving_calls_and_frees_the_epoch_calls() -> None:
    assert set(DEFAULT_FEES) == PAYING_CALLS
    assert set(CALLS) == PAYING_CALLS | FREE_CALLS
    assert all(fee == DEV_FEE for fee in DEFAULT_FEES.values())
    assert 0 < DEV_FEE < TOKEN // 1000  # small: 0.000125 token
    assert Genesis().fees == DEFAULT_FEES
    assert genesis_state(genesis()).fees == DEFAULT_FEES


def test_a_transfer_pays_its_fee_which_is_burned() -> None:
    state, sign = genesis_state(genesis()), Signer()
    issuance = state.total_issuance
    receipt = apply(state, sign(RICH, "transfer", dest=DEST.ss58_address, amount=5 * TOKEN))
    assert (receipt.ok, receipt.fee) == (True, DEV_FEE)
    assert state.balance(RICH.ss58_address) == 10_000 * TOKEN - 5 * TOKEN - DEV_FEE
    assert state.balance(DEST.ss58_address) == 5 * TOKEN
    assert state.total_issuance == issuance - DEV_FEE
    assert state.total_fees == DEV_FEE
    assert state.nonce(RICH.ss58_address) == 1
    assert receipt.to_dict()["fee"] == DEV_FEE
    assert Receipt.from_dict(receipt.to_dict()) == receipt


def test_free_calls_pay_nothing() -> None:
    state, sign = genesis_state(genesis(faucet={"amount": TOKEN, "cooldown_blocks": 0})), Signer()
    receipt = apply(state, sign(POOR, "faucet"))
    assert (receipt.ok, receipt.fee) == (True, 0)
    assert state.balance(POOR.ss58_address) == DEV_FEE - 1 + TOKEN
    assert state.total_fees == 0


def test_a_call_failing_in_its_block_still_pays_the_fee_and_consumes_the_nonce() -> None:
    state, sign = genesis_state(genesis()), Signer()
    before = state.balance(RICH.ss58_address)
    # affordable alone, not after the fee: the door refuses it; a block that gets it fails it
    ext = sign(RICH, "transfer", dest=DEST.ss58_address, amount=before - DEV_FEE + 1)
    receipt = apply(state, ext)
    assert (receipt.ok, receipt.code, receipt.field, receipt.fee) == (
        False, "insufficient_balance", "amount", DEV_FEE)
    assert f"after the transaction fee of {DEV_FEE} rao" in (receipt.message or "")
    assert state.balance(RICH.ss58_address) == before - DEV_FEE
    assert state.balance(DEST.ss58_address) == 0
    assert state.nonce(RICH.ss58_address) == 1
    assert state.total_fees == DEV_FEE
    # any other failure too: an unknown subnet
    receipt = apply(state, sign(RICH, "register", netuid=7, hotkey=HOTKEY.ss58_address))
    assert (receipt.ok, receipt.code, receipt.fee) == (False, "unknown_subnet", DEV_FEE)
    assert state.balance(RICH.ss58_address) == before - 2 * DEV_FEE


def test_a_signer_who_cannot_pay_the_fee_pays_nothing_and_consumes_the_nonce() -> None:
    state, sign = genesis_state(genesis()), Signer()
    receipt = apply(state, sign(POOR, "transfer", dest=DEST.ss58_address, amount=1))
    assert (receipt.ok, receipt.code, receipt.field, receipt.fee) == (
        False, "insufficient_balance", "fee", 0)
    assert str(DEV_FEE) in (receipt.message or "")
    assert state.balance(POOR.ss58_address) == DEV_FEE - 1
    assert state.nonce(POOR.ss58_address) == 1
    assert state.total_fees == 0


def test_a_refused_nonce_pays_nothing_and_changes_nothing() -> None:
    state, sign = genesis_state(genesis()), Signer()
    stale = sign(RICH, "transfer", dest=DEST.ss58_address, amount=1)
    assert apply(state, stale).ok
    root = state_root(state)
    receipt = apply(state, stale)
    assert (receipt.ok, receipt.code, receipt.fee) == (False, "stale_nonce", 0)
    assert state_root(state) == root


@pytest.mark.parametrize(("call", "params"), [
    ("transfer", {"dest": DEST.ss58_address, "amount": 1}),
    ("add_stake", {"hotkey": HOTKEY.ss58_address, "amount": 1}),
    ("create_subnet", {}),
])
def test_the_door_refuses_an_unaffordable_fee(call: str, params: dict[str, Any]) -> None:
    state = genesis_state(genesis())
    root = state_root(state)
    with pytest.raises(ChainError) as refused:
        check_signed(state, POOR.ss58_address, 0, call, params)
    assert (refused.value.code, refused.value.field) == ("insufficient_balance", "fee")
    assert f"transaction fee of {DEV_FEE} rao" in refused.value.message
    assert state_root(state) == root


def test_the_door_refuses_what_the_fee_leaves_too_little_for_naming_both() -> None:
    state = genesis_state(genesis())
    balance = state.balance(RICH.ss58_address)
    root = state_root(state)
    with pytest.raises(ChainError) as refused:
        check_signed(state, RICH.ss58_address, 0, "transfer",
                     {"dest": DEST.ss58_address, "amount": balance - DEV_FEE + 1})
    assert (refused.value.code, refused.value.field) == ("insufficient_balance", "amount")
    assert f"after the transaction fee of {DEV_FEE} rao" in refused.value.message
    assert state_root(state) == root
    assert state.balance(RICH.ss58_address) == balance  # the withheld fee is back
    fee = check_signed(state, RICH.ss58_address, 0, "transfer",
                       {"dest": DEST.ss58_address, "amount": balance - DEV_FEE})
    assert fee == DEV_FEE and state_root(state) == root


@pytest.mark.parametrize("spare", [-2, -1, 0, 1, 2])
def test_the_door_and_the_block_agree_at_the_boundary(spare: int) -> None:
    """Admitted at the door exactly when the block applies it successfully."""
    state, sign = genesis_state(genesis()), Signer()
    amount = state.balance(RICH.ss58_address) - DEV_FEE - spare
    params = {"dest": DEST.ss58_address, "amount": amount}
    try:
        check_signed(state, RICH.ss58_address, 0, "transfer", params)
        admitted = True
    except ChainError:
        admitted = False
    receipt = apply(state, sign(RICH, "transfer", **params))
    assert admitted == receipt.ok == (spare >= 0)
    assert receipt.fee == DEV_FEE


def test_the_schedule_is_the_genesis_own() -> None:
    free = genesis_state(genesis(fees={}))
    sign = Signer()
    receipt = apply(free, sign(RICH, "transfer", dest=DEST.ss58_address, amount=1))
    assert (receipt.ok, receipt.fee) == (True, 0)
    costly = genesis_state(genesis(fees={"transfer": 7, "set_weights": 3}))
    receipt = apply(costly, Signer()(RICH, "transfer", dest=DEST.ss58_address, amount=1))
    assert receipt.fee == 7
    assert state_root(free) != state_root(genesis_state(genesis()))  # the schedule is state


@pytest.mark.parametrize(("fees", "where"), [
    ({"trasnfer": 5}, "trasnfer"),
    ({"transfer": -1}, "greater than or equal to 0"),
    ({"transfer": 1.5}, "integer"),
    ({"transfer": True}, "integer"),
])
def test_a_bad_fee_schedule_is_refused(fees: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as bad:
        genesis(fees=fees)
    assert "fees" in str(bad.value) and where in str(bad.value)


def test_fees_survive_a_snapshot_and_a_replay() -> None:
    state, sign = genesis_state(genesis()), Signer()
    blocks = [[sign(RICH, "transfer", dest=DEST.ss58_address, amount=3)],
              [sign(RICH, "create_subnet"),
               sign(RICH, "register", netuid=1, hotkey=HOTKEY.ss58_address)],
              [sign(POOR, "transfer", dest=DEST.ss58_address, amount=1)]]
    roots = []
    for block in blocks:
        execute_block(state, block)
        check_conservation(state)
        roots.append(state_root(state))
    assert state.total_fees == 3 * DEV_FEE
    restored = from_snapshot(to_snapshot(state))
    assert (restored.total_fees, restored.fees) == (state.total_fees, state.fees)
    assert state_root(restored) == roots[-1]
    replay = genesis_state(genesis())
    for block, root in zip(blocks, roots, strict=True):
        execute_block(replay, block)
        assert state_root(replay) == root
