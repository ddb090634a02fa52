"""The signed-extrinsic format: canonical payload, signature checks, hash, wire form."""

from __future__ import annotations

import enum
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from subnetlab.chain.extrinsic import (
    DEFAULT_CHAIN_ID,
    BadSignature,
    BadSigner,
    ChainIdentity,
    Extrinsic,
    MalformedExtrinsic,
    chain_identity,
    sign_extrinsic,
    signing_payload,
)
from subnetlab.keys import InvalidAddress, Keypair, ss58_encode

ALICE = Keypair.dev("alice")
BOB = Keypair.dev("bob")
TRANSFER: dict[str, Any] = {"dest": BOB.ss58_address, "amount": 1_000_000_000}
GENESIS = "0x" + "11" * 32
DEV = ChainIdentity(DEFAULT_CHAIN_ID, GENESIS)


def _chain(chain_id: str) -> ChainIdentity:
    return ChainIdentity(chain_id, GENESIS)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
json_params = st.dictionaries(st.text(max_size=10), json_values, max_size=6)


def _transfer(nonce: int = 0, chain: ChainIdentity = DEV) -> Extrinsic:
    return sign_extrinsic(ALICE, "transfer", TRANSFER, nonce, chain)


def _with(ext: Extrinsic, **changes: Any) -> Extrinsic:
    """A copy with fields changed, re-validated as if it had arrived over the wire."""
    data = json.loads(ext.to_json())
    data.update(changes)
    return Extrinsic.from_dict(data)


# ---- payload ------------------------------------------------------------------------------


def test_signing_payload_is_the_documented_canonical_json() -> None:
    payload = signing_payload(
        "transfer", {"b": 1, "a": ["é", 2.5, None, True]}, "5Signer", 7, _chain("my-chain")
    )
    expected = (
        '{"call":"transfer","chain_id":"my-chain","genesis_hash":"' + GENESIS + '","nonce":7,'
        '"params":{"a":["é",2.5,null,true],"b":1},"signer":"5Signer"}'
    ).encode()
    assert payload == expected


def test_payload_does_not_depend_on_key_order_or_tuples() -> None:
    a = signing_payload("c", {"x": 1, "y": {"q": 1, "p": (1, 2)}}, "s", 0, _chain("c"))
    b = signing_payload("c", {"y": {"p": [1, 2], "q": 1}, "x": 1}, "s", 0, _chain("c"))
    assert a == b


@settings(max_examples=300, deadline=None)
@given(params=json_params, nonce=st.integers(0, 2**64 - 1),
       call=st.text(min_size=1, max_size=20), chain_id=st.text(min_size=1, max_size=20))
def test_the_models_payload_is_the_canonical_json_byte_for_byte(
    params: dict[str, Any], nonce: int, call: str, chain_id: str
) -> None:
    """`Extrinsic.payload` takes a faster encoder than `json.dumps` for params without
    floats: it must give the bytes of the documented rule, whatever the params."""
    ext = sign_extrinsic(ALICE, call, params, nonce, _chain(chain_id))
    assert ext.payload() == signing_payload(call, params, ALICE.ss58_address, nonce,
                                            _chain(chain_id))


def test_the_fast_payload_writes_every_character_and_weight_list_as_json_dumps() -> None:
    every_character = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    weights = list(range(256))
    for params in ({"memo": every_character, every_character: 1},
                   {"netuid": 3, "uids": weights, "weights": weights[::-1]},
                   {"mixed": [True, 1, False, 0, 2**70, -(2**70)], "n": None},
                   {"nested": [[1, 2], [3, [4.5]], {"b": [], "a": {}}]}):
        ext = sign_extrinsic(ALICE, "c", params, 1, DEV)
        assert ext.payload() == signing_payload("c", params, ALICE.ss58_address, 1, DEV)
        ext.verify()


