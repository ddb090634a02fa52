"""Block step: emission accrual, burn adjustment, and each subnet's Yuma epoch and payout.

Schedule (`advance_block` opens block b = previous + 1, then, per subnet in netuid order):
1. the per-block registration counter resets; the burn adjusts when
   ``b - last_adjustment_block >= adjustment_interval``;
2. emission: `block_emission` rao are minted and split equally over the existing subnets
   (the remainder of the integer division goes 1 rao each to the lowest netuids); with no
   subnet nothing is minted;
3. the epoch runs when ``b - last_epoch_block >= tempo`` (`last_epoch_block` starts at the
   creation block): an epoch every `tempo` blocks, the cadence yuma.recently_registered
   assumes. Changing tempo takes effect from the last epoch.

Payout of an epoch's pending emission E (all integer rao, nothing created or lost):
- owner: ``E * 18 // 100`` to the subnet owner's free balance;
- R = E - owner cut is split by the epoch's `server_emission` (incentive) and
  `validator_emission` (dividends) shares, each floored: ``R * q_i // D`` where q_i is the
  share scaled exactly to an integer (floor(share * 2**53)) and D = max(2**53, sum q);
- incentive of a uid goes to the stake position (hotkey, hotkey owner);
- dividends of a uid: the hotkey's take (``floor(V * take)``) to (hotkey, owner); the rest
  to every position on the hotkey pro rata to its stake (floored), the flooring dust to
  (hotkey, owner); with no stake on the hotkey, all of it to (hotkey, owner);
- whatever R is not paid (rounding dust, or everything when no uid has a share, e.g. an
  empty subnet) stays in `pending_emission` for the next epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from subnetlab.chain.model import OWNER_CUT_PERCENT, ChainState, Subnet
from subnetlab.chain.neurons import maybe_adjust_burn
from subnetlab.chain.units import TOKEN
from subnetlab.chain.yuma import EpochInputs, EpochResult, epoch, max_upscale_u16

SHARE_SCALE = 2**53
"""Shares (floats in [0, 1]) become exact integers q = floor(share * 2**53) for the payout."""

TAKE_SCALE = 10**9
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class EpochReport:
    """What one subnet epoch paid, in rao."""

    netuid: int
    block: int
    epoch: int
    owner_cut: int
    incentive: int
    dividends: int
    carried: int


@dataclass(frozen=True)
class BlockReport:
    """What advance_block did: the new block, rao minted, and the epochs that ran."""

    block: int
    emitted: int
    epochs: list[EpochReport] = field(default_factory=list)


def advance_block(state: ChainState) -> BlockReport:
    """Open the next block: burn adjustment, emission, and due epochs (see module doc)."""
    state.block += 1
    block = state.block
    netuids = sorted(state.subnets)
    for netuid in netuids:
        subnet = state.subnets[netuid]
        subnet.registrations_this_block = 0
        maybe_adjust_burn(subnet, block)
    emitted = _accrue_emission(state, netuids)
    reports = [
        run_epoch(state, state.subnets[netuid])
        for netuid in netuids
        if block - state.subnets[netuid].last_epoch_block
        >= state.subnets[netuid].hyperparameters.tempo
    ]
    return BlockReport(block=block, emitted=emitted, epochs=reports)


def _accrue_emission(state: ChainState, netuids: list[int]) -> int:
    if not netuids or state.block_emission == 0:
        return 0
    per_subnet, remainder = divmod(state.block_emission, len(netuids))
    for index, netuid in enumerate(netuids):
        state.subnets[netuid].pending_emission += per_subnet + (1 if index < remainder else 0)
    state.total_issuance += state.block_emission
    state.total_emitted += state.block_emission
    return state.block_emission


def epoch_inputs(state: ChainState, subnet: Subnet) -> EpochInputs:
    """What Yuma reads: stake per uid (total on its hotkey, in tokens; none on a vacant
    uid), stored facts, and which uids are vacant."""
    neurons = subnet.neurons
    stake = np.array(
        [0 if hk is None else state.total_stake(hk) for hk in neurons.hotkeys], dtype=np.float64
    ) / TOKEN
    commit_block = None
    hp = subnet.hyperparameters
    if hp.commit_reveal_weights_enabled:  # oldest commit that can still be revealed
        commit_block = np.full(neurons.n, -1, dtype=np.int64)
        for uid, hotkey in enumerate(neurons.hotkeys):
            if hotkey is None:
                continue
            live = [
                c.block
                for c in state.commits.get((hotkey, subnet.netuid), ())
                if c.epoch + hp.commit_reveal_period >= subnet.epochs_run
            ]
            if live:
                commit_block[uid] = min(live)
    return EpochInputs(
        block=state.block,
        stake=stake,
        weights=subnet.weights,
        bonds=subnet.bonds,
        last_update=neurons.last_update,
        block_at_registration=neurons.block_at_registration,
        validator_permit=neurons.validator_permit,
        owner_uid=None,
        commit_block=commit_block,
        vacant=neurons.vacant_mask() if neurons.occupied < neurons.n else None,
        weights_present=subnet.weights_named,
    )


def _store_outputs(subnet: Subnet, result: EpochResult) -> None:
    neurons = subnet.neurons
    neurons.validator_permit = result.validator_permit.astype(np.bool_, copy=True)
    neurons.active = result.active.astype(np.bool_, copy=True)
    neurons.stake_share = result.stake + 0.0
    neurons.incentive = result.incentive + 0.0
    neurons.dividends = result.dividends + 0.0
    neurons.consensus = result.consensus + 0.0
    neurons.validator_trust = result.validator_trust + 0.0
    neurons.trust = result.trust + 0.0
    neurons.rank = result.rank + 0.0
    neurons.pruning_score = max_upscale_u16(result.emission)
    subnet.bonds = result.bonds.astype(np.uint16, copy=True)


def _quantise(shares: NDArray[np.float64]) -> list[int]:
    clipped = np.clip(np.nan_to_num(shares), 0.0, 1.0)
    return [int(q) for q in np.floor(clipped * SHARE_SCALE).astype(np.int64).tolist()]


def _split_dividends(
    state: ChainState, hotkey: str, owner: str, amount: int
) -> list[tuple[str, str, int]]:
    """Take to the owner, the rest pro rata over the hotkey's positions, dust to the owner."""
    info = state.hotkeys[hotkey]
    take = amount * round(info.take * TAKE_SCALE) // TAKE_SCALE
    rest = amount - take
    positions = state.stake.get(hotkey, {})
    total = sum(positions.values())
    credits: list[tuple[str, str, int]] = []
    paid = 0
    if total > 0:
        for coldkey, staked in positions.items():
            share = rest * staked // total
            if share:
                credits.append((hotkey, coldkey, share))
                paid += share
    credits.append((hotkey, owner, take + rest - paid))
    return credits


