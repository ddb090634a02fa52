"""Yuma Consensus: each epoch step on its own, the subtensor reference case, and properties."""

from __future__ import annotations

import json
from dataclasses import replace
from importlib import resources

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from subnetlab.chain import yuma
from subnetlab.chain.hyperparameters import Hyperparameters
from subnetlab.chain.yuma import EpochInputs, epoch
from subnetlab.sim.yuma_case import parse_case, run_case

# ---------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------


def test_active_mask_uses_activity_cutoff() -> None:
    last_update = np.array([0, 100, 400, 500])
    # inactive when last_update + cutoff < block
    assert yuma.active_mask(last_update, block=500, activity_cutoff=100).tolist() == [
        False, False, True, True,
    ]


def test_stake_below_threshold_counts_as_zero_and_rest_normalises() -> None:
    s = yuma.normalized_stake(np.array([1.0, 3.0, 0.5]), stake_threshold=1.0)
    assert s.tolist() == pytest.approx([0.25, 0.75, 0.0])


def test_top_k_permits_drop_zero_stake_and_lower_uid_on_ties() -> None:
    stake = np.array([0.2, 0.3, 0.2, 0.0, 0.3])
    assert yuma.top_k_permits(stake, k=2).tolist() == [False, True, False, False, True]
    # uids 0 and 2 tie: the lower uid sorts first and is the one dropped
    assert yuma.top_k_permits(stake, k=3).tolist() == [False, True, True, False, True]
    # fewer uids than k: every non-zero stake gets a permit
    assert yuma.top_k_permits(stake, k=10).tolist() == [True, True, True, False, True]


def test_active_validator_stake_needs_permit_and_activity() -> None:
    stake = np.array([0.5, 0.25, 0.25])
    got = yuma.active_validator_stake(stake, np.array([True, True, False]),
                                      np.array([True, False, True]))
    assert got.tolist() == [1.0, 0.0, 0.0]


def test_max_upscale_u16_keeps_ratios_at_full_precision() -> None:
    assert yuma.max_upscale_u16(np.array([1, 2, 4])).tolist() == [16384, 32768, 65535]
    assert yuma.max_upscale_u16(np.array([0, 0])).tolist() == [0, 0]
    assert yuma.max_upscale_u16(np.array([3])).tolist() == [65535]


def masked_weights(
    weights_rows: np.ndarray, rows: np.ndarray, permit: np.ndarray, last_update: np.ndarray,
    registered: np.ndarray, **options: object,
) -> np.ndarray:
    """The weight rows that count, row-normalised: how the epoch applies `weight_mask`."""
    keep = yuma.weight_mask(rows, weights_rows.shape[1], permit, last_update, registered,
                            **options)  # type: ignore[arg-type]
    return yuma.normalize_rows(np.where(keep, weights_rows, 0.0))


def test_masked_weights_zero_forbidden_rows_self_weights_and_outdated() -> None:
    w = np.array(
        [[65535, 65535, 65535, 65535],
         [65535, 65535, 65535, 65535],
         [65535, 65535, 65535, 65535]],
        dtype=np.float64,
    )
    rows = np.array([0, 1, 2])
    permit = np.array([True, True, False, False])
    last_update = np.array([10, 10, 10, 10])
    registered = np.array([0, 0, 0, 10])  # uid 3 registered at block 10: weights set then are stale
    got = masked_weights(w, rows, permit, last_update, registered)
    assert got[0].tolist() == pytest.approx([0, 0.5, 0.5, 0])  # no self, no outdated
    assert got[1].tolist() == pytest.approx([0.5, 0, 0.5, 0])
    assert got[2].tolist() == [0, 0, 0, 0]  # no permit
    # the subnet owner keeps its self-weight
    owner = masked_weights(w, rows, permit, last_update, registered, owner_uid=0)
    assert owner[0].tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0])


