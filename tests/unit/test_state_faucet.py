"""The faucet's limits on the pure state machine: block and interval budgets, the optional
proof of work, and the settings' validation (genesis and sudo_set_faucet).

Every refusal goes through `Chain.fails`, which also checks the state root is unchanged.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from subnetlab.chain.codec import from_snapshot, to_snapshot
from subnetlab.chain.errors import ErrorCode
from subnetlab.chain.execution import open_block
from subnetlab.chain.faucet import solve, work_digest
from subnetlab.chain.model import MAX_POW_DIFFICULTY, FaucetConfig
from subnetlab.chain.queries import faucet_info
from subnetlab.chain.state import state_root
from subnetlab.chain.units import TOKEN
from subnetlab.ledger.genesis import GenesisError, load_genesis
from tests.unit.state_support import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    POOR,
    SUDO,
    Chain,
    addr,
    make_genesis,
)

E = ErrorCode
DRIP = 10 * TOKEN
KEYS = [addr(f"fresh-{i}") for i in range(12)]


def budget_chain(**faucet: Any) -> Chain:
    """A faucet of 10 tokens, no cooldown, 2 drips per block and 5 per 10-block window."""
    settings = {"amount": DRIP, "cooldown_blocks": 0, "block_budget": 2 * DRIP,
                "interval_budget": 5 * DRIP, "interval_blocks": 10, **faucet}
    return Chain(make_genesis(faucet=FaucetConfig(**settings)))


def block_hash(number: int) -> str:
    return "0x" + hashlib.blake2b(f"block {number}".encode(), digest_size=32).hexdigest()


def seal_and_open(chain: Chain, count: int = 1) -> None:
    """Open `count` blocks as the ledger does: the hash of the block just sealed passed."""
    for _ in range(count):
        open_block(chain.state, block_hash(chain.state.block))
    chain.check()


# --- budgets ----------------------------------------------------------------------------


def test_block_budget_refuses_the_drip_past_it_and_resets_next_block() -> None:
    chain = budget_chain()
    chain.blocks(1)  # block 1, window 0..9
    chain.call(KEYS[0], "faucet")
    chain.call(KEYS[1], "faucet")
    err = chain.fails(KEYS[2], "faucet", E.FAUCET_BUDGET_EXHAUSTED)
    assert err.message.startswith("block_budget:") and "try again from block 2" in err.message
    assert err.field is None
    chain.blocks(1)
    chain.call(KEYS[2], "faucet")
    assert chain.state.balance(KEYS[2]) == DRIP
    assert chain.state.total_faucet == 3 * DRIP


def test_interval_budget_refuses_until_the_next_window() -> None:
    chain = budget_chain()
    chain.blocks(1)
    for paid, key in enumerate(KEYS[:5]):  # 2 + 2 + 1 over blocks 1..3
        if paid and paid % 2 == 0:
            chain.blocks(1)
        chain.call(key, "faucet")
    assert chain.state.block == 3
    chain.blocks(1)
    err = chain.fails(KEYS[5], "faucet", E.FAUCET_BUDGET_EXHAUSTED)
    assert err.message.startswith("interval_budget:")
    assert "blocks 0..9" in err.message and "try again from block 10" in err.message
    chain.blocks(5)  # block 9: still the window of block 0
    chain.fails(KEYS[5], "faucet", E.FAUCET_BUDGET_EXHAUSTED)
    chain.blocks(1)  # block 10: a new window
    chain.call(KEYS[5], "faucet")
    assert faucet_info(chain.state)["paid_this_interval"] == DRIP


def test_cooldown_is_checked_before_the_budget() -> None:
    chain = budget_chain(cooldown_blocks=5, block_budget=DRIP)
    chain.call(POOR, "faucet")
    chain.fails(POOR, "faucet", E.RATE_LIMITED)  # its own cooldown, not the budget
    chain.fails(KEYS[0], "faucet", E.FAUCET_BUDGET_EXHAUSTED)


def test_budget_counters_survive_a_snapshot() -> None:
    chain = budget_chain()
    chain.blocks(1)
    chain.call(KEYS[0], "faucet")
    chain.call(KEYS[1], "faucet")
    restored = Chain.resume(from_snapshot(to_snapshot(chain.state)))
    assert state_root(restored.state) == state_root(chain.state)
    restored.fails(KEYS[2], "faucet", E.FAUCET_BUDGET_EXHAUSTED)


def test_dev_defaults_limit_a_burst_of_fresh_keys() -> None:
    """The issue's case: 100 fresh keys in one block. The default budget pays 10."""
    chain = Chain(make_genesis(faucet=FaucetConfig()))
    paid = refused = 0
    for i in range(100):
        key = addr(f"burst-{i}")
        if i < 10:
            chain.call(key, "faucet")
            paid += 1
        else:
            chain.fails(key, "faucet", E.FAUCET_BUDGET_EXHAUSTED)
            refused += 1
    assert chain.state.total_faucet == paid * 1_000 * TOKEN and refused == 90


