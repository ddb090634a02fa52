"""Miner-signed answers: the miner's hotkey signs what it answered, to whom, for which request.

Without it a validator's evidence could hold answers no miner ever gave (a validator that
skips the work and writes plausible records), and no audit could tell. With it every
answer in the evidence carries the miner's sr25519 signature over the UTF-8 bytes of::

    f"answer.{sha256(response_body).hexdigest()}.{request_uuid}."
    f"{sha256(request_body).hexdigest()}.{requester}"

- the *response body digest* is over the exact bytes sent (as for requests, no canonical
  JSON is needed: whatever bytes arrive are the bytes that were signed);
- the *request uuid* is the ``Epistula-Uuid`` of the signed request it answers;
- the *request body digest* binds the answer to the prompt, so a signed answer cannot be
  re-filed under another task;
- the *requester* is the request's ``Epistula-Signed-By``, so a validator cannot present
  answers that miners gave to another validator as its own work.

A whole answer carries the signature in two response headers (:data:`ANSWER_SIGNED_BY`,
:data:`ANSWER_SIGNATURE`). A stream cannot: its headers leave before its body exists.
The rule for streams: after the stream's last event (``data: [DONE]``) the miner sends one
SSE *comment* line, ``: epistula-answer-signature 0x<128 hex>`` and a blank line, whose
signature covers every byte of the stream before that line. SSE parsers (OpenAI's
clients included) ignore comment lines and stop at ``[DONE]``, so existing clients are
unaffected; a checker splits the stream at the comment (:func:`split_stream`).

This module is pure: signing, parsing, checking. The miner signs (miner/server.py), the
validator checks on receipt and keeps :class:`SignedAnswer` in its evidence
(validator/miners.py), the audit checks again (validator/evidence.py).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from subnetlab.keys import DEFAULT_SS58_FORMAT, InvalidAddress, Keypair, ss58_decode
from subnetlab.keys.keypair import verify

__all__ = [
    "ANSWER_SIGNATURE",
    "ANSWER_SIGNED_BY",
    "STREAM_SIGNATURE",
    "AnswerRejected",
    "SignedAnswer",
    "answer_headers",
    "answer_message",
    "check_answer",
    "evidence_form",
    "sha256_hex",
    "sign_answer",
    "split_stream",
    "stream_signature_line",
]

ANSWER_SIGNED_BY = "Epistula-Answer-Signed-By"
ANSWER_SIGNATURE = "Epistula-Answer-Signature"
STREAM_SIGNATURE = b": epistula-answer-signature "
"""The start of the SSE comment line that ends a signed stream."""

_SIGNATURE = re.compile(r"0x[0-9a-f]{128}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class AnswerRejected(ValueError):  # noqa: N818 -- reads as the reason, like MalformedHeaders
    """An answer whose miner signature is missing, malformed or wrong; ``reason`` is a
    short code (``unsigned``, ``malformed``, ``wrong_signer``, ``bad_signature``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def answer_message(response_sha256: str, request_uuid: str, request_sha256: str,
                   requester: str) -> bytes:
    """The exact bytes a miner signs for one answer (see the module docstring)."""
    return f"answer.{response_sha256}.{request_uuid}.{request_sha256}.{requester}".encode()


@dataclass(frozen=True, slots=True)
class SignedAnswer:
    """One answer's signature and what it binds: the form the evidence keeps.

    ``signed_by`` is the miner hotkey that signed; ``signature`` is ``0x`` + 128 hex.
    """

    signed_by: str
    signature: str
    request_uuid: str
    request_sha256: str
    response_sha256: str
    requester: str

    def message(self) -> bytes:
        return answer_message(self.response_sha256, self.request_uuid, self.request_sha256,
                              self.requester)

    def valid(self) -> bool:
        """True when ``signature`` is ``signed_by``'s over :meth:`message`; never raises."""
        return _SIGNATURE.fullmatch(self.signature) is not None \
            and verify(self.signature, self.message(), self.signed_by, ss58_format=None)

    def as_json(self) -> dict[str, str]:
        return {"signed_by": self.signed_by, "signature": self.signature,
                "request_uuid": self.request_uuid, "request_sha256": self.request_sha256,
                "response_sha256": self.response_sha256, "requester": self.requester}

    @classmethod
    def from_json(cls, data: object) -> SignedAnswer:
        """Parse the evidence form; raise :class:`AnswerRejected` (``malformed``)."""
        names = ("signed_by", "signature", "request_uuid", "request_sha256",
                 "response_sha256", "requester")
        if not isinstance(data, Mapping) or not all(isinstance(data.get(n), str) for n in names):
            raise AnswerRejected("malformed",
                                 f"a signed answer needs the strings {', '.join(names)}")
        answer = cls(*(str(data[n]) for n in names))
        for name in ("request_sha256", "response_sha256"):
            if _HEX64.fullmatch(getattr(answer, name)) is None:
                raise AnswerRejected("malformed", f"{name} must be 64 lower-case hex digits")
        return answer


def sign_answer(keypair: Keypair, response_body: bytes, request_uuid: str,
                request_body: bytes, requester: str) -> SignedAnswer:
    """The miner's signature of ``response_body`` as its answer to one signed request."""
    answer = SignedAnswer(keypair.ss58_address, "", request_uuid, sha256_hex(request_body),
                          sha256_hex(response_body), requester)
    signature = "0x" + keypair.sign(answer.message()).hex()
    return SignedAnswer(keypair.ss58_address, signature, request_uuid, answer.request_sha256,
                        answer.response_sha256, requester)


def answer_headers(answer: SignedAnswer) -> dict[str, str]:
    """The two response headers of a whole (non-streamed) signed answer."""
    return {ANSWER_SIGNED_BY: answer.signed_by, ANSWER_SIGNATURE: answer.signature}


def stream_signature_line(signature: str) -> bytes:
    """The SSE comment that ends a signed stream (after ``data: [DONE]``)."""
    return STREAM_SIGNATURE + signature.encode() + b"\n\n"


def split_stream(raw: bytes) -> tuple[bytes, str]:
    """(the signed bytes, the signature) of a whole signed stream; raise
    :class:`AnswerRejected` when it does not end with the signature comment."""
    at = raw.rfind(STREAM_SIGNATURE)
    if at < 0 or (at > 0 and not raw[:at].endswith(b"\n\n")):
        raise AnswerRejected("unsigned", "the stream does not end with its signature comment")
    line = raw[at + len(STREAM_SIGNATURE):]
    signature = line.removesuffix(b"\n\n").decode("latin-1")
    if not line.endswith(b"\n\n") or _SIGNATURE.fullmatch(signature) is None:
        raise AnswerRejected("malformed", "the stream's signature comment is not "
                             "0x and 128 lower-case hex digits, then a blank line")
    return raw[:at], signature


def check_answer(headers: Mapping[str, str], response_body: bytes, request_uuid: str,
                 request_body: bytes, requester: str, miner_hotkey: str,
                 *, signature: str | None = None) -> SignedAnswer:
    """Check a received answer: signed by ``miner_hotkey`` (the hotkey the request was
    sent to), for this request, this body; return it for the evidence, or raise
    :class:`AnswerRejected`.

    ``signature`` is the stream's (from :func:`split_stream`, ``response_body`` then being
    the bytes before it); for a whole answer it is read from the headers.
    """
    signed_by = headers.get(ANSWER_SIGNED_BY)
    found = signature if signature is not None else headers.get(ANSWER_SIGNATURE)
    if not signed_by or not found:
        raise AnswerRejected("unsigned", f"the answer has no {ANSWER_SIGNED_BY} and "
                             f"{ANSWER_SIGNATURE}")
    if _SIGNATURE.fullmatch(found) is None:
        raise AnswerRejected("malformed", f"{ANSWER_SIGNATURE} must be 0x and 128 lower-case "
                             "hex digits")
    try:
        ss58_decode(signed_by, DEFAULT_SS58_FORMAT)
    except InvalidAddress as exc:
        raise AnswerRejected("malformed", f"{ANSWER_SIGNED_BY}: {exc}") from None
    if signed_by != miner_hotkey:
        raise AnswerRejected("wrong_signer", f"the answer is signed by {signed_by}, not by "
                             f"the miner asked ({miner_hotkey})")
    answer = SignedAnswer(signed_by, found, request_uuid, sha256_hex(request_body),
                          sha256_hex(response_body), requester)
    if not answer.valid():
        raise AnswerRejected("bad_signature", f"{ANSWER_SIGNATURE} is not {signed_by}'s "
                             "signature of this answer to this request")
    return answer


def evidence_form(answer: SignedAnswer, response_body: bytes) -> dict[str, Any]:
    """What a validator keeps of a checked answer: the signature, what it binds, and the
    body itself (so the audit can recompute the digest and read the answer from it)."""
    return {**answer.as_json(), "body": response_body.decode("utf-8", "replace")}
