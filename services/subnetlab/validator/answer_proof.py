"""The audit's proof that the miners gave the answers a validator's evidence says they gave.

Rescoring (evidence.py) shows the scores follow from the stored answers; it cannot show
the answers are real: a validator could write plausible records without asking anyone.
Since evidence version 4 every answered record carries the miner's signature
(protocol/answers.py). Checked here, for each record with an answer:

- the signature is the miner's: by the hotkey the metagraph gives the record's uid (or,
  when the uid has changed hands since, the record's own hotkey, noted);
- it signs *this* answer: the stored response body hashes to the signed digest, and the
  record's response is the body's answer;
- to *this* request: the signed request digest is that of the round's request for the
  record's prompt, and no request uuid appears twice;
- for *this* validator: the signed requester is the document's validator, so answers
  given to another validator cannot be filed as one's own work.

A record without an answer (the miner failed, timed out or refused) claims nothing a
signature could prove; those are counted in a note. Documents before version 4 are read
with a note that their answers cannot be proven.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from subnetlab.protocol.answers import AnswerRejected, SignedAnswer, sha256_hex
from subnetlab.protocol.client import encode_json
from subnetlab.protocol.metagraph import occupied

SIGNED_ANSWERS_VERSION = 4
"""The first evidence version whose records carry the miners' signatures."""
UNSIGNED = "not signed by its miner"
"""In every reason this module gives: what the experiment and readers look for."""


def round_request(prompt: str) -> dict[str, Any]:
    """The chat request a scoring round sends for a task's prompt (validator/round.py)."""
    return {"model": "subnet", "messages": [{"role": "user", "content": prompt}]}


def _content(body: str) -> str | None:
    """The answer text of a chat completion body, or None when it has none."""
    try:
        data = json.loads(body)
        content = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


def _problem(record: Mapping[str, Any], validator: str, miner_hotkey: str) -> str | None:
    """Why this record's answer is not proven to be the miner's (None when it is)."""
    stored = record.get("answer")
    if stored is None:
        return "it carries no miner signature"
    try:
        signed = SignedAnswer.from_json(stored)
    except AnswerRejected as exc:
        return f"its signature is malformed ({exc})"
    body = stored.get("body") if isinstance(stored, Mapping) else None
    if not isinstance(body, str) or sha256_hex(body.encode()) != signed.response_sha256:
        return "the stored body is not the one signed"
    if _content(body) != record.get("response"):
        return "the record's response is not the answer in the signed body"
    if signed.request_sha256 != sha256_hex(encode_json(round_request(str(record.get("prompt"))))):
        return "it answers another request than this task's"
    if signed.requester != validator:
        return f"it was given to {signed.requester}, not to this validator"
    if signed.signed_by != miner_hotkey:
        return f"it is signed by {signed.signed_by}, not by the miner {miner_hotkey}"
    if not signed.valid():
        return "the signature does not verify"
    return None


def answer_findings(document: Mapping[str, Any], neurons: Iterable[Mapping[str, Any]]
                    ) -> tuple[list[str], list[str]]:
    """(reasons, notes): is every answer in the document signed by its miner?"""
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) \
            or version < SIGNED_ANSWERS_VERSION:
        return [], [f"evidence version {version}: its answers carry no miner signatures, so "
                    "the audit cannot prove the miners gave them"]
    hotkeys = {int(n["uid"]): str(n["hotkey"]) for n in occupied(neurons)}
    validator = str(document.get("validator"))
    reasons: list[str] = []
    notes: list[str] = []
    seen: set[str] = set()
    failed = 0
    for record in document.get("records", []):
        uid, own = int(record["uid"]), str(record.get("hotkey"))
        if not record.get("response") and record.get("answer") is None:
            failed += 1
            continue
        miner = hotkeys.get(uid, own)
        if miner != own:
            notes.append(f"uid {uid} is held by {miner} now; its answer is checked against "
                         f"the record's hotkey {own}")
            miner = own
        where = f"uid {uid} ({miner}), round {record.get('round')}"
        problem = _problem(record, validator, miner)
        if problem is None:
            request_uuid = str(record["answer"]["request_uuid"])
            if request_uuid in seen:
                problem = f"its request {request_uuid} is already answered in another record"
            seen.add(request_uuid)
        if problem is not None:
            reasons.append(f"{where}: answer {str(record.get('response'))[:40]!r} is {UNSIGNED}: "
                           f"{problem} (fabricated or altered)")
    if failed:
        notes.append(f"{failed} record(s) hold no answer (the miner failed, refused or timed "
                     "out): nothing to prove")
    return reasons, notes
