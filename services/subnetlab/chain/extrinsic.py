"""The canonical signed-extrinsic format: what an origin signs, and how the chain checks it.

Signing scheme (version 1)
--------------------------
The signer signs, with sr25519, the UTF-8 bytes of the canonical JSON of exactly this
object::

    {"call": <str>, "chain_id": <str>, "genesis_hash": <0x hex>, "nonce": <int>,
     "params": <object>, "signer": <ss58>}

Canonical JSON means ``json.dumps(obj, sort_keys=True, separators=(",", ":"),
ensure_ascii=False, allow_nan=False)`` encoded as UTF-8: object keys sorted by Unicode code
point at every level, no whitespace, non-ASCII characters written literally (not ``\\u``
escaped), integers in decimal, floats as Python's shortest round-trip ``repr`` (NaN and
infinities are refused). ``params`` may hold only JSON values (null, bool, int, finite
float, str, list, object with str keys); tuples are normalised to lists before signing, so
the value that is signed is the value that is stored and replayed.

Why each field is in the payload:

- ``call`` and ``params``: what the origin authorised.
- ``signer``: binds the signature to one account, so it cannot be re-attributed.
- ``nonce``: the signer's per-account counter; the state machine accepts only the next one,
  which stops replay on the same chain.
- ``chain_id``: stops replay of a dev-chain extrinsic on another chain (or vice versa).
- ``genesis_hash``: the hash of the genesis block of the chain the signer meant (as
  Substrate's ``CheckGenesis``). Two chains may share a chain id (a dev chain started
  again after its store was lost, with another salt); the nonce alone would let an
  extrinsic signed for the old one be replayed on the new one, its genesis hash does not.
  The ledger refuses one signed for another genesis with ``wrong_genesis``.

The bytes are signed directly (schnorrkel hashes them with its own transcript; we do not
pre-hash long payloads as Substrate does). A payload always starts with ``{"call":``, so it
can never be confused with the ``sha256(body).uuid.timestamp.signed_for`` strings that
hotkeys sign for HTTP requests.

The extrinsic hash is ``"0x" + hex(blake2b-256(payload || signature))`` where ``signature``
is the 64 raw signature bytes. It names one *signed* extrinsic (sr25519 signatures are
randomised, so re-signing the same call gives a different hash); block logs and receipts
refer to extrinsics by it.

The wire form (:meth:`Extrinsic.to_json`) is ordinary, non-canonical JSON of the model; only
the signing payload needs to be canonical, because it is recomputed from the fields.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import pydantic_core
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from subnetlab.keys.keypair import Keypair
from subnetlab.keys.keypair import verify as verify_signature
from subnetlab.keys.ss58 import DEFAULT_SS58_FORMAT, InvalidAddress, ss58_decode, ss58_encode

__all__ = [
    "DEFAULT_CHAIN_ID",
    "GENESIS_HASH_PATTERN",
    "MAX_NONCE",
    "MAX_PARAMS_DEPTH",
    "BadSignature",
    "BadSigner",
    "ChainIdentity",
    "Extrinsic",
    "MalformedExtrinsic",
    "SigningParts",
    "canonical_json",
    "chain_identity",
    "sign_extrinsic",
    "signing_payload",
]

DEFAULT_CHAIN_ID = "subnetlab-dev"
GENESIS_HASH_PATTERN = r"^0x[0-9a-f]{64}$"
"""A genesis hash as the ledger shows and signers sign it: 0x and 64 lowercase hex."""
MAX_NONCE = 2**64 - 1
"""Nonces are u64, like Substrate's account index: the bound keeps payloads small and sane."""
_PLACEHOLDER_SIGNATURE = "00" * 64
MAX_PARAMS_DEPTH = 32
"""Deeper params are refused, so hostile input cannot exhaust the recursion limit."""


