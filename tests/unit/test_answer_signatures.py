"""Miner-signed answers: the signature round trip, each refusal by its reason, the stream
rule, and the audit's proof that a record's answer is the miner's (protocol/answers.py,
validator/answer_proof.py). Real sr25519 keys and signatures throughout; the miner over
HTTP is in tests/integration/test_miner_process.py, the audit against a running network
in tests/integration/test_audit_network.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from subnetlab.keys import Keypair
from subnetlab.protocol.answers import (
    ANSWER_SIGNATURE,
    ANSWER_SIGNED_BY,
    AnswerRejected,
    SignedAnswer,
    answer_headers,
    check_answer,
    evidence_form,
    sign_answer,
    split_stream,
    stream_signature_line,
)
from subnetlab.protocol.client import encode_json
from subnetlab.tasks import generate
from subnetlab.validator.answer_proof import UNSIGNED, answer_findings, round_request

MINER, OTHER = Keypair.dev("sig-miner"), Keypair.dev("sig-other-miner")
VALIDATOR, COPIER = Keypair.dev("sig-validator"), Keypair.dev("sig-copier")
UUID_A = "0e7c2a52-8a43-4d7b-9a55-0d1f6b4c1a01"
UUID_B = "0e7c2a52-8a43-4d7b-9a55-0d1f6b4c1a02"
REQUEST = b'{"model":"subnet","messages":[{"role":"user","content":"hi"}]}'
BODY = b'{"choices":[{"message":{"content":"hello"}}]}'


def _signed(body: bytes = BODY, key: Keypair = MINER) -> tuple[dict[str, str], SignedAnswer]:
    answer = sign_answer(key, body, UUID_A, REQUEST, VALIDATOR.ss58_address)
    return answer_headers(answer), answer


def test_a_signed_answer_round_trips_and_keeps_its_evidence_form() -> None:
    headers, answer = _signed()
    checked = check_answer(headers, BODY, UUID_A, REQUEST, VALIDATOR.ss58_address,
                           MINER.ss58_address)
    assert checked == answer and checked.valid()
    kept = evidence_form(checked, BODY)
    assert kept["body"] == BODY.decode() and SignedAnswer.from_json(kept) == answer


@pytest.mark.parametrize(("change", "reason"), [
    ({"headers": {}}, "unsigned"),
    ({"headers": {ANSWER_SIGNED_BY: MINER.ss58_address}}, "unsigned"),
    ({"signature": "0xnothex"}, "malformed"),
    ({"signed_by": "not-an-address"}, "malformed"),
    ({"miner": OTHER.ss58_address}, "wrong_signer"),
    ({"body": BODY.replace(b"hello", b"HELLO")}, "bad_signature"),
    ({"uuid": UUID_B}, "bad_signature"),
    ({"request": REQUEST + b" "}, "bad_signature"),
    ({"requester": COPIER.ss58_address}, "bad_signature"),
])
def test_each_bad_answer_is_rejected_with_its_reason(change: dict[str, Any], reason: str
                                                     ) -> None:
    headers, _ = _signed()
    if "headers" in change:
        headers = change["headers"]
    if "signature" in change:
        headers = {**headers, ANSWER_SIGNATURE: change["signature"]}
    if "signed_by" in change:
        headers = {**headers, ANSWER_SIGNED_BY: change["signed_by"]}
    with pytest.raises(AnswerRejected) as rejected:
        check_answer(headers, change.get("body", BODY), change.get("uuid", UUID_A),
                     change.get("request", REQUEST),
                     change.get("requester", VALIDATOR.ss58_address),
                     change.get("miner", MINER.ss58_address))
    assert rejected.value.reason == reason, rejected.value
    assert str(rejected.value)  # one readable line


def test_a_signature_by_another_key_claiming_the_miner_fails() -> None:
    _, forged = _signed(key=COPIER)
    headers = {ANSWER_SIGNED_BY: MINER.ss58_address, ANSWER_SIGNATURE: forged.signature}
    with pytest.raises(AnswerRejected, match="not") as rejected:
        check_answer(headers, BODY, UUID_A, REQUEST, VALIDATOR.ss58_address, MINER.ss58_address)
    assert rejected.value.reason == "bad_signature"


def test_a_stream_is_signed_by_a_comment_after_done_over_every_byte_before() -> None:
    events = b'data: {"x":1}\n\ndata: [DONE]\n\n'
    answer = sign_answer(MINER, events, UUID_A, REQUEST, VALIDATOR.ss58_address)
    stream = events + stream_signature_line(answer.signature)
    payload, signature = split_stream(stream)
    assert (payload, signature) == (events, answer.signature)
    headers = {ANSWER_SIGNED_BY: MINER.ss58_address}
    assert check_answer(headers, payload, UUID_A, REQUEST, VALIDATOR.ss58_address,
                        MINER.ss58_address, signature=signature).valid()
    with pytest.raises(AnswerRejected) as cut:
        split_stream(events)  # cut off before its signature
    assert cut.value.reason == "unsigned"
    with pytest.raises(AnswerRejected) as bad:
        split_stream(events + b": epistula-answer-signature 0x12\n\n")
    assert bad.value.reason == "malformed"
    extra = b'data: {"x":2}\n\n' + payload  # an event slipped in before the signed bytes
    with pytest.raises(AnswerRejected):
        check_answer(headers, extra, UUID_A, REQUEST, VALIDATOR.ss58_address,
                     MINER.ss58_address, signature=signature)


def test_evidence_form_refuses_malformed_entries_by_field() -> None:
    _, answer = _signed()
    with pytest.raises(AnswerRejected, match="strings"):
        SignedAnswer.from_json({**answer.as_json(), "signature": 7})
    with pytest.raises(AnswerRejected, match="response_sha256"):
        SignedAnswer.from_json({**answer.as_json(), "response_sha256": "ab"})


# ---- the audit's proof over evidence records ----------------------------------------------


def _record(uid: int, miner: Keypair, seed: int, *, requester: Keypair = VALIDATOR,
            uuid: str = UUID_A) -> dict[str, Any]:
    """One record as a validator keeps it, with the miner's real signature."""
    task = generate("arithmetic", seed)
    body = encode_json({"choices": [{"message": {"content": task.expected}}]})
    request = encode_json(round_request(task.prompt))
    answer = sign_answer(miner, body, uuid, request, requester.ss58_address)
    return {"uid": uid, "hotkey": miner.ss58_address, "kind": task.kind, "seed": seed,
            "prompt": task.prompt, "response": task.expected, "latency_s": 0.1,
            "score": 1.0, "round": 0, "answer": evidence_form(answer, body)}


