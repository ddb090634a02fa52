"""deregister: a uid falls vacant, stake goes home, registration refills, Yuma ignores it.

The rules under test are in docs/consensus.md ("Deregistration and vacant uids"): the
owning coldkey signs; the uid is emptied (hotkey, axon, columns, weights, bonds, commits);
stake returns to every staker when it was the hotkey's last uid; each refusal names its
field and leaves the state root as it was; registration takes the lowest vacant uid
first; epochs give a vacant uid nothing; snapshots and block replay reproduce the roots;
the metagraph's consumers never pick a vacant uid.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from subnetlab.chain.errors import ErrorCode
from subnetlab.chain.execution import execute_block
from subnetlab.chain.extrinsic import Extrinsic, sign_extrinsic
from subnetlab.chain.hyperparameters import Hyperparameters
from subnetlab.chain.model import ARRAY_COLUMNS, ChainState, Genesis
from subnetlab.chain.state import (
    from_snapshot,
    genesis_state,
    hotkey_info,
    metagraph,
    state_root,
    subnet_info,
    to_snapshot,
    weights_commit_hash,
)
from subnetlab.chain.units import TOKEN
from subnetlab.chain.yuma import EpochInputs, epoch
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.verify import identity
from subnetlab.protocol.metagraph import StaticMetagraph, occupied
from subnetlab.validator.miners import miners_of
from subnetlab.validator.weights import held_scores
from tests.unit.state_support import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    SUDO,
    TEST_HP,
    Chain,
    addr,
)

E = ErrorCode
HK = [addr(f"dereg-hotkey-{i}") for i in range(8)]


@pytest.fixture
def net(chain: Chain) -> int:
    """ALICE's subnet: HK[0] (a validator owned by ALICE), HK[1] and HK[2] (miners owned by
    BOB), HK[1] staked by BOB and by CAROL (a nominator), serving, weighted by HK[0]."""
    netuid = chain.subnet(ALICE)
    chain.register(netuid, HK[0], ALICE)
    chain.register(netuid, HK[1], BOB)
    chain.register(netuid, HK[2], BOB)
    chain.blocks(1)  # weights newer than the targets' registration
    chain.call(ALICE, "add_stake", hotkey=HK[0], amount=1_000 * TOKEN)
    chain.call(BOB, "add_stake", hotkey=HK[1], amount=30 * TOKEN)
    chain.call(CAROL, "add_stake", hotkey=HK[1], amount=12 * TOKEN)
    chain.call(HK[1], "serve_axon", netuid=netuid, ip="10.0.0.1", port=8091)
    chain.call(HK[0], "set_weights", netuid=netuid, uids=[1, 2], weights=[40_000, 20_000])
    chain.to_epoch(netuid)
    chain.to_epoch(netuid)  # permits lag one epoch: now HK[0] validates, HK[1] earns
    return netuid


def row(chain: Chain, netuid: int, uid: int) -> dict[str, object]:
    return metagraph(chain.state, netuid)[uid]


# ---- the happy path --------------------------------------------------------------------


def test_deregister_empties_the_uid_and_returns_every_stake_position(
    chain: Chain, net: int
) -> None:
    subnet = chain.state.subnets[net]
    assert row(chain, net, 1)["incentive"] > 0 and subnet.bonds[0, 1] > 0
    bob_stake, carol_stake = (chain.state.stake_of(HK[1], BOB),
                              chain.state.stake_of(HK[1], CAROL))
    assert bob_stake > 30 * TOKEN  # it earned incentive, paid into the owner's position
    bob_free, carol_free = chain.state.balance(BOB), chain.state.balance(CAROL)
    issuance = chain.state.total_issuance

    result = chain.call(BOB, "deregister", netuid=net, hotkey=HK[1])

    assert result == {"netuid": net, "uid": 1, "hotkey": HK[1],
                      "returned": bob_stake + carol_stake,
                      "positions": {BOB: bob_stake, CAROL: carol_stake}}
    assert chain.state.balance(BOB) == bob_free + bob_stake
    assert chain.state.balance(CAROL) == carol_free + carol_stake
    assert HK[1] not in chain.state.stake and chain.state.total_issuance == issuance
    vacant = row(chain, net, 1)
    assert vacant["vacant"] is True and vacant["hotkey"] is None
    assert vacant["coldkey"] is None and vacant["take"] is None and vacant["axon"] is None
    for key in ("stake", "stake_share", "incentive", "dividends", "emission", "consensus",
                "validator_trust", "trust", "rank", "pruning_score", "last_update",
                "block_at_registration"):
        assert vacant[key] == 0, key
    assert vacant["validator_permit"] is False and vacant["active"] is False
    for name in ARRAY_COLUMNS:
        assert not subnet.neurons.column(name)[1], name
    assert not subnet.weights[1].any() and not subnet.weights[:, 1].any()
    assert not subnet.bonds[1].any() and not subnet.bonds[:, 1].any()
    assert subnet.weights[0, 2] > 0  # everyone else keeps their uid and their weights
    assert [r["hotkey"] for r in metagraph(chain.state, net)] == [HK[0], None, HK[2]]
    assert row(chain, net, 2)["vacant"] is False
    assert HK[1] not in subnet.neurons.uid_of
    info = subnet_info(chain.state, net)
    assert info["n"] == 3 and info["vacant"] == 1
    # the hotkey keeps its owner and take; it just holds no uid
    assert hotkey_info(chain.state, HK[1]) == {
        "hotkey": HK[1], "owner": BOB, "take": 0.18, "total_stake": 0, "nominators": [],
        "registrations": []}


def test_deregister_drops_pending_commits_and_keeps_evidence(chain: Chain) -> None:
    netuid = chain.subnet(ALICE, commit_reveal_weights_enabled=True)
    chain.register(netuid, HK[0], ALICE)
    chain.register(netuid, HK[1], BOB)
    digest = weights_commit_hash(HK[1], netuid, [0], [1], [7], 0)
    chain.call(HK[1], "commit_weights", netuid=netuid, commit_hash=digest)
    chain.call(HK[1], "commit_evidence", netuid=netuid, epoch=0, digest="0x" + "ee" * 32)
    assert (HK[1], netuid) in chain.state.commits
    chain.call(BOB, "deregister", netuid=netuid, hotkey=HK[1])
    assert (HK[1], netuid) not in chain.state.commits
    assert chain.state.evidence[(netuid, HK[1], 0)] == "0x" + "ee" * 32


def test_stake_stays_while_the_hotkey_holds_a_uid_elsewhere(chain: Chain) -> None:
    first, second = chain.subnet(ALICE), chain.subnet(ALICE)
    chain.register(first, HK[3], BOB)
    chain.register(second, HK[3], BOB)
    chain.call(BOB, "add_stake", hotkey=HK[3], amount=50 * TOKEN)
    free = chain.state.balance(BOB)
    result = chain.call(BOB, "deregister", netuid=first, hotkey=HK[3])
    assert result["returned"] == 0 and result["positions"] == {}
    assert chain.state.stake_of(HK[3], BOB) == 50 * TOKEN
    assert chain.state.balance(BOB) == free
    assert metagraph(chain.state, second)[0]["stake"] == 50 * TOKEN  # still backs it there
    result = chain.call(BOB, "deregister", netuid=second, hotkey=HK[3])  # its last uid
    assert result["returned"] == 50 * TOKEN
    assert chain.state.balance(BOB) == free + 50 * TOKEN


def test_a_hotkey_without_stake_deregisters_and_returns_nothing(chain: Chain) -> None:
    netuid = chain.subnet(ALICE)
    chain.register(netuid, HK[4], CAROL)
    free = chain.state.balance(CAROL)
    result = chain.call(CAROL, "deregister", netuid=netuid, hotkey=HK[4])
    assert result["uid"] == 0 and result["returned"] == 0
    assert chain.state.balance(CAROL) == free  # the burn is not refunded


# ---- refusals: each names its field, the state root stays --------------------------------


def test_refusals_name_the_field_and_change_nothing(chain: Chain, net: int) -> None:
    error = chain.fails(BOB, "deregister", E.UNKNOWN_SUBNET, netuid=99, hotkey=HK[1])
    assert error.field == "netuid" and "subnet 99 does not exist" in error.message
    assert chain.fails(BOB, "deregister", E.UNKNOWN_SUBNET, netuid=0, hotkey=HK[1]).field == (
        "netuid")
    error = chain.fails(BOB, "deregister", E.NOT_REGISTERED, netuid=net, hotkey=HK[6])
    assert error.field == "hotkey" and f"not registered on subnet {net}" in error.message
    for stranger in (ALICE, SUDO, CAROL, HK[1]):  # subnet owner, sudo, nominator, hotkey
        error = chain.fails(stranger, "deregister", E.NOT_OWNER, netuid=net, hotkey=HK[1])
        assert error.field == "hotkey" and BOB in error.message
    assert chain.fails(BOB, "deregister", E.INVALID_PARAM, netuid=net,
                       hotkey="not-an-address").field == "hotkey"
    assert chain.fails(BOB, "deregister", E.INVALID_PARAM, hotkey=HK[1]).field == "netuid"
    assert chain.fails(BOB, "deregister", E.INVALID_PARAM, netuid=net).field == "hotkey"
    assert chain.fails(BOB, "deregister", E.INVALID_PARAM, netuid=net, hotkey=HK[1],
                       amount=1).field == "amount"
    assert chain.fails(BOB, "deregister", E.INVALID_PARAM, netuid=True,
                       hotkey=HK[1]).field == "netuid"


def test_deregistering_twice_is_not_registered(chain: Chain, net: int) -> None:
    chain.call(BOB, "deregister", netuid=net, hotkey=HK[1])
    error = chain.fails(BOB, "deregister", E.NOT_REGISTERED, netuid=net, hotkey=HK[1])
    assert error.field == "hotkey"


def test_a_vacant_uid_can_no_longer_act(chain: Chain, net: int) -> None:
    chain.call(BOB, "deregister", netuid=net, hotkey=HK[1])
    chain.fails(HK[1], "set_weights", E.NOT_REGISTERED, netuid=net, uids=[0], weights=[1])
    chain.fails(HK[1], "serve_axon", E.NOT_REGISTERED, netuid=net, ip="10.0.0.2", port=1)
    chain.fails(HK[1], "commit_evidence", E.NOT_REGISTERED, netuid=net, epoch=0,
                digest="0x" + "aa" * 32)


# ---- registration refills vacancies -------------------------------------------------------


def test_registration_fills_the_lowest_vacancy_before_appending(chain: Chain, net: int) -> None:
    chain.call(BOB, "deregister", netuid=net, hotkey=HK[2])
    chain.call(BOB, "deregister", netuid=net, hotkey=HK[1])
    chain.blocks(1)
    # a validator with a stale metagraph weights the vacant uid: accepted, and cleared on refill
    chain.call(HK[0], "set_weights", netuid=net, uids=[1, 2], weights=[1, 1])
    first = chain.call(CAROL, "register", netuid=net, hotkey=HK[5])
    assert first["uid"] == 1 and first["replaced"] is None
    subnet = chain.state.subnets[net]
    assert subnet.neurons.block_at_registration[1] == chain.state.block
    assert subnet.neurons.last_weights_block[1] == -1 and not subnet.weights[:, 1].any()
    assert chain.register(net, HK[1], BOB) == 2  # the same hotkey, back by its owner
    assert chain.register(net, HK[6], DAVE) == 3  # no vacancy left: a new uid
    info = subnet_info(chain.state, net)
    assert info["n"] == 4 and info["vacant"] == 0
    assert [r["hotkey"] for r in metagraph(chain.state, net)] == [HK[0], HK[5], HK[1], HK[6]]


def test_a_vacancy_in_a_full_subnet_is_filled_instead_of_pruning(chain: Chain) -> None:
    netuid = chain.subnet(ALICE, max_allowed_uids=3, immunity_period=0)
    for i in range(3):
        chain.register(netuid, HK[i], BOB)
    chain.call(BOB, "deregister", netuid=netuid, hotkey=HK[1])
    result = chain.call(CAROL, "register", netuid=netuid, hotkey=HK[5])
    assert result["uid"] == 1 and result["replaced"] is None  # nobody pruned
    assert chain.state.subnets[netuid].neurons.hotkeys == [HK[0], HK[5], HK[2]]
    pruned = chain.call(CAROL, "register", netuid=netuid, hotkey=HK[6])  # full again: prune
    assert pruned["replaced"] in (HK[0], HK[2], HK[5])


def test_the_hotkey_stays_its_owners(chain: Chain, net: int) -> None:
    chain.call(BOB, "deregister", netuid=net, hotkey=HK[1])
    error = chain.fails(CAROL, "register", E.NOT_OWNER, netuid=net, hotkey=HK[1])
    assert error.field == "hotkey"


# ---- epochs with a vacancy ---------------------------------------------------------------


def test_an_epoch_gives_a_vacant_uid_nothing(chain: Chain, net: int) -> None:
    chain.call(BOB, "deregister", netuid=net, hotkey=HK[1])
    chain.blocks(1)
    # weights still naming the vacant uid (a stale validator): masked, the rest renormalised
    chain.call(HK[0], "set_weights", netuid=net, uids=[1, 2], weights=[60_000, 20_000])
    bob_free = chain.state.balance(BOB)
    chain.to_epoch(net)
    report = chain.to_epoch(net).epochs[0]
    vacant, miner = row(chain, net, 1), row(chain, net, 2)
    for key in ("stake", "stake_share", "incentive", "dividends", "emission", "consensus",
                "trust", "rank", "validator_trust", "pruning_score"):
        assert vacant[key] == 0, key
    assert vacant["validator_permit"] is False and vacant["active"] is False
    assert miner["incentive"] == pytest.approx(1.0)  # the only weighted uid left
    assert report.incentive > 0 and report.dividends > 0
    assert HK[1] not in chain.state.stake  # nothing was credited to the departed hotkey
    assert chain.state.balance(BOB) == bob_free
    assert not chain.state.subnets[net].bonds[:, 1].any()


def test_yuma_treats_a_vacant_uid_as_holding_nothing() -> None:
    """Even given stake, a permit and weights for a vacant uid, the epoch ignores them."""
    hp = Hyperparameters(activity_cutoff=1000, tempo=10)
    weights = np.array([[0, 65535, 65535], [65535, 0, 0], [0, 0, 0]], dtype=np.uint16)
    base = EpochInputs(
        block=100, stake=np.array([10.0, 90.0, 0.0]), weights=weights,
        bonds=np.zeros((3, 3), dtype=np.uint16),
        last_update=np.array([50, 50, 50], dtype=np.int64),
        block_at_registration=np.zeros(3, dtype=np.int64),
        validator_permit=np.array([True, True, False]),
    )
    plain = epoch(base, hp)
    assert plain.validator_permit[1] and plain.incentive[0] > 0  # uid 1 would dominate
    vacant = np.array([False, True, False])
    result = epoch(replace(base, vacant=vacant), hp)
    assert result.stake.tolist() == [1.0, 0.0, 0.0]
    assert not result.validator_permit[1] and not result.active[1]
    assert result.incentive.tolist() == [0.0, 0.0, 1.0]  # uid 0's weight on uid 1 is masked
    assert result.dividends[1] == 0.0 and result.emission[1] == 0.0
    assert result.consensus[1] == 0.0 and not result.bonds[:, 1].any()
    assert float(result.emission.sum()) == pytest.approx(1.0)


# ---- snapshots and replay ----------------------------------------------------------------


def test_snapshot_round_trip_of_a_vacancy(chain: Chain, net: int) -> None:
    chain.call(BOB, "deregister", netuid=net, hotkey=HK[1])
    data = to_snapshot(chain.state)
    restored = from_snapshot(data)
    assert state_root(restored) == state_root(chain.state) and to_snapshot(restored) == data
    assert restored.subnets[net].neurons.uid_of == {HK[0]: 0, HK[2]: 2}
    assert restored.subnets[net].neurons.hotkeys[1] is None
    for state in (restored, chain.state):  # both go on identically, refill included
        going_on = Chain.resume(state)
        going_on.blocks(3)
        assert going_on.register(net, HK[7], DAVE) == 1
        going_on.to_epoch(net)
    assert state_root(restored) == state_root(chain.state)


def test_replaying_the_signed_blocks_reproduces_every_root() -> None:
    """What `subnetlab ledger verify` does: execute the stored blocks again from genesis."""
    owner, miner, nominator = (Keypair.dev(n) for n in ("dereg-owner", "dereg-miner",
                                                         "dereg-nominator"))
    hotkeys = [Keypair.dev(f"dereg-hk-{i}") for i in range(3)]
    genesis = Genesis(balances={k.ss58_address: 10_000 * TOKEN
                                for k in (owner, miner, nominator)},
                      default_hyperparameters=TEST_HP)
    nonces: dict[str, int] = {}

    def ext(key: Keypair, call: str, **params: object) -> Extrinsic:
        nonce = nonces.get(key.ss58_address, 0)
        nonces[key.ss58_address] = nonce + 1
        return sign_extrinsic(key, call, dict(params), nonce, identity(genesis))

    hk = [k.ss58_address for k in hotkeys]
    blocks = [
        [ext(owner, "create_subnet")],
        [ext(owner, "register", netuid=1, hotkey=hk[0]),
         ext(miner, "register", netuid=1, hotkey=hk[1]),
         ext(miner, "register", netuid=1, hotkey=hk[2])],
        [ext(owner, "add_stake", hotkey=hk[0], amount=500 * TOKEN),
         ext(nominator, "add_stake", hotkey=hk[1], amount=7 * TOKEN),
         ext(hotkeys[0], "set_weights", netuid=1, uids=[1, 2], weights=[3, 1])],
        *[[] for _ in range(12)],
        [ext(owner, "deregister", netuid=1, hotkey=hk[1]),  # not the owner: a failed receipt
         ext(miner, "deregister", netuid=1, hotkey=hk[1])],
        *[[] for _ in range(6)],
        [ext(nominator, "register", netuid=1, hotkey=Keypair.dev("dereg-new").ss58_address)],
        *[[] for _ in range(12)],
    ]
    live = genesis_state(genesis)
    roots, receipts = [], []
    for block in blocks:
        outcome = execute_block(live, block)
        roots.append(state_root(live))
        receipts.append([(r.ok, r.code) for r in outcome.receipts])
    assert receipts[15] == [(False, "not_owner"), (True, None)]
    assert receipts[22] == [(True, None)]
    assert live.subnets[1].neurons.uid_of[Keypair.dev("dereg-new").ss58_address] == 1
    assert live.balance(nominator.ss58_address) < 10_000 * TOKEN  # paid the burn, got 7 back
    replay: ChainState = genesis_state(genesis)
    for block, root in zip(blocks, roots, strict=True):
        execute_block(replay, block)
        assert state_root(replay) == root


# ---- the metagraph's consumers skip a vacant uid -------------------------------------------


def test_consumers_never_pick_a_vacant_uid(chain: Chain, net: int) -> None:
    chain.call(HK[2], "serve_axon", netuid=net, ip="10.0.0.3", port=8092)
    chain.call(BOB, "deregister", netuid=net, hotkey=HK[1])
    neurons = metagraph(chain.state, net)
    graph = {"netuid": net, "neurons": neurons}
    assert [r["uid"] for r in occupied(neurons)] == [0, 2]
    view = StaticMetagraph.from_neurons(neurons)  # what a miner's guard admits
    assert len(view) == 2 and view.lookup(HK[1]) is None and view.lookup(HK[2]) is not None
    assert "None" not in view
    assert [n["uid"] for n in miners_of(graph, HK[0])] == [2]  # what a validator samples
    assert held_scores({1: 0.9, 2: 0.4, 5: 0.1}, neurons) == {2: 0.4}  # what it weights