class BadSignature(ValueError):  # noqa: N818 -- name fixed by the ledger API
    """The signature is not the signer's signature of this extrinsic's payload."""

    code: ClassVar[str] = "bad_signature"


class BadSigner(InvalidAddress):
    """The ``signer`` field is not a valid SS58 address of this network.

    Derives from :class:`~subnetlab.keys.ss58.InvalidAddress` (and so ``ValueError``);
    ``reason`` carries the address decoder's reason tag.
    """

    code: ClassVar[str] = "bad_signer"


class MalformedExtrinsic(ValueError):  # noqa: N818 -- matches BadSignature/BadSigner
    """Input that does not parse as an extrinsic; ``field`` names the first offending field.

    ``field`` is ``None`` when the input is not a JSON object at all.
    """

    code: ClassVar[str] = "malformed_extrinsic"

    def __init__(self, message: str, field: str | None) -> None:
        super().__init__(message)
        self.field = field


class _ParamError(Exception):
    """Internal: a bad params value; ``path`` is filled in while unwinding the recursion."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = []


def _utf8_ok(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_INT_ONLY = {int}


def _norm(value: object, depth: int) -> Any:
    # Exact-type fast paths first: params are mostly ints, strs and lists of ints (weights),
    # and this runs on every extrinsic the ledger accepts.
    t = type(value)
    if value is None or t is int or t is bool:
        return value
    if t is str:
        if not _utf8_ok(value):  # type: ignore[arg-type]
            raise _ParamError("string is not encodable as UTF-8 (lone surrogate)")
        return value
    if t is list and set(map(type, value)) <= _INT_ONLY:  # type: ignore[call-overload]
        return list(value)  # type: ignore[call-overload]
    if depth > MAX_PARAMS_DEPTH:
        raise _ParamError(f"nested deeper than {MAX_PARAMS_DEPTH} levels")
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _ParamError(f"float must be finite, got {value!r}")
        return float(value)
    if isinstance(value, str):
        return _norm(str(value), depth)
    if isinstance(value, list | tuple):
        out_list: list[Any] = []
        for i, v in enumerate(value):
            try:
                out_list.append(_norm(v, depth + 1))
            except _ParamError as exc:
                exc.path.append(f"[{i}]")
                raise
        return out_list
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise _ParamError(f"object keys must be str, got {k!r}")
            if not _utf8_ok(k):
                raise _ParamError(f"key {k!r} is not encodable as UTF-8 (lone surrogate)")
            try:
                out[str(k)] = _norm(v, depth + 1)
            except _ParamError as exc:
                exc.path.append(f"[{k!r}]")
                raise
        return out
    raise _ParamError(
        f"{type(value).__name__} is not a JSON value "
        "(use null, bool, int, finite float, str, list or dict)"
    )


def _normalise_params(params: object) -> dict[str, Any]:
    """``params`` as plain JSON types, or ``ValueError`` naming the bad spot.

    Subclasses (IntEnum, str enums, ...) are reduced to their base type and tuples to lists,
    so the stored value is exactly what the canonical payload describes.
    """
    if not isinstance(params, dict):
        raise ValueError(f"params must be a dict, got {type(params).__name__}")
    try:
        out: dict[str, Any] = _norm(params, 0)
    except _ParamError as exc:
        where = "params" + "".join(reversed(exc.path))
        raise ValueError(f"{where}: {exc.message}") from None
    return out


def _check_utf8(text: str, what: str) -> None:
    if not _utf8_ok(text):
        raise ValueError(f"{what}: string is not encodable as UTF-8 (lone surrogate)")


def canonical_json(obj: object) -> bytes:
    """Canonical JSON bytes of ``obj``; the serialisation rule of the signing scheme."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


class _HasFloat(Exception):  # noqa: N818 (a signal, not a fault)
    """Internal: a float was found, so `_canonical_plain` must defer to `json.dumps`."""


