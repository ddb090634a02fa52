"""Validator logic without I/O: tasks, scoring, moving scores, weights, evidence audit."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from subnetlab.miner.backends import SimBackend, SimModel, sum_metric
from subnetlab.validator.evidence import audit_document, digest_of, round_scores
from subnetlab.validator.gateway import first_to_answer
from subnetlab.validator.loop import MinerAnswer
from subnetlab.validator.scoring import token_f1, verifiable_score
from subnetlab.validator.tasks import KINDS, generate, is_correct, solve
from subnetlab.validator.weights import (
    cabal_weights,
    copier_weights,
    honest_weights,
    lazy_weights,
    update_moving_scores,
)


@given(st.sampled_from(KINDS), st.integers(0, 10**9))
def test_tasks_are_reproducible_and_solvable(kind: str, seed: int) -> None:
    task = generate(kind, seed)
    assert generate(kind, seed) == task
    assert solve(task.prompt) == task.expected
    assert is_correct(task, f"  {task.expected.upper()}. ")


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown task kind 'poetry'"):
        generate("poetry", 1)


def test_wrong_answers_score_zero_and_speed_counts() -> None:
    task = generate("arithmetic", 7)
    assert verifiable_score(task, "nope", 0.0, 5.0) == 0.0
    fast = verifiable_score(task, task.expected, 0.1, 5.0)
    slow = verifiable_score(task, task.expected, 4.0, 5.0)
    assert 0.7 < slow < fast <= 1.0
    assert verifiable_score(task, task.expected, 9.0, 5.0) == pytest.approx(0.7)


def test_token_f1() -> None:
    assert token_f1("the cat sat", "the cat sat") == 1.0
    assert token_f1("dogs", "the cat") == 0.0
    assert 0 < token_f1("the cat", "the cat sat") < 1


def test_moving_scores_start_from_first_score_then_ema() -> None:
    moving = update_moving_scores({}, {1: 1.0, 2: 0.0}, alpha=0.1)
    assert moving == {1: 1.0, 2: 0.0}
    moving = update_moving_scores(moving, {2: 1.0}, alpha=0.1)
    assert moving == {1: 1.0, 2: pytest.approx(0.1)}


def test_behaviour_weights() -> None:
    assert honest_weights({3: 0.5, 4: 1.0}) == {3: 32768, 4: 65535}
    assert cabal_weights({3: 1.0, 4: 0.1}, cabal={4}) == {4: 65535}
    assert copier_weights({3: 0.25, 4: 0.75, 5: 0.0}) == {3: 21845, 4: 65535}
    lazy = lazy_weights([3, 4, 5], random.Random(1))
    assert set(lazy) == {3, 4, 5} and max(lazy.values()) == 65535


def test_sim_backend_accuracy_is_explicit() -> None:
    perfect = SimBackend(SimModel(default_accuracy=1.0))
    hopeless = SimBackend(SimModel(default_accuracy=0.0))
    for seed in range(50):
        task = generate("sorting", seed)
        assert perfect.answer(task.prompt) == task.expected
        assert hopeless.answer(task.prompt) != task.expected


def test_sum_metric_reads_prometheus_text() -> None:
    text = ('# HELP vllm:generation_tokens_total x\n'
            'vllm:generation_tokens_total{model_name="a"} 12.0\n'
            'vllm:generation_tokens_total{model_name="b"} 3.0\n'
            'vllm:generation_tokens_created 5.0\n')
    assert sum_metric(text, "vllm:generation_tokens_total") == 15.0


def _document() -> dict[str, object]:
    records = []
    for uid, answer_right in ((1, True), (2, False)):
        task = generate("arithmetic", uid)
        response = task.expected if answer_right else "0"
        records.append({"uid": uid, "kind": task.kind, "seed": task.seed, "prompt": task.prompt,
                        "response": response, "latency_s": 0.5,
                        "score": verifiable_score(task, response, 0.5, 5.0)})
    moving = update_moving_scores({1: 0.2}, round_scores(records), 0.1)
    return {"behaviour": "honest", "timeout_s": 5.0, "alpha": 0.1, "records": records,
            "moving_before": {"1": 0.2}, "weights": {str(k): v for k, v in
                                                     honest_weights(moving).items()}}


def test_audit_accepts_honest_evidence() -> None:
    document = _document()
    result = audit_document(document, digest_of(document))
    assert result.ok, result.reasons
    assert result.recomputed == result.claimed


def test_audit_catches_tampering() -> None:
    document = _document()
    digest = digest_of(document)
    document["weights"] = {"1": 1, "2": 65535}
    result = audit_document(document, digest)
    assert not result.ok
    assert any("digest" in r for r in result.reasons)
    assert any("weights set differ" in r for r in result.reasons)


def _answer(uid: int, ok: bool) -> MinerAnswer:
    return MinerAnswer(uid=uid, hotkey=f"hk{uid}", text="42" if ok else "", latency_s=0.01,
                       completion_tokens=3 if ok else 0, engine_seconds=None, ok=ok,
                       error=None if ok else "rate_limited")


@pytest.mark.parametrize(("answering", "attempts", "asked"), [
    ({0, 1, 2}, 3, [0]),        # the best answers: nobody else is asked
    ({2}, 3, [0, 1, 2]),        # two refuse: the third answers
    ({1, 2}, 3, [0, 1]),
    (set(), 3, [0, 1, 2]),      # nobody answers: at most `attempts` are asked
    ({3}, 3, [0, 1, 2]),        # the one that would answer is past the fan-out
])
def test_spot_check_falls_back_to_the_next_best_miner(
    answering: set[int], attempts: int, asked: list[int]
) -> None:
    ranked = [{"uid": uid} for uid in range(4)]
    called: list[int] = []

    async def ask_one(miner: dict[str, Any]) -> MinerAnswer:
        called.append(miner["uid"])
        return _answer(miner["uid"], miner["uid"] in answering)

    answers = asyncio.run(first_to_answer(ranked, attempts, ask_one))
    assert called == asked
    assert [a.uid for a in answers] == asked
    assert [a.ok for a in answers][:-1] == [False] * (len(asked) - 1)
    assert answers[-1].ok == (asked[-1] in answering)
