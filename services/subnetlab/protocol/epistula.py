"""Epistula-style signed HTTP requests: the headers a validator sends and how they are checked.

A request is signed by the caller's hotkey over the UTF-8 bytes of::

    f"{sha256(body).hexdigest()}.{uuid}.{timestamp}.{signed_for}"

and carried in six headers (:data:`HEADER_NAMES`). Signing the *digest of the exact body
bytes* (not a re-serialisation of parsed JSON) means the receiver needs no canonical JSON:
whatever bytes arrive are the bytes that were signed. The uuid makes each request unique
(the receiver's replay cache keys on it), the timestamp bounds how long a captured request
stays usable, and ``signed_for`` binds the request to one recipient so a miner cannot
forward it to another miner as if it came from the validator.

This module is pure and stateless: building headers, parsing them, checking a signature.
Freshness, replay, registration, permits and rate limits are the receiver's policy and live
in :mod:`subnetlab.protocol.guard`.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

import sr25519

from subnetlab.keys import (
    DEFAULT_SS58_FORMAT,
    SIGNATURE_LENGTH,
    InvalidAddress,
    Keypair,
    ss58_decode,
)

__all__ = [
    "EPISTULA_VERSION",
    "HEADER_NAMES",
    "REQUEST_SIGNATURE",
    "SIGNED_BY",
    "SIGNED_FOR",
    "TIMESTAMP",
    "UUID",
    "VERSION",
    "MalformedHeaders",
    "SignedRequest",
    "parse_headers",
    "sign_request",
    "signing_message",
    "verify_request",
    "verify_signature",
    "wall_clock_ms",
]

EPISTULA_VERSION = "2"
"""The only protocol version this module speaks."""

VERSION = "Epistula-Version"
TIMESTAMP = "Epistula-Timestamp"
UUID = "Epistula-Uuid"
SIGNED_BY = "Epistula-Signed-By"
SIGNED_FOR = "Epistula-Signed-For"
REQUEST_SIGNATURE = "Epistula-Request-Signature"

HEADER_NAMES = (VERSION, TIMESTAMP, UUID, SIGNED_BY, SIGNED_FOR, REQUEST_SIGNATURE)
"""Every Epistula header, canonical spelling (HTTP header names are case-insensitive)."""

# ms since 1970 have 13 digits until the year 2286; 16 keeps int() cheap on hostile input.
_TIMESTAMP_PATTERN = re.compile(r"[0-9]{1,16}")
_UUID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SIGNATURE_HEX_LENGTH = 2 + 2 * SIGNATURE_LENGTH


class MalformedHeaders(ValueError):  # noqa: N818 -- reads as the reason, like InvalidAddress
    """The Epistula headers are missing or cannot be parsed; ``header`` names the culprit."""

    def __init__(self, header: str, message: str) -> None:
        super().__init__(message)
        self.header = header


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """The parsed Epistula headers of one request (signature not yet checked).

    ``public_key`` is the 32-byte key ``signed_by`` names, decoded once here so the
    signature check does not decode it again.
    """

    timestamp_ms: int
    uuid: str
    signed_by: str
    signed_for: str
    signature: bytes
    public_key: bytes
    timestamp_text: str

    def message(self, body: bytes) -> bytes:
        """The exact bytes the caller signed for ``body``."""
        return _message(hashlib.sha256(body).hexdigest(), self.uuid, self.timestamp_text,
                        self.signed_for)


def _message(body_digest: str, request_uuid: str, timestamp: str, signed_for: str) -> bytes:
    return f"{body_digest}.{request_uuid}.{timestamp}.{signed_for}".encode()


def signing_message(body: bytes, request_uuid: str, timestamp_ms: int, signed_for: str) -> bytes:
    """``f"{sha256(body).hexdigest()}.{uuid}.{timestamp}.{signed_for}"`` as UTF-8 bytes.

    Exposed so other implementations (and tests) can check they sign the same bytes.
    """
    return _message(hashlib.sha256(body).hexdigest(), request_uuid, str(timestamp_ms), signed_for)


def wall_clock_ms() -> int:
    """Milliseconds since the Unix epoch (wall clock: both ends must agree on it)."""
    return time.time_ns() // 1_000_000


def _uuid4() -> str:
    """``str(uuid.uuid4())`` at a quarter of the cost: one is made per signed request."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def sign_request(
    keypair: Keypair,
    body: bytes,
    signed_for: str,
    now_ms: int | None = None,
    *,
    request_uuid: str | None = None,
) -> dict[str, str]:
    """The six Epistula headers for sending ``body`` to the hotkey ``signed_for``.

    ``body`` must be the exact bytes that go on the wire (serialise once, sign those bytes,
    send those bytes: see :func:`subnetlab.protocol.client.signed_post`). ``signed_for`` is
    the recipient miner's SS58 hotkey, or ``""`` for a broadcast that any recipient willing
    to take broadcasts may accept. ``now_ms`` (ms since the epoch) and ``request_uuid``
    default to the wall clock and a fresh uuid4; pass them only in tests.
    """
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError(f"body must be bytes, got {type(body).__name__}")
    if not isinstance(signed_for, str):
        raise TypeError(f"signed_for must be a str, got {type(signed_for).__name__}")
    timestamp = str(wall_clock_ms() if now_ms is None else int(now_ms))
    rid = _uuid4() if request_uuid is None else request_uuid
    message = _message(hashlib.sha256(body).hexdigest(), rid, timestamp, signed_for)
    signature = sr25519.sign((keypair.public_key, keypair.secret_key), message)
    return {
        VERSION: EPISTULA_VERSION,
        TIMESTAMP: timestamp,
        UUID: rid,
        SIGNED_BY: keypair.ss58_address,
        SIGNED_FOR: signed_for,
        REQUEST_SIGNATURE: "0x" + bytes(signature).hex(),
    }