def test_masked_weights_commit_before_registration_is_masked() -> None:
    w = np.ones((1, 3)) * 65535
    got = masked_weights(
        w, np.array([0]), np.array([True, False, False]), np.array([50, 0, 0]),
        np.array([0, 0, 30]), commit_block=np.array([20, -1, -1]),
    )
    assert got[0].tolist() == pytest.approx([0, 1, 0])


@pytest.mark.parametrize(
    ("stake", "scores", "kappa", "expected"),
    [
        ([0.5, 0.5], [0.2, 0.8], 0.5, 0.8),  # exactly half: stake at or below 0.2 is not > 0.5
        ([0.6, 0.4], [0.2, 0.8], 0.5, 0.2),  # a majority votes 0.2
        ([0.2, 0.2, 0.6], [0.1, 0.9, 0.5], 0.5, 0.5),
        ([0.3, 0.3, 0.4], [0.7, 0.7, 0.1], 0.5, 0.7),  # ties count together
        ([0.3, 0.7], [0.4, 0.9], 0.0, 0.9),  # kappa 0: the largest weight
        ([0.3, 0.7], [0.4, 0.9], 1.0, 0.4),  # kappa 1: the smallest weight
        ([0.0, 1.0], [0.9, 0.1], 0.5, 0.1),  # zero stake does not vote
    ],
)
def test_weighted_median_matches_subtensor_semantics(
    stake: list[float], scores: list[float], kappa: float, expected: float
) -> None:
    got = yuma.weighted_median_columns(np.array(stake), np.array(scores)[:, None], kappa)
    assert got.tolist() == pytest.approx([expected])


def test_weighted_median_without_voters_is_zero() -> None:
    assert yuma.weighted_median_columns(np.zeros(2), np.ones((2, 3)), 0.5).tolist() == [0, 0, 0]


@pytest.mark.parametrize("shape", [(1, 1), (3, 31), (7, 32), (256, 100), (300, 65)])
def test_transposed_is_the_transpose_for_every_shape(shape: tuple[int, int]) -> None:
    m = np.random.default_rng(0).integers(0, 65535, size=shape).astype(np.uint16)
    t = yuma.transposed(m)
    assert t.flags.c_contiguous
    assert np.array_equal(t, m.T)


@given(
    st.integers(1, 40).flatmap(
        lambda rows: st.lists(
            st.lists(st.sampled_from([0.0, 1e-9, 0.25, 0.5, 0.5000001, 1.0]),
                     min_size=3, max_size=3),
            min_size=rows, max_size=rows,
        )
    )
)
@settings(max_examples=60, deadline=None)
def test_column_order_sorts_each_column_as_a_stable_argsort(values: list[list[float]]) -> None:
    m = np.array(values)
    order = yuma.column_order(m)
    assert np.array_equal(order, np.argsort(m.T, axis=1, kind="stable"))


def test_column_order_refuses_negative_values() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        yuma.column_order(np.array([[0.5], [-0.1]]))


def test_weighted_median_agrees_with_a_plain_argsort_on_a_large_random_subnet() -> None:
    rng = np.random.default_rng(7)
    stake = yuma.normalize(rng.lognormal(10.0, 1.0, size=200))
    weights = yuma.normalize_rows(rng.integers(0, 40, size=(200, 300)).astype(np.float64))
    voting = yuma.normalize(stake)
    order = np.argsort(weights.T, axis=1, kind="stable")
    above = np.cumsum(voting[order], axis=1) > voting.sum() - 0.5
    first = np.where(above.any(axis=1), above.argmax(axis=1), 199)
    expected = weights.T[np.arange(300), order[np.arange(300), first]]
    assert np.array_equal(yuma.weighted_median_columns(stake, weights, 0.5), expected)


def test_clip_and_interpolate() -> None:
    w = np.array([[0.6, 0.4], [0.2, 0.8]])
    c = np.array([0.5, 0.5])
    clipped = yuma.clip_to_consensus(w, c)
    assert clipped.tolist() == [[0.5, 0.4], [0.2, 0.5]]
    assert yuma.interpolate(w, clipped, 0.0) is w
    assert yuma.interpolate(w, clipped, 1.0) is clipped
    assert np.allclose(yuma.interpolate(w, clipped, 0.5), [[0.55, 0.4], [0.2, 0.65]])


