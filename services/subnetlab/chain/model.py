"""The chain's state, as plain mutable data: genesis, accounts, subnets, neurons, stake.

Nothing here has behaviour beyond growing and resetting per-uid columns; the transitions
(`accounts`, `subnets`, `neurons`, `staking`, `weights`, `blocks`) read and mutate these
objects, and `codec` serialises them canonically. Mutable dataclasses rather than frozen
models because the ledger applies thousands of extrinsics per second and must not copy the
state for each one: transitions validate first and then mutate in place.

Units: balances, stake, burns and emissions are integers in rao (1 token = 10**9 rao).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from subnetlab.chain.calls import CALL_NAMES
from subnetlab.chain.hyperparameters import Hyperparameters
from subnetlab.chain.units import TOKEN
from subnetlab.keys.keypair import Keypair
from subnetlab.keys.ss58 import is_valid_ss58

DEFAULT_TAKE = 0.18
"""Delegate take of a new hotkey: its owner's cut of the dividends it earns for nominators."""

MAX_TAKE = 0.18
"""Largest take a hotkey owner may set (subtensor's MaxDelegateTake, 11_796 / 65_535)."""

OWNER_CUT_PERCENT = 18
"""Share of a subnet's emission that goes to its owner; the rest follows the epoch."""

MAX_PENDING_COMMITS = 10
"""Unrevealed weight commits one hotkey may hold per subnet (subtensor keeps 10)."""

ROOT_NETUID = 0
"""Reserved, as Bittensor's root network; user subnets are numbered from 1."""

NonNegativeInt = Annotated[int, Field(ge=0, strict=True)]

DEV_FEE = 125_000
"""The default transaction fee in rao (0.000125 token, about a subtensor transfer's fee)."""

DEFAULT_FEES: dict[str, int] = {
    call: DEV_FEE
    for call in ("transfer", "add_stake", "remove_stake", "register", "deregister",
                 "create_subnet", "set_delegate_take")
}
"""Calls that pay a fee by default. As in subtensor, the calls validators and miners make
every epoch (set/commit/reveal weights, serve_axon, commit_evidence) are free, and so are
the faucet (an empty account must be able to drip) and the sudo and owner admin calls."""


MAX_POW_DIFFICULTY = 24
"""Highest faucet proof-of-work difficulty: 2**24 hashes on average, about 15 s of a core."""

MAX_POW_WINDOW = 256
"""Most recent block hashes the chain keeps for the faucet's work (bounds the state)."""


class FaucetConfig(BaseModel):
    """Testnet faucet: how much one drip mints, how often one account may drip, how much
    the faucet may pay in all per block and per interval, and the work a drip must show
    (`chain.faucet` explains the limits)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    amount: int = Field(1_000 * TOKEN, gt=0, strict=True, description="rao minted per drip.")
    cooldown_blocks: int = Field(
        10, ge=0, strict=True, description="Blocks an account waits between two drips."
    )
    block_budget: int = Field(
        10_000 * TOKEN, gt=0, strict=True,
        description="rao the faucet may pay in one block, all accounts together.",
    )
    interval_budget: int = Field(
        100_000 * TOKEN, gt=0, strict=True,
        description="rao the faucet may pay per interval of interval_blocks blocks.",
    )
    interval_blocks: int = Field(
        100, ge=1, le=1_000_000, strict=True,
        description="Length of the budget's interval (windows aligned on multiples).",
    )
    pow_difficulty: int = Field(
        0, ge=0, le=MAX_POW_DIFFICULTY, strict=True,
        description="Leading zero bits of the proof of work a drip must show; 0: none.",
    )
    pow_window_blocks: int = Field(
        64, ge=1, le=MAX_POW_WINDOW, strict=True,
        description="How recent the block the work is done over must be, in blocks.",
    )

    def problem(self) -> tuple[str, str] | None:
        """(field, reason) when the limits contradict each other: a faucet whose budget
        is below one drip could never pay. Shared by genesis validation and sudo."""
        if self.block_budget < self.amount:
            return "block_budget", (f"{self.block_budget} rao is below one drip "
                                    f"(amount {self.amount} rao): the faucet could never pay")
        if self.interval_budget < self.block_budget:
            return "interval_budget", (f"{self.interval_budget} rao is below block_budget "
                                       f"({self.block_budget} rao)")
        return None

    @model_validator(mode="after")
    def _consistent(self) -> FaucetConfig:
        problem = self.problem()
        if problem is not None:
            raise ValueError(f"{problem[0]}: {problem[1]}")
        return self


@dataclass(slots=True)
class FaucetUsage:
    """rao the faucet minted in `block` and in the budget window starting at `window`
    (counters of an older block or window read as zero: see `chain.faucet`)."""

    block: int = -1
    block_minted: int = 0
    window: int = -1
    window_minted: int = 0


DEV_AUTHORITY = "alice"
"""The dev key (`Keypair.dev`) that seals blocks when a genesis names no `authority`, as
Alice is the block author of a Substrate dev chain. Its secret is public knowledge."""


@functools.cache
def _dev_authority() -> str:
    """The dev authority's address (derived once: a Genesis is built often in tests)."""
    return Keypair.dev(DEV_AUTHORITY).ss58_address


