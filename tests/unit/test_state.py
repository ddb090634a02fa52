"""The state machine's calls: every happy path and every error code, state root unchanged."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from subnetlab.chain.calls import CALL_NAMES
from subnetlab.chain.errors import ChainError, ErrorCode
from subnetlab.chain.hyperparameters import U16_MAX
from subnetlab.chain.model import Genesis
from subnetlab.chain.state import (
    CALLS,
    account,
    execute,
    genesis_state,
    hotkey_info,
    metagraph,
    pending_commits,
    state_root,
    subnet_info,
    weights_commit_hash,
)
from subnetlab.chain.units import TOKEN
from tests.unit.state_support import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    POOR,
    START_BALANCE,
    SUDO,
    Chain,
    addr,
    make_genesis,
    weights_subnet,
)

E = ErrorCode
HK = [addr(f"hotkey-{i}") for i in range(12)]


@pytest.fixture
def net(chain: Chain) -> int:
    """A subnet owned by ALICE with HK[0] (ALICE) and HK[1] (BOB) registered at block 0."""
    netuid = chain.subnet()
    chain.register(netuid, HK[0], ALICE)
    chain.register(netuid, HK[1], BOB)
    return netuid


# ---------------------------------------------------------------------------------------
# Errors and the extrinsic envelope
# ---------------------------------------------------------------------------------------


def test_error_carries_code_field_and_message() -> None:
    err = ChainError(E.INSUFFICIENT_BALANCE, "5 rao exceeds the free balance of 4 rao", "amount")
    assert err.code == "insufficient_balance"
    assert err.message == "amount: 5 rao exceeds the free balance of 4 rao"
    assert err.to_dict() == {
        "code": "insufficient_balance",
        "field": "amount",
        "message": err.message,
    }
    required = {
        "stale_nonce", "future_nonce", "insufficient_balance", "insufficient_stake",
        "unknown_subnet", "unknown_account", "not_registered", "already_registered",
        "not_owner", "not_sudo", "rate_limited", "subnet_full", "too_few_weights",
        "weight_limit_exceeded", "invalid_uid", "duplicate_uid", "invalid_weights",
        "no_commit", "commit_mismatch", "reveal_too_early", "reveal_too_late",
        "commit_reveal_disabled", "commit_reveal_enabled", "faucet_disabled", "invalid_param",
        "unknown_call", "too_many_registrations", "faucet_budget_exhausted",
        "faucet_pow_required", "faucet_pow_expired", "faucet_pow_invalid", "axon_ip_not_allowed",
    }  # fmt: skip
    assert required <= {str(c) for c in ErrorCode}


def test_nonce_must_be_the_next_one(chain: Chain) -> None:
    chain.call(ALICE, "transfer", dest=BOB, amount=1)
    params = {"dest": BOB, "amount": 1}
    chain.fails_with_nonce(ALICE, 0, "transfer", E.STALE_NONCE, params)
    err = chain.fails_with_nonce(ALICE, 5, "transfer", E.FUTURE_NONCE, params)
    assert err.field == "nonce" and "next nonce is 1" in err.message
    chain.fails_with_nonce(ALICE, True, "transfer", E.INVALID_PARAM, params)
    chain.fails_with_nonce(ALICE, "1", "transfer", E.INVALID_PARAM, params)
    assert chain.state.nonce(ALICE) == 1


def test_failed_call_does_not_consume_the_nonce(chain: Chain) -> None:
    chain.fails(ALICE, "transfer", E.INSUFFICIENT_BALANCE, dest=BOB, amount=START_BALANCE + 1)
    assert chain.state.nonce(ALICE) == 0
    chain.call(ALICE, "transfer", dest=BOB, amount=1)
    assert chain.state.nonce(ALICE) == 1


def test_unknown_origin_has_nonce_zero_and_no_balance(chain: Chain) -> None:
    assert chain.state.nonce(POOR) == 0 and chain.state.balance(POOR) == 0
    chain.fails(POOR, "transfer", E.INSUFFICIENT_BALANCE, dest=BOB, amount=1)
    assert POOR not in chain.state.accounts


def test_unknown_call_and_bad_params_object(chain: Chain) -> None:
    chain.fails(ALICE, "transfer_ownership", E.UNKNOWN_CALL)
    chain.fails_with_nonce(ALICE, 0, "transfer", E.INVALID_PARAM, [BOB, 1])
    err = chain.fails(ALICE, "transfer", E.INVALID_PARAM, dest=BOB, amount=1, amout=2)
    assert err.field == "amout"
    assert set(CALLS) >= {"transfer", "register", "set_weights", "reveal_weights"}


def test_the_call_names_the_genesis_checks_fees_against_are_the_call_table() -> None:
    assert set(CALLS) == CALL_NAMES


# ---------------------------------------------------------------------------------------
# Balances
# ---------------------------------------------------------------------------------------


def test_transfer_moves_balance_and_creates_the_destination(chain: Chain) -> None:
    dest = addr("fresh")
    assert chain.call(ALICE, "transfer", dest=dest, amount=7 * TOKEN) == {
        "dest": dest,
        "amount": 7 * TOKEN,
    }
    assert chain.state.balance(dest) == 7 * TOKEN
    assert chain.state.balance(ALICE) == START_BALANCE - 7 * TOKEN


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"dest": "5notanaddress", "amount": 1}, "dest"),
        ({"dest": BOB, "amount": 0}, "amount"),
        ({"dest": BOB, "amount": -3}, "amount"),
        ({"dest": BOB, "amount": 1.0}, "amount"),
        ({"dest": BOB, "amount": True}, "amount"),
        ({"dest": BOB, "amount": "5"}, "amount"),
        ({"dest": BOB}, "amount"),
        ({"dest": 42, "amount": 1}, "dest"),
    ],
)
def test_transfer_validates_params(chain: Chain, params: dict[str, object], field: str) -> None:
    err = chain.fails_with_nonce(ALICE, 0, "transfer", E.INVALID_PARAM, params)
    assert err.field == field


def test_transfer_insufficient_balance_names_amount(chain: Chain) -> None:
    err = chain.fails(ALICE, "transfer", E.INSUFFICIENT_BALANCE, dest=BOB, amount=START_BALANCE + 1)
    assert err.field == "amount" and str(START_BALANCE) in err.message


def test_faucet_mints_and_is_rate_limited(chain: Chain) -> None:
    chain.call(POOR, "faucet")
    assert chain.state.balance(POOR) == 50 * TOKEN
    assert chain.state.total_faucet == 50 * TOKEN
    chain.blocks(4)
    err = chain.fails(POOR, "faucet", E.RATE_LIMITED)
    assert "1 block" in err.message
    chain.blocks(1)
    chain.call(POOR, "faucet")
    assert chain.state.balance(POOR) == 100 * TOKEN


def test_faucet_disabled_without_genesis_faucet_and_by_sudo() -> None:
    bare = Chain(make_genesis(faucet=None))
    bare.fails(POOR, "faucet", E.FAUCET_DISABLED)
    chain = Chain()
    chain.fails(ALICE, "sudo_set_faucet", E.NOT_SUDO, enabled=False)
    chain.call(SUDO, "sudo_set_faucet", enabled=False)
    chain.fails(POOR, "faucet", E.FAUCET_DISABLED)
    chain.call(SUDO, "sudo_set_faucet", enabled=True, amount=3 * TOKEN, cooldown_blocks=0)
    chain.call(POOR, "faucet")
    chain.call(POOR, "faucet")
    assert chain.state.balance(POOR) == 6 * TOKEN
    bare.fails(SUDO, "sudo_set_faucet", E.INVALID_PARAM, enabled=1)


@pytest.mark.parametrize(("params", "field"), [
    ({"enabled": True}, "enabled"),
    ({"enabled": True, "amount": 5 * TOKEN}, "enabled"),
    ({"enabled": True, "amount": 5 * TOKEN, "cooldown_blocks": 0}, "enabled"),
    ({"enabled": False, "amount": 5 * TOKEN}, "amount"),
    ({"enabled": False, "cooldown_blocks": 3}, "cooldown_blocks"),
])
def test_sudo_cannot_create_a_faucet_the_genesis_did_not_enable(
    params: dict[str, Any], field: str
) -> None:
    """No faucet in the genesis: sudo can neither enable nor configure one; nothing moves."""
    bare = Chain(make_genesis(faucet=None))
    err = bare.fails(SUDO, "sudo_set_faucet", E.FAUCET_DISABLED, **params)
    assert err.field == field and "genesis has no faucet" in err.message
    assert bare.state.faucet is None and bare.state.faucet_enabled is False
    bare.fails(POOR, "faucet", E.FAUCET_DISABLED)
    bare.fails(ALICE, "sudo_set_faucet", E.NOT_SUDO, enabled=True)  # not sudo comes first
    bare.call(SUDO, "sudo_set_faucet", enabled=False)  # switching off what is off: a no-op
    bare.fails(POOR, "faucet", E.FAUCET_DISABLED)


def test_no_sudo_means_no_sudo_calls() -> None:
    chain = Chain(make_genesis(sudo=None))
    chain.fails(ALICE, "sudo_set_faucet", E.NOT_SUDO, enabled=False)


# ---------------------------------------------------------------------------------------
# Subnets and hyperparameters
# ---------------------------------------------------------------------------------------


def test_create_subnet_locks_the_cost_and_numbers_from_one(chain: Chain) -> None:
    issuance = chain.state.total_issuance
    assert chain.call(ALICE, "create_subnet") == {"netuid": 1, "lock": 100 * TOKEN}
    assert (
        chain.call(BOB, "create_subnet", hyperparameters={"tempo": 3, "kappa": 0.6})["netuid"] == 2
    )
    assert chain.state.balance(ALICE) == START_BALANCE - 100 * TOKEN
    assert chain.state.total_issuance == issuance  # locked, not burned
    info = subnet_info(chain.state, 2)
    assert info["owner"] == BOB and info["lock"] == 100 * TOKEN
    assert info["hyperparameters"]["tempo"] == 3 and info["hyperparameters"]["kappa"] == 0.6
    assert info["hyperparameters"]["weights_rate_limit"] == 0  # genesis default kept


def test_create_subnet_errors(chain: Chain) -> None:
    chain.fails(POOR, "create_subnet", E.INSUFFICIENT_BALANCE)
    err = chain.fails(ALICE, "create_subnet", E.INVALID_PARAM, hyperparameters={"kappa": 2})
    assert err.field == "hyperparameters.kappa"
    err = chain.fails(ALICE, "create_subnet", E.INVALID_PARAM, hyperparameters={"nope": 1})
    assert err.field == "nope"
    err = chain.fails(ALICE, "create_subnet", E.INVALID_PARAM, hyperparameters={"tempo": True})
    assert err.field == "tempo"
    chain.fails(ALICE, "create_subnet", E.INVALID_PARAM, hyperparameters=[1])
    err = chain.fails(ALICE, "create_subnet", E.INVALID_PARAM, hyperparameters={"min_burn": 10**15})
    assert "min_burn" in err.message


def test_set_hyperparameters_owner_or_sudo(chain: Chain) -> None:
    netuid = chain.subnet(ALICE)
    chain.call(ALICE, "set_hyperparameters", netuid=netuid, tempo=7, yuma3=True)
    chain.call(SUDO, "set_hyperparameters", netuid=netuid, kappa=0.75)
    hp = chain.state.subnets[netuid].hyperparameters
    assert (hp.tempo, hp.yuma3, hp.kappa) == (7, True, 0.75)
    chain.fails(BOB, "set_hyperparameters", E.NOT_OWNER, netuid=netuid, tempo=9)
    err = chain.fails(ALICE, "set_hyperparameters", E.INVALID_PARAM, netuid=netuid, kappa=1.5)
    assert err.field == "kappa"
    err = chain.fails(ALICE, "set_hyperparameters", E.INVALID_PARAM, netuid=netuid, tempo=0)
    assert err.field == "tempo"
    chain.fails(ALICE, "set_hyperparameters", E.INVALID_PARAM, netuid=netuid, kappa="0.5")
    chain.fails(ALICE, "set_hyperparameters", E.INVALID_PARAM, netuid=netuid)
    chain.fails(ALICE, "set_hyperparameters", E.UNKNOWN_SUBNET, netuid=0, tempo=9)
    chain.fails(ALICE, "set_hyperparameters", E.UNKNOWN_SUBNET, netuid=99, tempo=9)


def test_max_allowed_uids_cannot_drop_below_n(chain: Chain, net: int) -> None:
    err = chain.fails(ALICE, "set_hyperparameters", E.INVALID_PARAM, netuid=net, max_allowed_uids=1)
    assert err.field == "max_allowed_uids"
    chain.call(ALICE, "set_hyperparameters", netuid=net, max_allowed_uids=2)


def test_sudo_set_hyperparameters_is_sudo_only(chain: Chain) -> None:
    netuid = chain.subnet(ALICE)
    chain.fails(ALICE, "sudo_set_hyperparameters", E.NOT_SUDO, netuid=netuid, tempo=9)
    chain.call(SUDO, "sudo_set_hyperparameters", netuid=netuid, tempo=9)
    assert chain.state.subnets[netuid].hyperparameters.tempo == 9


# ---------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------


def test_register_burns_and_assigns_uids(chain: Chain) -> None:
    netuid = chain.subnet()
    issuance = chain.state.total_issuance
    result = chain.call(BOB, "register", netuid=netuid, hotkey=HK[0])
    assert result == {"netuid": netuid, "uid": 0, "burn": TOKEN, "replaced": None}
    assert chain.register(netuid, HK[1], BOB) == 1
    assert chain.state.total_issuance == issuance - 2 * TOKEN
    assert chain.state.total_burned == 2 * TOKEN
    assert chain.state.balance(BOB) == START_BALANCE - 2 * TOKEN
    assert chain.state.hotkeys[HK[0]].owner == BOB
    rows = metagraph(chain.state, netuid)
    assert [r["hotkey"] for r in rows] == [HK[0], HK[1]]
    assert rows[0]["coldkey"] == BOB and rows[0]["block_at_registration"] == 0
    assert chain.state.subnets[netuid].weights.shape == (2, 2)
    # the same hotkey may register on another subnet
    other = chain.subnet(CAROL)
    assert chain.register(other, HK[0], BOB) == 0
    assert hotkey_info(chain.state, HK[0])["registrations"] == [  # type: ignore[index]
        {"netuid": netuid, "uid": 0},
        {"netuid": other, "uid": 0},
    ]


def test_register_errors(chain: Chain, net: int) -> None:
    chain.fails(ALICE, "register", E.ALREADY_REGISTERED, netuid=net, hotkey=HK[0])
    other = chain.subnet(BOB)
    chain.register(other, HK[6], BOB)
    err = chain.fails(ALICE, "register", E.NOT_OWNER, netuid=net, hotkey=HK[6])
    assert err.field == "hotkey"
    chain.fails(POOR, "register", E.INSUFFICIENT_BALANCE, netuid=net, hotkey=HK[5])
    chain.fails(ALICE, "register", E.UNKNOWN_SUBNET, netuid=7, hotkey=HK[5])
    chain.fails(ALICE, "register", E.UNKNOWN_SUBNET, netuid=0, hotkey=HK[5])
    chain.fails(ALICE, "register", E.INVALID_PARAM, netuid=net, hotkey="alice")
    chain.fails(ALICE, "register", E.INVALID_PARAM, netuid=-1, hotkey=HK[5])


def test_registrations_per_block_and_per_interval(chain: Chain) -> None:
    per_block = chain.subnet(max_registrations_per_block=1)
    chain.register(per_block, HK[0])
    err = chain.fails(ALICE, "register", E.TOO_MANY_REGISTRATIONS, netuid=per_block, hotkey=HK[1])
    assert "this block" in err.message
    chain.blocks(1)
    chain.register(per_block, HK[1])

    interval = chain.subnet(target_registrations_per_interval=1, adjustment_interval=50)
    for i in range(3):  # 3 x target per interval
        chain.register(interval, HK[2 + i])
    err = chain.fails(ALICE, "register", E.TOO_MANY_REGISTRATIONS, netuid=interval, hotkey=HK[9])
    assert "interval" in err.message


def _epoch_with_weights(chain: Chain, netuid: int, validator: str, weights: dict[int, int]) -> None:
    """Give the validator stake and weights, then run two epochs (permits lag one)."""
    chain.blocks(1)  # weights must be newer than the targets' registration
    chain.call(ALICE, "add_stake", hotkey=validator, amount=1000 * TOKEN)
    chain.call(
        validator, "set_weights", netuid=netuid, uids=list(weights), weights=list(weights.values())
    )
    chain.to_epoch(netuid)
    chain.to_epoch(netuid)


def test_full_subnet_prunes_the_lowest_pruning_score(chain: Chain) -> None:
    netuid = chain.subnet(max_allowed_uids=3, immunity_period=5)
    for i in range(3):
        chain.register(netuid, HK[i])
    _epoch_with_weights(chain, netuid, HK[0], {1: 65535, 2: 2000})
    subnet = chain.state.subnets[netuid]
    scores = subnet.neurons.pruning_score.tolist()
    assert scores[2] < scores[1] and scores[2] < scores[0] and scores[2] > 0
    assert subnet.weights[0, 2] > 0 and subnet.bonds[0, 2] > 0
    result = chain.call(BOB, "register", netuid=netuid, hotkey=HK[5])
    assert result["uid"] == 2 and result["replaced"] == HK[2]
    nrn = subnet.neurons
    assert nrn.hotkeys[2] == HK[5] and nrn.coldkeys[2] == BOB
    assert HK[2] not in nrn.uid_of and nrn.uid_of[HK[5]] == 2
    assert nrn.block_at_registration[2] == chain.state.block
    assert subnet.weights[:, 2].sum() == 0 and subnet.weights[2].sum() == 0
    assert subnet.bonds[:, 2].sum() == 0 and subnet.bonds[2].sum() == 0
    for column in ("incentive", "dividends", "consensus", "trust", "rank", "emission"):
        assert nrn.column(column)[2] == 0
    assert not nrn.validator_permit[2] and nrn.pruning_score[2] == 0
    assert subnet.weights[0, 1] > 0  # the other uids keep their weights


def test_pruning_ties_go_to_the_oldest_registration_then_lowest_uid(chain: Chain) -> None:
    netuid = chain.subnet(max_allowed_uids=3, immunity_period=0)
    chain.register(netuid, HK[0])
    chain.register(netuid, HK[1])
    chain.blocks(1)
    chain.register(netuid, HK[2])
    # uid 0 and 1 tie on score, emission and age: the lower uid goes
    assert chain.call(ALICE, "register", netuid=netuid, hotkey=HK[3])["uid"] == 0
    # now uid 1 (block 0) is older than uid 0 and uid 2 (block 1)
    assert chain.call(ALICE, "register", netuid=netuid, hotkey=HK[4])["uid"] == 1


def test_subnet_full_when_every_uid_is_immune(chain: Chain) -> None:
    netuid = chain.subnet(max_allowed_uids=2, immunity_period=10)
    chain.register(netuid, HK[0])
    chain.register(netuid, HK[1])
    chain.blocks(9)
    chain.fails(ALICE, "register", E.SUBNET_FULL, netuid=netuid, hotkey=HK[2])
    chain.blocks(1)  # uid 0 and 1 leave immunity at block 10
    assert chain.call(ALICE, "register", netuid=netuid, hotkey=HK[2])["uid"] == 0


# ---------------------------------------------------------------------------------------
# Axons
# ---------------------------------------------------------------------------------------


def test_serve_axon_by_the_hotkey(chain: Chain, net: int) -> None:
    out = chain.call(HK[0], "serve_axon", netuid=net, ip="10.0.0.5", port=8091)
    assert out["url"] == "http://10.0.0.5:8091"
    chain.call(HK[1], "serve_axon", netuid=net, ip="::1", port=443, protocol="https", hotkey=HK[1])
    rows = metagraph(chain.state, net)
    assert rows[0]["axon"]["ip"] == "10.0.0.5" and rows[0]["axon"]["protocol"] == "http"
    assert rows[1]["axon"]["url"] == "https://[::1]:443"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"ip": "300.1.1.1", "port": 80}, "ip"),
        ({"ip": "example.com", "port": 80}, "ip"),
        ({"ip": "10.0.0.1", "port": 0}, "port"),
        ({"ip": "10.0.0.1", "port": 65536}, "port"),
        ({"ip": "10.0.0.1", "port": 80, "protocol": "ftp"}, "protocol"),
        ({"ip": 1, "port": 80}, "ip"),
    ],
)
def test_serve_axon_validates(
    chain: Chain, net: int, params: dict[str, object], field: str
) -> None:
    err = chain.fails(HK[0], "serve_axon", E.INVALID_PARAM, netuid=net, **params)
    assert err.field == field


def test_serve_axon_errors(chain: Chain, net: int) -> None:
    chain.fails(HK[7], "serve_axon", E.NOT_REGISTERED, netuid=net, ip="10.0.0.1", port=80)
    chain.fails(HK[0], "serve_axon", E.NOT_OWNER, netuid=net, ip="10.0.0.1", port=80, hotkey=HK[1])
    chain.fails(HK[0], "serve_axon", E.UNKNOWN_SUBNET, netuid=9, ip="10.0.0.1", port=80)


# ---------------------------------------------------------------------------------------
# Staking
# ---------------------------------------------------------------------------------------


def test_add_and_remove_stake_including_delegation(chain: Chain, net: int) -> None:
    chain.call(ALICE, "add_stake", hotkey=HK[0], amount=100 * TOKEN)
    chain.call(BOB, "add_stake", hotkey=HK[0], amount=300 * TOKEN)  # delegation to ALICE's key
    assert chain.state.stake[HK[0]] == {ALICE: 100 * TOKEN, BOB: 300 * TOKEN}
    assert metagraph(chain.state, net)[0]["stake"] == 400 * TOKEN
    chain.call(BOB, "remove_stake", hotkey=HK[0], amount=300 * TOKEN)
    assert chain.state.stake[HK[0]] == {ALICE: 100 * TOKEN}
    assert chain.state.balance(BOB) == START_BALANCE - TOKEN  # only the burn is gone
    view = account(chain.state, ALICE)
    assert view["stake"] == [{"hotkey": HK[0], "amount": 100 * TOKEN}]
    assert view["total_stake"] == 100 * TOKEN and HK[0] in view["hotkeys"]


def test_stake_errors(chain: Chain, net: int) -> None:
    chain.fails(ALICE, "add_stake", E.UNKNOWN_ACCOUNT, hotkey=HK[9], amount=1)
    chain.fails(POOR, "add_stake", E.INSUFFICIENT_BALANCE, hotkey=HK[0], amount=1)
    chain.fails(ALICE, "add_stake", E.INVALID_PARAM, hotkey=HK[0], amount=0)
    chain.call(ALICE, "add_stake", hotkey=HK[0], amount=10)
    chain.fails(ALICE, "remove_stake", E.INSUFFICIENT_STAKE, hotkey=HK[0], amount=11)
    chain.fails(BOB, "remove_stake", E.INSUFFICIENT_STAKE, hotkey=HK[0], amount=1)
    chain.fails(ALICE, "remove_stake", E.UNKNOWN_ACCOUNT, hotkey=HK[9], amount=1)


def test_set_delegate_take(chain: Chain, net: int) -> None:
    chain.call(ALICE, "set_delegate_take", hotkey=HK[0], take=0.05)
    assert chain.state.hotkeys[HK[0]].take == 0.05
    chain.call(ALICE, "set_delegate_take", hotkey=HK[0], take=0)
    assert chain.state.hotkeys[HK[0]].take == 0.0
    chain.fails(BOB, "set_delegate_take", E.NOT_OWNER, hotkey=HK[0], take=0.1)
    chain.fails(ALICE, "set_delegate_take", E.INVALID_PARAM, hotkey=HK[0], take=0.2)
    chain.fails(ALICE, "set_delegate_take", E.INVALID_PARAM, hotkey=HK[0], take=float("nan"))
    chain.fails(ALICE, "set_delegate_take", E.UNKNOWN_ACCOUNT, hotkey=HK[9], take=0.1)


# ---------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------


@pytest.fixture
def wnet(chain: Chain) -> int:
    """Five uids HK[0..4] registered at block 0, the chain at block 1."""
    return weights_subnet(chain, HK[:5])


def test_set_weights_stores_the_max_upscaled_row(chain: Chain, wnet: int) -> None:
    out = chain.call(HK[0], "set_weights", netuid=wnet, uids=[1, 3], weights=[10, 20])
    assert out == {"netuid": wnet, "uid": 0, "count": 2}
    row = chain.state.subnets[wnet].weights[0]
    assert row.tolist() == [0, 32768, 0, U16_MAX, 0]
    assert chain.state.subnets[wnet].neurons.last_update[0] == 1
    chain.call(HK[0], "set_weights", netuid=wnet, uids=[2], weights=[1], version_key=3)
    assert chain.state.subnets[wnet].weights[0].tolist() == [0, 0, U16_MAX, 0, 0]


@pytest.mark.parametrize(
    ("uids", "weights", "code", "field"),
    [
        ([1, 2], [1], E.INVALID_WEIGHTS, "weights"),
        ([1, 5], [1, 1], E.INVALID_UID, "uids"),
        ([1, -1], [1, 1], E.INVALID_UID, "uids"),
        ([1, 1], [1, 1], E.DUPLICATE_UID, "uids"),
        ([1, 2], [1, 65536], E.INVALID_WEIGHTS, "weights"),
        ([1, 2], [1, -1], E.INVALID_WEIGHTS, "weights"),
        ([1, 2], [0, 0], E.INVALID_WEIGHTS, "weights"),
        ([1, 2], [1, 1.5], E.INVALID_PARAM, "weights"),
        ([1, "2"], [1, 1], E.INVALID_PARAM, "uids"),
        ("1,2", [1, 1], E.INVALID_PARAM, "uids"),
        ([0, 1, 2, 3, 4, 4], [1] * 6, E.INVALID_UID, "uids"),
    ],
)
def test_set_weights_rejects_bad_vectors(
    chain: Chain, wnet: int, uids: object, weights: object, code: str, field: str
) -> None:
    err = chain.fails(HK[0], "set_weights", code, netuid=wnet, uids=uids, weights=weights)
    assert err.field == field


def test_min_allowed_weights_clamped_and_self_weight_allowed(chain: Chain, wnet: int) -> None:
    chain.call(ALICE, "set_hyperparameters", netuid=wnet, min_allowed_weights=3)
    err = chain.fails(
        HK[0], "set_weights", E.TOO_FEW_WEIGHTS, netuid=wnet, uids=[1, 2], weights=[1, 1]
    )
    assert "at least 3" in err.message
    chain.call(HK[0], "set_weights", netuid=wnet, uids=[0], weights=[5])  # self weight
    chain.call(HK[0], "set_weights", netuid=wnet, uids=[1, 2, 3], weights=[1, 0, 1])
    chain.call(ALICE, "set_hyperparameters", netuid=wnet, min_allowed_weights=100)  # > n: clamp
    chain.call(HK[1], "set_weights", netuid=wnet, uids=[0, 1, 2, 3, 4], weights=[1] * 5)
    chain.fails(
        HK[2], "set_weights", E.TOO_FEW_WEIGHTS, netuid=wnet, uids=[0, 1, 3, 4], weights=[1] * 4
    )


def test_max_weight_limit(chain: Chain, wnet: int) -> None:
    chain.call(ALICE, "set_hyperparameters", netuid=wnet, max_weight_limit=0.5)
    chain.fails(
        HK[0], "set_weights", E.WEIGHT_LIMIT_EXCEEDED, netuid=wnet, uids=[1, 2], weights=[3, 2]
    )
    chain.call(HK[0], "set_weights", netuid=wnet, uids=[1, 2], weights=[5, 5])
    chain.call(HK[1], "set_weights", netuid=wnet, uids=[1], weights=[9])  # self weight: exempt


def test_weights_rate_limit_allows_the_first_set(chain: Chain) -> None:
    netuid = chain.subnet(weights_rate_limit=5)
    chain.register(netuid, HK[0])
    chain.register(netuid, HK[1])
    chain.call(HK[0], "set_weights", netuid=netuid, uids=[1], weights=[1])  # same block: first
    chain.blocks(4)
    err = chain.fails(HK[0], "set_weights", E.RATE_LIMITED, netuid=netuid, uids=[1], weights=[1])
    assert "block 5" in err.message
    chain.blocks(1)
    chain.call(HK[0], "set_weights", netuid=netuid, uids=[1], weights=[1])


def test_set_weights_needs_registration_and_no_commit_reveal(chain: Chain, wnet: int) -> None:
    chain.fails(HK[9], "set_weights", E.NOT_REGISTERED, netuid=wnet, uids=[1], weights=[1])
    chain.fails(HK[0], "set_weights", E.UNKNOWN_SUBNET, netuid=3, uids=[1], weights=[1])
    chain.call(ALICE, "set_hyperparameters", netuid=wnet, commit_reveal_weights_enabled=True)
    chain.fails(HK[0], "set_weights", E.COMMIT_REVEAL_ENABLED, netuid=wnet, uids=[1], weights=[1])


# ---------------------------------------------------------------------------------------
# Commit-reveal
# ---------------------------------------------------------------------------------------


@pytest.fixture
def crnet(chain: Chain) -> int:
    netuid = chain.subnet(commit_reveal_weights_enabled=True, commit_reveal_period=1)
    for i in range(3):
        chain.register(netuid, HK[i])
    chain.blocks(1)
    return netuid


def _reveal(netuid: int, uids: list[int], weights: list[int], salt: object) -> dict[str, object]:
    return {"netuid": netuid, "uids": uids, "weights": weights, "salt": salt, "version_key": 1}


def test_commit_reveal_flow(chain: Chain, crnet: int) -> None:
    salt = [7, 8, 9]
    digest = weights_commit_hash(HK[0], crnet, [1, 2], [100, 300], salt, 1)
    out = chain.call(HK[0], "commit_weights", netuid=crnet, commit_hash=digest)
    assert out["epoch"] == 0 and out["reveal_epoch"] == 1
    reveal = _reveal(crnet, [1, 2], [100, 300], salt)
    chain.fails(HK[0], "reveal_weights", E.REVEAL_TOO_EARLY, **reveal)
    chain.to_epoch(crnet)
    chain.fails(HK[0], "reveal_weights", E.COMMIT_MISMATCH, **{**reveal, "salt": [7, 8]})
    chain.fails(HK[0], "reveal_weights", E.COMMIT_MISMATCH, **{**reveal, "weights": [100, 301]})
    chain.call(HK[0], "reveal_weights", **reveal)
    assert chain.state.subnets[crnet].weights[0].tolist() == [0, 21845, U16_MAX]
    assert (HK[0], crnet) not in chain.state.commits
    chain.fails(HK[0], "reveal_weights", E.NO_COMMIT, **reveal)


def test_pending_commits_lists_what_can_still_be_revealed(chain: Chain, crnet: int) -> None:
    first = weights_commit_hash(HK[0], crnet, [1], [1], [1], 1)
    second = weights_commit_hash(HK[1], crnet, [2], [2], [2], 1)
    chain.call(HK[0], "commit_weights", netuid=crnet, commit_hash=first)
    chain.call(HK[1], "commit_weights", netuid=crnet, commit_hash=second)
    pending = pending_commits(chain.state, crnet)
    assert [(c["hotkey"], c["hash"], c["epoch"], c["reveal_epoch"]) for c in pending] == sorted(
        [(HK[0], first, 0, 1), (HK[1], second, 0, 1)])
    assert all(c["block"] == chain.state.block for c in pending)
    assert [c["hash"] for c in pending_commits(chain.state, crnet, HK[1])] == [second]
    assert pending_commits(chain.state, crnet, HK[2]) == []
    chain.to_epoch(crnet)
    chain.call(HK[1], "reveal_weights", **_reveal(crnet, [2], [2], [2]))
    assert [c["hash"] for c in pending_commits(chain.state, crnet)] == [first]
    chain.to_epoch(crnet)  # past its reveal epoch: it can no longer be revealed
    assert pending_commits(chain.state, crnet) == []
    with pytest.raises(ChainError) as unknown:
        pending_commits(chain.state, 99)
    assert unknown.value.code == E.UNKNOWN_SUBNET


def test_hex_salt_equals_its_byte_list(chain: Chain, crnet: int) -> None:
    digest = weights_commit_hash(HK[1], crnet, [0], [1], "0x0a0b", 1)
    assert digest == weights_commit_hash(HK[1], crnet, [0], [1], [10, 11], 1)
    chain.call(
        HK[1], "commit_weights", netuid=crnet, commit_hash=digest.upper().replace("0X", "0x")
    )
    chain.to_epoch(crnet)
    chain.call(HK[1], "reveal_weights", **_reveal(crnet, [0], [1], "0A0B"))


def test_reveal_too_late(chain: Chain, crnet: int) -> None:
    digest = weights_commit_hash(HK[0], crnet, [1], [1], [1], 1)
    chain.call(HK[0], "commit_weights", netuid=crnet, commit_hash=digest)
    chain.to_epoch(crnet)
    chain.to_epoch(crnet)
    chain.fails(HK[0], "reveal_weights", E.REVEAL_TOO_LATE, **_reveal(crnet, [1], [1], [1]))


def test_commit_reveal_errors(chain: Chain, crnet: int, wnet: int) -> None:
    good = "0x" + "ab" * 32
    chain.fails(HK[0], "commit_weights", E.COMMIT_REVEAL_DISABLED, netuid=wnet, commit_hash=good)
    chain.fails(HK[0], "reveal_weights", E.COMMIT_REVEAL_DISABLED, **_reveal(wnet, [1], [1], [1]))
    chain.fails(HK[9], "commit_weights", E.NOT_REGISTERED, netuid=crnet, commit_hash=good)
    chain.fails(HK[0], "commit_weights", E.INVALID_PARAM, netuid=crnet, commit_hash="0x12")
    chain.fails(HK[0], "commit_weights", E.INVALID_PARAM, netuid=crnet, commit_hash="zz" * 32)
    chain.fails(HK[0], "reveal_weights", E.NO_COMMIT, **_reveal(crnet, [1], [1], [1]))
    chain.fails(HK[0], "reveal_weights", E.INVALID_PARAM, **_reveal(crnet, [1], [1], "abc"))
    chain.fails(HK[0], "reveal_weights", E.INVALID_PARAM, **_reveal(crnet, [1], [1], [70000]))
    for i in range(10):
        chain.call(HK[0], "commit_weights", netuid=crnet, commit_hash=f"0x{i:064x}")
    chain.fails(HK[0], "commit_weights", E.TOO_MANY_COMMITS, netuid=crnet, commit_hash=good)
    chain.fails(HK[1], "commit_weights", E.INVALID_PARAM, netuid=crnet, commit_hash=good, x=1)


def test_commit_rate_limited(chain: Chain) -> None:
    netuid = chain.subnet(commit_reveal_weights_enabled=True, weights_rate_limit=3)
    chain.register(netuid, HK[0])
    chain.call(HK[0], "commit_weights", netuid=netuid, commit_hash="0x" + "01" * 32)
    chain.fails(
        HK[0], "commit_weights", E.RATE_LIMITED, netuid=netuid, commit_hash="0x" + "02" * 32
    )


def test_disabling_commit_reveal_drops_pending_commits(chain: Chain, crnet: int) -> None:
    chain.call(HK[0], "commit_weights", netuid=crnet, commit_hash="0x" + "01" * 32)
    chain.call(ALICE, "set_hyperparameters", netuid=crnet, commit_reveal_weights_enabled=False)
    assert not chain.state.commits


# ---------------------------------------------------------------------------------------
# Evidence
# ---------------------------------------------------------------------------------------


def test_commit_evidence_once_per_epoch(chain: Chain, net: int) -> None:
    digest = "0x" + "cd" * 32
    chain.call(HK[0], "commit_evidence", netuid=net, epoch=0, digest=digest.upper()[2:])
    assert chain.state.evidence[(net, HK[0], 0)] == digest
    chain.fails(HK[0], "commit_evidence", E.DUPLICATE_EVIDENCE, netuid=net, epoch=0, digest=digest)
    chain.call(HK[1], "commit_evidence", netuid=net, epoch=0, digest=digest)
    err = chain.fails(HK[0], "commit_evidence", E.INVALID_PARAM, netuid=net, epoch=1, digest=digest)
    assert err.field == "epoch"
    chain.fails(HK[0], "commit_evidence", E.INVALID_PARAM, netuid=net, epoch=0, digest="0x00")
    chain.fails(HK[9], "commit_evidence", E.NOT_REGISTERED, netuid=net, epoch=0, digest=digest)


# ---------------------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------------------


def test_queries(chain: Chain, net: int) -> None:
    assert account(chain.state, POOR) == {
        "address": POOR,
        "balance": 0,
        "nonce": 0,
        "last_faucet": None,
        "stake": [],
        "total_stake": 0,
        "hotkeys": [],
    }
    info = subnet_info(chain.state, net)
    assert info["n"] == 2 and info["next_epoch_block"] == 10 and info["burn"] == TOKEN
    row = metagraph(chain.state, net)[1]
    expected = {
        "uid", "hotkey", "coldkey", "stake", "incentive", "dividends", "emission", "consensus",
        "validator_trust", "trust", "rank", "validator_permit", "active", "last_update",
        "block_at_registration", "axon",
    }  # fmt: skip
    assert expected <= set(row)
    assert hotkey_info(chain.state, HK[11]) is None
    with pytest.raises(ChainError) as info_err:
        metagraph(chain.state, 42)
    assert info_err.value.code == "unknown_subnet"


def test_genesis_validation() -> None:
    with pytest.raises(ValueError, match="SS58"):
        Genesis(balances={"nope": 1})
    with pytest.raises(ValueError):
        Genesis(balances={ALICE: -1})
    state = genesis_state(Genesis(balances={ALICE: 5, BOB: 0}))
    assert state.total_issuance == 5 and BOB not in state.accounts
    assert state_root(state) == state_root(genesis_state(Genesis(balances={ALICE: 5})))
    assert execute(state, ALICE, 0, "transfer", {"dest": DAVE, "amount": 5}) == {
        "dest": DAVE,
        "amount": 5,
    }


def test_weights_row_dtype_and_shape_after_growth(chain: Chain, wnet: int) -> None:
    chain.call(HK[0], "set_weights", netuid=wnet, uids=[1], weights=[1])
    chain.register(wnet, HK[8])
    weights = chain.state.subnets[wnet].weights
    assert weights.dtype == np.uint16 and weights.shape == (6, 6)
    assert weights[0, 1] == U16_MAX and weights[5].sum() == 0