def _pay(state: ChainState, subnet: Subnet, result: EpochResult, budget: int) -> tuple[int, int]:
    """Credit incentive and dividends as stake; returns (incentive paid, dividends paid)."""
    neurons = subnet.neurons
    q_server = _quantise(result.server_emission)
    q_validator = _quantise(result.validator_emission)
    denominator = max(SHARE_SCALE, sum(q_server) + sum(q_validator))
    credits: list[tuple[str, str, int]] = []
    emission = np.zeros(neurons.n, dtype=np.int64)
    paid_incentive = paid_dividends = 0
    for uid, hotkey in enumerate(neurons.hotkeys):
        if hotkey is None:  # vacant: the epoch gave it no share
            continue
        owner = state.hotkeys[hotkey].owner
        incentive = budget * q_server[uid] // denominator
        dividends = budget * q_validator[uid] // denominator
        if incentive:
            credits.append((hotkey, owner, incentive))
        if dividends:
            credits.extend(_split_dividends(state, hotkey, owner, dividends))
        emission[uid] = min(incentive + dividends, INT64_MAX)  # a display column: saturate
        paid_incentive += incentive
        paid_dividends += dividends
    for hotkey, coldkey, amount in credits:  # positions were all read before any credit
        state.add_stake_position(hotkey, coldkey, amount)
    neurons.emission = emission
    return paid_incentive, paid_dividends


def run_epoch(state: ChainState, subnet: Subnet) -> EpochReport:
    """Yuma for one subnet, its outputs stored, its pending emission paid out."""
    pending = subnet.pending_emission
    owner_cut = pending * OWNER_CUT_PERCENT // 100
    state.credit(subnet.owner, owner_cut)
    budget = pending - owner_cut
    incentive = dividends = 0
    if subnet.neurons.n > 0:
        result = epoch(epoch_inputs(state, subnet), subnet.hyperparameters)
        _store_outputs(subnet, result)
        incentive, dividends = _pay(state, subnet, result, budget)
    carried = budget - incentive - dividends
    subnet.pending_emission = carried
    report = EpochReport(
        netuid=subnet.netuid,
        block=state.block,
        epoch=subnet.epochs_run,
        owner_cut=owner_cut,
        incentive=incentive,
        dividends=dividends,
        carried=carried,
    )
    subnet.epochs_run += 1
    subnet.last_epoch_block = state.block
    return report