def _sorted_plain(value: Any) -> Any:
    """`value` (already normalised: plain JSON types, str keys) with every object's keys in
    sorted order, for an encoder that keeps insertion order; `_HasFloat` if it holds a float.

    A list whose `sum` is an int holds only ints and bools (a float makes the sum a float,
    anything else raises), so the weight lists of set_weights are accepted without a Python
    loop over their entries.
    """
    t = type(value)
    if t is dict:
        return {k: _sorted_plain(value[k]) for k in sorted(value)}
    if t is list:
        try:
            if type(sum(value)) is int:
                return value
        except (TypeError, OverflowError):
            pass
        return [_sorted_plain(v) for v in value]
    if t is float:
        raise _HasFloat
    return value


def _canonical_plain(obj: dict[str, Any]) -> bytes:
    """`canonical_json(obj)` for an object of normalised values, byte for byte, faster.

    pydantic-core's encoder (already a dependency, through pydantic) writes integers,
    strings (UTF-8 literally, the same escapes for quotes, backslashes and control
    characters), booleans and null exactly as `json.dumps(..., ensure_ascii=False)`
    with compact separators does, about six times faster; it keeps insertion order, so the
    keys are sorted first. Floats are the one JSON value it writes differently (``1e16``
    against Python's ``1e+16``), so an object holding one is encoded by `json.dumps`.
    `tests/unit/test_extrinsic.py` checks the equality over every code point and over
    generated values.
    """
    try:
        plain = _sorted_plain(obj)
    except _HasFloat:
        return canonical_json(obj)
    return pydantic_core.to_json(plain)


@dataclass(frozen=True, slots=True)
class ChainIdentity:
    """What a signer commits to besides the call: the chain's id and its genesis hash."""

    chain_id: str
    genesis_hash: str


def signing_payload(
    call: str, params: dict[str, Any], signer: str, nonce: int, chain: ChainIdentity
) -> bytes:
    """The exact bytes an origin signs for this call (see the module docstring).

    Raises ``ValueError`` if ``params`` holds a non-JSON value, so that nothing is signed
    that could not be stored and replayed byte for byte.
    """
    obj = _payload_object(call, _normalise_params(params), signer, nonce, chain.chain_id,
                          chain.genesis_hash)
    return canonical_json(obj)


def _payload_object(
    call: str, params: dict[str, Any], signer: str, nonce: int, chain_id: str,
    genesis_hash: str,
) -> dict[str, Any]:
    """The object whose canonical JSON is signed (its keys are in sorted order)."""
    return {
        "call": call,
        "chain_id": chain_id,
        "genesis_hash": genesis_hash,
        "nonce": nonce,
        "params": params,
        "signer": signer,
    }


@dataclass(frozen=True, slots=True)
class SigningParts:
    """An extrinsic's signed bytes, signer key and signature, and its hash."""

    payload: bytes
    public_key: bytes
    signature: bytes
    hash: str


