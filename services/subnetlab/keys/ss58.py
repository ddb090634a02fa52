"""SS58 addresses for 32-byte sr25519 public keys.

We implement only the *simple* SS58 format, the one Substrate dev chains and Bittensor use:

    address = base58( prefix(1 byte) || public_key(32 bytes) || checksum(2 bytes) )
    checksum = blake2b-512(b"SS58PRE" || prefix || public_key)[:2]

Prefixes 0..63 fit in one byte; 64..16383 use a two-byte encoding that no subnetlab network
needs, so those are rejected rather than half-supported. The default prefix is 42, the
"generic Substrate" prefix Bittensor addresses use (they start with a ``5``).

Base58 (Bitcoin alphabet) is a bijection between byte strings and strings, so an address is
a canonical name for its key: two different strings never decode to the same key. That is
what lets the ledger use addresses as dictionary keys, and lets :func:`ss58_decode` be
memoised: verifying thousands of signatures per second should not re-run base58 and blake2b
for the same signer over and over.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import base58

__all__ = [
    "DEFAULT_SS58_FORMAT",
    "PUBLIC_KEY_LENGTH",
    "InvalidAddress",
    "is_valid_ss58",
    "ss58_decode",
    "ss58_encode",
]

DEFAULT_SS58_FORMAT = 42
"""Network prefix of subnetlab addresses (Substrate's generic prefix, as Bittensor uses)."""

PUBLIC_KEY_LENGTH = 32
_CHECKSUM_LENGTH = 2
_SIMPLE_PREFIX_MAX = 63
_ADDRESS_LENGTH = 1 + PUBLIC_KEY_LENGTH + _CHECKSUM_LENGTH
_SS58_PRE = b"SS58PRE"


class InvalidAddress(ValueError):  # noqa: N818 -- public name used across the project
    """An SS58 string that does not name a public key on this network.

    ``reason`` is a short machine-readable tag (``not_a_string``, ``bad_base58``,
    ``wrong_length``, ``unsupported_prefix_format``, ``bad_checksum``, ``wrong_prefix``) so
    callers can map failures to error codes without parsing the message.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _check_prefix(prefix: int) -> None:
    if not isinstance(prefix, int) or isinstance(prefix, bool):
        raise TypeError(f"SS58 prefix must be an int, got {type(prefix).__name__}")
    if not 0 <= prefix <= _SIMPLE_PREFIX_MAX:
        raise ValueError(
            f"SS58 prefix {prefix} is outside 0..{_SIMPLE_PREFIX_MAX}; only the simple "
            "single-byte prefix format is supported"
        )


def _checksum(prefixed_key: bytes) -> bytes:
    return hashlib.blake2b(_SS58_PRE + prefixed_key, digest_size=64).digest()[:_CHECKSUM_LENGTH]


def ss58_encode(public_key: bytes, prefix: int = DEFAULT_SS58_FORMAT) -> str:
    """Encode a 32-byte public key as an SS58 address for network ``prefix`` (0..63)."""
    _check_prefix(prefix)
    if not isinstance(public_key, bytes | bytearray | memoryview):
        raise TypeError(f"public key must be bytes, got {type(public_key).__name__}")
    key = bytes(public_key)
    if len(key) != PUBLIC_KEY_LENGTH:
        raise ValueError(f"public key must be {PUBLIC_KEY_LENGTH} bytes, got {len(key)}")
    body = bytes([prefix]) + key
    encoded: bytes = base58.b58encode(body + _checksum(body))
    return encoded.decode("ascii")


@lru_cache(maxsize=65536)
def _decode_cached(address: str, prefix: int | None) -> bytes:
    try:
        raw: bytes = base58.b58decode(address)
    except ValueError as exc:  # includes UnicodeEncodeError for non-ASCII input
        raise InvalidAddress("bad_base58", f"address {address!r} is not valid base58") from exc
    if len(raw) != _ADDRESS_LENGTH:
        raise InvalidAddress(
            "wrong_length",
            f"address {address!r} decodes to {len(raw)} bytes; a simple-format SS58 address "
            f"of a {PUBLIC_KEY_LENGTH}-byte key decodes to {_ADDRESS_LENGTH}",
        )
    found_prefix = raw[0]
    if found_prefix > _SIMPLE_PREFIX_MAX:
        raise InvalidAddress(
            "unsupported_prefix_format",
            f"address {address!r} uses a two-byte or reserved SS58 prefix (first byte "
            f"{found_prefix}); only single-byte prefixes 0..{_SIMPLE_PREFIX_MAX} are supported",
        )
    body, checksum = raw[:-_CHECKSUM_LENGTH], raw[-_CHECKSUM_LENGTH:]
    if _checksum(body) != checksum:
        raise InvalidAddress("bad_checksum", f"address {address!r} has a bad checksum")
    if prefix is not None and found_prefix != prefix:
        raise InvalidAddress(
            "wrong_prefix",
            f"address {address!r} is for network prefix {found_prefix}, expected {prefix}",
        )
    return body[1:]


def ss58_decode(address: str, prefix: int | None = DEFAULT_SS58_FORMAT) -> bytes:
    """Return the 32-byte public key named by ``address``.

    ``prefix`` is the network the address must belong to; ``None`` accepts any single-byte
    prefix. Raises :class:`InvalidAddress` saying why the address was refused. Results are
    memoised (LRU, 65 536 entries) because the ledger decodes the same few signers for every
    extrinsic it verifies.
    """
    if prefix is not None:
        _check_prefix(prefix)
    if not isinstance(address, str):
        raise InvalidAddress("not_a_string", f"address must be a str, got {type(address).__name__}")
    return _decode_cached(address, prefix)


def is_valid_ss58(address: object, prefix: int | None = DEFAULT_SS58_FORMAT) -> bool:
    """True when ``address`` is a well-formed SS58 address for ``prefix``; never raises."""
    if not isinstance(address, str):
        return False
    try:
        ss58_decode(address, prefix)
    except (InvalidAddress, TypeError, ValueError):
        return False
    return True