class _Color(enum.IntEnum):
    RED = 3


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"x": float("nan")}, "params['x']: float must be finite"),
        ({"x": [1, {"y": float("inf")}]}, "params['x'][1]['y']: float must be finite"),
        ({"x": {1, 2}}, "set is not a JSON value"),
        ({"x": b"bytes"}, "bytes is not a JSON value"),
        ({1: "x"}, "keys must be str"),
        ({"x": "\ud800"}, "UTF-8"),
    ],
)
def test_payload_refuses_non_json_params(params: dict[Any, Any], needle: str) -> None:
    with pytest.raises(ValueError, match="params") as info:
        signing_payload("c", params, "s", 0, _chain("c"))
    assert needle in str(info.value)
    with pytest.raises(MalformedExtrinsic) as signed:
        sign_extrinsic(ALICE, "c", params, 0, DEV)
    assert signed.value.field == "params"


def test_deep_params_refused() -> None:
    deep: Any = 1
    for _ in range(40):
        deep = [deep]
    with pytest.raises(ValueError, match="deeper"):
        signing_payload("c", {"x": deep}, "s", 0, _chain("c"))


def test_int_subclasses_are_normalised() -> None:
    ext = sign_extrinsic(ALICE, "c", {"color": _Color.RED, "flag": True}, 0, DEV)
    assert type(ext.params["color"]) is int
    assert ext.params["flag"] is True
    ext.verify()


# ---- sign / verify ------------------------------------------------------------------------


def test_sign_and_verify() -> None:
    ext = _transfer(nonce=5)
    assert ext.signer == ALICE.ss58_address
    assert ext.chain_id == DEFAULT_CHAIN_ID == "subnetlab-dev"
    assert len(ext.signature) == 128
    ext.verify()
    assert ext.is_valid()
    assert ext.payload() == signing_payload(
        "transfer", TRANSFER, ALICE.ss58_address, 5, DEV
    )


@settings(max_examples=50, deadline=None)
@given(params=json_params, nonce=st.integers(0, 2**64 - 1), call=st.text(min_size=1, max_size=20))
def test_any_json_params_sign_verify_and_round_trip(
    params: dict[str, Any], nonce: int, call: str
) -> None:
    ext = sign_extrinsic(ALICE, call, params, nonce, DEV)
    ext.verify()
    again = Extrinsic.from_json(ext.to_json())
    assert again == ext
    assert again.hash == ext.hash
    again.verify()


@pytest.mark.parametrize(
    "changes",
    [
        {"params": {**TRANSFER, "amount": 1_000_000_001}},
        {"params": {**TRANSFER, "dest": ALICE.ss58_address}},
        {"params": {**TRANSFER, "memo": "extra"}},
        {"params": {}},
        {"nonce": 6},
        {"call": "add_stake"},
        {"chain_id": "subnetlab-main"},
        {"genesis_hash": "0x" + "22" * 32},
    ],
)
def test_tampering_is_rejected(changes: dict[str, Any]) -> None:
    ext = _transfer(nonce=5)
    tampered = _with(ext, **changes)
    with pytest.raises(BadSignature) as info:
        tampered.verify()
    assert info.value.code == "bad_signature"
    assert "bad signature" in str(info.value)
    assert not tampered.is_valid()


def test_wrong_signer_rejected() -> None:
    ext = _transfer()
    stolen = _with(ext, signer=BOB.ss58_address)
    with pytest.raises(BadSignature):
        stolen.verify()


def test_signature_from_another_extrinsic_rejected() -> None:
    a, b = _transfer(nonce=1), _transfer(nonce=2)
    with pytest.raises(BadSignature):
        _with(a, signature=b.signature).verify()


@pytest.mark.parametrize(
    ("signer", "reason"),
    [
        ("not-an-address", "bad_base58"),
        ("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQZ", "bad_checksum"),
        ("5GrwvaEF5zXb26Fz9rcQpDWS57CtERH", "wrong_length"),
        (ss58_encode(ALICE.public_key, 0), "wrong_prefix"),
    ],
)
def test_bad_signer(signer: str, reason: str) -> None:
    ext = _with(_transfer(), signer=signer)
    with pytest.raises(BadSigner) as info:
        ext.verify()
    assert info.value.code == "bad_signer"
    assert info.value.reason == reason
    assert isinstance(info.value, InvalidAddress)
    assert isinstance(info.value, ValueError)
    assert "bad signer" in str(info.value)
    assert not ext.is_valid()