# --- settings -----------------------------------------------------------------------------


@pytest.mark.parametrize(("settings", "field"), [
    ({"block_budget": DRIP - 1}, "block_budget"),
    ({"block_budget": 5 * DRIP, "interval_budget": 4 * DRIP}, "interval_budget"),
    ({"pow_difficulty": MAX_POW_DIFFICULTY + 1}, "pow_difficulty"),
    ({"pow_window_blocks": 0}, "pow_window_blocks"),
    ({"pow_window_blocks": 257}, "pow_window_blocks"),
    ({"interval_blocks": 0}, "interval_blocks"),
    ({"block_budget": 1.5}, "block_budget"),
])
def test_genesis_faucet_settings_are_checked(settings: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        FaucetConfig(amount=DRIP, **settings)
    assert field in str(info.value)


@pytest.mark.parametrize(("settings", "field"), [
    ({"block_budget": 0}, "block_budget"),
    ({"block_budget": 49 * TOKEN}, "block_budget"),  # below the genesis drip of 50
    ({"interval_budget": 60 * TOKEN, "block_budget": 70 * TOKEN}, "interval_budget"),
    ({"pow_difficulty": MAX_POW_DIFFICULTY + 1}, "pow_difficulty"),
    ({"pow_difficulty": -1}, "pow_difficulty"),
    ({"pow_window_blocks": 257}, "pow_window_blocks"),
    ({"interval_blocks": True}, "interval_blocks"),
])
def test_sudo_set_faucet_refuses_bad_settings(settings: dict[str, Any], field: str) -> None:
    chain = Chain()
    err = chain.fails(SUDO, "sudo_set_faucet", E.INVALID_PARAM, enabled=True, **settings)
    assert err.field == field


def test_sudo_set_faucet_changes_budgets_and_work_keeping_the_rest() -> None:
    chain = Chain()
    chain.call(SUDO, "sudo_set_faucet", enabled=True, block_budget=50 * TOKEN,
               pow_difficulty=4)
    config = chain.state.faucet
    assert config is not None
    assert (config.amount, config.cooldown_blocks) == (50 * TOKEN, 5)  # the genesis values
    assert (config.block_budget, config.pow_difficulty) == (50 * TOKEN, 4)
    chain.call(SUDO, "sudo_set_faucet", enabled=True, pow_difficulty=0)
    chain.call(ALICE, "faucet")
    chain.fails(BOB, "faucet", E.FAUCET_BUDGET_EXHAUSTED)


# --- proof of work --------------------------------------------------------------------------


def pow_chain(difficulty: int = 8, window: int = 4) -> Chain:
    chain = budget_chain(pow_difficulty=difficulty, pow_window_blocks=window,
                         block_budget=10 * DRIP, interval_budget=100 * DRIP)
    seal_and_open(chain, 2)  # blocks 0 and 1 sealed; block 2 open
    return chain


def work(chain: Chain, account: str, block: int, difficulty: int = 8) -> dict[str, int]:
    nonce = solve(chain.state.chain_id, account, block, chain.state.block_hashes[block],
                  difficulty, 0, 1 << 24)
    assert nonce is not None
    return {"pow_block": block, "pow_nonce": nonce}


def test_work_is_required_when_the_faucet_asks() -> None:
    chain = pow_chain()
    err = chain.fails(POOR, "faucet", E.FAUCET_POW_REQUIRED)
    assert err.field == "pow_block" and "8 zero bits" in err.message
    err = chain.fails(POOR, "faucet", E.FAUCET_POW_REQUIRED, pow_block=1)
    assert err.field == "pow_nonce"


def test_solved_work_pays_and_cannot_pay_twice() -> None:
    chain = pow_chain()
    proof = work(chain, POOR, 1)
    chain.call(POOR, "faucet", **proof)
    assert chain.state.balance(POOR) == DRIP
    seal_and_open(chain)
    err = chain.fails(POOR, "faucet", E.FAUCET_POW_EXPIRED, **proof)  # no cooldown: reuse
    assert "last drip" in err.message and err.field == "pow_block"
    chain.call(POOR, "faucet", **work(chain, POOR, 2))  # work over the drip's block: new


def test_work_is_bound_to_the_account() -> None:
    chain = pow_chain(difficulty=16)
    proof = work(chain, ALICE, 1, 16)
    err = chain.fails(CAROL, "faucet", E.FAUCET_POW_INVALID, **proof)
    assert err.field == "pow_nonce" and "16 leading zero bits" in err.message
    chain.call(ALICE, "faucet", **proof)


def test_work_expires_after_the_window_and_needs_a_known_block() -> None:
    chain = pow_chain(window=4)
    proof = work(chain, DAVE, 1)
    seal_and_open(chain, 4)  # block 6 open: blocks 2..5 are the window
    err = chain.fails(DAVE, "faucet", E.FAUCET_POW_EXPIRED, **proof)
    assert "last 4 sealed blocks" in err.message
    chain.fails(DAVE, "faucet", E.FAUCET_POW_EXPIRED, pow_block=6, pow_nonce=0)  # not sealed
    chain.fails(DAVE, "faucet", E.FAUCET_POW_EXPIRED, pow_block=10**9, pow_nonce=0)
    assert sorted(chain.state.block_hashes) == [2, 3, 4, 5]  # only the window is kept
    chain.call(DAVE, "faucet", **work(chain, DAVE, 5))


@pytest.mark.parametrize(("params", "field"), [
    ({"pow_block": -1, "pow_nonce": 0}, "pow_block"),
    ({"pow_block": "1", "pow_nonce": 0}, "pow_block"),
    ({"pow_block": 1, "pow_nonce": 2**64}, "pow_nonce"),
    ({"pow_block": 1, "pow_nonce": 1.0}, "pow_nonce"),
    ({"pow_block": 1, "pow_nonce": 0, "pow": 1}, "pow"),
])
def test_work_params_are_checked(params: dict[str, Any], field: str) -> None:
    chain = pow_chain()
    err = chain.fails(POOR, "faucet", E.INVALID_PARAM, **params)
    assert err.field == field


def test_without_difficulty_no_hashes_are_kept_and_work_is_ignored() -> None:
    chain = budget_chain()
    seal_and_open(chain, 3)
    assert chain.state.block_hashes == {}
    assert faucet_info(chain.state)["work"] is None
    chain.call(POOR, "faucet", pow_block=1, pow_nonce=7)
    chain.call(SUDO, "sudo_set_faucet", enabled=True, pow_difficulty=8)
    seal_and_open(chain)
    info = faucet_info(chain.state)
    assert info["work"] == {"block": 3, "block_hash": block_hash(3), "difficulty": 8,
                            "window_blocks": 64}
    chain.call(SUDO, "sudo_set_faucet", enabled=True, pow_difficulty=0)
    seal_and_open(chain)
    assert chain.state.block_hashes == {}


def test_the_work_commits_to_chain_account_block_hash_and_nonce() -> None:
    """Pins the documented encoding (docs/ledger.md): any client can reimplement it."""
    chain_id, block, digest, nonce = "subnetlab-dev", 7, "0x" + "ab" * 32, 12345
    data = (len(chain_id).to_bytes(2, "big") + chain_id.encode()
            + len(ALICE).to_bytes(2, "big") + ALICE.encode()
            + block.to_bytes(8, "big") + bytes.fromhex("ab" * 32) + nonce.to_bytes(8, "big"))
    expected = hashlib.blake2b(data, digest_size=32, person=b"subnetlab-faucet").digest()
    assert work_digest(chain_id, ALICE, block, digest, nonce) == expected
    others = {work_digest("other-chain", ALICE, block, digest, nonce),
              work_digest(chain_id, BOB, block, digest, nonce),
              work_digest(chain_id, ALICE, block + 1, digest, nonce),
              work_digest(chain_id, ALICE, block, "0x" + "cd" * 32, nonce),
              work_digest(chain_id, ALICE, block, digest, nonce + 1)}
    assert expected not in others and len(others) == 5


def test_block_hashes_round_trip_and_replay_gives_the_same_root() -> None:
    chain = pow_chain()
    chain.call(POOR, "faucet", **work(chain, POOR, 1))
    restored = from_snapshot(to_snapshot(chain.state))
    assert restored.block_hashes == chain.state.block_hashes
    assert state_root(restored) == state_root(chain.state)


def test_a_genesis_file_with_contradicting_faucet_settings_names_them(tmp_path: Path) -> None:
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps({"faucet": {"amount": 5 * TOKEN, "block_budget": TOKEN}}))
    with pytest.raises(GenesisError) as info:
        load_genesis(path)
    assert "faucet" in str(info.value) and "block_budget" in str(info.value)
    path.write_text(json.dumps({"allow_loopback_axons": "yes"}))  # true or false only
    with pytest.raises(GenesisError, match="allow_loopback_axons"):
        load_genesis(path)
