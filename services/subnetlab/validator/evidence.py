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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from subnetlab.chain.yuma import max_upscale_u16
from subnetlab.validator.scoring import task_score
from subnetlab.validator.spotcheck import DEFAULT_THRESHOLD, caught, similarities
from subnetlab.validator.tasks import OPEN, generate, with_reference
from subnetlab.validator.weights import honest_weights, update_moving_scores

U16_TOLERANCE = 1
"""How far (in u16 steps) a chain weight may sit from the evidence's: re-upscaling an
already max-upscaled vector can round one step either way."""


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
                           self.claimed, not found, dict(chain), source)

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "differs": self.differs, "evidence_ok": self.evidence_ok,
                "chain_ok": self.chain_ok, "reasons": self.reasons,
                "recomputed": self.recomputed, "claimed": self.claimed,
                "chain": self.chain, "chain_source": self.chain_source}


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
    timeout = float(document.get("timeout_s", 0.0))
    rescored = [{**r, "score": _rescore(r, timeout, reasons)}
                for r in document.get("records", [])]
    penalties = list(document.get("penalties", []))
    for penalty in penalties:
        _check_penalty(penalty, reasons)
    moving = replay_moving({int(k): float(v) for k, v in document.get("moving_before", {}).items()},
                           rescored, penalties, float(document.get("alpha", 0.1)))
    if document.get("held_uids") is not None:
        held = {int(u) for u in document["held_uids"]}
        moving = {uid: value for uid, value in moving.items() if uid in held}
    recomputed = honest_weights(moving) if document.get("behaviour") == "honest" else {}
    claimed = {int(k): int(v) for k, v in document.get("weights", {}).items()}
    if document.get("behaviour") != "honest":
        reasons.append(f"behaviour {document.get('behaviour')!r} does not follow its evidence")
    elif recomputed != claimed:
        reasons.append("weights claimed differ from the weights the evidence implies")
    return AuditResult(not reasons, reasons, recomputed, claimed)
