"""sr25519 keypairs: the identities that sign every extrinsic and every HTTP request.

Derivation follows Substrate/Bittensor so a mnemonic means the same account here as in
other tools that use the same scheme: BIP-39 phrase -> 32-byte "mini secret"
(``bip39_to_mini_secret(phrase, "")``, empty password) -> schnorrkel keypair
(``sr25519.pair_from_seed``). Hard/soft derivation paths (``//Alice``) are deliberately
not supported; local testnets use :meth:`Keypair.dev` instead.

Secret material (seed, 64-byte secret key, mnemonic) is kept out of ``repr`` and error
messages so keys do not leak into logs and tracebacks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import bip39
import sr25519

from subnetlab.keys.ss58 import (
    DEFAULT_SS58_FORMAT,
    PUBLIC_KEY_LENGTH,
    InvalidAddress,
    ss58_decode,
    ss58_encode,
)

__all__ = ["SECRET_KEY_LENGTH", "SEED_LENGTH", "SIGNATURE_LENGTH", "Keypair", "verify"]

SEED_LENGTH = 32
SECRET_KEY_LENGTH = 64
SIGNATURE_LENGTH = 64
_MNEMONIC_WORD_COUNTS = (12, 15, 18, 21, 24)
_DEV_DOMAIN = b"subnetlab-dev:"

BytesLike = bytes | bytearray | memoryview


def _as_bytes(value: object, what: str, length: int) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"{what} must be bytes, got {type(value).__name__}")
    data = bytes(value)
    if len(data) != length:
        raise ValueError(f"{what} must be {length} bytes, got {len(data)}")
    return data


@dataclass(frozen=True, slots=True)
class Keypair:
    """An sr25519 keypair and its SS58 address.

    Build one with :meth:`generate`, :meth:`from_mnemonic`, :meth:`from_seed`,
    :meth:`from_secret_key` or :meth:`dev`; the constructor itself is an implementation
    detail. ``seed`` and ``mnemonic`` are ``None`` when the keypair was built from something
    that does not carry them (a secret key, or a seed without a phrase). Wallet code that
    persists keys should store the mnemonic when present, else the seed, else the secret key.
    """

    public_key: bytes
    secret_key: bytes = field(repr=False)
    ss58_format: int = DEFAULT_SS58_FORMAT
    seed: bytes | None = field(default=None, repr=False, compare=False)
    mnemonic: str | None = field(default=None, repr=False, compare=False)
    ss58_address: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        _as_bytes(self.public_key, "public key", PUBLIC_KEY_LENGTH)
        _as_bytes(self.secret_key, "secret key", SECRET_KEY_LENGTH)
        # Computed once: the address is read on every signed request and extrinsic.
        object.__setattr__(self, "ss58_address", ss58_encode(self.public_key, self.ss58_format))

    def __repr__(self) -> str:
        return f"Keypair(ss58_address={self.ss58_address!r})"

    # ---- constructors -----------------------------------------------------------------

    @classmethod
    def generate(cls, words: int = 12, ss58_format: int = DEFAULT_SS58_FORMAT) -> Keypair:
        """A fresh keypair from a new random BIP-39 mnemonic (12 words unless told)."""
        if words not in _MNEMONIC_WORD_COUNTS:
            raise ValueError(f"mnemonic word count must be one of {_MNEMONIC_WORD_COUNTS}")
        phrase: str = bip39.bip39_generate(words)
        return cls.from_mnemonic(phrase, ss58_format=ss58_format)

    @classmethod
    def from_mnemonic(cls, phrase: str, ss58_format: int = DEFAULT_SS58_FORMAT) -> Keypair:
        """The keypair of a BIP-39 English phrase (whitespace and case normalised).

        The error for an invalid phrase never repeats the phrase: it is a secret.
        """
        if not isinstance(phrase, str):
            raise TypeError(f"mnemonic must be a str, got {type(phrase).__name__}")
        normalised = " ".join(phrase.lower().split())
        if not bip39.bip39_validate(normalised):
            raise ValueError(
                "invalid mnemonic: not a valid BIP-39 English phrase "
                "(wrong word, word count or checksum)"
            )
        mini_secret = bytes(bip39.bip39_to_mini_secret(normalised, ""))
        return cls._from_seed(mini_secret, ss58_format, mnemonic=normalised)

    @classmethod
    def from_seed(cls, seed: bytes, ss58_format: int = DEFAULT_SS58_FORMAT) -> Keypair:
        """The keypair of a 32-byte mini secret (what a mnemonic reduces to)."""
        return cls._from_seed(_as_bytes(seed, "seed", SEED_LENGTH), ss58_format, mnemonic=None)

    @classmethod
    def from_secret_key(cls, secret_key: bytes, ss58_format: int = DEFAULT_SS58_FORMAT) -> Keypair:
        """The keypair of a 64-byte expanded sr25519 secret key (no seed or mnemonic)."""
        secret = _as_bytes(secret_key, "secret key", SECRET_KEY_LENGTH)
        try:
            public = bytes(sr25519.public_from_secret_key(secret))
        except ValueError:
            raise ValueError("secret key is not a valid sr25519 secret key") from None
        return cls(public_key=public, secret_key=secret, ss58_format=ss58_format)

    @classmethod
    def dev(cls, name: str, ss58_format: int = DEFAULT_SS58_FORMAT) -> Keypair:
        """A deterministic, PUBLICLY KNOWN keypair for local testnets and tests only.

        The seed is ``blake2b-256(b"subnetlab-dev:" + name.encode("utf-8"))``, so anyone can
        recompute it: never hold value with these keys. They exist so that fixtures, demos
        and multi-process local networks agree on "alice", "bob", ... without sharing files.
        (They are not Substrate's ``//Alice`` keys; those need hard derivation.)
        """
        if not isinstance(name, str) or not name:
            raise ValueError("dev key name must be a non-empty str")
        seed = hashlib.blake2b(_DEV_DOMAIN + name.encode("utf-8"), digest_size=32).digest()
        return cls.from_seed(seed, ss58_format)

    @classmethod
    def _from_seed(cls, seed: bytes, ss58_format: int, mnemonic: str | None) -> Keypair:
        public, secret = sr25519.pair_from_seed(seed)
        return cls(
            public_key=bytes(public),
            secret_key=bytes(secret),
            ss58_format=ss58_format,
            seed=seed,
            mnemonic=mnemonic,
        )

    # ---- signing ----------------------------------------------------------------------

    def sign(self, message: BytesLike) -> bytes:
        """A 64-byte sr25519 signature of ``message`` (randomised: differs call to call)."""
        if not isinstance(message, bytes | bytearray | memoryview):
            raise TypeError(f"message must be bytes, got {type(message).__name__}")
        return bytes(sr25519.sign((self.public_key, self.secret_key), bytes(message)))

    def verify(self, signature: BytesLike | str, message: BytesLike) -> bool:
        """True when ``signature`` is this keypair's signature of ``message``; never raises."""
        return verify(signature, message, self.public_key)


def _signature_bytes(signature: object) -> bytes | None:
    if isinstance(signature, bytes | bytearray | memoryview):
        sig = bytes(signature)
    elif isinstance(signature, str):
        text = signature[2:] if signature[:2] in ("0x", "0X") else signature
        try:
            sig = bytes.fromhex(text)
        except ValueError:
            return None
    else:
        return None
    return sig if len(sig) == SIGNATURE_LENGTH else None


def verify(
    signature: BytesLike | str,
    message: BytesLike,
    ss58_or_public_key: str | BytesLike,
    *,
    ss58_format: int | None = DEFAULT_SS58_FORMAT,
) -> bool:
    """True when ``signature`` is a valid sr25519 signature of ``message`` by the key.

    ``signature`` is 64 raw bytes or their hex (``0x`` optional); the key is an SS58 address
    (of network ``ss58_format``; ``None`` accepts any prefix) or 32 raw public-key bytes.
    Returns ``False`` for anything malformed (wrong types or lengths, bad hex, bad address,
    bytes that are not a schnorrkel signature or a valid curve point) instead of raising:
    a verifier facing untrusted input should have exactly one failure path.
    """
    try:
        sig = _signature_bytes(signature)
        if sig is None or not isinstance(message, bytes | bytearray | memoryview):
            return False
        if isinstance(ss58_or_public_key, str):
            public = ss58_decode(ss58_or_public_key, ss58_format)
        elif isinstance(ss58_or_public_key, bytes | bytearray | memoryview):
            public = bytes(ss58_or_public_key)
            if len(public) != PUBLIC_KEY_LENGTH:
                return False
        else:
            return False
        return bool(sr25519.verify(sig, bytes(message), public))
    except (InvalidAddress, ValueError, TypeError):
        return False