@pytest.mark.parametrize(
    "signature",
    [
        "00" * 64,  # well-formed hex, not a schnorrkel signature (sr25519 would raise)
        "ff" * 64,
        "80" * 64,
    ],
)
def test_garbage_signature_is_bad_signature_not_a_crash(signature: str) -> None:
    ext = _with(_transfer(), signature=signature)
    with pytest.raises(BadSignature):
        ext.verify()


@pytest.mark.parametrize(
    "signature", ["", "zz" * 64, "00" * 63, "00" * 65, "0x" + "0" * 127, 12345, None]
)
def test_malformed_signature_refused_at_parse(signature: object) -> None:
    data = json.loads(_transfer().to_json())
    data["signature"] = signature
    with pytest.raises(MalformedExtrinsic) as info:
        Extrinsic.from_json(json.dumps(data))
    assert info.value.field == "signature"
    assert info.value.code == "malformed_extrinsic"
    assert "signature" in str(info.value)


def test_signature_spelling_is_normalised() -> None:
    ext = _transfer()
    upper = _with(ext, signature="0x" + ext.signature.upper())
    assert upper.signature == ext.signature
    assert upper.hash == ext.hash
    upper.verify()


@settings(max_examples=100, deadline=None)
@given(signature=st.binary(min_size=64, max_size=64))
def test_random_signatures_never_leak_exceptions(signature: bytes) -> None:
    ext = _with(_transfer(), signature=signature.hex())
    with pytest.raises(BadSignature):
        ext.verify()


# ---- hash ---------------------------------------------------------------------------------


def test_hash_is_documented_and_stable() -> None:
    ext = _transfer(nonce=3)
    expected = hashlib.blake2b(
        ext.payload() + bytes.fromhex(ext.signature), digest_size=32
    ).hexdigest()
    assert ext.hash == "0x" + expected
    assert len(ext.hash) == 66
    assert ext.hash == ext.hash
    assert Extrinsic.from_json(ext.to_json()).hash == ext.hash


def test_hash_pinned_for_fixed_signature() -> None:
    """A pinned value: changing the payload scheme or the hash must be a deliberate act."""
    ext = Extrinsic(
        call="transfer",
        params={"amount": 5, "dest": "5Dest"},
        signer="5Signer",
        nonce=1,
        signature="ab" * 64,
        genesis_hash=GENESIS,
    )
    payload = (
        b'{"call":"transfer","chain_id":"subnetlab-dev","genesis_hash":"' + GENESIS.encode()
        + b'","nonce":1,'
        b'"params":{"amount":5,"dest":"5Dest"},"signer":"5Signer"}'
    )
    assert ext.payload() == payload
    expected = hashlib.blake2b(payload + b"\xab" * 64, digest_size=32).hexdigest()
    assert ext.hash == "0x" + expected


def test_hash_names_the_signed_extrinsic() -> None:
    a = _transfer(nonce=1)
    b = _transfer(nonce=1)  # same call, fresh randomised signature
    assert a.payload() == b.payload()
    assert a.hash != b.hash
    assert _transfer(nonce=2).hash != a.hash


# ---- wire form ----------------------------------------------------------------------------


