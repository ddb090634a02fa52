"""Blocks and epochs: schedule, emission and its exact payout, burn adjustment, snapshots."""

from __future__ import annotations

import time

import numpy as np

from subnetlab.chain.hyperparameters import Hyperparameters
from subnetlab.chain.model import OWNER_CUT_PERCENT
from subnetlab.chain.neurons import adjusted_burn
from subnetlab.chain.state import (
    advance_block,
    execute,
    from_snapshot,
    metagraph,
    state_root,
    subnet_info,
    to_snapshot,
    weights_commit_hash,
)
from subnetlab.chain.units import TOKEN
from tests.unit.state_support import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    Chain,
    addr,
    make_genesis,
)

HK = [addr(f"epoch-hotkey-{i}") for i in range(8)]


def _epoch_blocks(chain: Chain, blocks: int) -> dict[int, list[int]]:
    """netuid -> blocks at which it ran an epoch, over the next `blocks` blocks."""
    ran: dict[int, list[int]] = {}
    for report in chain.blocks(blocks):
        for ep in report.epochs:
            ran.setdefault(ep.netuid, []).append(ep.block)
    return ran


def test_epoch_every_tempo_blocks_since_creation() -> None:
    chain = Chain()
    first = chain.subnet(tempo=10)
    chain.blocks(3)
    second = chain.subnet(BOB, tempo=5)
    ran = _epoch_blocks(chain, 20)
    assert ran[first] == [10, 20]
    assert ran[second] == [8, 13, 18, 23]
    assert chain.state.subnets[first].epochs_run == 2
    # at block 23 (last epoch at 20) tempo drops to 3: overdue, so the next block runs it
    chain.call(ALICE, "set_hyperparameters", netuid=first, tempo=3)
    assert _epoch_blocks(chain, 7)[first] == [24, 27, 30]
    assert subnet_info(chain.state, first)["next_epoch_block"] == 33


def test_block_emission_is_split_equally_with_remainder_to_low_netuids() -> None:
    chain = Chain(make_genesis(block_emission=10))
    report = chain.blocks(1)[0]
    assert report.emitted == 0  # no subnet, nothing minted
    for owner in (ALICE, BOB, CAROL):
        chain.subnet(owner, tempo=1000)
    chain.blocks(1)
    assert [s.pending_emission for s in chain.state.subnets.values()] == [4, 3, 3]
    assert chain.state.total_emitted == 10


def test_owner_gets_18_percent_and_the_rest_is_paid_or_carried() -> None:
    chain = Chain()
    netuid = chain.subnet(ALICE, tempo=10)
    before = chain.state.balance(ALICE)
    report = chain.to_epoch(netuid).epochs[0]
    pending = 10 * TOKEN
    assert report.owner_cut == pending * OWNER_CUT_PERCENT // 100
    assert chain.state.balance(ALICE) - before == report.owner_cut
    # no neurons: the 82% waits for the next epoch
    assert report.carried == pending - report.owner_cut
    assert chain.state.subnets[netuid].pending_emission == report.carried


def test_incentive_and_dividends_are_credited_as_stake_with_take() -> None:
    chain = Chain()
    netuid = chain.subnet(CAROL, tempo=10)
    chain.register(netuid, HK[0], ALICE)  # validator hotkey of ALICE
    chain.call(ALICE, "add_stake", hotkey=HK[0], amount=1_000 * TOKEN)
    chain.call(BOB, "add_stake", hotkey=HK[0], amount=3_000 * TOKEN)  # BOB delegates
    report = chain.to_epoch(netuid).epochs[0]
    # a lone validator without weights earns every dividend by stake
    paid = report.dividends
    assert report.incentive == 0 and paid + report.carried == 10 * TOKEN - report.owner_cut
    take = paid * 180_000_000 // 10**9
    rest = paid - take
    bob_share = rest * 3_000 // 4_000
    assert chain.state.stake_of(HK[0], BOB) == 3_000 * TOKEN + bob_share
    alice_gain = chain.state.stake_of(HK[0], ALICE) - 1_000 * TOKEN
    assert alice_gain == paid - bob_share  # take + her share + the rounding dust
    assert metagraph(chain.state, netuid)[0]["emission"] == paid


