"""Yuma Consensus: one subnet epoch, as subtensor's `epoch` computes it, in vectorised numpy.

The function `epoch` is pure: the same inputs always give the same outputs, with no I/O
and no hidden state. Every step is a small public function so it can be tested (and read)
on its own; `docs/consensus.md` gives the formula of each.

The chain's results come from subtensor's sparse `epoch` (`epoch_dense` serves only its
tests), and the sparse path differs from the dense one where an entry is *absent* rather
than zero: under Yuma3 with liquid alpha a bond survives only where the validator's
bond-weight entry exists (`mat_ema_alpha_sparse`). We follow the sparse semantics with
dense matrices plus a presence mask (`EpochInputs.weights_present`, `bond_weight_presence`).

Differences from subtensor are deliberate and few:
- float64 instead of I32F32 fixed point (more precise; results agree to ~1e-4 before
  the u16 rounding that the chain applies to stored values, which we reproduce). Where
  the fixed point changes a *decision* we follow it: proportions the chain stores as u16
  (kappa, bonds_penalty, alpha_low, alpha_high) are truncated to u16 steps as its setters
  do (`on_chain_proportion`: kappa 0.5 becomes 32767/65535, subtensor's default), and the
  liquid-alpha sigmoid reproduces the I32F32 `exp` overflow (`FIXED_EXP_OVERFLOW`);
- matrices are computed only over the rows that can hold a validator permit (this epoch
  or the next): every other row is zero in subtensor too, so this changes nothing but
  the cost, which falls from n x n to V x n.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from subnetlab.chain.hyperparameters import U16_MAX, Hyperparameters

Float = NDArray[np.float64]
Bool = NDArray[np.bool_]
Int = NDArray[np.int64]
U16 = NDArray[np.uint16]

FIXED_EXP_OVERFLOW = 20.8885
"""Where subtensor's I32F32 `exp` (a Taylor series with checked arithmetic) overflows: for
x at or above this, `safe_exp` returns 0, so the liquid-alpha sigmoid reads 1 and alpha
is alpha_high where the exact sigmoid would give alpha_low. This only matters for a
steepness above 2 * 20.8885 = 41.8; we reproduce it because the chain's results do."""


@dataclass(frozen=True)
class EpochInputs:
    """Everything the epoch reads from chain state, for one subnet of n uids.

    `weights` and `bonds` are (n, n) matrices of u16 exactly as the chain stores them:
    weights row-max-upscaled at set time, bonds as written by the previous epoch.
    `validator_permit` holds the permits computed by the *previous* epoch: permits lag one
    epoch, as on the chain. `commit_block` (optional) is, per uid, the block of its oldest
    unrevealed weight commit, or -1 where there is none; weights committed before a miner
    registered are masked, as subtensor does under commit-reveal. `vacant` (optional)
    marks uids no hotkey holds (deregistered, not yet filled again): they count as having
    no stake, no permit, no activity, and weights set on them are masked.
    `weights_present` (optional, (n, n) bool) marks the entries a validator named when it
    set its weights, explicit zeros included (subtensor stores rows sparsely); when absent,
    the non-zero entries are taken as the named ones. It matters for Yuma3 with liquid
    alpha only, where a bond survives only on a named entry (see `bond_weight_presence`).
    """

    block: int
    stake: Float
    weights: NDArray[np.integer]
    bonds: NDArray[np.integer]
    last_update: Int
    block_at_registration: Int
    validator_permit: Bool
    owner_uid: int | None = None
    commit_block: Int | None = None
    vacant: Bool | None = None
    weights_present: Bool | None = None

    @property
    def n(self) -> int:
        return int(self.stake.shape[0])


@dataclass(frozen=True)
class EpochResult:
    """What one epoch writes back, all as proportions in [0, 1] unless said otherwise.

    `server_emission` and `validator_emission` are the shares of the epoch's emission (the
    82% that is not the owner's cut) that go to each uid as incentive and as dividends;
    `emission` is their sum. `bonds` is the new (n, n) u16 bond matrix to store.
    """

    active: Bool
    stake: Float
    active_stake: Float
    validator_permit: Bool
    consensus: Float
    validator_trust: Float
    trust: Float
    rank: Float
    incentive: Float
    dividends: Float
    server_emission: Float
    validator_emission: Float
    emission: Float
    bonds: U16


