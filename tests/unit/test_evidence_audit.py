"""What an evidence document cannot get past the audit: checks that reach beyond the
document itself (its parameters, the prior evidence its moving scores continue, the
registrations on chain its held uids must cover).

The documents are built the way the validator builds them (real tasks, real scores, the
validator's own EMA and weights), then bent the way a dishonest validator would.
"""

from __future__ import annotations

from typing import Any

import pytest

from subnetlab.tasks import generate
from subnetlab.validator.evidence import (
    PriorEvidence,
    audit_document,
    continuity_findings,
    digest_of,
    final_moving,
    held_findings,
)
from subnetlab.validator.scoring import verifiable_score
from subnetlab.validator.weights import honest_weights

TIMEOUT_S = 5.0


def _records(answers: dict[int, bool], round_number: int = 0) -> list[dict[str, Any]]:
    records = []
    for uid, right in answers.items():
        task = generate("arithmetic", 100 * round_number + uid)
        response = task.expected if right else "42 (wrong)"
        records.append({"uid": uid, "kind": task.kind, "seed": task.seed,
                        "prompt": task.prompt, "response": response, "latency_s": 0.5,
                        "round": round_number,
                        "score": verifiable_score(task, response, 0.5, TIMEOUT_S)})
    return records


def _document(moving_before: dict[int, float], records: list[dict[str, Any]],
              alpha: float = 0.1, held: list[int] | None = None,
              held_at_block: int | None = 50) -> dict[str, Any]:
    """An honest validator's document: its weights follow from what it holds."""
    document: dict[str, Any] = {
        "behaviour": "honest", "timeout_s": TIMEOUT_S, "alpha": alpha, "records": records,
        "penalties": [], "moving_before": {str(k): v for k, v in moving_before.items()},
        "held_uids": held if held is not None else sorted({r["uid"] for r in records}),
        "held_at_block": held_at_block, "weights": {}}
    document["weights"] = {str(k): v for k, v in honest_weights(final_moving(document)).items()}
    return document


def test_a_frozen_ema_with_made_up_history_is_refused() -> None:
    # uid 1 answers right, uid 2 wrong; the validator wants uid 2 to win. With alpha 0 its
    # made-up moving_before would pass straight through to the weights.
    document = _document({1: 0.0, 2: 1.0}, _records({1: True, 2: False}), alpha=0.0)
    result = audit_document(document, digest_of(document))
    assert not result.ok
    assert any("alpha 0.0 is not in (0, 1]" in r for r in result.reasons)
    reasons, _ = continuity_findings(document, None)
    assert reasons == ["moving_before holds scores but no earlier evidence of this validator "
                       "is committed"]


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("alpha", 1.5, "alpha 1.5 is not in (0, 1]"),
    ("alpha", "0.1", "alpha '0.1' is not in (0, 1]"),
    ("alpha", True, "alpha True is not in (0, 1]"),
    ("timeout_s", 0, "timeout_s 0 is not a positive number"),
    ("timeout_s", float("inf"), "timeout_s inf is not a positive number"),
    ("timeout_s", None, "timeout_s None is not a positive number"),
])
def test_parameters_out_of_range_are_refused_by_name(field: str, value: object,
                                                     reason: str) -> None:
    document = {**_document({}, _records({1: True})), field: value}
    result = audit_document(document, digest_of(document))
    assert any(reason in r for r in result.reasons), result.reasons


def test_an_answer_scored_after_the_timeout_is_refused() -> None:
    records = _records({1: True, 2: True})
    records[1]["latency_s"] = TIMEOUT_S + 3.0  # a slow favourite, excused after the fact
    document = _document({}, records)
    result = audit_document(document, digest_of(document))
    assert any("uid 2: answer scored after 8.000 s, past the 5.0 s timeout" in r
               for r in result.reasons), result.reasons


def test_moving_before_must_continue_the_prior_evidence() -> None:
    first = _document({}, _records({1: True, 2: False}))
    carried = final_moving(first)
    prior = PriorEvidence(epoch=3, digest=digest_of(first), document=first)
    honest = _document(carried, _records({1: True, 2: False}, round_number=1))
    assert continuity_findings(honest, prior) == ([], [])
    assert audit_document(honest, digest_of(honest)).ok

    inflated = _document({**carried, 2: 0.9}, _records({1: True, 2: False}, round_number=1))
    reasons, _ = continuity_findings(inflated, prior)
    assert len(reasons) == 1 and reasons[0].startswith("uid 2: moving_before 0.9, the prior "
                                                       "evidence (epoch 3) ends with")
    dropped = _document({2: carried[2]}, _records({1: True, 2: False}, round_number=1))
    reasons, _ = continuity_findings(dropped, prior)
    assert reasons and reasons[0].startswith("uid 1: moving_before None")


def test_a_fresh_start_is_noted_and_a_missing_prior_cannot_be_checked() -> None:
    first = _document({}, _records({1: True}))
    fresh = _document({}, _records({1: True}, round_number=1))
    reasons, notes = continuity_findings(fresh, PriorEvidence(4, digest_of(first), first))
    assert reasons == [] and notes == ["moving scores start afresh (the prior evidence, epoch "
                                       "4, is not continued)"]
    later = _document(final_moving(first), _records({1: True}, round_number=1))
    reasons, _ = continuity_findings(later, PriorEvidence(4, "0xabc", None))
    assert reasons == ["moving_before cannot be checked: the prior evidence 0xabc (epoch 4) "
                       "is missing from the evidence store"]


def test_held_uids_cannot_leave_out_a_miner_registered_throughout() -> None:
    neurons = [{"uid": 0, "hotkey": "v", "block_at_registration": 1},
               {"uid": 1, "hotkey": "a", "block_at_registration": 10},
               {"uid": 2, "hotkey": "b", "block_at_registration": 20},
               {"uid": 3, "hotkey": "c", "block_at_registration": 60}]  # after block 50
    records = _records({1: True, 2: True})
    honest = _document({}, records, held=[0, 1, 2], held_at_block=50)
    assert held_findings(honest, neurons) == ([], [])
    favouring = _document({}, records, held=[0, 2], held_at_block=50)
    assert audit_document(favouring, digest_of(favouring)).ok  # consistent with itself...
    reasons, _ = held_findings(favouring, neurons)  # ...but not with the chain
    assert reasons == ["uid 1 has been registered since block 10, before held_uids were read "
                       "(block 50), but they leave it out"]
    vacated = [*neurons[:1], {"uid": 1, "hotkey": None, "vacant": True,
                              "block_at_registration": 10},
               *neurons[2:]]
    assert held_findings(favouring, vacated) == ([], [])
    old = {k: v for k, v in favouring.items() if k != "held_at_block"}
    assert held_findings(old, neurons) == (
        [], ["held_uids not checked against the chain (no held_at_block)"])


def test_findings_from_outside_fail_the_evidence_side_and_keep_notes() -> None:
    document = _document({}, _records({1: True}))
    result = audit_document(document, digest_of(document))
    assert result.ok
    noted = result.with_evidence_findings([], ["a note"])
    assert noted.ok and noted.notes == ["a note"]
    failed = noted.with_evidence_findings(["a reason"])
    assert not failed.ok and failed.differs == ["evidence"] and failed.notes == ["a note"]
    assert failed.with_chain({}, "row").notes == ["a note"]
    assert failed.as_json()["notes"] == ["a note"]
