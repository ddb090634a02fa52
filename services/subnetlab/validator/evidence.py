"""Evidence: what a validator's weights rest on, stored off-chain, committed on-chain.

For every weight-setting round a validator writes an evidence document to Redis under its
blake2b-256 digest and commits the digest on chain with `commit_evidence`. The document
holds the tasks (kind + seed; for open prompts also the reference answer they were scored
against), each miner's response and latency, the scores, the penalties the gateway's
spot-checks imposed (with the answers that justify them), the moving scores before, the
uids still held, the weights, and where the chain has them (`chain`: the call, its block,
and under commit-reveal the commit hash and salt). Anyone holding the document can
recompute the weights without any model and compare them with the chain: `audit` does.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import redis

from subnetlab.chain.yuma import max_upscale_u16
from subnetlab.protocol.metagraph import occupied
from subnetlab.tasks import OPEN, generate, with_reference
from subnetlab.validator.scoring import task_score
from subnetlab.validator.spotcheck import DEFAULT_THRESHOLD, caught, similarities
from subnetlab.validator.weights import honest_weights, update_moving_scores

U16_TOLERANCE = 1
"""How far (in u16 steps) a chain weight may sit from the evidence's: re-upscaling an
already max-upscaled vector can round one step either way."""
TIMEOUT_SLACK_S = 0.05
"""Latency measured after a query's deadline may exceed it by scheduling jitter only."""
MOVING_TOLERANCE = 1e-9
"""How far a moving score may sit from the one the previous evidence implies (JSON floats
round-trip exactly; this only absorbs summation order)."""


def canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def digest_of(document: dict[str, Any]) -> str:
    """The digest committed on chain: "0x" + blake2b-256 of the canonical JSON."""
    return "0x" + hashlib.blake2b(canonical(document), digest_size=32).hexdigest()


def evidence_key(digest: str) -> str:
    return f"subnetlab:evidence:{digest}"


def store_evidence(client: redis.Redis, document: dict[str, Any]) -> str:
    """Write the document under its digest (idempotent) and return the digest."""
    digest = digest_of(document)
    client.set(evidence_key(digest), canonical(document))
    return digest


def load_evidence(client: redis.Redis, digest: str) -> dict[str, Any] | None:
    raw = client.get(evidence_key(digest))
    if raw is None:
        return None
    loaded: dict[str, Any] = json.loads(raw)
    return loaded


def round_scores(records: list[dict[str, Any]]) -> dict[int, float]:
    """A round's score per miner: the mean over its records (one per task it was asked)."""
    totals: dict[int, list[float]] = {}
    for record in records:
        totals.setdefault(int(record["uid"]), []).append(float(record["score"]))
    return {uid: sum(values) / len(values) for uid, values in totals.items()}