def test_zero_take_splits_purely_pro_rata() -> None:
    chain = Chain()
    netuid = chain.subnet(CAROL, tempo=10)
    chain.register(netuid, HK[0], ALICE)
    chain.call(ALICE, "set_delegate_take", hotkey=HK[0], take=0.0)
    chain.call(ALICE, "add_stake", hotkey=HK[0], amount=1_000 * TOKEN)
    chain.call(BOB, "add_stake", hotkey=HK[0], amount=1_000 * TOKEN)
    chain.to_epoch(netuid)
    alice = chain.state.stake_of(HK[0], ALICE)
    bob = chain.state.stake_of(HK[0], BOB)
    assert bob > 1_000 * TOKEN and 0 <= alice - bob <= 1


def test_burn_adjusts_towards_the_target() -> None:
    chain = Chain()
    netuid = chain.subnet(
        adjustment_interval=10,
        target_registrations_per_interval=1,
        burn=TOKEN,
        min_burn=TOKEN // 4,
        max_burn=3 * TOKEN,
        tempo=1000,
    )
    for i in range(3):
        chain.register(netuid, HK[i])
    chain.blocks(9)
    assert chain.state.subnets[netuid].hyperparameters.burn == TOKEN
    chain.blocks(1)  # block 10: 3 registrations vs target 1 -> burn * 4 / 2
    assert chain.state.subnets[netuid].hyperparameters.burn == 2 * TOKEN
    assert chain.state.subnets[netuid].registrations_this_interval == 0
    chain.blocks(10)  # none: burn * 1 / 2
    assert chain.state.subnets[netuid].hyperparameters.burn == TOKEN
    chain.blocks(20)  # halves twice, clamped at min_burn
    assert chain.state.subnets[netuid].hyperparameters.burn == TOKEN // 4
    chain.call(ALICE, "register", netuid=netuid, hotkey=HK[5])
    assert chain.state.total_burned == 3 * TOKEN + TOKEN // 4
    for i in range(2):
        chain.register(netuid, HK[6 + i])
    chain.blocks(10)  # 3 registrations again: x2
    assert chain.state.subnets[netuid].hyperparameters.burn == TOKEN // 2


def test_adjusted_burn_formula_and_max_clamp() -> None:
    hp = Hyperparameters(
        burn=TOKEN, min_burn=1, max_burn=3 * TOKEN, target_registrations_per_interval=2
    )
    assert adjusted_burn(hp, 2) == TOKEN  # on target: unchanged
    assert adjusted_burn(hp, 6) == 2 * TOKEN  # (6 + 2) / 4
    assert adjusted_burn(hp, 100) == 3 * TOKEN  # clamped to max_burn
    assert adjusted_burn(hp, 0) == TOKEN // 2


def test_end_to_end_favoured_miner_wins_and_stake_grows() -> None:
    chain = Chain()
    netuid = chain.subnet(ALICE, tempo=10, kappa=0.5)
    validators = [HK[0], HK[1], HK[2]]
    miners = [HK[3], HK[4], HK[5]]
    for hotkey, coldkey in zip(validators, (ALICE, BOB, CAROL), strict=True):
        chain.register(netuid, hotkey, coldkey)
        chain.call(coldkey, "add_stake", hotkey=hotkey, amount=1_000 * TOKEN)
    for miner in miners:
        chain.register(netuid, miner, DAVE)
        chain.call(miner, "serve_axon", netuid=netuid, ip="127.0.0.1", port=9000)
    chain.blocks(1)
    for epoch in range(4):
        for validator in validators:
            chain.call(
                validator, "set_weights", netuid=netuid, uids=[3, 4, 5], weights=[100, 60000, 100]
            )
            chain.call(
                validator,
                "commit_evidence",
                netuid=netuid,
                epoch=epoch,
                digest=weights_commit_hash(validator, netuid, [4], [1], [epoch]),
            )
        chain.to_epoch(netuid)
    rows = metagraph(chain.state, netuid)
    incentive = [r["incentive"] for r in rows]
    assert int(np.argmax(incentive)) == 4 and incentive[4] > 0.9
    assert all(rows[u]["validator_permit"] for u in (0, 1, 2))
    assert all(rows[u]["dividends"] > 0.3 for u in (0, 1, 2))
    assert rows[4]["stake"] > rows[3]["stake"] and rows[4]["stake"] > 0
    assert all(rows[u]["stake"] > 1_000 * TOKEN for u in (0, 1, 2))
    assert rows[4]["consensus"] > 0.9 and rows[4]["trust"] > 0.99
    assert sum(r["emission"] for r in rows) > 0
    assert len(chain.state.evidence) == 12