class Extrinsic(BaseModel):
    """One signed state change, as submitted to the ledger and stored in blocks.

    Parsing checks shape only; :meth:`verify` checks the signer address and signature, so
    that the ledger can answer each failure with its own error code (``bad_signer``,
    ``bad_signature``). Nonce freshness is the state machine's business, not this model's.
    """

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    call: str = Field(min_length=1, max_length=128, description="Call name, e.g. 'transfer'.")
    params: dict[str, Any] = Field(default_factory=dict, description="JSON call arguments.")
    signer: str = Field(
        min_length=1, max_length=128, description="SS58 address of the signing origin."
    )
    nonce: int = Field(ge=0, le=MAX_NONCE, description="The signer's account nonce.")
    signature: str = Field(
        pattern=r"^[0-9a-f]{128}$",
        description="sr25519 signature of the signing payload, 128 lowercase hex chars.",
    )
    chain_id: str = Field(
        DEFAULT_CHAIN_ID, min_length=1, max_length=128, description="Chain the call is for."
    )
    genesis_hash: str = Field(
        pattern=GENESIS_HASH_PATTERN,
        description="Genesis hash of the chain the call is for (GET /v1/chain).",
    )

    @property
    def chain(self) -> ChainIdentity:
        """The chain this extrinsic was signed for."""
        return ChainIdentity(self.chain_id, self.genesis_hash)

    @field_validator("params", mode="after")
    @classmethod
    def _params_are_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _normalise_params(value)

    @field_validator("call", "signer", "chain_id", mode="after")
    @classmethod
    def _utf8_text(cls, value: str, info: ValidationInfo) -> str:
        _check_utf8(value, str(info.field_name))
        return value

    @field_validator("signature", mode="before")
    @classmethod
    def _lower_hex(cls, value: object) -> object:
        # Accept 0x-prefixed / upper-case hex but store one spelling, so the hash is stable.
        if isinstance(value, str):
            text = value[2:] if value[:2] in ("0x", "0X") else value
            return text.lower()
        return value

    # ---- derived values ---------------------------------------------------------------

    def payload(self) -> bytes:
        """The bytes the signer signed (see :func:`signing_payload`)."""
        return _canonical_plain(
            _payload_object(self.call, self.params, self.signer, self.nonce, self.chain_id,
                            self.genesis_hash)
        )

    @property
    def hash(self) -> str:
        """``"0x"`` + blake2b-256 hex of payload || signature: the signed extrinsic's id."""
        return self._hash_of(self.payload())

    def _hash_of(self, payload: bytes) -> str:
        digest = hashlib.blake2b(payload + bytes.fromhex(self.signature), digest_size=32)
        return "0x" + digest.hexdigest()

    def verify(self, ss58_format: int = DEFAULT_SS58_FORMAT) -> None:
        """Raise :class:`BadSigner` or :class:`BadSignature` unless the signature is valid.

        The signer's public key is memoised by the SS58 decoder, so verifying a stream of
        extrinsics from a few accounts costs about one sr25519 verification each.
        """
        self._verify_payload(self.payload(), ss58_format)

    def verified_hash(self, ss58_format: int = DEFAULT_SS58_FORMAT) -> str:
        """Verify (as :meth:`verify`) and return :attr:`hash`, encoding the payload once.

        The ledger's door needs both for every extrinsic; the canonical encoding of a
        256-weight payload costs as much as the signature check, so do it once.
        """
        parts = self.signing_parts(ss58_format)
        if not verify_signature(parts.signature, parts.payload, parts.public_key):
            raise self.bad_signature()
        return parts.hash

    def signing_parts(self, ss58_format: int = DEFAULT_SS58_FORMAT) -> SigningParts:
        """What checking the signature takes, for a caller that checks it elsewhere (the
        ledger, in a worker process); :class:`BadSigner` if the signer is no address."""
        try:
            public_key = ss58_decode(self.signer, ss58_format)
        except InvalidAddress as exc:
            raise BadSigner(exc.reason, f"bad signer: {exc}") from exc
        payload = self.payload()
        signature = bytes.fromhex(self.signature)
        digest = hashlib.blake2b(payload + signature, digest_size=32).hexdigest()
        return SigningParts(payload, public_key, signature, "0x" + digest)

    def bad_signature(self) -> BadSignature:
        """The error for a signature that does not verify (see :meth:`signing_parts`)."""
        return BadSignature(
            f"bad signature: not a valid signature by {self.signer} of this "
            f"{self.call!r} extrinsic (nonce {self.nonce}, chain {self.chain_id!r})"
        )

    def _verify_payload(self, payload: bytes, ss58_format: int) -> None:
        try:
            public_key = ss58_decode(self.signer, ss58_format)
        except InvalidAddress as exc:
            raise BadSigner(exc.reason, f"bad signer: {exc}") from exc
        if not verify_signature(self.signature, payload, public_key):
            raise self.bad_signature()

    def is_valid(self, ss58_format: int = DEFAULT_SS58_FORMAT) -> bool:
        """Boolean form of :meth:`verify`."""
        try:
            self.verify(ss58_format)
        except (BadSigner, BadSignature):
            return False
        return True

    # ---- wire form --------------------------------------------------------------------

    def to_json(self) -> str:
        """The wire/storage form: a JSON object with the seven fields."""
        return self.model_dump_json()

    @classmethod
    def from_json(cls, data: str | bytes | bytearray) -> Extrinsic:
        """Parse and shape-check the wire form; raise :class:`MalformedExtrinsic` if bad."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            raise _malformed(exc) from exc

    @classmethod
    def from_dict(cls, data: object) -> Extrinsic:
        """Like :meth:`from_json` for an already-decoded object (e.g. a request body)."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _malformed(exc) from exc