# --------------------------------------------------------------------------------------
# Vector helpers
# --------------------------------------------------------------------------------------


def normalize(x: Float) -> Float:
    """x / sum(x), or x unchanged when the sum is zero (subtensor's `inplace_normalize`)."""
    total = float(x.sum())
    return x / total if total != 0.0 else x.copy()


def normalize_rows(m: Float) -> Float:
    """Each row divided by its sum; all-zero rows stay zero."""
    sums = m.sum(axis=1, keepdims=True)
    out: Float = np.divide(m, sums, out=np.zeros_like(m), where=sums > 0)
    return out


def normalize_columns(m: Float) -> Float:
    """Each column divided by its sum; all-zero columns stay zero."""
    sums = m.sum(axis=0, keepdims=True)
    out: Float = np.divide(m, sums, out=np.zeros_like(m), where=sums != 0)
    return out


def max_upscale_columns(m: Float) -> Float:
    """Each column divided by its maximum, so the largest entry becomes 1."""
    maxes = m.max(axis=0, keepdims=True) if m.shape[0] else np.zeros((1, m.shape[1]))
    return np.divide(m, maxes, out=np.zeros_like(m), where=maxes != 0)


def to_u16_proportion(x: Float) -> U16:
    """A proportion in [0, 1] as the chain stores it: floor(x * 65535), saturating."""
    scaled: Float = np.multiply(x, float(U16_MAX))
    np.clip(scaled, 0.0, float(U16_MAX), out=scaled)
    # The cast truncates towards zero, which is the floor for what the clip leaves.
    return scaled.astype(np.uint16)


