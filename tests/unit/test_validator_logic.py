"""Validator logic without I/O: tasks (open prompts too), scoring, moving scores, weights,
spot-check verdicts and penalties, the N+V accounting, the evidence audit, health."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import Any

import httpx
import pytest
import redis as redis_lib
from hypothesis import given
from hypothesis import strategies as st

from subnetlab.engines import Completion, SimBackend, SimModel, sum_metric
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.client import LedgerError
from subnetlab.tasks import (
    KINDS,
    OPEN,
    TASK_KINDS,
    generate,
    is_correct,
    open_prompts,
    parse_task_mix,
    solve,
    with_reference,
)
from subnetlab.validator.config import ValidatorConfig
from subnetlab.validator.evidence import (
    audit_document,
    chain_form,
    digest_of,
    replay_moving,
    round_scores,
    weight_differences,
)
from subnetlab.validator.gateway import account, first_to_answer, spot_check_verdict
from subnetlab.validator.health import Health, one_line
from subnetlab.validator.loop import Validator
from subnetlab.validator.metrics import ValidatorMetrics
from subnetlab.validator.miners import MinerAnswer
from subnetlab.validator.reference import is_simulated, reference_backend
from subnetlab.validator.scoring import open_score, task_score, token_f1, verifiable_score
from subnetlab.validator.spotcheck import caught
from subnetlab.validator.stage import Stage
from subnetlab.validator.weights import (
    WeightPolicy,
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


def test_weight_policy_applies_the_behaviour_it_was_made_with() -> None:
    """One rule per --behaviour: the copier falls back to its own scores while the chain
    has no consensus; the lazy one spreads random weights over the miners serving (never
    itself), drawn from the validator's own generator."""
    me = "hk-self"
    metagraph = {"neurons": [
        {"uid": 3, "hotkey": "hk3", "axon": "http://127.0.0.1:1", "consensus": 0.25},
        {"uid": 4, "hotkey": "hk4", "axon": "http://127.0.0.1:2", "consensus": 0.75},
        {"uid": 5, "hotkey": me, "axon": "http://127.0.0.1:3", "consensus": 0.0}]}
    moving = {3: 0.5, 4: 1.0}

    def policy(behaviour: str, seed: int = 0) -> WeightPolicy:
        return WeightPolicy(behaviour, me, random.Random(seed), frozenset({4}))

    assert policy("honest")(moving, metagraph) == honest_weights(moving)
    assert policy("cabal")(moving, metagraph) == {4: 65535}
    assert policy("weight-copier")(moving, metagraph) == {3: 21845, 4: 65535}
    no_consensus = {"neurons": [{**n, "consensus": 0.0} for n in metagraph["neurons"]]}
    assert policy("weight-copier")(moving, no_consensus) == honest_weights(moving)
    assert policy("lazy", 1)(moving, metagraph) == lazy_weights([3, 4], random.Random(1))


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
    assert any("weights claimed differ" in r for r in result.reasons)


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


# --- open prompts -----------------------------------------------------------------------


def test_open_tasks_come_from_the_bundled_prompt_set_and_are_reproducible() -> None:
    prompts = open_prompts()
    assert len(prompts) >= 30 and len(set(prompts)) == len(prompts)
    seen = {generate(OPEN, seed).prompt for seed in range(200)}
    assert seen <= set(prompts) and len(seen) > 10
    task = generate(OPEN, 5)
    assert task == generate(OPEN, 5) and task.expected == ""
    assert solve(task.prompt) is None  # no answer key: the reference model answers


def test_open_score_is_token_f1_with_the_reference_times_the_speed_factor() -> None:
    task = with_reference(generate(OPEN, 1), "the sky is blue because air scatters light")
    assert open_score(task, "the sky is blue because air scatters light", 0.0, 5.0) == 1.0
    assert open_score(task, "42", 0.0, 5.0) == 0.0
    partial = token_f1("the sky is blue", task.expected)
    assert task_score(task, "the sky is blue", 2.5, 5.0) == pytest.approx(
        partial * (0.7 + 0.3 * 0.5))
    with pytest.raises(ValueError, match="only open tasks"):
        with_reference(generate("arithmetic", 1), "x")