def test_liquid_alpha_sigmoid_between_bounds() -> None:
    w = np.array([[1.0, 0.0, 0.3]])
    b = np.array([[0.0, 0.0, 0.9]])
    c = np.array([1.0, 0.0, 0.0])
    a = yuma.liquid_alpha(w, b, c, alpha_low=0.1, alpha_high=0.3, steepness=10.0)
    # buying at consensus: diff 0 -> sigmoid(-5)
    assert a[0, 0] == pytest.approx(0.1 + 0.2 / (1 + np.exp(5)), abs=1e-7)
    # selling: bond 0.9 above weight 0.3, diff 0.6 -> sigmoid(1)
    assert a[0, 2] == pytest.approx(0.1 + 0.2 / (1 + np.exp(-1)), abs=1e-7)
    assert np.all((a >= 0.1) & (a <= 0.3))


def test_recently_registered_masks_bonds_of_new_miners() -> None:
    assert yuma.recently_registered(1000, 360, np.array([0, 640, 700])).tolist() == [
        False, True, True,
    ]


def test_yuma3_bonds_reset_for_fresh_columns_and_fixed_alpha_ema() -> None:
    hp = Hyperparameters(yuma3=True, bonds_moving_avg=0.9)
    w = np.array([[1.0, 1.0]])
    old = np.array([[65535, 65535]], dtype=np.uint16)
    got = yuma.bonds_yuma3(w, old, np.array([1.0, 1.0]), np.array([False, True]), hp)
    assert np.allclose(got, [[1.0, 0.1]])


def test_original_bonds_are_column_normalised() -> None:
    w = np.array([[1.0, 0.0], [0.5, 0.5]])
    got = yuma.bonds_original(w, np.zeros((2, 2), dtype=np.uint16), np.array([0.5, 0.5]),
                              np.zeros(2, dtype=bool), 0.9)
    assert got.sum(axis=0).tolist() == pytest.approx([1.0, 1.0])
    assert got[:, 0].tolist() == pytest.approx([2 / 3, 1 / 3])


def test_emission_shares_split_half_and_fall_back_to_stake() -> None:
    inc = np.array([0.0, 1.0])
    div = np.array([1.0, 0.0])
    server, validator = yuma.emission_shares(inc, div, np.array([0.5, 0.5]), np.array([1.0, 0]))
    assert server.tolist() == [0.0, 0.5]
    assert validator.tolist() == [0.5, 0.0]
    server, validator = yuma.emission_shares(np.zeros(2), np.zeros(2), np.array([0.3, 0.7]),
                                             np.array([1.0, 0.0]))
    assert server.tolist() == [0, 0]
    assert validator.tolist() == [1.0, 0.0]
    server, validator = yuma.emission_shares(np.zeros(2), np.zeros(2), np.array([0.3, 0.7]),
                                             np.zeros(2))
    assert validator.tolist() == [0.3, 0.7]


# ---------------------------------------------------------------------------------------
# Reference: subtensor's own test (Yuma3 + liquid alpha, "kappa moves first")
# ---------------------------------------------------------------------------------------

REFERENCE_DIVIDENDS = [
    [0.8000, 0.1000, 0.1000],
    [1.0000, 0.0000, 0.0000],
    [0.9382, 0.0618, 0.0000],
    [0.8819, 0.0773, 0.0407],
    [0.8564, 0.0844, 0.0592],
    [0.8418, 0.0884, 0.0697],
]


def bundled_case() -> dict[str, object]:
    text = resources.files("subnetlab.data").joinpath("cases", "kappa_moves_first.json")
    loaded: dict[str, object] = json.loads(text.read_text())
    return loaded


