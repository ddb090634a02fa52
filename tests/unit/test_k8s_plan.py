"""What the operator changes on the ledger: only what differs from the spec."""

from __future__ import annotations

import pytest

from subnetlab.chain.units import TOKEN, rao
from subnetlab.k8s.plan import (
    BURN_PATH,
    STAKE_PATH,
    StakeChange,
    backoff,
    cluster_backend_problem,
    hyperparameter_changes,
    is_temporary,
    stake_change,
    touches,
)
from subnetlab.ledger.client import LedgerError
from subnetlab.local.bootstrap import created_subnet
from subnetlab.specs import HyperparameterSpec, NeuronSpec


def test_only_differing_hyperparameters_change_and_burn_only_when_asked() -> None:
    spec = HyperparameterSpec.model_validate({"tempo": 50, "burn": 600_000})
    chain = HyperparameterSpec().model_dump(mode="json")
    assert hyperparameter_changes(spec, chain, include_dynamic=False) == {"tempo": 50}
    both = hyperparameter_changes(spec, chain, include_dynamic=True)
    assert both == {"tempo": 50, "burn": 600_000}
    assert hyperparameter_changes(spec, spec.model_dump(mode="json"), True) == {}


def test_stake_tops_up_routinely_and_is_set_exactly_on_a_spec_change() -> None:
    assert stake_change(rao(10), 0, exact=False) == StakeChange("add_stake", 10 * TOKEN)
    assert stake_change(rao(10), rao(12), exact=False) is None  # grown by dividends: kept
    assert stake_change(rao(10), rao(12), exact=True) == StakeChange("remove_stake", 2 * TOKEN)
    assert stake_change(rao(10), rao(10), exact=True) is None
    assert rao(0.1) == 100_000_000


def test_an_interrupted_creation_is_found_not_repeated() -> None:
    subnets = [{"netuid": 1, "owner": "me", "created_at": 5},
               {"netuid": 2, "owner": "other", "created_at": 12},
               {"netuid": 3, "owner": "me", "created_at": 12},
               {"netuid": 4, "owner": "me", "created_at": 13}]
    assert created_subnet(subnets, "me", after_block=10, claimed=[]) == 3
    assert created_subnet(subnets, "me", after_block=10, claimed=[3]) == 4
    assert created_subnet(subnets, "me", after_block=20, claimed=[]) is None


def test_update_diffs() -> None:
    assert touches([("change", ("spec", "hyperparameters", "burn"), 1, 2)], BURN_PATH)
    assert touches([("change", ("spec",), {}, {"stake": 1})], STAKE_PATH)
    assert not touches([("change", ("spec", "hyperparameters", "tempo"), 1, 2)], BURN_PATH)
    assert not touches([("change", ("spec", "behaviour"), "a", "b")], STAKE_PATH)


@pytest.mark.parametrize(("code", "status", "temporary"), [
    ("rate_limited", 429, True), ("too_many_registrations", 400, True),
    ("insufficient_balance", 400, True), ("internal", 503, True),
    ("invalid_param", 400, False), ("not_owner", 403, False),
])
def test_temporary_refusals(code: str, status: int, temporary: bool) -> None:
    assert is_temporary(LedgerError(code, "x", status=status)) is temporary


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff(r, cap=10) for r in range(6)] == [1, 2, 4, 8, 10, 10]
    assert backoff(10_000, cap=60) == 60


def test_the_local_sim_engine_is_refused_on_a_cluster_and_nothing_else() -> None:
    def spec(url: str) -> NeuronSpec:
        return NeuronSpec.model_validate({"subnet": "s", "role": "miner",
                                          "behaviour": "passthrough", "miner": {"backend": {
                                              "type": "openai", "url": url, "model": "m"}}})
    assert cluster_backend_problem(spec("local-sim-engine")) == (
        "spec.miner.backend.url: local-sim-engine is the engine `subnetlab up` starts; on a "
        "cluster give the engine's http:// or https:// URL")
    assert cluster_backend_problem(spec("http://engine:8000")) is None
    for other in ({"subnet": "s", "role": "miner"}, {"subnet": "s", "role": "validator"}):
        assert cluster_backend_problem(NeuronSpec.model_validate(other)) is None


def test_a_copycat_of_the_local_sim_engine_is_refused_on_a_cluster() -> None:
    def copycat(url: str) -> NeuronSpec:
        return NeuronSpec.model_validate({"subnet": "s", "role": "miner",
                                          "behaviour": "copycat", "miner": {"copyFrom": url}})
    assert cluster_backend_problem(copycat("local-sim-engine")) == (
        "spec.miner.copyFrom: local-sim-engine is the engine `subnetlab up` starts; on a "
        "cluster give the copied engine's http:// or https:// URL")
    assert cluster_backend_problem(copycat("http://engine:8000")) is None