def test_json_round_trip() -> None:
    ext = sign_extrinsic(ALICE, "set_weights", {"netuid": 1, "uids": [0, 1], "w": [0.5, 0.5]}, 9,
                         DEV)
    text = ext.to_json()
    assert set(json.loads(text)) == {"call", "params", "signer", "nonce", "signature", "chain_id",
                                     "genesis_hash"}
    again = Extrinsic.from_json(text)
    assert again == ext
    again.verify()
    assert Extrinsic.from_json(text.encode()) == ext


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(nonce=-1), "nonce"),
        (lambda d: d.update(nonce=2**64), "nonce"),
        (lambda d: d.update(nonce="5"), "nonce"),
        (lambda d: d.update(nonce=1.5), "nonce"),
        (lambda d: d.update(nonce=True), "nonce"),
        (lambda d: d.update(call=""), "call"),
        (lambda d: d.update(call=7), "call"),
        (lambda d: d.update(params=[1, 2]), "params"),
        (lambda d: d.update(signer=None), "signer"),
        (lambda d: d.update(chain_id=""), "chain_id"),
        (lambda d: d.pop("genesis_hash"), "genesis_hash"),
        (lambda d: d.update(genesis_hash="0x" + "AB" * 32), "genesis_hash"),
        (lambda d: d.update(genesis_hash="11" * 32), "genesis_hash"),
        (lambda d: d.pop("signature"), "signature"),
        (lambda d: d.pop("signer"), "signer"),
        (lambda d: d.update(extra="x"), "extra"),
    ],
)
def test_from_json_names_the_bad_field(mutate: Any, field: str) -> None:
    data = json.loads(_transfer().to_json())
    mutate(data)
    with pytest.raises(MalformedExtrinsic) as info:
        Extrinsic.from_json(json.dumps(data))
    assert info.value.field == field
    assert f"'{field}'" in str(info.value)
    with pytest.raises(MalformedExtrinsic):
        Extrinsic.from_dict(data)


def test_from_json_refuses_nan_in_params() -> None:
    text = _transfer().to_json().replace('"amount":1000000000', '"amount":NaN')
    with pytest.raises(MalformedExtrinsic) as info:
        Extrinsic.from_json(text)
    assert info.value.field == "params"


@pytest.mark.parametrize("text", ["", "[1", "[]", "null", "not json", b"\xff\xfe"])
def test_from_json_refuses_non_objects(text: str | bytes) -> None:
    with pytest.raises(MalformedExtrinsic) as info:
        Extrinsic.from_json(text)
    assert info.value.field is None
    assert isinstance(info.value, ValueError)


def test_chain_id_default_and_override() -> None:
    ext = _transfer(chain=_chain("subnetlab-test"))
    assert ext.chain_id == "subnetlab-test"
    ext.verify()
    data = json.loads(_transfer().to_json())
    data.pop("chain_id")
    assert Extrinsic.from_dict(data).chain_id == "subnetlab-dev"


def test_extrinsic_is_frozen() -> None:
    ext = _transfer()
    with pytest.raises(ValueError):
        ext.nonce = 9  # type: ignore[misc]


def test_signer_on_another_network_signs_with_default_prefix() -> None:
    kp = Keypair.from_seed(ALICE.seed or b"", ss58_format=0)
    ext = sign_extrinsic(kp, "transfer", TRANSFER, 0, DEV)
    assert ext.signer == ALICE.ss58_address
    ext.verify()


# ---- chain identity -------------------------------------------------------------------------


def test_the_genesis_hash_is_signed() -> None:
    """An extrinsic signed for one genesis does not verify as one for another: the same
    chain id started again (another genesis) cannot take the old chain's extrinsics."""
    ext = _transfer(nonce=0)
    assert b'"genesis_hash":"' + GENESIS.encode() + b'"' in ext.payload()
    moved = _with(ext, genesis_hash="0x" + "33" * 32)
    with pytest.raises(BadSignature):
        moved.verify()
    assert ext.chain == DEV


@pytest.mark.parametrize(("info", "field"), [
    ({"chain_id": "c"}, "genesis_hash"),
    ({"chain_id": "c", "genesis_hash": "0x12"}, "genesis_hash"),
    ({"chain_id": "c", "genesis_hash": 5}, "genesis_hash"),
    ({"genesis_hash": GENESIS}, "chain_id"),
    ({"chain_id": "", "genesis_hash": GENESIS}, "chain_id"),
    ([], "JSON object"),
])
def test_chain_identity_names_what_the_chain_info_lacks(info: object, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        chain_identity(info)


def test_chain_identity_of_a_chain_info() -> None:
    info = {"chain_id": "c", "genesis_hash": GENESIS, "block": 3}
    assert chain_identity(info) == ChainIdentity("c", GENESIS)
