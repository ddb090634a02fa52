"""Properties of the state machine under random input (hypothesis).

1. Any call with any params either succeeds or raises ChainError, and a refused call leaves
   the state root exactly as it was (never a TypeError, never a half-applied mutation).
2. Random sequences of calls and blocks conserve rao exactly: issuance always equals every
   rao held, an extrinsic changes it only by faucet mints minus registration burns, and a
   block only by its emission.
3. Snapshots round-trip at any point of such a sequence.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from subnetlab.chain.errors import ChainError
from subnetlab.chain.model import ChainState
from subnetlab.chain.state import (
    CALLS,
    advance_block,
    execute,
    from_snapshot,
    state_root,
    to_snapshot,
    total_holdings,
    weights_commit_hash,
)
from subnetlab.chain.units import TOKEN
from tests.unit.state_support import (
    ALICE,
    BOB,
    CAROL,
    POOR,
    SUDO,
    Chain,
    addr,
)

HK = [addr(f"fuzz-hotkey-{i}") for i in range(6)]
ORIGINS = [ALICE, BOB, CAROL, POOR, SUDO, *HK]


@cache
def _base_snapshot() -> bytes:
    """A busy chain: a plain and a commit-reveal subnet, stake, weights, commits, evidence."""
    chain = Chain()
    plain = chain.subnet(ALICE, max_allowed_uids=4, immunity_period=3)
    reveal = chain.subnet(BOB, commit_reveal_weights_enabled=True)
    for i in range(4):
        chain.register(plain, HK[i], ALICE if i % 2 else BOB)
    chain.register(reveal, HK[0], BOB)
    chain.register(reveal, HK[1], ALICE)
    chain.call(ALICE, "add_stake", hotkey=HK[1], amount=500 * TOKEN)
    chain.call(CAROL, "add_stake", hotkey=HK[1], amount=100 * TOKEN)
    chain.blocks(1)
    chain.call(HK[1], "set_weights", netuid=plain, uids=[0, 2], weights=[10, 20])
    chain.call(HK[1], "serve_axon", netuid=plain, ip="127.0.0.1", port=8000)
    digest = weights_commit_hash(HK[0], reveal, [1], [1], [1], 0)
    chain.call(HK[0], "commit_weights", netuid=reveal, commit_hash=digest)
    chain.call(HK[1], "commit_evidence", netuid=plain, epoch=0, digest="0x" + "aa" * 32)
    chain.blocks(12)
    return to_snapshot(chain.state)


PARAM_NAMES = [
    "dest", "amount", "netuid", "hotkey", "hyperparameters", "tempo", "kappa", "burn",
    "max_allowed_uids", "commit_reveal_weights_enabled", "enabled", "cooldown_blocks", "ip",
    "port", "protocol", "take", "uids", "weights", "version_key", "commit_hash", "salt",
    "epoch", "digest", "bogus",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([-1, 0, 1, 2, 3, 5, 255, 256, 65535, 65536, 2**63, 2**64, TOKEN]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([*ORIGINS, "", "0x", "0x" + "ab" * 32, "abcd", "127.0.0.1", "::1", "http"]),
    st.text(max_size=8),
)
values = st.one_of(
    scalars,
    st.lists(st.one_of(st.integers(min_value=-2, max_value=70000), scalars), max_size=6),
    st.dictionaries(st.sampled_from(PARAM_NAMES), scalars, max_size=3),
)
params_strategy = st.dictionaries(st.sampled_from(PARAM_NAMES), values, max_size=5)

# Valid-looking params per call (against the base snapshot), to be mutated: random params
# alone rarely get past the first check, templates reach the deep ones.
TEMPLATES: dict[str, dict[str, Any]] = {
    "transfer": {"dest": BOB, "amount": 5},
    "faucet": {},
    "sudo_set_faucet": {"enabled": True, "amount": 5, "cooldown_blocks": 1},
    "create_subnet": {"hyperparameters": {"tempo": 5}},
    "set_hyperparameters": {"netuid": 1, "tempo": 5},
    "sudo_set_hyperparameters": {"netuid": 1, "kappa": 0.4},
    "register": {"netuid": 1, "hotkey": HK[4]},
    "deregister": {"netuid": 1, "hotkey": HK[1]},
    "serve_axon": {"netuid": 1, "ip": "10.0.0.1", "port": 80},
    "add_stake": {"hotkey": HK[1], "amount": 5},
    "remove_stake": {"hotkey": HK[1], "amount": 5},
    "set_delegate_take": {"hotkey": HK[1], "take": 0.1},
    "set_weights": {"netuid": 1, "uids": [0, 2], "weights": [1, 2]},
    "commit_weights": {"netuid": 2, "commit_hash": "0x" + "ab" * 32},
    "reveal_weights": {"netuid": 2, "uids": [1], "weights": [1], "salt": [1], "version_key": 0},
    "commit_evidence": {"netuid": 1, "epoch": 1, "digest": "0x" + "cd" * 32},
}
NATURAL_ORIGIN = {
    "transfer": ALICE, "faucet": POOR, "sudo_set_faucet": SUDO, "create_subnet": ALICE,
    "set_hyperparameters": ALICE, "sudo_set_hyperparameters": SUDO, "register": ALICE,
    "deregister": ALICE,
    "serve_axon": HK[1], "add_stake": ALICE, "remove_stake": ALICE, "set_delegate_take": ALICE,
    "set_weights": HK[1], "commit_weights": HK[0], "reveal_weights": HK[0],
    "commit_evidence": HK[1],
}  # fmt: skip
DROP = object()


@st.composite
def mutated_call(draw: st.DrawFn) -> tuple[str, str, Any]:
    """A call from TEMPLATES with some params dropped, replaced, or added."""
    call = draw(st.sampled_from(sorted(TEMPLATES)))
    origin = draw(st.sampled_from([NATURAL_ORIGIN[call]] * 3 + ORIGINS))
    params = dict(TEMPLATES[call])
    keys = st.sampled_from(sorted({*params, *PARAM_NAMES}))
    changes = draw(st.dictionaries(keys, st.one_of(values, st.just(DROP)), max_size=2))
    for key, value in changes.items():
        if value is DROP:
            params.pop(key, None)
        else:
            params[key] = value
    return origin, call, params


random_call = st.tuples(
    st.sampled_from(ORIGINS),
    st.sampled_from([*CALLS, "bogus", ""]),
    st.one_of(params_strategy, values),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    extrinsic=st.one_of(mutated_call(), mutated_call(), random_call),
    nonce_offset=st.sampled_from([0, 0, 0, 0, 0, 0, -1, 1, 7]),
)
def test_refused_calls_leave_the_state_root_unchanged(
    extrinsic: tuple[str, str, Any], nonce_offset: int
) -> None:
    origin, call, params = extrinsic
    state = from_snapshot(_base_snapshot())
    root = state_root(state)
    issuance = state.total_issuance
    try:
        execute(state, origin, state.nonce(origin) + nonce_offset, call, params)
    except ChainError as err:
        event(f"refused: {err.code}")
        assert err.code and err.message
        assert state_root(state) == root
    else:
        event(f"applied: {call}")
        assert nonce_offset == 0
        assert state.total_issuance == total_holdings(state)
        assert state.total_issuance - issuance in (0, 50 * TOKEN) or call == "register"


# --------------------------------------------------------------------------------------
# Random valid-ish sequences: conservation
# --------------------------------------------------------------------------------------

coldkeys = st.sampled_from([ALICE, BOB, CAROL, POOR])
hotkeys = st.sampled_from(HK)
netuids = st.integers(min_value=1, max_value=3)
amounts = st.integers(min_value=1, max_value=2_000 * TOKEN)

actions = st.one_of(
    st.tuples(st.just("blocks"), st.integers(min_value=1, max_value=12)),
    st.tuples(st.just("transfer"), coldkeys, coldkeys, amounts),
    st.tuples(st.just("faucet"), coldkeys),
    st.tuples(st.just("create_subnet"), coldkeys, st.integers(min_value=2, max_value=8)),
    st.tuples(st.just("register"), coldkeys, hotkeys, netuids),
    st.tuples(st.just("deregister"), coldkeys, hotkeys, netuids),
    st.tuples(st.just("add_stake"), coldkeys, hotkeys, amounts),
    st.tuples(st.just("remove_stake"), coldkeys, hotkeys, amounts),
    st.tuples(st.just("set_delegate_take"), coldkeys, hotkeys, st.sampled_from([0.0, 0.09, 0.18])),
    st.tuples(
        st.just("set_weights"),
        hotkeys,
        netuids,
        st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=4, unique=True),
        st.lists(st.integers(min_value=0, max_value=65535), min_size=4, max_size=4),
    ),
)


def _extrinsic(action: tuple[Any, ...]) -> tuple[str, str, dict[str, Any]]:
    kind = action[0]
    if kind == "transfer":
        return action[1], kind, {"dest": action[2], "amount": action[3]}
    if kind == "faucet":
        return action[1], kind, {}
    if kind == "create_subnet":
        hp = {"tempo": action[2], "max_allowed_uids": 3, "immunity_period": 2}
        return action[1], kind, {"hyperparameters": hp}
    if kind in ("register", "deregister"):
        return action[1], kind, {"hotkey": action[2], "netuid": action[3]}
    if kind in ("add_stake", "remove_stake"):
        return action[1], kind, {"hotkey": action[2], "amount": action[3]}
    if kind == "set_delegate_take":
        return action[1], kind, {"hotkey": action[2], "take": action[3]}
    uids = action[3]
    return action[1], kind, {"netuid": action[2], "uids": uids, "weights": action[4][: len(uids)]}


def _minted(state: ChainState) -> tuple[int, int, int]:
    return state.total_emitted, state.total_faucet, state.total_burned


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(actions, min_size=1, max_size=40))
def test_random_sequences_conserve_issuance(steps: list[tuple[Any, ...]]) -> None:
    chain = Chain()
    state = chain.state
    netuid = chain.subnet(ALICE, tempo=3, max_allowed_uids=4)
    for hotkey, coldkey in zip(HK[:3], (ALICE, BOB, CAROL), strict=True):
        chain.register(netuid, hotkey, coldkey)
    chain.call(ALICE, "add_stake", hotkey=HK[0], amount=300 * TOKEN)
    chain.call(BOB, "add_stake", hotkey=HK[0], amount=700 * TOKEN)
    chain.call(CAROL, "add_stake", hotkey=HK[2], amount=100 * TOKEN)
    for action in steps:
        before = state.total_issuance
        emitted, faucet, burned = _minted(state)
        if action[0] == "blocks":
            for _ in range(action[1]):
                report = advance_block(state)
                assert state.total_issuance - before == report.emitted
                before = state.total_issuance
        else:
            origin, call, params = _extrinsic(action)
            root = state_root(state)
            try:
                execute(state, origin, state.nonce(origin), call, params)
                event(f"applied: {call}")
            except ChainError as err:
                event(f"refused: {err.code}")
                assert state_root(state) == root
            assert state.total_emitted == emitted
            delta = (state.total_faucet - faucet) - (state.total_burned - burned)
            assert state.total_issuance - before == delta
        chain.check()
    restored = from_snapshot(to_snapshot(state))
    assert state_root(restored) == state_root(state)
    advance_block(restored)
    advance_block(state)
    assert state_root(restored) == state_root(state)
