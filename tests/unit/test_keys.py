"""Keys and SS58 addresses: known vectors, round-trips, and every way an address can be bad."""

from __future__ import annotations

import hashlib

import base58
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from subnetlab.keys import (
    DEFAULT_SS58_FORMAT,
    InvalidAddress,
    Keypair,
    is_valid_ss58,
    ss58_decode,
    ss58_encode,
    verify,
)

ALICE_PUBLIC = bytes.fromhex("d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d")
ALICE_SS58 = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"

# Substrate's well-known development phrase; `subkey inspect` reports this root key for it.
DEV_PHRASE = "bottom drive obey lake curtain smoke basket hold race lonely fit walk"
DEV_PHRASE_PUBLIC = "46ebddef8cd9bb167dc30878d7113b7e168e6f0646beffd77d69d39bad76b47a"
DEV_PHRASE_SS58 = "5DfhGyQdFobKM8NsWvEeAKk5EQQgYe9AydgJ7rMB6E1EqRzV"


def _raw_address(prefix_byte: int, key: bytes, *, good_checksum: bool = True) -> str:
    body = bytes([prefix_byte]) + key
    checksum = hashlib.blake2b(b"SS58PRE" + body, digest_size=64).digest()[:2]
    if not good_checksum:
        checksum = bytes([checksum[0] ^ 0xFF, checksum[1]])
    encoded: bytes = base58.b58encode(body + checksum)
    return encoded.decode("ascii")


# ---- SS58 ---------------------------------------------------------------------------------


def test_alice_vector() -> None:
    assert ss58_encode(ALICE_PUBLIC) == ALICE_SS58
    assert ss58_decode(ALICE_SS58) == ALICE_PUBLIC
    assert DEFAULT_SS58_FORMAT == 42


@given(key=st.binary(min_size=32, max_size=32), prefix=st.integers(0, 63))
def test_round_trip(key: bytes, prefix: int) -> None:
    address = ss58_encode(key, prefix)
    assert ss58_decode(address, prefix) == key
    assert ss58_decode(address, None) == key
    assert is_valid_ss58(address, prefix)


@given(key=st.binary(min_size=32, max_size=32))
def test_default_prefix_addresses_start_with_5(key: bytes) -> None:
    assert ss58_encode(key).startswith("5")


@settings(max_examples=300)
@given(text=st.text(alphabet="123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"))
def test_decode_is_canonical_or_refuses(text: str) -> None:
    """Any string either is refused with InvalidAddress or is the one encoding of its key."""
    try:
        key = ss58_decode(text, None)
    except InvalidAddress:
        return
    prefix = base58.b58decode(text)[0]
    assert ss58_encode(key, prefix) == text


@pytest.mark.parametrize(
    ("address", "reason", "needle"),
    [
        ("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKut0Y", "bad_base58", "base58"),  # '0'
        ("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQl", "bad_base58", "base58"),  # 'l'
        ("5Grwva€F5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY", "bad_base58", "base58"),
        ("", "wrong_length", "bytes"),
        ("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKut", "wrong_length", "bytes"),
        (ALICE_SS58 + "1", "wrong_length", "bytes"),
        (_raw_address(42, ALICE_PUBLIC[:31]), "wrong_length", "bytes"),
        (_raw_address(42, ALICE_PUBLIC, good_checksum=False), "bad_checksum", "checksum"),
        ("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQZ", "bad_checksum", "checksum"),
        (_raw_address(0, ALICE_PUBLIC), "wrong_prefix", "prefix 0"),
        (_raw_address(64, ALICE_PUBLIC), "unsupported_prefix_format", "two-byte"),
    ],
)
def test_invalid_addresses(address: str, reason: str, needle: str) -> None:
    with pytest.raises(InvalidAddress) as info:
        ss58_decode(address)
    assert isinstance(info.value, ValueError)
    assert info.value.reason == reason
    assert needle in str(info.value)
    assert not is_valid_ss58(address)