def test_reference_case_kappa_moves_first_matches_subtensor() -> None:
    results = run_case(parse_case(bundled_case()))
    got = [r.dividends[:3].tolist() for r in results[1:]]
    for epoch_got, epoch_expected in zip(got, REFERENCE_DIVIDENDS, strict=True):
        assert epoch_got == pytest.approx(epoch_expected, abs=1e-3)


def test_first_epoch_grants_permits_that_act_next_epoch() -> None:
    results = run_case(parse_case(bundled_case()))
    assert results[0].validator_permit.tolist() == [True, True, True, False, False]
    assert results[0].dividends.tolist() == [0, 0, 0, 0, 0]
    # no incentive at all yet: the emission goes to validators by stake
    assert results[0].emission.tolist() == pytest.approx([0.8, 0.1, 0.1, 0, 0])


def test_bonds_are_stored_as_u16() -> None:
    results = run_case(parse_case(bundled_case()))
    assert results[-1].bonds.dtype == np.uint16
    assert results[-1].bonds[3:].sum() == 0  # miners hold no bonds


def test_validator_losing_permit_loses_bonds() -> None:
    hp = Hyperparameters(max_allowed_validators=1, tempo=10)
    n = 3
    w = np.zeros((n, n), dtype=np.uint16)
    w[0, 2] = w[1, 2] = 65535
    base = EpochInputs(
        block=100, stake=np.array([2.0, 1.0, 0.0]), weights=w,
        bonds=np.zeros((n, n), dtype=np.uint16), last_update=np.full(n, 99),
        block_at_registration=np.zeros(n, dtype=np.int64),
        validator_permit=np.array([True, False, False]),
    )
    first = epoch(base, hp)
    assert first.bonds[0, 2] > 0
    # uid 1 overtakes uid 0: the permit moves, and uid 0's bonds are cleared
    second = epoch(replace(base, stake=np.array([1.0, 2.0, 0.0]), bonds=first.bonds), hp)
    assert second.validator_permit.tolist() == [False, True, False]
    assert second.bonds[0].sum() == 0


# ---------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------


@st.composite
def subnets(draw: st.DrawFn) -> tuple[EpochInputs, Hyperparameters]:
    n = draw(st.integers(2, 7))
    # distinct stakes: permits (top-k) then do not depend on how ties are broken
    stake = draw(st.lists(st.integers(1, 10_000), min_size=n, max_size=n, unique=True))
    weights = np.array(
        draw(st.lists(st.lists(st.integers(0, 65535), min_size=n, max_size=n), min_size=n,
                      max_size=n)),
        dtype=np.uint16,
    )
    permit = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    bonds = np.array(
        draw(st.lists(st.lists(st.integers(0, 65535), min_size=n, max_size=n), min_size=n,
                      max_size=n)),
        dtype=np.uint16,
    )
    bonds[~permit] = 0  # the chain's invariant: only permit holders carry bonds
    yuma3 = draw(st.booleans())
    hp = Hyperparameters(
        kappa=draw(st.floats(0.0, 1.0)),
        bonds_penalty=draw(st.floats(0.0, 1.0)),
        bonds_moving_avg=draw(st.floats(0.0, 1.0)),
        max_allowed_validators=draw(st.integers(1, n)),
        yuma3=yuma3,
        liquid_alpha=yuma3 and draw(st.booleans()),
        tempo=10,
    )
    inputs = EpochInputs(
        block=1000,
        stake=np.array(stake, dtype=np.float64),
        weights=weights,
        bonds=bonds,
        last_update=np.array(draw(st.lists(st.integers(1, 999), min_size=n, max_size=n))),
        block_at_registration=np.array(
            draw(st.lists(st.integers(0, 995), min_size=n, max_size=n))
        ),
        validator_permit=permit,
    )
    return inputs, hp


OUTPUTS = ("consensus", "validator_trust", "trust", "incentive", "dividends", "server_emission",
           "validator_emission", "emission")