def test_snapshot_round_trip_of_a_busy_chain() -> None:
    chain = Chain()
    netuid = chain.subnet(tempo=5, commit_reveal_weights_enabled=True)
    plain = chain.subnet(BOB, tempo=7)
    for i in range(4):
        chain.register(netuid, HK[i])
        chain.register(plain, HK[i])
    chain.call(ALICE, "add_stake", hotkey=HK[0], amount=500 * TOKEN)
    chain.call(BOB, "add_stake", hotkey=HK[0], amount=5 * TOKEN)
    chain.call(HK[1], "serve_axon", netuid=netuid, ip="fd00::1", port=1)
    chain.call(HK[0], "commit_weights", netuid=netuid, commit_hash="0x" + "ee" * 32)
    chain.blocks(1)
    chain.call(HK[0], "set_weights", netuid=plain, uids=[1, 2], weights=[5, 9])
    chain.call(HK[0], "commit_evidence", netuid=plain, epoch=0, digest="0x" + "11" * 32)
    chain.call(DAVE, "faucet")
    chain.blocks(15)
    data = to_snapshot(chain.state)
    restored = from_snapshot(data)
    assert state_root(restored) == state_root(chain.state)
    assert to_snapshot(restored) == data
    # the restored state behaves identically
    for state in (chain.state, restored):
        execute(state, HK[2], 0, "set_weights", {"netuid": plain, "uids": [0], "weights": [1]})
    chain.blocks(10)
    for _ in range(10):
        advance_block(restored)
    assert state_root(restored) == state_root(chain.state)


def test_state_root_ignores_dict_insertion_order() -> None:
    chain = Chain()
    netuid = chain.subnet()
    chain.register(netuid, HK[0])
    chain.call(ALICE, "add_stake", hotkey=HK[0], amount=5)
    chain.call(BOB, "add_stake", hotkey=HK[0], amount=7)
    root = state_root(chain.state)
    state = chain.state
    state.accounts = dict(reversed(list(state.accounts.items())))
    state.stake = {hk: dict(reversed(list(p.items()))) for hk, p in reversed(state.stake.items())}
    assert state_root(state) == root
    state.stake[HK[0]][BOB] += 1
    assert state_root(state) != root


def test_apply_is_fast_enough_for_2000_extrinsics_per_second() -> None:
    chain = Chain(make_genesis(balances={ALICE: 10**18}))
    netuid = chain.subnet(
        max_allowed_uids=256,
        max_registrations_per_block=256,
        target_registrations_per_interval=256,
        burn=1,
        min_burn=1,
    )
    hotkeys = [addr(f"perf-{i}") for i in range(256)]
    for hotkey in hotkeys:
        chain.register(netuid, hotkey)
    chain.blocks(1)
    state = chain.state
    uids = list(range(256))
    weights = [(7 * i) % 65536 + 1 for i in range(256)]

    def per_call(run: int) -> float:
        start = time.perf_counter()
        for i in range(run):
            execute(
                state,
                hotkeys[i],
                0,
                "set_weights",
                {"netuid": netuid, "uids": uids, "weights": weights},
            )
        return (time.perf_counter() - start) / run

    set_weights_s = per_call(200)
    nonce = state.nonce(ALICE)
    start = time.perf_counter()
    for i in range(500):
        execute(state, ALICE, nonce + i, "transfer", {"dest": BOB, "amount": 1})
    transfer_s = (time.perf_counter() - start) / 500
    # budget 0.2 ms each on a normal machine; generous here so shared CI stays green
    assert set_weights_s < 1e-3, set_weights_s
    assert transfer_s < 1e-3, transfer_s