def test_wrong_prefix_accepted_when_asked() -> None:
    polkadot = ss58_encode(ALICE_PUBLIC, 0)
    assert polkadot != ALICE_SS58
    assert ss58_decode(polkadot, 0) == ALICE_PUBLIC
    assert ss58_decode(polkadot, None) == ALICE_PUBLIC
    with pytest.raises(InvalidAddress, match="expected 42"):
        ss58_decode(polkadot)


@pytest.mark.parametrize("value", [None, 42, b"5Grwva", ["x"]])
def test_non_string_addresses(value: object) -> None:
    with pytest.raises(InvalidAddress) as info:
        ss58_decode(value)  # type: ignore[arg-type]
    assert info.value.reason == "not_a_string"
    assert not is_valid_ss58(value)


def test_encode_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        ss58_encode(b"\x01" * 31)
    with pytest.raises(ValueError, match=r"0\.\.63"):
        ss58_encode(ALICE_PUBLIC, 64)
    with pytest.raises(ValueError, match=r"0\.\.63"):
        ss58_decode(ALICE_SS58, -1)
    with pytest.raises(TypeError):
        ss58_encode("d435" * 16)  # type: ignore[arg-type]


# ---- keypairs -----------------------------------------------------------------------------


def test_substrate_dev_phrase_vector() -> None:
    """Our mnemonic -> key derivation matches Substrate's (checked against subkey's output)."""
    kp = Keypair.from_mnemonic(DEV_PHRASE)
    assert kp.public_key.hex() == DEV_PHRASE_PUBLIC
    assert kp.ss58_address == DEV_PHRASE_SS58


def test_generate_and_mnemonic_round_trip() -> None:
    kp = Keypair.generate()
    assert kp.mnemonic is not None
    assert len(kp.mnemonic.split()) == 12
    again = Keypair.from_mnemonic(kp.mnemonic)
    assert again == kp
    assert again.ss58_address == kp.ss58_address
    assert Keypair.generate().ss58_address != kp.ss58_address
    assert len(Keypair.generate(24).mnemonic or "") > 0


def test_mnemonic_normalisation() -> None:
    messy = "  " + DEV_PHRASE.upper().replace(" ", " \t ") + "\n"
    assert Keypair.from_mnemonic(messy).ss58_address == DEV_PHRASE_SS58
    assert Keypair.from_mnemonic(messy).mnemonic == DEV_PHRASE


def test_invalid_mnemonic_does_not_echo_the_phrase() -> None:
    bad = DEV_PHRASE.replace("walk", "zebra")
    with pytest.raises(ValueError, match="invalid mnemonic") as info:
        Keypair.from_mnemonic(bad)
    assert "zebra" not in str(info.value)
    assert "bottom" not in str(info.value)
    with pytest.raises(ValueError):
        Keypair.from_mnemonic("not a mnemonic")
    with pytest.raises(ValueError):
        Keypair.generate(13)


def test_seed_and_secret_key_constructors_agree() -> None:
    kp = Keypair.from_mnemonic(DEV_PHRASE)
    assert kp.seed is not None
    from_seed = Keypair.from_seed(kp.seed)
    assert from_seed == kp
    assert from_seed.mnemonic is None
    from_secret = Keypair.from_secret_key(kp.secret_key)
    assert from_secret == kp
    assert from_secret.seed is None
    with pytest.raises(ValueError, match="32 bytes"):
        Keypair.from_seed(b"\x00" * 31)
    with pytest.raises(ValueError, match="64 bytes"):
        Keypair.from_secret_key(b"\x00" * 32)


def test_dev_keys_are_deterministic_and_documented_derivation() -> None:
    alice = Keypair.dev("alice")
    assert alice == Keypair.dev("alice")
    assert alice.ss58_address != Keypair.dev("bob").ss58_address
    seed = hashlib.blake2b(b"subnetlab-dev:alice", digest_size=32).digest()
    assert alice == Keypair.from_seed(seed)
    assert alice.seed == seed
    with pytest.raises(ValueError):
        Keypair.dev("")


def test_other_network_prefix() -> None:
    kp = Keypair.from_mnemonic(DEV_PHRASE, ss58_format=0)
    assert ss58_decode(kp.ss58_address, 0) == kp.public_key
    assert kp.ss58_address != DEV_PHRASE_SS58