@settings(max_examples=200, deadline=None)
@given(subnets())
def test_emission_is_conserved_and_outputs_are_finite_and_non_negative(
    case: tuple[EpochInputs, Hyperparameters],
) -> None:
    inputs, hp = case
    result = epoch(inputs, hp)
    assert result.emission.sum() == pytest.approx(1.0)
    for name in OUTPUTS:
        values = getattr(result, name)
        assert np.all(np.isfinite(values)), name
        assert np.all(values >= 0.0), name


@settings(max_examples=200, deadline=None)
@given(subnets(), st.randoms())
def test_relabelling_uids_permutes_the_outputs(
    case: tuple[EpochInputs, Hyperparameters], rnd: object
) -> None:
    inputs, hp = case
    n = inputs.n
    perm = np.array(rnd.sample(range(n), n))  # type: ignore[attr-defined]
    relabelled = EpochInputs(
        block=inputs.block,
        stake=inputs.stake[perm],
        weights=np.asarray(inputs.weights)[np.ix_(perm, perm)],
        bonds=np.asarray(inputs.bonds)[np.ix_(perm, perm)],
        last_update=inputs.last_update[perm],
        block_at_registration=inputs.block_at_registration[perm],
        validator_permit=inputs.validator_permit[perm],
    )
    a = epoch(inputs, hp)
    b = epoch(relabelled, hp)
    for name in (*OUTPUTS, "validator_permit"):
        assert np.allclose(getattr(b, name), getattr(a, name)[perm], atol=1e-9), name
    # Bonds are stored as u16: a float sum taken in another order can land on the other
    # side of a rounding boundary, so a relabelled entry may differ by one quantum, never more.
    quanta = np.abs(b.bonds.astype(np.int64) - a.bonds[np.ix_(perm, perm)].astype(np.int64))
    assert quanta.max(initial=0) <= 1


@settings(max_examples=200, deadline=None)
@given(subnets())
def test_validator_without_permit_earns_no_dividends(
    case: tuple[EpochInputs, Hyperparameters],
) -> None:
    inputs, hp = case
    result = epoch(inputs, hp)
    assert np.all(result.dividends[~inputs.validator_permit] == 0.0)


@settings(max_examples=100, deadline=None)
@given(subnets())
def test_zero_weights_give_zero_incentive(case: tuple[EpochInputs, Hyperparameters]) -> None:
    inputs, hp = case
    result = epoch(replace(inputs, weights=np.zeros_like(inputs.weights)), hp)
    assert np.all(result.incentive == 0.0)
    assert result.server_emission.sum() == 0.0


# --------------------------------------------------------------------------------------
# Where the chain's sparse rows and fixed point decide (see the module docstring of yuma)
# --------------------------------------------------------------------------------------


def _case(hyperparameters: dict[str, object], stakes: list[float],
          epochs: list[dict[str, object]]) -> list[dict[str, object]]:
    from subnetlab.sim.yuma_case import parse_case, result_record, run_case

    case = parse_case({"hyperparameters": hyperparameters, "stakes": stakes, "epochs": epochs})
    return [result_record(i, r) for i, r in enumerate(run_case(case))]


LIQUID = {"yuma3": True, "liquid_alpha": True, "alpha_low": 0.1, "alpha_high": 0.3,
          "bonds_penalty": 0.0, "max_allowed_validators": 2}


@pytest.mark.parametrize("liquid", [True, False])
def test_a_bond_without_a_named_weight_drops_under_liquid_alpha_and_decays_otherwise(
    liquid: bool,
) -> None:
    both = {"0": {"2": 65535, "3": 65535}, "1": {"2": 65535, "3": 65535}}
    only_two = {"0": {"2": 65535}, "1": {"2": 65535, "3": 65535}}
    records = _case({**LIQUID, "liquid_alpha": liquid}, [1, 1, 0, 0],
                    [{"weights": {}}, {"weights": both}, {"weights": only_two}])
    before, after = records[1]["bonds"][0][3], records[2]["bonds"][0][3]
    assert before > 0
    if liquid:  # mat_ema_alpha_sparse only writes entries present in the bond weights
        assert after == 0.0
    else:  # mat_ema_sparse keeps the decayed old bond
        assert 0 < after < before