def replay_moving(
    moving_before: Mapping[int, float], records: list[dict[str, Any]],
    penalties: list[dict[str, Any]], alpha: float,
) -> dict[int, float]:
    """The moving scores as the validator computed them: one EMA step per round (records
    grouped by `round`, in order) and each penalty (moving score cut to 0) at its place,
    after the rounds completed before it (`after_round`) and before the rest."""
    events: list[tuple[int, int, Any]] = []
    grouped: dict[int, list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(int(record.get("round", 0)), []).append(record)
    events += [(k, 1, grouped[k]) for k in grouped]
    events += [(int(p["after_round"]), 0, p) for p in penalties]
    moving = dict(moving_before)
    for _, kind, payload in sorted(events, key=lambda e: (e[0], e[1])):
        if kind == 1:
            moving = update_moving_scores(moving, round_scores(payload), alpha)
        else:
            moving[int(payload["uid"])] = 0.0
    return moving


def final_moving(document: Mapping[str, Any]) -> dict[int, float]:
    """The moving scores a document ends with: its EMA steps and penalties replayed from
    `moving_before`, pruned to `held_uids`. The next document of the same validator starts
    from these (its `moving_before`), and a restarted validator resumes from them."""
    moving = replay_moving({int(k): float(v) for k, v in document.get("moving_before", {}).items()},
                           list(document.get("records", [])), list(document.get("penalties", [])),
                           float(document.get("alpha", 0.1)))
    if document.get("held_uids") is not None:
        held = {int(u) for u in document["held_uids"]}
        moving = {uid: value for uid, value in moving.items() if uid in held}
    return moving


def chain_form(weights: Mapping[int, int]) -> dict[int, int]:
    """Weights as the chain stores them: max-upscaled to u16 over the uids in order."""
    uids = sorted(weights)
    values = max_upscale_u16([float(weights[u]) for u in uids])
    return {u: int(v) for u, v in zip(uids, values, strict=True)}


def weight_differences(
    expected: Mapping[int, int], chain: Mapping[int, int], tolerance: int = U16_TOLERANCE
) -> list[str]:
    """Where the chain's row differs from the expected weights by more than `tolerance`
    (a uid missing from one side counts as 0 there)."""
    wanted = chain_form(expected)
    return [f"uid {uid}: evidence {wanted.get(uid, 0)}, chain {chain.get(uid, 0)}"
            for uid in sorted(set(wanted) | set(chain))
            if abs(wanted.get(uid, 0) - chain.get(uid, 0)) > tolerance]


@dataclass(frozen=True)
class AuditResult:
    """Whether the weights follow from the evidence, and whether the chain has them.

    `evidence_ok`: the document hashes to the committed digest and its own claims (scores,
    penalties, weights) recompute from it. `chain_ok`: the chain holds the weights the
    document claims were set (None when not compared). `ok` needs both, so a match means
    recomputed == claimed == on chain, and a mismatch names the side that differs.
    """

    evidence_ok: bool
    reasons: list[str]
    recomputed: dict[int, int]
    claimed: dict[int, int]
    chain_ok: bool | None = None
    chain: dict[int, int] = field(default_factory=dict)
    chain_source: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.evidence_ok and self.chain_ok is not False

    @property
    def differs(self) -> list[str]:
        """Which side differs: "evidence", "chain", both, or neither."""
        return [name for name, good in (("evidence", self.evidence_ok),
                                        ("chain", self.chain_ok)) if good is False]

    def with_chain(self, chain: Mapping[int, int], source: str,
                   reasons: Iterable[str] = ()) -> AuditResult:
        """This result compared with the weights the chain holds for it (`source` says
        where they were read); `reasons` are further chain-side findings."""
        found = [*reasons, *weight_differences(self.claimed, chain)]
        chain_reasons = [f"chain ({source}): {r}" for r in found]
        return AuditResult(self.evidence_ok, [*self.reasons, *chain_reasons], self.recomputed,
                           self.claimed, not found, dict(chain), source, self.notes)

    def with_evidence_findings(self, reasons: Iterable[str],
                               notes: Iterable[str] = ()) -> AuditResult:
        """This result with further evidence-side findings (from outside the document:
        the previous evidence, the registrations on chain); any reason fails the evidence."""
        found = list(reasons)
        return AuditResult(self.evidence_ok and not found, [*self.reasons, *found],
                           self.recomputed, self.claimed, self.chain_ok, self.chain,
                           self.chain_source, [*self.notes, *notes])

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "differs": self.differs, "evidence_ok": self.evidence_ok,
                "chain_ok": self.chain_ok, "reasons": self.reasons,
                "recomputed": self.recomputed, "claimed": self.claimed,
                "chain": self.chain, "chain_source": self.chain_source, "notes": self.notes}