def _malformed(exc: ValidationError) -> MalformedExtrinsic:
    errors = exc.errors(include_url=False, include_input=False)
    parts: list[str] = []
    first_field: str | None = None
    for err in errors:
        loc = err.get("loc", ())
        if loc:
            name = str(loc[0])
            if first_field is None:
                first_field = name
            inner = ".".join(str(p) for p in loc[1:])
            where = f" (at {inner})" if inner else ""
            parts.append(f"field {name!r}{where}: {err['msg']}")
        else:
            parts.append(err["msg"])
    return MalformedExtrinsic("invalid extrinsic: " + "; ".join(parts), first_field)


def sign_extrinsic(
    keypair: Keypair,
    call: str,
    params: dict[str, Any],
    nonce: int,
    chain: ChainIdentity,
) -> Extrinsic:
    """Sign ``call(params)`` as ``keypair`` with account ``nonce`` for ``chain``.

    ``chain`` comes from the ledger (``GET /v1/chain``, through :func:`chain_identity`), or
    from the genesis for code that runs the state machine itself.

    The signer is the keypair's address on the default network (prefix 42), which is what
    :meth:`Extrinsic.verify` checks against by default. Raises :class:`MalformedExtrinsic`
    (naming the field) for arguments that would not make a valid extrinsic.
    """
    signer = (
        keypair.ss58_address
        if keypair.ss58_format == DEFAULT_SS58_FORMAT
        else ss58_encode(keypair.public_key, DEFAULT_SS58_FORMAT)
    )
    # Validate (and normalise params) before signing, so nothing malformed is ever signed,
    # then fill in the signature; params are normalised once per extrinsic.
    unsigned = Extrinsic.from_dict(
        {
            "call": call,
            "params": params,
            "signer": signer,
            "nonce": nonce,
            "signature": _PLACEHOLDER_SIGNATURE,
            "chain_id": chain.chain_id,
            "genesis_hash": chain.genesis_hash,
        }
    )
    signature = keypair.sign(unsigned.payload()).hex()
    return unsigned.model_copy(update={"signature": signature})


def chain_identity(info: object) -> ChainIdentity:
    """The identity in a ``GET /v1/chain`` answer; every client signs through this.

    ``ValueError`` naming the field when the answer lacks a valid ``chain_id`` or
    ``genesis_hash`` (a server that is not a subnetlab ledger, or an older one).
    """
    if not isinstance(info, dict):
        raise ValueError("GET /v1/chain did not answer a JSON object")
    chain_id, genesis = info.get("chain_id"), info.get("genesis_hash")
    if not isinstance(chain_id, str) or not chain_id:
        raise ValueError("GET /v1/chain answered without a valid 'chain_id'")
    if not isinstance(genesis, str) or re.fullmatch(GENESIS_HASH_PATTERN, genesis) is None:
        raise ValueError("GET /v1/chain answered without a valid 'genesis_hash' "
                         "(0x and 64 hex digits)")
    return ChainIdentity(chain_id, genesis)
