"""Status: conditions that move only when they change, phases, values from the ledger."""

from __future__ import annotations

from subnetlab.chain.units import TOKEN
from subnetlab.k8s.status import (
    SUBNET_CONDITIONS,
    Conditions,
    NeuronStatus,
    deployment_availability,
    metagraph_fields,
    phase_of,
    set_condition,
    subnet_fields,
    sybil_fields,
)


def test_transition_time_moves_only_when_the_status_does() -> None:
    items = set_condition([], "Registered", "True", "Registered", "uid 1", 1, "t1")
    items = set_condition(items, "Registered", "True", "Registered", "uid 1 again", 2, "t2")
    assert items[0]["lastTransitionTime"] == "t1" and items[0]["message"] == "uid 1 again"
    assert items[0]["observedGeneration"] == 2
    items = set_condition(items, "Registered", "Unknown", "LedgerUnreachable", "down", 2, "t3")
    assert items[0]["lastTransitionTime"] == "t3"


def test_conditions_keep_their_order_and_validate_against_the_status_model() -> None:
    book = Conditions([], 3, lambda: "2026-01-01T00:00:00Z", SUBNET_CONDITIONS)
    for type_ in reversed(SUBNET_CONDITIONS):
        book.set(type_, "True", "Fine", "")
    assert [c["type"] for c in book.items] == list(SUBNET_CONDITIONS)
    assert book.is_true("Created")
    NeuronStatus.model_validate({"conditions": book.items, "phase": phase_of(book.items)})


def test_phases() -> None:
    def ready(status: str, reason: str) -> list[dict[str, str]]:
        return set_condition([], "Ready", status, reason, "", 1, "t")  # type: ignore[arg-type]

    assert phase_of([]) == "Pending"
    assert phase_of(ready("True", "Ready")) == "Ready"
    assert phase_of(ready("False", "InvalidSpec")) == "Failed"
    assert phase_of(ready("False", "LedgerUnreachable")) == "Degraded"
    started = set_condition(set_condition(ready("False", "DeploymentUnavailable"), "Registered",
                                          "True", "Registered", "", 1, "t"),
                            "Staked", "True", "Staked", "", 1, "t")
    assert phase_of(started) == "Starting"
    assert phase_of(started, deleting=True) == "Terminating"


def test_metagraph_rows_become_tokens_and_absence_clears_fields() -> None:
    row = {"uid": 3, "stake": 1500 * TOKEN, "incentive": 0.25, "dividends": 0.5,
           "emission": TOKEN // 2, "validator_permit": True}
    assert metagraph_fields(row) == {"uid": 3, "stake": 1500.0, "incentive": 0.25,
                                     "dividends": 0.5, "emission": 0.5, "validatorPermit": True}
    assert set(metagraph_fields(None).values()) == {None}


def test_a_sybils_uids_are_listed_and_cleared_for_other_neurons() -> None:
    fields = sybil_fields(["5A", "5B"], [4, 7])
    assert fields == {"sybilHotkeys": ["5A", "5B"], "sybilUids": [4, 7]}
    assert NeuronStatus.model_validate({"uid": 3, **fields}).sybil_uids == [4, 7]
    assert sybil_fields([], []) == {"sybilHotkeys": None, "sybilUids": None}  # a merge patch
    # with nulls removes what an earlier (sybil) generation wrote


def test_subnet_fields_sum_the_stake() -> None:
    info = {"netuid": 2, "owner": "5Own", "last_epoch_block": 40, "epochs_run": 2}
    fields = subnet_fields(info, {"neurons": [{"stake": TOKEN}, {"stake": 2 * TOKEN}]}, 55)
    assert fields == {"netuid": 2, "owner": "5Own", "block": 55, "lastEpochBlock": 40,
                      "epochs": 2, "neurons": 2, "totalStake": 3.0}


def test_deployment_availability() -> None:
    assert deployment_availability(None)[1] == "DeploymentMissing"
    assert deployment_availability({"availableReplicas": 1})[0] == "True"
    assert deployment_availability({})[1] == "DeploymentUnavailable"
    stalled = {"conditions": [{"type": "Progressing", "status": "False", "message": "deadline"}]}
    assert deployment_availability(stalled) == ("False", "DeploymentStalled", "deadline")