@pytest.mark.parametrize(("text", "message"), [
    ("arithmetic=-1,open=1", "weight of 'arithmetic' must be a finite number >= 0"),
    ("arithmetic=nan", "finite number >= 0"),
    ("poetry=1", "unknown task kind 'poetry'"),
    ("arithmetic", "is not kind=weight"),
    ("open=x", "weight of 'open' is not a number"),
    ("open=1,open=2", "given twice"),
    ("open=0,sorting=0", "at least one task kind needs a positive weight"),
    ("", "at least one task kind needs a positive weight"),
])
def test_task_mix_refuses_bad_input(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_task_mix(text)


def test_task_mix_accepts_zero_weights_and_every_kind() -> None:
    assert parse_task_mix("arithmetic=0, open=2") == {"arithmetic": 0.0, "open": 2.0}
    assert set(parse_task_mix(",".join(f"{k}=1" for k in TASK_KINDS))) == set(TASK_KINDS)


def _config(**kwargs: Any) -> ValidatorConfig:
    return ValidatorConfig(Keypair.dev("unit-validator"), 1, "http://127.0.0.1:1",
                           "redis://127.0.0.1:1/0", **kwargs)


def test_validator_config_refuses_negative_weights_and_short_intervals() -> None:
    with pytest.raises(ValueError, match="task weights must be >= 0: sorting"):
        _config(task_weights={"open": 1.0, "sorting": -1.0})
    with pytest.raises(ValueError, match=r"round_interval_s 0.0: must be at least 0.05"):
        _config(round_interval_s=0.0)
    with pytest.raises(ValueError, match=r"sample_size 0: must be at least 1"):
        _config(sample_size=0)
    with pytest.raises(ValueError, match=r"timeout_s 0.0: must be above 0"):
        _config(timeout_s=0.0)
    assert _config(task_weights={"open": 1.0}).task_weights == {"open": 1.0}


# --- spot-checks and penalties ----------------------------------------------------------


@pytest.mark.parametrize(("similarity", "expected"), [
    ({1: 0.0, 2: 1.0, 3: 0.9}, [1]),     # one dissenter among agreeing peers
    ({1: 0.0, 2: 1.0}, [1]),
    ({1: 0.0, 2: 0.1, 3: 1.0}, []),      # a split vote proves nothing
    ({1: 0.0}, []),                      # a lone answer proves nothing
    ({1: 1.0, 2: 0.6}, []),              # everyone agrees
])
def test_caught_needs_a_dissenter_among_agreeing_peers(
    similarity: dict[int, float], expected: list[int]
) -> None:
    assert caught(similarity, 0.5) == expected


def _miner_answer(uid: int, text: str, tokens: int = 3, seconds: float | None = 0.01,
                  ok: bool = True, refused: bool = False) -> MinerAnswer:
    return MinerAnswer(uid=uid, hotkey=f"hk{uid}", text=text, latency_s=0.01,
                       completion_tokens=tokens, engine_seconds=seconds, ok=ok,
                       refused=refused, error=None if ok else "x")


def test_spot_check_verdict_replaces_a_caught_answer_with_an_agreeing_one() -> None:
    lazy, a, b = _miner_answer(1, "42"), _miner_answer(2, "blue sky"), _miner_answer(3, "sky")
    found, delivered = spot_check_verdict(lazy, [a, b], "blue sky", 0.5)
    assert found == [1] and delivered is a
    found, delivered = spot_check_verdict(a, [b], "blue sky", 0.5)
    assert found == [] and delivered is a


def test_accounting_counts_engine_seconds_only_when_every_answer_has_them() -> None:
    reference = Completion("blue sky", "ref", 1, 2, 0.05, simulated=True)
    answers = [_miner_answer(1, "blue sky", 4, 0.1), _miner_answer(2, "", 0, 0.0, ok=False,
                                                                   refused=True)]
    acct = account("broadcast", answers, answers[0], [reference])
    assert acct.overhead_ratio == pytest.approx((4 + 2) / 4)
    assert acct.seconds_ratio == pytest.approx((0.1 + 0.05) / 0.1)
    lost = [*answers, _miner_answer(3, "", 0, None, ok=False)]  # a timeout: seconds unknown
    assert account("broadcast", lost, answers[0], [reference]).seconds_ratio is None
    unlabelled = [_miner_answer(1, "blue", 4, None)]
    assert account("best-of-n", unlabelled, unlabelled[0], []).seconds_ratio is None
    free = [_miner_answer(1, "42", 1, 0.0)]
    assert account("spot-check", free, free[0], []).seconds_ratio is None


def _penalty(uid: int, answers: dict[int, str], after_round: int) -> dict[str, Any]:
    return {"uid": uid, "hotkey": f"hk{uid}", "after_round": after_round, "threshold": 0.5,
            "reference": "blue sky", "answers": [{"uid": u, "hotkey": f"hk{u}", "answer": a}
                                                 for u, a in answers.items()]}


def test_replay_places_each_penalty_after_the_rounds_before_it() -> None:
    records = [{"uid": 1, "score": 1.0, "round": 0}, {"uid": 1, "score": 1.0, "round": 1}]
    penalty = _penalty(1, {1: "42", 2: "blue sky"}, after_round=1)
    moving = replay_moving({}, records, [penalty], 0.5)
    assert moving == {1: pytest.approx(0.5)}  # 1.0, cut to 0, then one EMA step of 1.0
    assert replay_moving({}, records, [{**penalty, "after_round": 2}], 0.5) == {1: 0.0}


def _open_document(penalties: list[dict[str, Any]]) -> dict[str, Any]:
    task = generate(OPEN, 3)
    reference = "water falls as rain and flows back to the sea"
    records = []
    for uid, response in ((1, reference), (2, "42")):
        graded = with_reference(task, reference)
        records.append({"uid": uid, "kind": OPEN, "seed": 3, "prompt": task.prompt,
                        "response": response, "latency_s": 0.2, "round": 0,
                        "reference": reference,
                        "score": task_score(graded, response, 0.2, 5.0)})
    moving = replay_moving({}, records, penalties, 0.1)
    return {"behaviour": "honest", "timeout_s": 5.0, "alpha": 0.1, "records": records,
            "penalties": penalties, "moving_before": {}, "held_uids": [1, 2],
            "weights": {str(k): v for k, v in honest_weights(moving).items()}}


def test_audit_rescores_open_prompts_from_the_stored_reference() -> None:
    document = _open_document([])
    result = audit_document(document, digest_of(document))
    assert result.ok, result.reasons
    del document["records"][0]["reference"]
    result = audit_document(document, digest_of(document))
    assert any("without its reference answer" in r for r in result.reasons)


def test_audit_replays_justified_penalties_and_refuses_unjustified_ones() -> None:
    justified = _open_document([_penalty(1, {1: "42", 2: "blue sky", 3: "blue sky"}, 1)])
    result = audit_document(justified, digest_of(justified))
    assert result.ok, result.reasons
    assert result.recomputed[1] == 0 and result.recomputed[2] == 0  # uid 2 scored 0 anyway
    unjustified = _open_document([_penalty(1, {1: "blue sky", 2: "42"}, 1)])
    result = audit_document(unjustified, digest_of(unjustified))
    assert any("penalty of uid 1" in r and "not justified" in r for r in result.reasons)


def test_chain_comparison_tolerates_u16_rounding_and_says_which_side_differs() -> None:
    document = _document()
    base = audit_document(document, digest_of(document))
    stored = chain_form(base.claimed)
    nudged = {uid: max(0, value - 1) for uid, value in stored.items()}
    assert base.with_chain(nudged, "row").ok
    off = {uid: value // 2 for uid, value in stored.items()}
    result = base.with_chain(off, "row, set in block 7")
    assert not result.ok and result.differs == ["chain"]
    assert any(r.startswith("chain (row, set in block 7): uid") for r in result.reasons)
    document["weights"] = {"1": 1, "2": 65535}
    lying = audit_document(document, digest_of(document)).with_chain(off, "row")
    assert set(lying.differs) == {"evidence", "chain"}
    consistent_lie = audit_document(document, digest_of(document)).with_chain(
        {1: 1, 2: 65535}, "row")
    assert consistent_lie.differs == ["evidence"]


def test_weight_differences_treat_missing_uids_as_zero() -> None:
    assert weight_differences({1: 65535}, {1: 65535, 2: 0}) == []
    assert weight_differences({1: 65535}, {1: 65535, 2: 9}) == ["uid 2: evidence 0, chain 9"]


def test_a_penalty_and_its_records_go_into_the_same_snapshot_or_back() -> None:
    validator = Validator(_config())
    board = validator.board
    board.records = [{"uid": 1, "score": 1.0, "round": 0}]
    board.moving = {1: 1.0, 2: 0.5}
    board.rounds = 1
    validator.penalise(2, {"hotkey": "hk2"})  # as the gateway does (OrganicService)
    assert board.moving[2] == 0.0 and board.penalties[0]["after_round"] == 1
    assert validator.moving_score(2) == 0.0 and validator.moving_score(9) == 0.0
    snapshot = board.snapshot({}, validator.weight_setter.policy)
    assert snapshot is not None
    assert snapshot.penalties[0]["uid"] == 2 and snapshot.records and not board.records
    assert snapshot.weights == {1: 65535, 2: 0}
    assert board.moving_before == {1: 1.0, 2: 0.0}
    board.records = [{"uid": 1, "score": 0.0, "round": 1}]
    board.restore(snapshot)
    assert [r["round"] for r in board.records] == [0, 1]
    assert board.penalties[0]["uid"] == 2 and board.moving_before == {}


def test_health_backs_off_and_reports_degraded_while_a_dependency_is_down() -> None:
    health = Health()
    assert health.backoff_s(0.5) == 0.5
    assert health.failed("weights", httpx.ConnectError("refused")) == "ledger"
    assert health.status(following=True) == "degraded" and health.backoff_s(0.5) == 1.0
    health.failed("store_evidence", redis_lib.ConnectionError("down"))
    assert health.redis == "unreachable" and health.backoff_s(0.5) == 2.0
    for _ in range(20):
        health.failed("weights", LedgerError("rate_limited", "wait", status=400))
    assert health.backoff_s(0.5) == 10.0 and health.ledger == "unreachable"
    health.succeeded()
    health.ledger, health.redis = "ok", "ok"
    assert health.status(following=True) == "ok" and health.status(following=False) == "degraded"
    assert "\n" not in one_line(ValueError("two\nlines"))


def test_stages_keep_the_label_values_metrics_logs_and_healthz_show() -> None:
    """The stage is an enum, but what a failed round reports is the same plain word."""
    assert [s.value for s in Stage] == ["idle", "resume", "query", "reference", "subnet",
                                        "reveal", "weights", "store_evidence",
                                        "commit_evidence"]
    health = Health()
    health.failed(Stage.STORE_EVIDENCE, redis_lib.ConnectionError("down"))
    report = health.as_json(following=True)
    assert report["last_stage"] == "store_evidence"
    assert json.loads(json.dumps(report))["last_stage"] == "store_evidence"
    assert f"stage={Stage.COMMIT_EVIDENCE}" == "stage=commit_evidence"
    record = logging.LogRecord("v", logging.WARNING, "", 0, "stage=%s", (Stage.WEIGHTS,), None)
    assert record.getMessage() == "stage=weights"  # the `round failed` line's formatting
    metrics = ValidatorMetrics()
    metrics.round_failures.labels(stage=Stage.QUERY, dependency="ledger").inc()
    assert metrics.registry.get_sample_value(
        "subnetlab_validator_round_failures_total", {"stage": "query", "dependency": "ledger"}
    ) == 1.0


def test_reference_backend_flags() -> None:
    oracle = reference_backend("sim")
    assert is_simulated(oracle) and oracle.name == "sim:reference"
    assert reference_backend("vllm", "http://127.0.0.1:8000", "tiny").name == "vllm:tiny"
    for args, message in ((("sim", "http://x:1"), "--reference-url apply only"),
                          (("openai",), "needs --reference-url"),
                          (("vllm", "ftp://x"), "--reference-url: 'ftp://x' must start with"),
                          (("openai", "http://"), "--reference-url: 'http://' "),
                          (("gpt",), "must be one of sim, openai, vllm")):
        with pytest.raises(ValueError, match=message):
            reference_backend(*args)
