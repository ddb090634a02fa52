"""The miners experiment's cost model: its arithmetic, worked by hand, and its bad inputs."""

from __future__ import annotations

import pytest

from subnetlab.experiments.cost_model import CostModel, CostModelError


def test_defaults_worked_by_hand() -> None:
    """20,000 requests x 400 tokens = 8M tokens a day per hotkey (about 93 tokens/s), so
    one GPU carries it: 2.50 x 24 = 60 USD; the host 0.05 x 24 = 1.20 USD; the API
    8 x 0.20 = 1.60 USD."""
    model = CostModel()
    assert model.tokens_per_day() == 8_000_000
    assert model.gpus() == 1
    assert model.cost_per_day("honest") == pytest.approx(61.2)
    assert model.cost_per_day("passthrough") == pytest.approx(1.6 + 1.2)
    assert model.cost_per_day("copycat") == pytest.approx(1.2)
    assert model.cost_per_day("lazy") == pytest.approx(1.2)


def test_a_sybil_pays_one_engine_for_several_hotkeys_until_it_needs_another_gpu() -> None:
    model = CostModel()
    assert model.cost_per_day("sybil", hotkeys=3) == model.cost_per_day("honest")
    # 2000 tokens/s per GPU = 172.8M tokens a day = 21.6 hotkeys' load: 22 need a second GPU
    assert model.gpus(21) == 1 and model.gpus(22) == 2
    assert model.cost_per_day("sybil", hotkeys=22) == pytest.approx(2 * 60 + 1.2)


def test_passthrough_pays_per_token_for_every_hotkey() -> None:
    model = CostModel(api_price_per_million_tokens=2.0)
    assert model.api_cost_per_day(hotkeys=2) == pytest.approx(2 * 8 * 2.0)


def test_revenue_and_profit_are_the_share_of_the_miners_emission_minus_cost() -> None:
    model = CostModel(miner_emission_usd_per_day=1000.0)
    assert model.revenue_per_day(0.25) == 250.0
    assert model.profit_per_day("honest", 0.25) == pytest.approx(250 - 61.2)
    assert model.profit_per_day("lazy", 0.0) == pytest.approx(-1.2)


@pytest.mark.parametrize(("fields", "message"), [
    ({"gpu_cost_per_hour": -1.0}, "gpu_cost_per_hour: -1.0 must be a finite number >= 0"),
    ({"api_price_per_million_tokens": float("nan")}, "api_price_per_million_tokens: nan"),
    ({"gpu_tokens_per_second": 0.0}, "gpu_tokens_per_second: 0.0 must be a finite number > 0"),
])
def test_bad_parameters_name_the_field(fields: dict[str, float], message: str) -> None:
    with pytest.raises(CostModelError, match=message.replace("(", r"\(")):
        CostModel(**fields)


def test_bad_type_or_share_names_the_field() -> None:
    with pytest.raises(CostModelError, match="miner_type: 'cabal' is not one of honest"):
        CostModel().cost_per_day("cabal")
    with pytest.raises(CostModelError, match=r"incentive_share: 1.5 is outside \[0, 1\]"):
        CostModel().revenue_per_day(1.5)