def _epistula_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The ``epistula-*`` headers by lower-case name, found in one pass.

    Starlette's and httpx's header objects expose the wire headers as ``raw`` byte pairs:
    scanning those once beats six case-insensitive lookups, each a scan of its own. A
    header sent twice is refused: two proxies could each pick a different copy.
    """
    raw = getattr(headers, "raw", None)
    found: dict[str, str] = {}
    if isinstance(raw, list):
        for name, value in raw:
            lowered = name.lower()
            if lowered.startswith(b"epistula-"):
                key = lowered.decode("latin-1")
                if key in found:
                    raise MalformedHeaders(key, f"header {key} appears more than once")
                found[key] = value.decode("latin-1")
        return found
    for name, text in headers.items():
        lowered_text = name.lower()
        if lowered_text.startswith("epistula-"):
            if lowered_text in found:
                raise MalformedHeaders(name, f"header {name} appears more than once")
            found[lowered_text] = text
    return found


def _take(found: dict[str, str], name: str) -> str:
    value = found.get(name.lower())
    if value is None:
        raise MalformedHeaders(name, f"missing header {name}")
    return value


def parse_headers(
    headers: Mapping[str, str], *, ss58_format: int | None = DEFAULT_SS58_FORMAT
) -> SignedRequest:
    """Parse and syntax-check the Epistula headers; raise :class:`MalformedHeaders`.

    ``headers`` is any mapping of header names to values, names in any case (Starlette's
    and httpx's header objects, or a plain dict). Checked here: all six present and none
    twice, version ``"2"``, timestamp a decimal integer (ms), uuid in canonical lower-case
    8-4-4-4-12 form, ``Signed-By`` a valid SS58 address of network ``ss58_format``,
    signature ``0x`` plus 128 hex digits. ``Signed-For`` may be any string (empty means
    broadcast); whether it names this receiver is the receiver's decision.
    """
    found = _epistula_headers(headers)
    version = _take(found, VERSION)
    if version != EPISTULA_VERSION:
        raise MalformedHeaders(VERSION, f"{VERSION} must be {EPISTULA_VERSION!r}, got {version!r}")
    timestamp = _take(found, TIMESTAMP)
    if _TIMESTAMP_PATTERN.fullmatch(timestamp) is None:
        raise MalformedHeaders(TIMESTAMP, f"{TIMESTAMP} must be milliseconds since the epoch")
    request_uuid = _take(found, UUID)
    if _UUID_PATTERN.fullmatch(request_uuid) is None:
        raise MalformedHeaders(UUID, f"{UUID} must be a lower-case uuid in 8-4-4-4-12 form")
    signed_by = _take(found, SIGNED_BY)
    try:
        public_key = ss58_decode(signed_by, ss58_format)
    except InvalidAddress as exc:
        raise MalformedHeaders(SIGNED_BY, f"{SIGNED_BY}: {exc}") from None
    signed_for = _take(found, SIGNED_FOR)
    signature = _signature(_take(found, REQUEST_SIGNATURE))
    return SignedRequest(
        timestamp_ms=int(timestamp),
        uuid=request_uuid,
        signed_by=signed_by,
        signed_for=signed_for,
        signature=signature,
        public_key=public_key,
        timestamp_text=timestamp,
    )


def _signature(text: str) -> bytes:
    if len(text) == _SIGNATURE_HEX_LENGTH and text[:2] in ("0x", "0X"):
        try:
            signature = bytes.fromhex(text[2:])
        except ValueError:
            signature = b""
        if len(signature) == SIGNATURE_LENGTH:  # fromhex skips spaces: length catches them
            return signature
    raise MalformedHeaders(
        REQUEST_SIGNATURE, f"{REQUEST_SIGNATURE} must be 0x and {2 * SIGNATURE_LENGTH} hex digits"
    )


def verify_signature(request: SignedRequest, body: bytes) -> bool:
    """True when ``request.signature`` is ``signed_by``'s signature for ``body``; never raises."""
    try:
        return bool(sr25519.verify(request.signature, request.message(bytes(body)),
                                   request.public_key))
    except (ValueError, TypeError):
        return False


def verify_request(
    headers: Mapping[str, str], body: bytes, *, ss58_format: int | None = DEFAULT_SS58_FORMAT
) -> SignedRequest | None:
    """Parse the headers and check the signature: the stateless half of the miner's checks.

    Returns the parsed request when the signature is valid and ``None`` when it is not;
    raises :class:`MalformedHeaders` when the headers cannot be parsed. Freshness, replay and
    the metagraph checks are NOT done here: use :class:`subnetlab.protocol.guard.RequestGuard`
    to admit requests.
    """
    request = parse_headers(headers, ss58_format=ss58_format)
    return request if verify_signature(request, body) else None
