"""The parse memo: the ledger's door and its block share one extrinsic's parses.

`check_signed(..., memo)` (the door's dry run) leaves the expensive, state-independent
parses (a weights call's checked uid and weight arrays) in `memo`; `apply_signed(...,
memo)` (the block) reuses them and re-runs every check that reads the state. The outcome
must be exactly the one without a memo: same result, same error, same state root.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from subnetlab.chain.codec import from_snapshot, to_snapshot
from subnetlab.chain.errors import ChainError, ErrorCode
from subnetlab.chain.params import Params, ParseMemo
from subnetlab.chain.state import apply_signed, check_signed, state_root
from subnetlab.chain.weights import weights_commit_hash
from tests.unit.state_support import ALICE, Chain, addr, weights_subnet

E = ErrorCode
HK = [addr(f"memo-hk{i}") for i in range(8)]


@pytest.fixture
def wnet(chain: Chain) -> int:
    """Five uids HK[0..4], the chain one block on."""
    return weights_subnet(chain, HK[:5])


def _twin(chain: Chain) -> Chain:
    """An identical chain, through a snapshot."""
    return Chain.resume(from_snapshot(to_snapshot(chain.state)))


def _door_then_block(
    chain: Chain, origin: str, call: str, params: dict[str, Any], between: Any = None
) -> tuple[tuple[int, ChainError | None], ParseMemo]:
    memo: ParseMemo = {}
    nonce = chain.state.nonce(origin)
    check_signed(chain.state, origin, nonce, call, params, memo)
    if between is not None:
        between(chain)
    return apply_signed(chain.state, origin, nonce, call, params, memo), memo


def _without_memo(
    chain: Chain, origin: str, call: str, params: dict[str, Any], between: Any = None
) -> tuple[int, ChainError | None]:
    nonce = chain.state.nonce(origin)
    check_signed(chain.state, origin, nonce, call, params)
    if between is not None:
        between(chain)
    return apply_signed(chain.state, origin, nonce, call, params)


def _same(a: tuple[int, ChainError | None], b: tuple[int, ChainError | None]) -> None:
    assert a[0] == b[0]
    if a[1] is None or b[1] is None:
        assert a[1] is b[1] is None
    else:
        assert (a[1].code, a[1].message, a[1].field) == (b[1].code, b[1].message, b[1].field)


def test_the_block_reuses_the_doors_parse_and_ends_in_the_same_state(
    chain: Chain, wnet: int
) -> None:
    params = {"netuid": wnet, "uids": [1, 2, 3], "weights": [5, 0, 9]}
    twin = _twin(chain)
    with_memo, memo = _door_then_block(chain, HK[0], "set_weights", params)
    _same(with_memo, _without_memo(twin, HK[0], "set_weights", params))
    assert with_memo == (0, None)
    assert state_root(chain.state) == state_root(twin.state)
    assert chain.state.subnets[wnet].weights[0].tolist() == [0, 36408, 0, 65535, 0]
    (value, names), = memo.values()
    assert names == {"uids", "weights"}
    assert not value.uids.flags.writeable and not value.weights.flags.writeable


def test_a_check_on_the_block_state_still_refuses(chain: Chain, wnet: int) -> None:
    """The door's plan passed; before the block, the owner raised min_allowed_weights:
    the block's plan (parses reused) refuses it, as it would have without the memo."""
    def raise_minimum(c: Chain) -> None:
        c.call(ALICE, "set_hyperparameters", netuid=wnet, min_allowed_weights=4)

    params = {"netuid": wnet, "uids": [1, 2], "weights": [1, 1]}
    twin = _twin(chain)
    with_memo, _ = _door_then_block(chain, HK[0], "set_weights", params, raise_minimum)
    _same(with_memo, _without_memo(twin, HK[0], "set_weights", params, raise_minimum))
    assert with_memo[1] is not None and with_memo[1].code == E.TOO_FEW_WEIGHTS
    assert state_root(chain.state) == state_root(twin.state)


def test_a_grown_subnet_is_parsed_again_for_its_new_size(chain: Chain, wnet: int) -> None:
    """The uid bound is the subnet's size: a registration between door and block makes
    another key, so the block parses for the new size instead of trusting the old."""
    def register(c: Chain) -> None:
        c.register(wnet, HK[5])

    params = {"netuid": wnet, "uids": [0, 1, 2, 3, 4], "weights": [1, 1, 1, 1, 1]}
    twin = _twin(chain)
    with_memo, memo = _door_then_block(chain, HK[1], "set_weights", params, register)
    _same(with_memo, _without_memo(twin, HK[1], "set_weights", params, register))
    assert len(memo) == 2  # one parse per subnet size
    assert state_root(chain.state) == state_root(twin.state)


def test_parsed_marks_the_names_it_read_on_a_hit_and_forgets_a_failed_parse() -> None:
    memo: ParseMemo = {}
    calls: list[int] = []

    def parse(p: Params) -> int:
        calls.append(1)
        return p.int_("a") * 2

    first = Params({"a": 2, "b": 1}, memo)
    assert first.parsed("double", lambda: parse(first)) == 4
    again = Params({"a": 2, "b": 1}, memo)
    assert again.parsed("double", lambda: parse(again)) == 4
    assert len(calls) == 1
    again.raw("b")
    again.done()  # "a" counts as read on the hit
    unread = Params({"a": 2, "b": 1}, memo)
    unread.parsed("double", lambda: parse(unread))
    with pytest.raises(ChainError) as info:
        unread.done()  # "b" was never read: still an unknown parameter
    assert info.value.field == "b"

    failing = Params({"x": 1}, memo)
    with pytest.raises(ChainError):
        failing.parsed("missing", lambda: parse(failing))
    assert "missing" not in memo


def test_reveal_reuses_the_parse_too(chain: Chain) -> None:
    """reveal_weights shares the vectors' parse: a memo'd reveal ends as one without."""
    netuid = chain.subnet(commit_reveal_weights_enabled=True, commit_reveal_period=1)
    for i in range(3):
        chain.register(netuid, HK[i])
    chain.blocks(1)
    salt = [1, 2, 3]
    digest = weights_commit_hash(HK[0], netuid, [1, 2], [3, 4], salt)
    chain.call(HK[0], "commit_weights", netuid=netuid, commit_hash=digest)
    chain.to_epoch(netuid)
    params = {"netuid": netuid, "uids": [1, 2], "weights": [3, 4], "salt": salt}
    twin = _twin(chain)
    with_memo, _ = _door_then_block(chain, HK[0], "reveal_weights", params)
    _same(with_memo, _without_memo(twin, HK[0], "reveal_weights", params))
    assert with_memo == (0, None)
    assert np.array_equal(chain.state.subnets[netuid].weights, twin.state.subnets[netuid].weights)
    assert state_root(chain.state) == state_root(twin.state)
