"""Chain identity pieces without a server: block seals, the authority's key, the memory of
served blocks beside the store (`chain/seal.py`, `ledger/authority.py`, `ledger/memory.py`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from subnetlab.chain.model import Genesis
from subnetlab.chain.seal import seal_block, seal_message, seal_problem
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.authority import AuthorityError, authority_key
from subnetlab.ledger.memory import ChainMemory, LostStoreError
from subnetlab.ledger.store import StoreError

ALICE, BOB = Keypair.dev("alice"), Keypair.dev("bob")
GENESIS = "0x" + "11" * 32
BLOCK = "0x" + "22" * 32


# ---- seals ----------------------------------------------------------------------------------


def test_a_seal_verifies_for_exactly_its_header() -> None:
    seal = seal_block(ALICE, GENESIS, 7, BLOCK, 1234.5)
    assert len(seal) == 128
    assert seal_problem(ALICE.ss58_address, GENESIS, 7, BLOCK, 1234.5, seal) is None
    for changed in ((BOB.ss58_address, GENESIS, 7, BLOCK, 1234.5),
                    (ALICE.ss58_address, "0x" + "33" * 32, 7, BLOCK, 1234.5),
                    (ALICE.ss58_address, GENESIS, 8, BLOCK, 1234.5),
                    (ALICE.ss58_address, GENESIS, 7, "0x" + "44" * 32, 1234.5),
                    (ALICE.ss58_address, GENESIS, 7, BLOCK, 1234.25)):
        problem = seal_problem(*changed, seal)
        assert problem is not None and problem.startswith("bad seal"), changed


@pytest.mark.parametrize("seal", [None, 5, "", "zz" * 64, "00" * 63, "00" * 64])
def test_a_malformed_seal_is_a_bad_seal_not_a_crash(seal: object) -> None:
    problem = seal_problem(ALICE.ss58_address, GENESIS, 1, BLOCK, 1.0, seal)
    assert problem is not None and problem.startswith("bad seal"), problem


def test_the_seal_message_cannot_pass_for_an_extrinsic_payload() -> None:
    assert seal_message(GENESIS, 1, BLOCK, 1.0).startswith(b'["subnetlab-seal",')


# ---- the authority's key ---------------------------------------------------------------------


def test_the_dev_genesis_is_sealed_by_alice_without_a_key_file() -> None:
    assert Genesis().authority == ALICE.ss58_address
    assert authority_key(Genesis()) == ALICE
    assert authority_key(Genesis(authority=BOB.ss58_address)) == BOB


def test_a_genesis_authority_that_is_no_dev_key_needs_its_key_file(tmp_path: Path) -> None:
    key = Keypair.generate()
    genesis = Genesis(authority=key.ss58_address)
    with pytest.raises(AuthorityError, match="--authority-key"):
        authority_key(genesis)
    phrase = tmp_path / "phrase"
    assert key.mnemonic is not None
    phrase.write_text(key.mnemonic + "\n")
    assert authority_key(genesis, phrase) == key
    seed = tmp_path / "seed"
    assert key.seed is not None
    seed.write_text("0x" + key.seed.hex())
    assert authority_key(genesis, seed) == key


@pytest.mark.parametrize(("content", "needle"), [
    (None, "cannot read"),
    ("not a phrase at all", "not a key"),
    ("zz" * 32, "not a key"),
    (b"\xff\xfe", "cannot read"),
])
def test_a_bad_authority_key_file_is_named(
    tmp_path: Path, content: str | bytes | None, needle: str
) -> None:
    path = tmp_path / "key"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(AuthorityError) as info:
        authority_key(Genesis(), path)
    message = str(info.value)
    assert message.startswith(f"--authority-key {path}: ") and needle in message, message
    if isinstance(content, str):
        assert content not in message  # a secret is never repeated


def test_a_key_file_with_another_key_than_the_genesis_authority_is_refused(
    tmp_path: Path
) -> None:
    path = tmp_path / "key"
    assert BOB.seed is not None
    path.write_text(BOB.seed.hex())
    with pytest.raises(AuthorityError, match=f"the key is {BOB.ss58_address}, but the "
                                             f"genesis authority is {ALICE.ss58_address}"):
        authority_key(Genesis(), path)


# ---- the memory of served blocks ---------------------------------------------------------------


def test_nothing_remembered_checks_nothing(tmp_path: Path) -> None:
    memory = ChainMemory(tmp_path, "c", "redis://x")
    memory.check(GENESIS, 0)
    assert memory.load() is None


def test_a_store_behind_the_served_height_is_refused(tmp_path: Path) -> None:
    memory = ChainMemory(tmp_path, "c", "redis://x")
    memory.start(GENESIS, "s1")
    memory.record(42)
    again = ChainMemory(tmp_path, "c", "redis://x")  # the next start
    again.check(GENESIS, 42)
    again.check(GENESIS, 50)
    with pytest.raises(LostStoreError) as info:
        again.check(GENESIS, 0)
    message = str(info.value)
    for fragment in ("redis://x lost blocks", "holds block 0", "already served block 42",
                     GENESIS, "--new-chain"):
        assert fragment in message, message
    assert "\n" not in message
    assert again.load() is not None and again.load().salt == "s1"  # type: ignore[union-attr]


def test_a_store_serving_another_genesis_is_refused(tmp_path: Path) -> None:
    memory = ChainMemory(tmp_path, "c", "redis://x")
    memory.start(GENESIS, "")
    memory.record(3)
    other = "0x" + "99" * 32
    with pytest.raises(LostStoreError, match=f"genesis {GENESIS} up to block 3, not genesis "
                                             f"{other}"):
        ChainMemory(tmp_path, "c", "redis://x").check(other, 3)


def test_the_memory_is_per_store_and_chain(tmp_path: Path) -> None:
    memory = ChainMemory(tmp_path, "c", "redis://x")
    memory.start(GENESIS, "")
    memory.record(9)
    ChainMemory(tmp_path, "c", "redis://y").check(GENESIS, 0)
    ChainMemory(tmp_path, "d", "redis://x").check(GENESIS, 0)
    assert ChainMemory(tmp_path, "../c/x", "u").path.parent == tmp_path


def test_an_unreadable_memory_is_named(tmp_path: Path) -> None:
    memory = ChainMemory(tmp_path, "c", "redis://x")
    memory.path.write_text("{not json")
    with pytest.raises(LostStoreError, match="unreadable"):
        memory.check(GENESIS, 0)


def test_a_memory_that_cannot_be_written_is_a_store_error_naming_the_file(
    tmp_path: Path
) -> None:
    memory = ChainMemory(tmp_path / "missing-dir", "c", "redis://x")
    memory.start(GENESIS, "")
    with pytest.raises(StoreError, match=f"cannot remember block 5 in {memory.path}"):
        memory.record(5)