NEURONS = [{"uid": 1, "hotkey": MINER.ss58_address}, {"uid": 2, "hotkey": OTHER.ss58_address}]


def _document(records: list[dict[str, Any]], validator: Keypair = VALIDATOR,
              version: int = 4) -> dict[str, Any]:
    return {"version": version, "validator": validator.ss58_address, "records": records}


def test_answers_signed_by_their_miners_for_this_validator_are_proven() -> None:
    records = [_record(1, MINER, 1), _record(2, OTHER, 2, uuid=UUID_B),
               {"uid": 2, "hotkey": OTHER.ss58_address, "response": "", "round": 1}]
    reasons, notes = answer_findings(_document(records), NEURONS)
    assert reasons == []
    assert notes == ["1 record(s) hold no answer (the miner failed, refused or timed out): "
                     "nothing to prove"]


def _one_reason(records: list[dict[str, Any]], **kwargs: Any) -> str:
    reasons, _ = answer_findings(_document(records, **kwargs), NEURONS)
    assert len(reasons) == 1, reasons
    assert UNSIGNED in reasons[0] and "fabricated" in reasons[0]
    return reasons[0]


def test_a_fabricated_or_altered_answer_is_reported_by_uid_and_miner() -> None:
    good = _record(1, MINER, 1)
    unsigned = {k: v for k, v in good.items() if k != "answer"}
    assert "no miner signature" in _one_reason([unsigned])
    assert MINER.ss58_address in _one_reason([unsigned]) and "uid 1" in _one_reason([unsigned])
    altered = {**good, "response": "999"}
    assert "not the answer in the signed body" in _one_reason([altered])
    body = json.dumps({"choices": [{"message": {"content": good["response"]}}]})
    rebodied = {**good, "answer": {**good["answer"], "body": body}}
    assert "not the one signed" in _one_reason([rebodied])
    refiled = {**good, **{k: _record(1, MINER, 5)[k] for k in ("seed", "prompt")}}
    assert "another request" in _one_reason([refiled])
    forged = _record(1, COPIER, 1)  # the copier signs for the miner with its own key
    forged["hotkey"] = MINER.ss58_address
    assert f"signed by {COPIER.ss58_address}" in _one_reason([forged])
    bad_signature = {**good, "answer": {**good["answer"], "signed_by": MINER.ss58_address,
                                        "signature": forged["answer"]["signature"]}}
    assert "does not verify" in _one_reason([bad_signature])


def test_answers_given_to_another_validator_or_twice_are_not_this_validators_work() -> None:
    copied = [_record(1, MINER, 1)]  # a real answer, given to VALIDATOR
    assert f"given to {VALIDATOR.ss58_address}" in _one_reason(copied, validator=COPIER)
    twice = [_record(1, MINER, 1), {**_record(1, MINER, 1), "round": 1}]
    assert "already answered" in _one_reason(twice)


def test_old_evidence_is_read_with_a_note_that_answers_cannot_be_proven() -> None:
    unsigned = [{k: v for k, v in _record(1, MINER, 1).items() if k != "answer"}]
    reasons, notes = answer_findings(_document(unsigned, version=3), NEURONS)
    assert reasons == []
    assert notes == ["evidence version 3: its answers carry no miner signatures, so the audit "
                     "cannot prove the miners gave them"]


def test_a_uid_that_changed_hands_is_checked_against_the_records_hotkey() -> None:
    reasons, notes = answer_findings(_document([_record(1, MINER, 1)]),
                                     [{"uid": 1, "hotkey": OTHER.ss58_address}])
    assert reasons == [] and any("held by" in note for note in notes)
