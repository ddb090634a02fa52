"""Helpers shared by the state-machine tests (no tests here).

`Chain` drives a `ChainState` the way the ledger does (origin + current nonce), and
`Chain.fails` asserts the two things every refused extrinsic must guarantee: the expected
error code and a state root identical to the one before.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from subnetlab.chain.errors import ChainError
from subnetlab.chain.hyperparameters import Hyperparameters
from subnetlab.chain.model import ChainState, FaucetConfig, Genesis
from subnetlab.chain.state import (
    BlockReport,
    advance_block,
    execute,
    genesis_state,
    state_root,
    total_holdings,
)
from subnetlab.chain.units import TOKEN
from subnetlab.keys.ss58 import ss58_encode


def addr(name: str) -> str:
    """A deterministic, valid SS58 address for a name."""
    return ss58_encode(hashlib.blake2b(name.encode(), digest_size=32).digest())


SUDO = addr("sudo")
ALICE = addr("alice")
BOB = addr("bob")
CAROL = addr("carol")
DAVE = addr("dave")
POOR = addr("poor")
FUNDED = [ALICE, BOB, CAROL, DAVE]
START_BALANCE = 100_000 * TOKEN

# Small, fast subnets for tests: epochs every 10 blocks, no weights rate limit, no immunity.
TEST_HP = Hyperparameters(
    tempo=10,
    weights_rate_limit=0,
    immunity_period=0,
    max_registrations_per_block=100,
    target_registrations_per_interval=100,
    activity_cutoff=1000,
)


def make_genesis(**overrides: Any) -> Genesis:
    """Funded accounts, a sudo, a faucet, and TEST_HP as the default hyperparameters."""
    fields: dict[str, Any] = {
        "balances": {a: START_BALANCE for a in [*FUNDED, SUDO]},
        "sudo": SUDO,
        "faucet": FaucetConfig(amount=50 * TOKEN, cooldown_blocks=5),
        "default_hyperparameters": TEST_HP,
        "allow_loopback_axons": True,  # a dev chain: tests serve on 127.0.0.1
        **overrides,
    }
    return Genesis(**fields)


class Chain:
    """A state plus the ledger's calling convention."""

    def __init__(self, genesis: Genesis | None = None) -> None:
        self.state: ChainState = genesis_state(genesis or make_genesis())
        self.genesis_issuance = self.state.total_issuance

    @classmethod
    def resume(cls, state: ChainState) -> Chain:
        """Drive an existing state (a restored snapshot); its genesis issuance is derived
        from its counters, so `check` still holds it to conservation."""
        chain = cls.__new__(cls)
        chain.state = state
        chain.genesis_issuance = (state.total_issuance - state.total_emitted
                                  - state.total_faucet + state.total_burned + state.total_fees)
        return chain

    def call(self, origin: str, call: str, **params: Any) -> dict[str, Any]:
        """Apply a call with the origin's current nonce; it must succeed."""
        nonce = self.state.nonce(origin)
        result = execute(self.state, origin, nonce, call, params)
        assert self.state.nonce(origin) == nonce + 1
        self.check()
        return result

    def fails(self, origin: str, call: str, code: str, **params: Any) -> ChainError:
        """Apply a call that must be refused with `code`, leaving the state root unchanged."""
        return self.fails_with_nonce(origin, self.state.nonce(origin), call, code, params)

    def fails_with_nonce(
        self, origin: str, nonce: Any, call: str, code: str, params: Any
    ) -> ChainError:
        """Like `fails` with an explicit nonce and raw params object."""
        root = state_root(self.state)
        with pytest.raises(ChainError) as info:
            execute(self.state, origin, nonce, call, params)
        assert info.value.code == code, info.value.message
        assert state_root(self.state) == root
        return info.value

    def blocks(self, count: int = 1) -> list[BlockReport]:
        """Advance `count` blocks."""
        reports = [advance_block(self.state) for _ in range(count)]
        self.check()
        return reports

    def check(self) -> None:
        """Conservation: issuance = holdings = genesis + emitted + faucet - burned - fees."""
        check_conservation(self.state)
        s = self.state
        minted = s.total_emitted + s.total_faucet
        assert s.total_issuance == self.genesis_issuance + minted - s.total_burned - s.total_fees

    def subnet(self, owner: str = ALICE, **hp: Any) -> int:
        """Create a subnet and return its netuid."""
        return int(self.call(owner, "create_subnet", hyperparameters=hp)["netuid"])

    def register(self, netuid: int, hotkey: str, coldkey: str = ALICE) -> int:
        """Register a hotkey and return its uid."""
        return int(self.call(coldkey, "register", netuid=netuid, hotkey=hotkey)["uid"])

    def to_epoch(self, netuid: int) -> BlockReport:
        """Advance to the block where `netuid` runs its next epoch; return that block."""
        before = self.state.subnets[netuid].epochs_run
        while True:
            report = self.blocks(1)[0]
            if self.state.subnets[netuid].epochs_run > before:
                return report


def weights_subnet(chain: Chain, hotkeys: list[str]) -> int:
    """A subnet with `hotkeys` registered as uids 0.. at this block, the chain one block
    on (so that they may set weights)."""
    netuid = chain.subnet()
    for hotkey in hotkeys:
        chain.register(netuid, hotkey)
    chain.blocks(1)
    return netuid


def check_conservation(state: ChainState) -> None:
    """Issuance equals every rao held, and its changes are exactly mints minus burns."""
    assert state.total_issuance == total_holdings(state)
    assert state.total_issuance >= 0
    assert all(a.balance >= 0 for a in state.accounts.values())
    assert all(v > 0 for p in state.stake.values() for v in p.values())