def test_an_explicit_zero_weight_keeps_a_decaying_bond_under_liquid_alpha() -> None:
    both = {"0": {"2": 65535, "3": 65535}, "1": {"2": 65535, "3": 65535}}
    zero = {"0": {"2": 65535, "3": 0}, "1": {"2": 65535, "3": 65535}}
    records = _case(LIQUID, [1, 1, 0, 0],
                    [{"weights": {}}, {"weights": both}, {"weights": zero}])
    assert 0 < records[2]["bonds"][0][3] < records[1]["bonds"][0][3]


def test_bond_weight_presence_follows_clip_and_interpolate_sparse() -> None:
    named = np.array([[True, True, True, False]])
    weights = np.array([[0.5, 0.0, 0.5, 0.0]])
    consensus = np.array([0.5, 0.0, 0.0, 0.0])
    clipped = yuma.clip_to_consensus(weights, consensus)
    assert yuma.bond_weight_presence(named, weights, consensus, 0.0, weights) is named
    # penalty 1: a positive weight on a zero-consensus miner is dropped; explicit zeros stay
    assert yuma.bond_weight_presence(named, weights, consensus, 1.0, clipped).tolist() == [
        [True, True, False, False]]
    # penalty strictly inside (0, 1): only positive blended entries exist
    blend = yuma.interpolate(weights, clipped, 0.5)
    assert yuma.bond_weight_presence(named, weights, consensus, 0.5, blend).tolist() == [
        [True, False, True, False]]


def test_proportions_are_held_as_u16_steps_so_half_is_not_a_majority() -> None:
    assert yuma.to_chain_proportion(0.5) == 32767 / 65535
    assert yuma.to_chain_proportion(32767 / 65535) == 32767 / 65535
    assert yuma.to_chain_proportion(1.0) == 1.0
    # 50.0001% of the stake is not more than kappa = 32767/65535 away from a majority:
    # the median needs the other validator too, as on the chain.
    records = _case({}, [500001, 499999, 0, 0], [
        {"weights": {}}, {"weights": {"0": {"2": 65535, "3": 65535}, "1": {"2": 65535}}}, {}])
    assert records[2]["consensus"][2:] == pytest.approx([1.0, 0.5])
    assert records[2]["incentive"][2:] == pytest.approx([0.75, 0.25], abs=1e-5)


def test_steep_liquid_alpha_follows_the_fixed_point_exp_overflow() -> None:
    w = np.array([[0.5, 1.0]])
    b = np.zeros((1, 2))
    c = np.array([0.5, 0.0])
    # diff 0 -> exponent 0.5 * 100 = 50 overflows I32F32 exp: safe_exp = 0 -> alpha_high
    steep = yuma.liquid_alpha(w, b, c, alpha_low=0.1, alpha_high=0.3, steepness=100.0)
    assert steep[0, 0] == pytest.approx(0.3)
    # diff 1 -> exponent -50: a tiny exp, the exact sigmoid -> alpha_high as well
    assert steep[0, 1] == pytest.approx(0.3)
    # at the default steepness nothing overflows: diff 0 gives nearly alpha_low
    gentle = yuma.liquid_alpha(w, b, c, alpha_low=0.1, alpha_high=0.3, steepness=10.0)
    assert gentle[0, 0] == pytest.approx(0.1 + 0.2 / (1 + np.exp(5)), abs=1e-7)


def test_steepness_is_bounded_by_the_chains_i16_in_hundredths() -> None:
    assert Hyperparameters(alpha_sigmoid_steepness=327.67).alpha_sigmoid_steepness == 327.67
    with pytest.raises(ValueError, match="alpha_sigmoid_steepness"):
        Hyperparameters(alpha_sigmoid_steepness=327.68)