def _is_number(value: object) -> TypeGuard[float]:
    """A JSON number (bool is an int to Python, not a number here)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: object, default: float) -> float:
    return float(value) if _is_number(value) else default


def _parameter_problems(document: Mapping[str, Any]) -> list[str]:
    """The document's own parameters, checked before anything is recomputed with them.

    `alpha` must be in (0, 1]: 0 would freeze the moving scores at `moving_before`, so
    the weights would rest on nothing the records show. `timeout_s` must be positive and
    finite, and no answer the validator scored can have arrived after it (the validator
    cancels a query at its timeout), so a document cannot widen the timeout after the fact
    to excuse slow favourites.
    """
    problems = []
    alpha, timeout = document.get("alpha"), document.get("timeout_s")
    if not (_is_number(alpha) and 0 < alpha <= 1):
        problems.append(f"alpha {alpha!r} is not in (0, 1]")
    if not (_is_number(timeout) and 0 < timeout < math.inf):
        problems.append(f"timeout_s {timeout!r} is not a positive number of seconds")
        return problems
    for record in document.get("records", []):
        latency = _number(record.get("latency_s"), 0.0)
        if record.get("response") and latency > timeout + TIMEOUT_SLACK_S:
            problems.append(f"uid {record.get('uid')}: answer scored after {latency:.3f} s, "
                            f"past the {timeout} s timeout")
    return problems


def _rescore(record: dict[str, Any], timeout: float, reasons: list[str]) -> float:
    task = generate(record["kind"], int(record["seed"]))
    if task.prompt != record.get("prompt", task.prompt):
        reasons.append(f"uid {record['uid']}: prompt does not match kind/seed")
    if task.kind == OPEN:
        if not isinstance(record.get("reference"), str):
            reasons.append(f"uid {record['uid']}: open task without its reference answer")
            return 0.0
        task = with_reference(task, record["reference"])
    score = task_score(task, record["response"], float(record["latency_s"]), timeout)
    if abs(score - float(record["score"])) > 1e-9:
        reasons.append(f"uid {record['uid']}: score {record['score']} recomputes to {score}")
    return score


def _check_penalty(penalty: dict[str, Any], reasons: list[str]) -> None:
    answers = {int(a["uid"]): str(a["answer"]) for a in penalty.get("answers", [])}
    threshold = float(penalty.get("threshold", DEFAULT_THRESHOLD))
    found = caught(similarities(answers, str(penalty.get("reference", ""))), threshold)
    if int(penalty["uid"]) not in found:
        reasons.append(f"penalty of uid {penalty['uid']} (after round "
                       f"{penalty.get('after_round')}) is not justified by its answers")


def audit_document(document: dict[str, Any], committed_digest: str) -> AuditResult:
    """Re-derive scores, penalties and weights from the evidence; compare with its claims.

    Checks: the document hashes to the committed digest; every task regenerates from its
    kind and seed; every score recomputes from the stored response, latency and (open
    prompts) reference answer; every penalty is justified by the answers it records; the
    moving scores follow from the previous ones; honest weights follow from them. The
    chain side is `AuditResult.with_chain` (see `validator/audit.py`).
    """
    reasons: list[str] = []
    if digest_of(document) != committed_digest:
        reasons.append(f"document digest {digest_of(document)} != committed {committed_digest}")
    reasons += _parameter_problems(document)
    timeout = _number(document.get("timeout_s"), 0.0)
    rescored = [{**r, "score": _rescore(r, timeout, reasons)}
                for r in document.get("records", [])]
    penalties = list(document.get("penalties", []))
    for penalty in penalties:
        _check_penalty(penalty, reasons)
    moving = final_moving({**document, "records": rescored})
    recomputed = honest_weights(moving) if document.get("behaviour") == "honest" else {}
    claimed = {int(k): int(v) for k, v in document.get("weights", {}).items()}
    if document.get("behaviour") != "honest":
        reasons.append(f"behaviour {document.get('behaviour')!r} does not follow its evidence")
    elif recomputed != claimed:
        reasons.append("weights claimed differ from the weights the evidence implies")
    return AuditResult(not reasons, reasons, recomputed, claimed)


@dataclass(frozen=True)
class PriorEvidence:
    """The validator's latest evidence committed before the audited epoch; `document` is
    None when the digest is on chain but missing from the evidence store."""

    epoch: int
    digest: str
    document: dict[str, Any] | None


def continuity_findings(document: Mapping[str, Any], prior: PriorEvidence | None
                        ) -> tuple[list[str], list[str]]:
    """(reasons, notes): does the document's `moving_before` follow from its prior evidence?

    Within one document everything recomputes from `moving_before`; this closes the gap
    between documents, so moving scores cannot be made up. `moving_before` must be the
    moving scores the prior document ends with (:func:`final_moving`), or empty: a
    validator that lost its state starts afresh, which is noted, not failed, since from
    empty moving scores the weights rest only on the records the audit rescored. Without
    any prior evidence the scores must start empty.
    """
    before = {int(k): float(v) for k, v in document.get("moving_before", {}).items()}
    if not before:
        if prior is None:
            return [], []
        return [], [f"moving scores start afresh (the prior evidence, epoch {prior.epoch}, "
                    "is not continued)"]
    if prior is None:
        return ["moving_before holds scores but no earlier evidence of this validator is "
                "committed"], []
    if prior.document is None:
        return [f"moving_before cannot be checked: the prior evidence {prior.digest} (epoch "
                f"{prior.epoch}) is missing from the evidence store"], []
    expected = final_moving(prior.document)
    wrong = [f"uid {uid}: moving_before {before.get(uid)}, the prior evidence (epoch "
             f"{prior.epoch}) ends with {expected.get(uid)}"
             for uid in sorted(set(before) | set(expected))
             if uid not in before or uid not in expected
             or abs(before[uid] - expected[uid]) > MOVING_TOLERANCE]
    return wrong, []


def held_findings(document: Mapping[str, Any], neurons: Iterable[Mapping[str, Any]]
                  ) -> tuple[list[str], list[str]]:
    """(reasons, notes): does `held_uids` leave out a uid the chain shows was held?

    Pruning to `held_uids` drops a miner's moving score, so a document could otherwise
    "forget" every miner but its favourites. A uid registered at or before
    `held_at_block` (the block of the metagraph the validator pruned with) and still
    registered now was held then, whatever happened in between cannot have vacated it
    without moving its `block_at_registration` past that block. Documents from before
    `held_at_block` was recorded are noted as unchecked.
    """
    held, at = document.get("held_uids"), document.get("held_at_block")
    if held is None:
        return [], []
    if not isinstance(at, int) or isinstance(at, bool):
        return [], ["held_uids not checked against the chain (no held_at_block)"]
    kept = {int(uid) for uid in held}
    left_out = sorted((int(n["uid"]), int(n["block_at_registration"])) for n in occupied(neurons)
                      if int(n.get("block_at_registration", at + 1)) <= at
                      and int(n["uid"]) not in kept)
    return [f"uid {uid} has been registered since block {since}, before held_uids were read "
            f"(block {at}), but they leave it out" for uid, since in left_out], []