class Genesis(BaseModel):
    """The chain's initial state and its fixed economic parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chain_id: str = "subnetlab-dev"
    authority: str = Field(
        default_factory=_dev_authority,
        description="SS58 address of the sr25519 key that seals every block (default: the "
        "public dev key alice, fine for a testnet and nothing of value).",
    )
    salt: str = Field(
        "", max_length=128,
        description="Any text; only changes the genesis hash, so a chain started again "
        "on purpose is another chain and nothing signed for the old one is valid on it.",
    )
    balances: dict[str, NonNegativeInt] = Field(default_factory=dict)
    sudo: str | None = None
    faucet: FaucetConfig | None = None
    allow_loopback_axons: bool = Field(
        False, strict=True,
        description="Whether serve_axon accepts loopback addresses (127.0.0.0/8, ::1): "
        "true only for a chain whose neurons all run on one machine (the dev genesis).",
    )
    subnet_lock_cost: NonNegativeInt = 100 * TOKEN
    block_emission: NonNegativeInt = TOKEN
    default_hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    fees: dict[str, NonNegativeInt] = Field(
        default_factory=lambda: dict(DEFAULT_FEES),
        description="Transaction fee in rao per call name; a call not listed is free. "
        "Withdrawn from the signer when its extrinsic is applied, and burned.",
    )

    @field_validator("fees")
    @classmethod
    def _fee_calls(cls, value: dict[str, int]) -> dict[str, int]:
        for call in value:
            if call not in CALL_NAMES:
                raise ValueError(f"{call!r} is not a call of this chain")
        return value

    @field_validator("balances")
    @classmethod
    def _addresses(cls, value: dict[str, int]) -> dict[str, int]:
        for address in value:
            if not is_valid_ss58(address):
                raise ValueError(f"{address!r} is not a valid SS58 address")
        return value

    @field_validator("sudo", "authority")
    @classmethod
    def _sudo_address(cls, value: str | None) -> str | None:
        if value is not None and not is_valid_ss58(value):
            raise ValueError(f"{value!r} is not a valid SS58 address")
        return value


@dataclass(slots=True)
class Account:
    """A coldkey's free balance, its extrinsic nonce, and its last faucet drip (-1: never)."""

    balance: int = 0
    nonce: int = 0
    last_faucet: int = -1

    def is_default(self) -> bool:
        """An account in this state is indistinguishable from one that does not exist."""
        return self.balance == 0 and self.nonce == 0 and self.last_faucet == -1


@dataclass(slots=True)
class HotkeyInfo:
    """Who owns a hotkey (first registration wins) and the take it charges its nominators."""

    owner: str
    take: float = DEFAULT_TAKE


@dataclass(frozen=True, slots=True)
class Axon:
    """Where a neuron serves: a normalised IP, a port, a protocol, and the block it was set."""

    ip: str
    port: int
    protocol: str
    block: int

    def url(self) -> str:
        """The base URL clients call (IPv6 in brackets)."""
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{self.protocol}://{host}:{self.port}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form, with the derived URL for convenience."""
        return {
            "ip": self.ip,
            "port": self.port,
            "protocol": self.protocol,
            "block": self.block,
            "url": self.url(),
        }


