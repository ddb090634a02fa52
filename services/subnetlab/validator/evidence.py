"""Evidence: what a validator's weights rest on, stored off-chain, committed on-chain.

For every weight-setting round a validator writes an evidence document (the tasks as
kind + seed, each miner's response and latency, the scores, the moving scores before and
after, and the weights it set) to Redis under its blake2b-256 digest, and commits the
digest on chain with `commit_evidence`. Anyone holding the document can check it against
the chain and recompute the weights: `audit` does exactly that.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import redis

from subnetlab.validator.scoring import verifiable_score
from subnetlab.validator.tasks import generate
from subnetlab.validator.weights import honest_weights, update_moving_scores


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


def _rounds(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Records grouped by their `round` number, in order (one EMA step per round)."""
    grouped: dict[int, list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(int(record.get("round", 0)), []).append(record)
    return [grouped[k] for k in sorted(grouped)]


@dataclass(frozen=True)
class AuditResult:
    """Whether the weights a validator set follow from its evidence, and why not."""

    ok: bool
    reasons: list[str]
    recomputed: dict[int, int]
    claimed: dict[int, int]


def audit_document(document: dict[str, Any], committed_digest: str) -> AuditResult:
    """Re-derive scores and weights from the evidence; compare with what was claimed.

    Checks: the document hashes to the committed digest; every task regenerates from its
    kind and seed; every score re-computes from the stored response and latency; the moving
    scores follow from the previous ones; honest weights follow from the moving scores.
    """
    reasons: list[str] = []
    if digest_of(document) != committed_digest:
        reasons.append(f"document digest {digest_of(document)} != committed {committed_digest}")
    timeout = float(document.get("timeout_s", 0.0))
    rescored: list[dict[str, Any]] = []
    for record in document.get("records", []):
        task = generate(record["kind"], int(record["seed"]))
        if task.prompt != record.get("prompt", task.prompt):
            reasons.append(f"uid {record['uid']}: prompt does not match kind/seed")
        score = verifiable_score(task, record["response"], float(record["latency_s"]), timeout)
        if abs(score - float(record["score"])) > 1e-9:
            reasons.append(f"uid {record['uid']}: score {record['score']} recomputes to {score}")
        rescored.append({**record, "score": score})
    moving = {int(k): float(v) for k, v in document.get("moving_before", {}).items()}
    alpha = float(document.get("alpha", 0.1))
    for round_records in _rounds(rescored):  # the EMA steps, in the order they happened
        moving = update_moving_scores(moving, round_scores(round_records), alpha)
    recomputed = honest_weights(moving) if document.get("behaviour") == "honest" else {}
    claimed = {int(k): int(v) for k, v in document.get("weights", {}).items()}
    if document.get("behaviour") != "honest":
        reasons.append(f"behaviour {document.get('behaviour')!r} does not follow its evidence")
    elif recomputed != claimed:
        reasons.append("weights set differ from the weights the evidence implies")
    return AuditResult(not reasons, reasons, recomputed, claimed)
