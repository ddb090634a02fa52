"""The chain side of an evidence audit: what the chain holds for one evidence document.

`audit_document` (evidence.py) checks a document against itself; this module reads the
ledger to find the weights the document says were set, as the chain stores them:

- `set_weights`: the validator's weight row (`GET /v1/subnets/{netuid}/weights`) when its
  `last_update` is the block the document names; when the row has been replaced since (a
  later epoch's weights), the `set_weights` extrinsic in that block, max-upscaled as the
  chain stored it. A row last updated before that block means the chain never stored it.
- `commit_weights` (commit-reveal): the commit hash in the named block must be the hash
  of the document's weights and salt, so what was committed is exactly what the evidence
  claims; whether it was revealed since is read from the row and reported.
- a document without a `chain` entry: the row as it stands.

`audit_evidence` is the whole audit: the document against itself, against the validator's
prior evidence (its `moving_before`), against the registrations on chain (its
`held_uids`), its answers against the miners' signatures (answer_proof.py), and against
the weights the chain holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from subnetlab.chain.weights import weights_commit_hash
from subnetlab.ledger.client import LedgerClient
from subnetlab.validator.answer_proof import answer_findings
from subnetlab.validator.evidence import (
    AuditResult,
    PriorEvidence,
    audit_document,
    chain_form,
    continuity_findings,
    held_findings,
    weight_differences,
)

LoadEvidence = Callable[[str], dict[str, Any] | None]
"""Reads a document from the evidence store by digest (None when it is not there)."""


def prior_evidence(client: LedgerClient, netuid: int, hotkey: str, epoch: int,
                   load: LoadEvidence) -> PriorEvidence | None:
    """The validator's latest evidence committed for an epoch before `epoch`, if any."""
    earlier = [entry for entry in client.evidence(netuid, hotkey=hotkey)
               if int(entry["epoch"]) < epoch]
    if not earlier:
        return None
    latest = max(earlier, key=lambda entry: int(entry["epoch"]))
    digest = str(latest["digest"])
    return PriorEvidence(int(latest["epoch"]), digest, load(digest))


def audit_evidence(client: LedgerClient, netuid: int, hotkey: str, epoch: int, digest: str,
                   document: dict[str, Any], load: LoadEvidence) -> AuditResult:
    """Audit the document committed as `digest` for `epoch`: itself, its continuity with
    the prior evidence, its held uids against the chain's registrations, then the chain's
    weights."""
    result = audit_document(document, digest)
    reasons, notes = continuity_findings(document,
                                         prior_evidence(client, netuid, hotkey, epoch, load))
    neurons = client.metagraph(netuid)["neurons"]
    held_reasons, held_notes = held_findings(document, neurons)
    answer_reasons, answer_notes = answer_findings(document, neurons)
    result = result.with_evidence_findings([*reasons, *held_reasons, *answer_reasons],
                                           [*notes, *held_notes, *answer_notes])
    return audit_against_chain(client, netuid, hotkey, document, result)


def _row(client: LedgerClient, netuid: int, hotkey: str) -> dict[str, Any]:
    rows = client.weights(netuid, hotkey=hotkey)["rows"]
    row: dict[str, Any] = rows[0] if rows else {"weights": {}, "last_update": -1}
    return row


def _weights(row: dict[str, Any]) -> dict[int, int]:
    return {int(k): int(v) for k, v in row.get("weights", {}).items()}


def _extrinsic(client: LedgerClient, block: int, hotkey: str, call: str
               ) -> dict[str, Any] | None:
    """The included extrinsic `call` signed by `hotkey` in `block` (the last, if several)."""
    stored = client.block(block)
    receipts = {int(r.get("index", i)): r for i, r in enumerate(stored.get("receipts", []))}
    found = None
    for index, ext in enumerate(stored.get("extrinsics", [])):
        if ext.get("signer") == hotkey and ext.get("call") == call \
                and receipts.get(index, {}).get("ok", True):
            found = ext
    return found


def audit_against_chain(client: LedgerClient, netuid: int, hotkey: str,
                        document: dict[str, Any], result: AuditResult) -> AuditResult:
    """`result` (from `audit_document`) compared with what the chain holds for it."""
    chain = document.get("chain") or {}
    row = _row(client, netuid, hotkey)
    last_update = int(row.get("last_update", -1))
    call, block = chain.get("call"), chain.get("block")
    if call is None or block is None:
        return result.with_chain(_weights(row), f"row, last updated in block {last_update}")
    block = int(block)
    if call == "commit_weights":
        return _commit_reveal(client, netuid, hotkey, chain, block, row, result)
    if last_update == block:
        return result.with_chain(_weights(row), f"row, set in block {block}")
    if last_update < block:
        return result.with_chain(_weights(row), f"row, last updated in block {last_update}", [
            f"no weights of this validator were stored in block {block}"])
    ext = _extrinsic(client, block, hotkey, "set_weights")
    source = f"set_weights in block {block}; the row was replaced in block {last_update}"
    if ext is None:
        return result.with_chain({}, source, [f"no set_weights by {hotkey} in block {block}"])
    params = ext["params"]
    stored = chain_form(dict(zip((int(u) for u in params["uids"]),
                                 (int(w) for w in params["weights"]), strict=True)))
    return result.with_chain(stored, source)


def _commit_reveal(client: LedgerClient, netuid: int, hotkey: str, chain: dict[str, Any],
                   block: int, row: dict[str, Any], result: AuditResult) -> AuditResult:
    ext = _extrinsic(client, block, hotkey, "commit_weights")
    if ext is None:
        return result.with_chain({}, f"commit_weights in block {block}",
                                 [f"no commit_weights by {hotkey} in block {block}"])
    committed = str(ext["params"]["commit_hash"])
    uids = sorted(result.claimed)
    implied = weights_commit_hash(hotkey, netuid, uids, [result.claimed[u] for u in uids],
                                  chain.get("salt", []), int(chain.get("version_key", 0)))
    reasons = [] if implied == committed else [
        f"the evidence's weights and salt hash to {implied}, the chain holds {committed}"]
    revealed = int(row.get("last_update", -1)) > block \
        and not weight_differences(result.claimed, _weights(row))
    state = "revealed" if revealed else "not revealed as the row stands"
    source = f"commit_weights in block {block}, hash {committed}, {state}"
    # A matching hash proves the committed weights are the claimed ones, exactly.
    return result.with_chain(chain_form(result.claimed) if not reasons else _weights(row),
                             source, reasons)