@dataclass(frozen=True, slots=True)
class Commit:
    """A pending weight commit: its hash, the block and the subnet epoch it was made in."""

    hash: str
    block: int
    epoch: int


# Per-uid columns: name -> numpy dtype. `block_at_registration`, `last_update` and
# `last_weights_block` are registration facts; the others are the last epoch's outputs.
ARRAY_COLUMNS: dict[str, type[np.generic]] = {
    "block_at_registration": np.int64,
    "last_update": np.int64,
    "last_weights_block": np.int64,
    "validator_permit": np.bool_,
    "active": np.bool_,
    "stake_share": np.float64,
    "incentive": np.float64,
    "dividends": np.float64,
    "consensus": np.float64,
    "validator_trust": np.float64,
    "trust": np.float64,
    "rank": np.float64,
    "emission": np.int64,
    "pruning_score": np.uint16,
}


def _empty(dtype: type[np.generic]) -> NDArray[Any]:
    return np.zeros(0, dtype=dtype)


@dataclass(slots=True)
class Neurons:
    """The uids of one subnet as parallel columns indexed by uid.

    `emission` is in rao (what the uid's hotkey and its nominators received at the last
    epoch); `pruning_score` is that epoch's emission share max-upscaled to u16, as
    subtensor stores it. `last_weights_block` is -1 until the uid sets (or commits) weights:
    it drives the weights rate limit, so the first set after registration is always allowed.
    `uid_of` is an index (hotkey -> uid), rebuilt on load and not part of the state root.

    A uid whose hotkey deregistered is *vacant*: its hotkey and coldkey are None, its axon
    is None and every column is zero, until a registration fills it (the lowest vacant uid
    first). Vacant uids keep their place so the uids of everyone else never move.
    """

    hotkeys: list[str | None] = field(default_factory=list)
    coldkeys: list[str | None] = field(default_factory=list)
    axons: list[Axon | None] = field(default_factory=list)
    block_at_registration: NDArray[np.int64] = field(default_factory=lambda: _empty(np.int64))
    last_update: NDArray[np.int64] = field(default_factory=lambda: _empty(np.int64))
    last_weights_block: NDArray[np.int64] = field(default_factory=lambda: _empty(np.int64))
    validator_permit: NDArray[np.bool_] = field(default_factory=lambda: _empty(np.bool_))
    active: NDArray[np.bool_] = field(default_factory=lambda: _empty(np.bool_))
    stake_share: NDArray[np.float64] = field(default_factory=lambda: _empty(np.float64))
    incentive: NDArray[np.float64] = field(default_factory=lambda: _empty(np.float64))
    dividends: NDArray[np.float64] = field(default_factory=lambda: _empty(np.float64))
    consensus: NDArray[np.float64] = field(default_factory=lambda: _empty(np.float64))
    validator_trust: NDArray[np.float64] = field(default_factory=lambda: _empty(np.float64))
    trust: NDArray[np.float64] = field(default_factory=lambda: _empty(np.float64))
    rank: NDArray[np.float64] = field(default_factory=lambda: _empty(np.float64))
    emission: NDArray[np.int64] = field(default_factory=lambda: _empty(np.int64))
    pruning_score: NDArray[np.uint16] = field(default_factory=lambda: _empty(np.uint16))
    uid_of: dict[str, int] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of uids, vacant ones included (the size of every column and matrix)."""
        return len(self.hotkeys)

    @property
    def occupied(self) -> int:
        """Number of uids held by a hotkey."""
        return len(self.uid_of)

    def vacant_mask(self) -> NDArray[np.bool_]:
        """Per uid: True where the uid is vacant (what the epoch masks out)."""
        return np.fromiter((h is None for h in self.hotkeys), dtype=np.bool_, count=self.n)

    def first_vacant(self) -> int | None:
        """The lowest vacant uid (the one a registration fills first), or None."""
        if self.occupied == self.n:
            return None
        return self.hotkeys.index(None)

    def column(self, name: str) -> NDArray[Any]:
        """A per-uid column by name (see ARRAY_COLUMNS)."""
        column: NDArray[Any] = getattr(self, name)
        return column

    def append(self, hotkey: str, coldkey: str, block: int) -> int:
        """Add a uid at the end with fresh registration facts and zero outputs."""
        uid = self.n
        self.hotkeys.append(hotkey)
        self.coldkeys.append(coldkey)
        self.axons.append(None)
        for name, dtype in ARRAY_COLUMNS.items():
            setattr(self, name, np.append(self.column(name), np.zeros(1, dtype=dtype)))
        self._fresh(uid, block)
        self.uid_of[hotkey] = uid
        return uid

    def replace(self, uid: int, hotkey: str, coldkey: str, block: int) -> str | None:
        """Give `uid` to a new hotkey, forgetting everything about its previous occupant.

        Works on a vacant uid too (a registration filling it); returns the hotkey that
        held the uid, None when it was vacant.
        """
        old = self.vacate(uid)
        self.hotkeys[uid] = hotkey
        self.coldkeys[uid] = coldkey
        self._fresh(uid, block)
        self.uid_of[hotkey] = uid
        return old

    def vacate(self, uid: int) -> str | None:
        """Empty `uid`: no hotkey, no axon, every column zero; returns who held it."""
        old = self.hotkeys[uid]
        if old is not None:
            del self.uid_of[old]
        self.hotkeys[uid] = None
        self.coldkeys[uid] = None
        self.axons[uid] = None
        for name in ARRAY_COLUMNS:
            self.column(name)[uid] = 0
        return old

    def _fresh(self, uid: int, block: int) -> None:
        self.block_at_registration[uid] = block
        self.last_update[uid] = block
        self.last_weights_block[uid] = -1


def _empty_matrix() -> NDArray[np.uint16]:
    return np.zeros((0, 0), dtype=np.uint16)


@dataclass(slots=True)
class Subnet:
    """One subnet: owner, hyperparameters, emission bookkeeping, neurons, weights and bonds.

    `lock` is the subnet_lock_cost taken from the owner at creation: locked, not burned, so
    it still counts in total issuance. `pending_emission` accrues every block and is paid
    out at the subnet's epoch. `weights` and `bonds` are dense (n, n) u16 matrices, row =
    the uid that set them. `weights_named` marks the entries a validator named in its last
    set (or reveal), explicit zeros included: subtensor keeps weight rows sparse, and under
    Yuma3 with liquid alpha a bond survives only on a named entry.
    """

    netuid: int
    owner: str
    hyperparameters: Hyperparameters
    lock: int
    created_at: int
    last_epoch_block: int
    last_adjustment_block: int
    pending_emission: int = 0
    registrations_this_interval: int = 0
    registrations_this_block: int = 0
    epochs_run: int = 0
    neurons: Neurons = field(default_factory=Neurons)
    weights: NDArray[np.uint16] = field(default_factory=_empty_matrix)
    bonds: NDArray[np.uint16] = field(default_factory=_empty_matrix)
    weights_named: NDArray[np.bool_] = field(
        default_factory=lambda: np.zeros((0, 0), dtype=np.bool_)
    )

    @property
    def epochs(self) -> int:
        """Alias of `epochs_run` (epochs completed so far = the index of the current one)."""
        return self.epochs_run

    def grow(self) -> None:
        """Make room in weights and bonds for one more uid (zero row and column)."""
        n = self.weights.shape[0]
        for name in ("weights", "bonds", "weights_named"):
            matrix = getattr(self, name)
            grown = np.zeros((n + 1, n + 1), dtype=matrix.dtype)
            grown[:n, :n] = matrix
            setattr(self, name, grown)

    def clear_uid(self, uid: int) -> None:
        """Forget the weights and bonds set by and on `uid` (it changes hands or empties)."""
        for matrix in (self.weights, self.bonds, self.weights_named):
            matrix[uid, :] = 0
            matrix[:, uid] = 0


@dataclass(slots=True)
class ChainState:
    """The whole chain: everything the state root commits to.

    `block` is the block being built: extrinsics applied now execute in it, and
    `advance_block` opens the next one. Counters: `total_issuance` is every rao in
    existence (free balances + stake + pending emission + subnet locks); `total_emitted`
    (block emission), `total_faucet` (faucet mints) and `total_burned` (registration burns)
    account for every change of it, with `total_fees` (transaction fees, burned). `fees` is
    the genesis fee schedule (rao per call name). `faucet_usage` and `block_hashes` hold
    the faucet's budget counters and the recent block hashes its work is checked against
    (`chain.faucet`); `allow_loopback_axons` comes from the genesis (`neurons.serve_axon`).
    """

    chain_id: str
    block: int
    sudo: str | None
    faucet: FaucetConfig | None
    faucet_enabled: bool
    subnet_lock_cost: int
    block_emission: int
    default_hyperparameters: Hyperparameters
    total_issuance: int
    total_burned: int = 0
    total_emitted: int = 0
    total_faucet: int = 0
    total_fees: int = 0
    fees: dict[str, int] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)
    hotkeys: dict[str, HotkeyInfo] = field(default_factory=dict)
    stake: dict[str, dict[str, int]] = field(default_factory=dict)
    subnets: dict[int, Subnet] = field(default_factory=dict)
    commits: dict[tuple[str, int], list[Commit]] = field(default_factory=dict)
    evidence: dict[tuple[int, str, int], str] = field(default_factory=dict)
    allow_loopback_axons: bool = False
    faucet_usage: FaucetUsage = field(default_factory=FaucetUsage)
    block_hashes: dict[int, str] = field(default_factory=dict)
    """Hashes of the last sealed blocks, kept while the faucet asks for work over them."""

    @classmethod
    def from_genesis(cls, genesis: Genesis) -> ChainState:
        """Block 0: genesis balances and parameters, no subnets."""
        accounts = {k: Account(balance=v) for k, v in genesis.balances.items() if v > 0}
        return cls(
            chain_id=genesis.chain_id,
            block=0,
            sudo=genesis.sudo,
            faucet=genesis.faucet,
            faucet_enabled=genesis.faucet is not None,
            subnet_lock_cost=genesis.subnet_lock_cost,
            block_emission=genesis.block_emission,
            default_hyperparameters=genesis.default_hyperparameters,
            total_issuance=sum(genesis.balances.values()),
            fees={call: fee for call, fee in genesis.fees.items() if fee > 0},
            accounts=accounts,
            allow_loopback_axons=genesis.allow_loopback_axons,
        )

    # -- small read helpers used by every transition ------------------------------------

    def balance(self, address: str) -> int:
        """Free balance in rao (0 for an unknown account)."""
        acct = self.accounts.get(address)
        return acct.balance if acct is not None else 0

    def nonce(self, address: str) -> int:
        """Next nonce expected from `address` (0 for an unknown account)."""
        acct = self.accounts.get(address)
        return acct.nonce if acct is not None else 0

    def account_for_update(self, address: str) -> Account:
        """The account record, created if needed (only call after validation succeeded)."""
        acct = self.accounts.get(address)
        if acct is None:
            acct = self.accounts[address] = Account()
        return acct

    def credit(self, address: str, amount: int) -> None:
        """Add to a free balance; zero credits create no account."""
        if amount:
            self.account_for_update(address).balance += amount

    def debit(self, address: str, amount: int) -> None:
        """Take from a free balance (the caller checked it suffices)."""
        if amount:
            self.accounts[address].balance -= amount

    def next_netuid(self) -> int:
        """Netuids are 1, 2, 3, ... (0 is the reserved root network)."""
        return max(self.subnets, default=ROOT_NETUID) + 1

    def total_stake(self, hotkey: str) -> int:
        """All stake on a hotkey: the sum of its positions."""
        positions = self.stake.get(hotkey)
        return sum(positions.values()) if positions else 0

    def stake_of(self, hotkey: str, coldkey: str) -> int:
        """One stake position (hotkey, coldkey) in rao."""
        positions = self.stake.get(hotkey)
        return positions.get(coldkey, 0) if positions else 0

    def add_stake_position(self, hotkey: str, coldkey: str, amount: int) -> None:
        """Grow a stake position (zero amounts create nothing)."""
        if amount:
            positions = self.stake.setdefault(hotkey, {})
            positions[coldkey] = positions.get(coldkey, 0) + amount

    def remove_stake_position(self, hotkey: str, coldkey: str, amount: int) -> None:
        """Shrink a stake position, dropping it (and the hotkey's map) when it reaches 0."""
        positions = self.stake[hotkey]
        left = positions[coldkey] - amount
        if left:
            positions[coldkey] = left
        else:
            del positions[coldkey]
            if not positions:
                del self.stake[hotkey]