def test_repr_hides_secrets() -> None:
    kp = Keypair.generate()
    assert kp.mnemonic is not None and kp.seed is not None
    for text in (repr(kp), str(kp)):
        assert kp.ss58_address in text
        assert kp.secret_key.hex() not in text
        assert kp.seed.hex() not in text
        assert repr(kp.secret_key) not in text
        assert repr(kp.seed) not in text
        assert kp.mnemonic.split()[0] + " " + kp.mnemonic.split()[1] not in text


def test_keypair_is_immutable_and_hashable() -> None:
    kp = Keypair.dev("alice")
    with pytest.raises(AttributeError):
        kp.public_key = b"\x00" * 32  # type: ignore[misc]
    assert len({kp, Keypair.dev("alice"), Keypair.dev("bob")}) == 2


# ---- sign / verify ------------------------------------------------------------------------


def test_sign_and_verify() -> None:
    kp = Keypair.dev("alice")
    msg = b"hello subnet"
    sig = kp.sign(msg)
    assert len(sig) == 64
    assert verify(sig, msg, kp.ss58_address)
    assert verify(sig, msg, kp.public_key)
    assert verify(sig.hex(), msg, kp.ss58_address)
    assert verify("0x" + sig.hex(), msg, kp.ss58_address)
    assert verify(bytearray(sig), bytearray(msg), bytearray(kp.public_key))
    assert kp.verify(sig, msg)
    # sr25519 signatures are randomised, yet every one verifies.
    assert kp.sign(msg) != sig
    assert verify(kp.sign(msg), msg, kp.ss58_address)


def test_verify_rejects_wrong_message_or_key() -> None:
    alice, bob = Keypair.dev("alice"), Keypair.dev("bob")
    sig = alice.sign(b"pay bob 1")
    assert not verify(sig, b"pay bob 2", alice.ss58_address)
    assert not verify(sig, b"pay bob 1", bob.ss58_address)
    assert not verify(sig, b"pay bob 1", bob.public_key)
    flipped = bytes([sig[0] ^ 1]) + sig[1:]
    assert not verify(flipped, b"pay bob 1", alice.ss58_address)


def test_verify_respects_network_prefix() -> None:
    alice = Keypair.dev("alice")
    sig = alice.sign(b"m")
    other = ss58_encode(alice.public_key, 7)
    assert not verify(sig, b"m", other)
    assert verify(sig, b"m", other, ss58_format=7)
    assert verify(sig, b"m", other, ss58_format=None)


@pytest.mark.parametrize(
    ("signature", "message", "key"),
    [
        (b"\x00" * 64, b"m", ALICE_SS58),  # not marked as a schnorrkel signature
        (b"\xff" * 64, b"m", ALICE_SS58),
        (b"\x00" * 63, b"m", ALICE_SS58),
        ("zz" * 64, b"m", ALICE_SS58),
        ("0x", b"m", ALICE_SS58),
        (None, b"m", ALICE_SS58),
        (b"\x00" * 64, "m", ALICE_SS58),
        (b"\x00" * 64, None, ALICE_SS58),
        (b"\x00" * 64, b"m", "not-an-address"),
        (b"\x00" * 64, b"m", b"\xff" * 32),  # not a curve point
        (b"\x00" * 64, b"m", b"\x01" * 31),
        (b"\x00" * 64, b"m", 12345),
        (b"\x00" * 64, b"m", ["x"]),
    ],
)
def test_verify_never_raises(signature: object, message: object, key: object) -> None:
    assert verify(signature, message, key) is False  # type: ignore[arg-type]


@settings(max_examples=200)
@given(
    signature=st.one_of(st.binary(), st.binary(min_size=64, max_size=64), st.text(), st.none()),
    message=st.one_of(st.binary(), st.text()),
    key=st.one_of(st.binary(), st.binary(min_size=32, max_size=32), st.text()),
)
def test_verify_fuzz_never_raises(signature: object, message: object, key: object) -> None:
    assert verify(signature, message, key) is False  # type: ignore[arg-type]


def test_sign_requires_bytes() -> None:
    with pytest.raises(TypeError):
        Keypair.dev("alice").sign("text")  # type: ignore[arg-type]