def transposed(m: NDArray[np.generic], tile: int = 32) -> NDArray[np.generic]:
    """`m.T` as a C-contiguous copy, two to three times faster than `ascontiguousarray`.

    A plain transposing copy of a (V, n) matrix reads one element per cache line; here it
    goes in two passes that each stay in cache: strips of `tile` columns are gathered
    (contiguous reads), then each strip, small enough for the L2 cache, is transposed.
    """
    rows, cols = m.shape
    out = np.empty((cols, rows), dtype=m.dtype)
    whole = cols - cols % tile
    if whole:
        strips = m[:, :whole].reshape(rows, whole // tile, tile).transpose(1, 0, 2).copy()
        out[:whole].reshape(whole // tile, tile, rows)[...] = strips.transpose(0, 2, 1)
    if whole < cols:
        out[whole:] = m[:, whole:].T
    return out


def column_order(values: Float) -> Int:
    """Per column, the rows in ascending order of value: `argsort(values.T, axis=1)` at
    about half the cost, for the non-negative values the epoch sorts (weights).

    numpy sorts plain float64 values with SIMD but has no SIMD argsort on most machines,
    so each entry becomes one sortable float: its value with the low mantissa bits
    replaced by its row (a non-negative float orders as its bit pattern does). The order
    is exact but between values within 2**-(52 - bits) of each other (1e-13 relative
    for 256 rows; the chain's I32F32 resolves 2e-10), where it follows the row; the
    values themselves are read from `values`, never from the keys.
    """
    rows = values.shape[0]
    if rows and float(values.min()) < 0.0:
        raise ValueError("column_order sorts non-negative values only")
    index_bits = max(1, (rows - 1).bit_length())
    low = np.int64((1 << index_bits) - 1)
    keys = np.ascontiguousarray(values, dtype=np.float64).view(np.int64) & ~low
    keys |= np.arange(rows, dtype=np.int64)[:, None]
    sorted_keys = transposed(keys).view(np.float64)
    sorted_keys.sort(axis=1)
    order: Int = sorted_keys.view(np.int64) & low
    return order


def max_upscale_u16(
    values: NDArray[np.floating] | NDArray[np.integer] | Sequence[float],
) -> U16:
    """Scale a weight vector so its largest entry is 65535, rounding half away from zero.

    This is what set_weights stores (subtensor's `vec_u16_max_upscale_to_u16`): only the
    ratios of a validator's weights matter, so the chain keeps them at full u16 precision.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return np.zeros(0, dtype=np.uint16)
    top = float(v.max())
    if top <= 0.0:
        return np.zeros(v.shape, dtype=np.uint16)
    return np.clip(np.floor(v * U16_MAX / top + 0.5), 0, U16_MAX).astype(np.uint16)


# --------------------------------------------------------------------------------------
# Epoch steps
# --------------------------------------------------------------------------------------


def active_mask(last_update: Int, block: int, activity_cutoff: int) -> Bool:
    """A uid is active unless its last weight update is more than `activity_cutoff` old."""
    return ~(last_update + activity_cutoff < block)


def normalized_stake(stake: Float, stake_threshold: float) -> Float:
    """Stake below the threshold counts as zero; the rest is normalised to sum 1."""
    filtered = np.where(stake < stake_threshold, 0.0, stake).astype(np.float64)
    return normalize(filtered)


def top_k_permits(stake: Float, k: int) -> Bool:
    """Validator permits: the k largest non-zero stakes.

    Ties are broken as subtensor's stable ascending sort does: among equal stakes the
    lower uid sorts first and so is the first to be dropped.
    """
    n = stake.shape[0]
    permits: Bool = np.not_equal(stake, 0.0)
    if n < k:
        return permits
    order = np.argsort(stake, kind="stable")
    permits[order[: n - k]] = False
    return permits


def active_validator_stake(stake: Float, active: Bool, permit: Bool) -> Float:
    """Stake that votes this epoch: active uids holding a permit, renormalised."""
    return normalize(np.where(active & permit, stake, 0.0))


def to_chain_proportion(x: float) -> float:
    """A proportion as the chain holds it: truncated to a u16 step, x -> floor(x*65535)/65535.

    Subtensor stores kappa, bonds_penalty and the liquid-alpha bounds as u16 and its
    setters truncate (`fixed_proportion_to_u16`, `u16::MAX / 2` for one half), so kappa
    0.5 acts as 32767/65535 = 0.4999924: a 50/50 stake split is *not* a majority.
    """
    return math.floor(x * U16_MAX + 1e-7) / U16_MAX  # k/65535 may land a hair below k


def on_chain_steepness(steepness: float) -> float:
    """The liquid-alpha steepness as the chain holds it: an i16 in hundredths."""
    return round(steepness * 100.0) / 100.0


def weight_mask(
    rows: Int,
    n: int,
    permit: Bool,
    last_update: Int,
    block_at_registration: Int,
    owner_uid: int | None = None,
    commit_block: Int | None = None,
    vacant: Bool | None = None,
) -> Bool:
    """Which entries of the weight rows `rows` count (True) and which the epoch masks.

    Masked: rows of validators without a permit, self-weights (except the subnet owner's),
    weights on vacant uids, weights set at or before the target's registration (they
    refer to a previous occupant of the uid) and, under commit-reveal, weights committed
    before the target registered. On the chain these entries are removed from the sparse
    rows, so they also lose their bonds under liquid alpha.
    """
    keep = np.ones((rows.shape[0], n), dtype=np.bool_)
    keep[~permit[rows]] = False
    if vacant is not None:
        keep[:, vacant] = False
    self_rows = (
        np.arange(rows.shape[0]) if owner_uid is None else np.flatnonzero(rows != owner_uid)
    )
    keep[self_rows, rows[self_rows]] = False
    keep &= ~(last_update[rows][:, None] <= block_at_registration[None, :])
    if commit_block is not None:
        committed = commit_block[rows]
        keep &= ~((committed[:, None] >= 0) & (committed[:, None] < block_at_registration[None, :]))
    return keep


def weighted_median_columns(stake: Float, weights: Float, kappa: float) -> Float:
    """Consensus: per column, the stake-weighted kappa-quantile of the validators' weights.

    Same answer as subtensor's `weighted_median_col`: only rows with positive stake vote;
    their stake is renormalised; with minority = sum(stake) - kappa the result is the
    smallest weight v such that the stake voting at most v exceeds the minority (the
    largest weight when none does). Weights are non-negative (see `column_order`).
    """
    n_cols = weights.shape[1]
    voters = np.flatnonzero(stake > 0.0)
    if voters.size == 0:
        return np.zeros(n_cols)
    voting_stake = normalize(stake[voters])
    minority = float(voting_stake.sum()) - kappa
    votes = np.ascontiguousarray(weights[voters], dtype=np.float64)
    # Ties need no stable order: equal scores give the same answer whichever comes first.
    order = column_order(votes)  # (n_cols, voters)
    cumulative = np.take(voting_stake, order)
    np.cumsum(cumulative, axis=1, out=cumulative)
    above = cumulative > minority
    columns = np.arange(n_cols)
    first = above.argmax(axis=1)
    first[~above[columns, first]] = voters.size - 1
    median: Float = votes[order[columns, first], columns]
    return median


def clip_to_consensus(weights: Float, consensus: Float) -> Float:
    """Weights above the consensus of their column are cut down to it."""
    return np.minimum(weights, consensus[None, :])


def interpolate(a: Float, b: Float, ratio: float) -> Float:
    """a + ratio * (b - a): the bonds penalty blends raw and clipped weights."""
    if ratio == 0.0:
        return a
    if ratio == 1.0:
        return b
    return a + ratio * (b - a)


def bond_weight_presence(
    named: Bool, weights: Float, consensus: Float, bonds_penalty: float, weights_for_bonds: Float
) -> Bool:
    """Which entries of the bond weights exist in subtensor's sparse epoch.

    `named` are the weight entries left after the epoch's masks. Clipping at consensus
    (`col_clip_sparse`) drops a positive weight on a miner whose consensus is zero, and
    the penalty blend (`interpolate_sparse`, for a penalty strictly between 0 and 1)
    keeps only positive entries, so an explicit zero disappears there too.
    """
    if bonds_penalty == 0.0:
        return named
    if bonds_penalty == 1.0:
        return named & ~((weights > consensus[None, :]) & (consensus[None, :] <= 0.0))
    return weights_for_bonds > 0.0


def liquid_alpha(
    weights: Float,
    bonds: Float,
    consensus: Float,
    alpha_low: float,
    alpha_high: float,
    steepness: float,
) -> Float:
    """Per-entry bond EMA rate (subtensor's `alpha_sigmoid`).

    When a validator buys (weight >= bond) the rate grows with how far its weight runs
    ahead of consensus; when it sells, with how far its bond exceeds its weight. The
    distance goes through a sigmoid centred at 0.5 and is mapped into [alpha_low,
    alpha_high]. Where the chain's fixed-point exp overflows (exponent at or above
    `FIXED_EXP_OVERFLOW`) it reads 0, and so do we.
    """
    # In place, in as few passes as can be: this runs on V x n entries and dominates
    # large epochs. Distances are exact in float64, then held in float32 for the sigmoid:
    # its error (< 2e-7) is far below the u16 resolution (1.5e-5) at which bonds are
    # stored, and it runs three times faster than in float64.
    selling = weights < bonds
    sigmoid = np.empty(weights.shape, dtype=np.float32)
    np.subtract(weights, consensus[None, :], out=sigmoid, casting="same_kind")
    np.subtract(bonds, weights, out=sigmoid, where=selling, casting="same_kind")
    np.clip(sigmoid, 0.0, 1.0, out=sigmoid)
    sigmoid -= np.float32(0.5)
    sigmoid *= np.float32(-steepness)
    # The exponent lies in [-|steepness|/2, |steepness|/2]: it can reach the fixed-point
    # overflow only for a steep sigmoid (steepness is held in hundredths, so a margin of
    # 1e-3 decides every case exactly).
    overflow = (
        sigmoid >= np.float32(FIXED_EXP_OVERFLOW)
        if abs(steepness) * 0.5 >= FIXED_EXP_OVERFLOW - 1e-3 else None
    )
    np.exp(sigmoid, out=sigmoid)
    if overflow is not None:
        np.copyto(sigmoid, np.float32(0.0), where=overflow)
    sigmoid += np.float32(1.0)
    np.reciprocal(sigmoid, out=sigmoid)
    alpha: Float = np.multiply(sigmoid, alpha_high - alpha_low, dtype=np.float64)
    alpha += alpha_low
    return np.clip(alpha, alpha_low, alpha_high, out=alpha)


def recently_registered(block: int, tempo: int, block_at_registration: Int) -> Bool:
    """uids registered since the previous epoch: their old bonds belong to someone else."""
    last_tempo = max(block - tempo, 0)
    return last_tempo <= block_at_registration


def bonds_yuma3(
    weights_for_bonds: Float,
    bonds_u16: NDArray[np.integer],
    consensus: Float,
    fresh_columns: Bool,
    hp: Hyperparameters,
    present: Bool | None = None,
) -> Float:
    """Yuma3 relative bonds: each entry is the validator's share of the miner, in [0, 1].

    Old bonds (stored u16 proportions) are reset for freshly registered miners, then moved
    towards the weights by an EMA whose rate is fixed (1 - bonds_moving_avg) or liquid.
    With liquid alpha the chain computes the EMA only on the entries `present` in the
    bond weights (`mat_ema_alpha_sparse`): a bond without one drops to zero at once,
    where with a fixed rate it decays. `present` None: every entry is present.
    """
    old: Float = np.divide(bonds_u16, float(U16_MAX), dtype=np.float64)
    if fresh_columns.any():
        old[:, fresh_columns] = 0.0
    if hp.liquid_alpha and bool(np.any(consensus != 0.0)):
        alpha_low = to_chain_proportion(hp.alpha_low)
        alpha_high = to_chain_proportion(hp.alpha_high)
        alpha = liquid_alpha(
            weights_for_bonds, old, consensus, alpha_low, alpha_high,
            on_chain_steepness(hp.alpha_sigmoid_steepness),
        )
        bought = alpha * weights_for_bonds
        np.maximum(bought, 0.0, out=bought)
        np.subtract(1.0, alpha, out=alpha)
        alpha *= old  # (1 - alpha) * old, reusing the buffer
        alpha += bought
        np.minimum(alpha, 1.0, out=alpha)
        if present is not None:
            np.copyto(alpha, 0.0, where=~present)
        return alpha
    rate = 1.0 - hp.bonds_moving_avg
    return rate * weights_for_bonds + (1.0 - rate) * old


def bonds_original(
    weights_for_bonds: Float,
    bonds_u16: NDArray[np.integer],
    active_stake: Float,
    fresh_columns: Bool,
    bonds_moving_avg: float,
) -> Float:
    """Original Yuma bonds: column-normalised EMA of stake-weighted weights."""
    old = bonds_u16.astype(np.float64)
    old[:, fresh_columns] = 0.0
    old = normalize_columns(old)
    delta = normalize_columns(weights_for_bonds * active_stake[:, None])
    rate = 1.0 - bonds_moving_avg
    return normalize_columns(rate * delta + (1.0 - rate) * old)


def emission_shares(
    incentive: Float, dividends: Float, stake: Float, active_stake: Float
) -> tuple[Float, Float]:
    """Split the epoch's emission between incentive (miners) and dividends (validators).

    Both are normalised on the sum of incentive plus dividends, so when both exist each
    side receives half (41% of the subnet's emission each, after the owner's 18%). With
    no incentive at all (no weights, all outdated or self-weights only) validators
    receive by active stake, or by stake when no stake is active.
    """
    total = float(incentive.sum() + dividends.sum())
    if total == 0.0:
        by_stake = stake if float(active_stake.sum()) == 0.0 else active_stake
        return np.zeros_like(incentive), by_stake.copy()
    return incentive / total, dividends / total


# --------------------------------------------------------------------------------------
# The epoch
# --------------------------------------------------------------------------------------


def epoch(inputs: EpochInputs, hp: Hyperparameters) -> EpochResult:
    """Run one Yuma Consensus epoch for a subnet (subtensor's `epoch`)."""
    n = inputs.n
    vacant = inputs.vacant
    active = active_mask(inputs.last_update, inputs.block, hp.activity_cutoff)
    raw_stake = inputs.stake
    permit = inputs.validator_permit.astype(bool)
    if vacant is not None:  # a vacant uid holds nothing and does nothing
        active = active & ~vacant
        raw_stake = np.where(vacant, 0.0, raw_stake)
        permit = permit & ~vacant
    stake = normalized_stake(raw_stake, hp.stake_threshold)
    new_permit = top_k_permits(stake, hp.max_allowed_validators)
    active_stake = active_validator_stake(stake, active, permit)

    # Only rows that hold a permit now or next epoch can carry weights or bonds.
    rows = np.flatnonzero(permit | new_permit)
    row_stake = active_stake[rows]
    raw_rows = np.asarray(inputs.weights)[rows]
    keep = weight_mask(
        rows, n, permit, inputs.last_update, inputs.block_at_registration, inputs.owner_uid,
        inputs.commit_block, vacant,
    )
    weights = normalize_rows(np.where(keep, raw_rows.astype(np.float64), 0.0))
    named = keep & (
        raw_rows != 0 if inputs.weights_present is None else inputs.weights_present[rows]
    )

    preranks = row_stake @ weights
    consensus = weighted_median_columns(row_stake, weights, to_chain_proportion(hp.kappa))
    clipped = clip_to_consensus(weights, consensus)
    validator_trust = np.zeros(n)
    validator_trust[rows] = clipped.sum(axis=1)
    ranks = row_stake @ clipped
    trust = np.divide(ranks, preranks, out=np.zeros(n), where=preranks != 0)
    rank = normalize(ranks)
    incentive = rank

    bonds_penalty = to_chain_proportion(hp.bonds_penalty)
    weights_for_bonds = interpolate(weights, clipped, bonds_penalty)
    fresh = recently_registered(inputs.block, hp.tempo, inputs.block_at_registration)
    old_bonds = np.asarray(inputs.bonds)[rows]
    if hp.yuma3:
        present = bond_weight_presence(
            named, weights, consensus, bonds_penalty, weights_for_bonds
        )
        ema = bonds_yuma3(weights_for_bonds, old_bonds, consensus, fresh, hp, present)
        # normalize_columns(ema) @ incentive, with the division moved onto the vector.
        bond_totals = ema.sum(axis=0)
        per_bond = np.divide(incentive, bond_totals, out=np.zeros(n), where=bond_totals != 0)
        row_dividends = (ema @ per_bond) * row_stake
        stored_rows = to_u16_proportion(ema)
    else:
        ema = bonds_original(weights_for_bonds, old_bonds, row_stake, fresh, hp.bonds_moving_avg)
        row_dividends = ema @ incentive
        stored_rows = to_u16_proportion(max_upscale_columns(ema))
    dividends = np.zeros(n)
    dividends[rows] = row_dividends
    dividends = normalize(dividends)

    server_emission, validator_emission = emission_shares(
        incentive, dividends, stake, active_stake
    )

    # Bonds persist for uids that keep a permit; a uid that loses its permit loses them.
    # Rows outside `rows` never held a permit, so (as on the chain) they hold no bonds.
    bonds = np.zeros((n, n), dtype=np.uint16)
    keep = new_permit[rows]
    bonds[rows[keep]] = stored_rows[keep]

    return EpochResult(
        active=active,
        stake=stake,
        active_stake=active_stake,
        validator_permit=new_permit,
        consensus=consensus,
        validator_trust=validator_trust,
        trust=trust,
        rank=rank,
        incentive=incentive,
        dividends=dividends,
        server_emission=server_emission,
        validator_emission=validator_emission,
        emission=server_emission + validator_emission,
        bonds=bonds,
    )
