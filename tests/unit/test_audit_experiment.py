"""The audit experiment's pure parts: the fabricator's made-up records (a function of the
seed; plausible: they rescore to what they claim), the Yuma comparison, and the rows,
summary, verdict and figure computed from measured figures. The real point runs in
tests/integration/test_audit_experiment.py.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from subnetlab.experiments.audit import KINDS, field, figure, row_of, summary, verdict
from subnetlab.experiments.audit_run import (
    TIMEOUT_S,
    Audited,
    Measured,
    Setup,
    _compare,
    _invented,
    _self_signed,
    network,
)
from subnetlab.experiments.catalog import EXPERIMENTS
from subnetlab.experiments.sweep import SweepError
from subnetlab.keys import Keypair
from subnetlab.validator.answer_proof import answer_findings
from subnetlab.validator.evidence import audit_document, digest_of, final_moving
from subnetlab.validator.weights import honest_weights

FAB = Keypair.dev("audit-test-fabricator")
MINERS = [Keypair.dev(f"audit-test-miner-{i}") for i in range(3)]


def _metagraph() -> dict[str, Any]:
    neurons = [{"uid": i, "hotkey": k.ss58_address, "axon": {"url": "http://127.0.0.1:1"},
                "consensus": 0.5 if i < 2 else 0.0} for i, k in enumerate(MINERS)]
    neurons.append({"uid": 3, "hotkey": FAB.ss58_address, "axon": None, "consensus": 0.0})
    return {"block": 40, "neurons": neurons}


def test_invented_records_are_a_function_of_the_seed_and_favour_the_consensus() -> None:
    first = _invented(_metagraph(), FAB.ss58_address, random.Random("audit:1"))
    again = _invented(_metagraph(), FAB.ss58_address, random.Random("audit:1"))
    other = _invented(_metagraph(), FAB.ss58_address, random.Random("audit:2"))
    assert first == again and first != other
    assert [r["uid"] for r in first] == [0, 1, 2]  # miners only, not the fabricator
    assert [r["score"] > 0 for r in first] == [True, True, False]


def test_invented_evidence_passes_rescoring_and_only_signatures_catch_it() -> None:
    records = _invented(_metagraph(), FAB.ss58_address, random.Random("audit:1"))
    for made_up in (records, _self_signed(records, FAB)):
        document: dict[str, Any] = {
            "version": 4, "validator": FAB.ss58_address, "behaviour": "honest",
            "timeout_s": TIMEOUT_S, "alpha": 0.1, "records": made_up, "penalties": [],
            "moving_before": {}, "held_uids": [0, 1, 2, 3], "held_at_block": 40}
        document["weights"] = {str(k): v for k, v in
                               honest_weights(final_moving(document)).items()}
        assert audit_document(document, digest_of(document)).ok  # plausible
        reasons, _ = answer_findings(document, _metagraph()["neurons"])
        assert len(reasons) == 3  # every answer, by uid


def test_each_epoch_is_compared_once_with_the_first_metagraph_after_it() -> None:
    recomputed = [(10, np.array([0.0, 1.0]), np.array([1.0, 0.0])),
                  (20, np.array([0.0, 0.5]), np.array([0.5, 0.0]))]

    def snap(block: int, incentive: float, dividends: float) -> dict[str, Any]:
        return {"block": block, "neurons": [
            {"uid": 0, "hotkey": "a", "incentive": 0.0, "dividends": dividends},
            {"uid": 1, "hotkey": "b", "incentive": incentive, "dividends": 0.0}]}

    snapshots = [snap(5, 0.0, 0.0), snap(12, 1.0, 1.0), snap(15, 1.0, 1.0),
                 snap(21, 0.25, 0.75)]
    epochs, values, matches, worst = _compare(recomputed, snapshots)
    assert (epochs, values) == (2, 8)  # blocks 12 and 21; 15 repeats epoch 10's
    assert matches == 6 and worst == pytest.approx(0.25)


def _measured() -> Measured:
    audited = [Audited("honest", e, True, 0, 0, False) for e in (3, 4)]
    audited += [Audited("weight-copier", 4, False, 0, 1, False),
                Audited("lazy", 4, False, 0, 1, False),
                Audited("fabricated: invented", 5, False, 3, 0, False),
                Audited("fabricated: self-signed", 6, False, 3, 0, False),
                Audited("fabricated: replayed", 7, False, 9, 0, False),
                Audited("fabricated: downgraded", 8, True, 0, 0, True)]
    return Measured(tuple(audited), 7, 100, 99, 1e-3, True)


def test_rows_summary_verdict_and_figure_come_from_the_measured_figures(tmp_path: Path
                                                                        ) -> None:
    row = row_of({"epochs": 9, "seed": 0}, _measured())
    assert row["yuma_match_rate"] == 0.99 and row["chain_replayed"] is True
    assert (row["honest_documents"], row["honest_flagged"]) == (2, 0)
    assert row["fabricated_self_signed_flagged"] == 1
    assert row["fabricated_self_signed_flagged_without_signatures"] == 0
    assert row["fabricated_downgraded_unprovable"] == 1
    assert {f"{field(k)}_documents" for k in KINDS} <= set(row)
    rows = [row, {**row, "seed": 1}]
    text = "\n".join(summary(rows))
    assert "| fabricated: replayed | 2 | 1.000 ± 0.000 | 0.000 ± 0.000 | 0 |" in text
    sentence = verdict(rows)
    assert "99.0% of 200" in sentence and "100% of fabricated answers" in sentence
    assert "(0% without the signatures)" in sentence and "(0% flagged)" in sentence
    figure(rows, tmp_path / "audit.png")
    assert (tmp_path / "audit.png").stat().st_size > 0


def test_the_network_has_every_behaviour_and_the_fabricator() -> None:
    spec = network(Setup(seed=0, epochs=9))
    roles = {n.metadata.name: (n.spec.role, n.spec.behaviour) for n in spec.neurons}
    assert roles["fabricator"] == ("validator", "honest")
    assert {b for r, b in roles.values() if r == "validator"} == {"honest", "weight-copier",
                                                                 "lazy"}
    assert {b for r, b in roles.values() if r == "miner"} == {"honest", "lazy"}


def test_epochs_below_what_the_fabrications_need_are_refused_by_flag() -> None:
    param = EXPERIMENTS["audit"].params[0]
    with pytest.raises(SweepError, match="--epochs"):
        param.parse("4")
    assert param.parse("8,12") == (8, 12)
