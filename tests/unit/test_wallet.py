"""Wallets on disk: encryption round trip, the btcli-like layout, modes, and refusals.

Every test runs with `SUBNETLAB_HOME` in its own tmp dir, which is also how the CLI tests
keep away from the real ~/.subnetlab.
"""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from subnetlab import wallet
from subnetlab.keys.keypair import Keypair

PASSWORD = "correct horse battery staple"
MNEMONIC = str(Keypair.generate().mnemonic)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "slhome"
    monkeypatch.setenv(wallet.HOME_ENV, str(root))
    monkeypatch.delenv(wallet.PASSWORD_ENV, raising=False)
    return root


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root and its bytes: 'state untouched' means this is equal."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()} if root.exists() else {}


# ---- round trip -------------------------------------------------------------------------


def test_round_trip_gives_back_the_same_keys(home: Path) -> None:
    made = wallet.create_wallet("alice", PASSWORD, hotkey="miner")
    cold = wallet.load_coldkey("alice", PASSWORD)
    hot = wallet.load_hotkey("alice", "miner")
    assert cold.ss58_address == made.coldkey.ss58_address
    assert cold.mnemonic == made.coldkey.mnemonic
    assert hot.ss58_address == made.hotkey.ss58_address
    message = b"sign me"
    assert cold.verify(cold.sign(message), message)
    assert wallet.coldkey_address("alice") == cold.ss58_address
    assert wallet.hotkey_address("alice", "miner") == hot.ss58_address


def test_imported_mnemonic_and_seed_give_the_known_address() -> None:
    wallet.create_wallet("imported", PASSWORD, mnemonic=MNEMONIC)
    assert wallet.coldkey_address("imported") == Keypair.from_mnemonic(MNEMONIC).ss58_address
    seed = bytes(range(32))
    wallet.create_wallet("seeded", PASSWORD, mnemonic="0x" + seed.hex())
    loaded = wallet.load_coldkey("seeded", PASSWORD)
    assert loaded.ss58_address == Keypair.from_seed(seed).ss58_address


def test_password_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(wallet.PASSWORD_ENV, PASSWORD)
    made = wallet.create_wallet("env", None)
    assert wallet.load_coldkey("env").ss58_address == made.coldkey.ss58_address
    monkeypatch.setenv(wallet.PASSWORD_ENV, "something else")
    with pytest.raises(wallet.WrongPassword):
        wallet.load_coldkey("env")


def test_file_follows_the_documented_scrypt_and_aes_gcm_format(home: Path) -> None:
    """Decrypt with nothing but hashlib and cryptography, as the module docstring says."""
    made = wallet.create_wallet("doc", PASSWORD)
    document = json.loads((home / "wallets" / "doc" / "coldkey").read_text())
    crypto = document["crypto"]
    assert (crypto["kdf"], crypto["cipher"]) == ("scrypt", "aes-256-gcm")
    params = crypto["kdfparams"]
    key = hashlib.scrypt(PASSWORD.encode(), salt=bytes.fromhex(params["salt"]), n=params["n"],
                         r=params["r"], p=params["p"], dklen=32)
    plaintext = AESGCM(key).decrypt(
        bytes.fromhex(crypto["nonce"]), bytes.fromhex(crypto["ciphertext"]),
        f"subnetlab-coldkey-v1:{document['ss58_address']}".encode(),
    )
    assert json.loads(plaintext) == {"mnemonic": made.coldkey.mnemonic}


# ---- layout and permissions -------------------------------------------------------------


def test_layout_is_btcli_like_and_private(home: Path) -> None:
    made = wallet.create_wallet("w", PASSWORD, hotkey="default")
    wallet.create_hotkey("w", "second")
    root = home / "wallets"
    directory = root / "w"
    assert sorted(p.name for p in directory.iterdir()) == ["coldkey", "coldkeypub.txt",
                                                           "hotkeys"]
    assert sorted(p.name for p in (directory / "hotkeys").iterdir()) == ["default", "second"]
    for path in (directory / "coldkey", directory / "coldkeypub.txt",
                 directory / "hotkeys" / "default", directory / "hotkeys" / "second"):
        assert mode(path) == 0o600, path
    for path in (root, directory, directory / "hotkeys"):
        assert mode(path) == 0o700, path
    assert (directory / "coldkeypub.txt").read_text() == made.coldkey.ss58_address + "\n"
    assert not list(directory.rglob(".*.tmp")), "a temporary file was left behind"


def test_coldkey_is_encrypted_and_hotkeys_are_not(home: Path) -> None:
    made = wallet.create_wallet("w", PASSWORD)
    directory = home / "wallets" / "w"
    cold_bytes = (directory / "coldkey").read_bytes()
    assert made.coldkey.mnemonic is not None and made.coldkey.seed is not None
    for secret in (made.coldkey.mnemonic.encode(), made.coldkey.seed.hex().encode(),
                   made.coldkey.secret_key.hex().encode(), PASSWORD.encode()):
        assert secret not in cold_bytes
    # Hotkeys stay in the clear, as btcli's do: an unattended neuron must load them.
    hot = json.loads((directory / "hotkeys" / "default").read_text())
    assert hot["mnemonic"] == made.hotkey.mnemonic


def test_each_encryption_draws_a_fresh_salt_and_nonce() -> None:
    wallet.create_wallet("a", PASSWORD, mnemonic=MNEMONIC)
    wallet.create_wallet("b", PASSWORD, mnemonic=MNEMONIC)
    a = json.loads((wallet.wallet_path("a") / "coldkey").read_text())["crypto"]
    b = json.loads((wallet.wallet_path("b") / "coldkey").read_text())["crypto"]
    assert a["kdfparams"]["salt"] != b["kdfparams"]["salt"]
    assert a["nonce"] != b["nonce"] and a["ciphertext"] != b["ciphertext"]


def test_listing_and_showing_need_no_password() -> None:
    first = wallet.create_wallet("first", PASSWORD)
    wallet.create_hotkey("second", "h1")  # a hotkey-only wallet, as btcli allows
    infos = wallet.list_wallets()
    assert [i.name for i in infos] == ["first", "second"]
    assert infos[0].coldkey == first.coldkey.ss58_address
    assert infos[0].hotkeys == {"default": first.hotkey.ss58_address}
    assert infos[1].coldkey is None and list(infos[1].hotkeys) == ["h1"]


def test_coldkey_address_survives_a_lost_coldkeypub(home: Path) -> None:
    made = wallet.create_wallet("w", PASSWORD)
    (home / "wallets" / "w" / "coldkeypub.txt").unlink()
    assert wallet.coldkey_address("w") == made.coldkey.ss58_address


def test_home_override_moves_everything(home: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    wallet.create_wallet("here", PASSWORD)
    other = tmp_path / "elsewhere"
    monkeypatch.setenv(wallet.HOME_ENV, str(other))
    assert wallet.wallets_root() == other / "wallets"
    assert wallet.list_wallets() == []
    wallet.create_wallet("there", PASSWORD)
    assert (other / "wallets" / "there" / "coldkey").is_file()
    assert not (home / "wallets" / "there").exists()


# ---- refusals leave everything as it was ------------------------------------------------


def test_wrong_password_is_a_clear_error_and_changes_nothing(home: Path) -> None:
    wallet.create_wallet("w", PASSWORD)
    before = snapshot(home)
    with pytest.raises(wallet.WrongPassword, match="wrong password for the coldkey of wallet 'w'"):
        wallet.load_coldkey("w", "not the password")
    assert snapshot(home) == before


@pytest.mark.parametrize("edit", ["address", "ciphertext", "nonce"])
def test_a_modified_coldkey_file_does_not_decrypt(home: Path, edit: str) -> None:
    wallet.create_wallet("w", PASSWORD)
    other = Keypair.generate().ss58_address
    path = home / "wallets" / "w" / "coldkey"
    document = json.loads(path.read_text())
    if edit == "address":  # bound as associated data: swapping the address breaks the tag
        document["ss58_address"] = other
    else:
        value = document["crypto"][edit]
        document["crypto"][edit] = ("0" if value[0] != "0" else "1") + value[1:]
    path.write_text(json.dumps(document))
    with pytest.raises(wallet.WrongPassword):
        wallet.load_coldkey("w", PASSWORD)


@pytest.mark.parametrize(("params", "reason"), [
    ({"n": 2**30}, "kdfparams.n must be an integer in"),
    ({"n": 3000}, "kdfparams.n must be a power of two"),
    ({"r": 0}, "kdfparams.r must be an integer in"),
    ({"p": True}, "kdfparams.p must be an integer in"),
    ({"dklen": 16}, "kdfparams.dklen must be 32"),
])
def test_hostile_kdf_parameters_are_refused_before_deriving(
    home: Path, params: dict[str, object], reason: str
) -> None:
    wallet.create_wallet("w", PASSWORD)
    path = home / "wallets" / "w" / "coldkey"
    document = json.loads(path.read_text())
    document["crypto"]["kdfparams"].update(params)
    path.write_text(json.dumps(document))
    with pytest.raises(wallet.WalletError, match=reason):
        wallet.load_coldkey("w", PASSWORD)


def test_missing_password_writes_nothing(home: Path) -> None:
    with pytest.raises(wallet.PasswordRequired, match=wallet.PASSWORD_ENV):
        wallet.create_wallet("w", None)
    assert snapshot(home) == {}


def test_existing_wallet_is_not_overwritten_unless_asked(home: Path) -> None:
    first = wallet.create_wallet("w", PASSWORD)
    before = snapshot(home)
    with pytest.raises(wallet.WalletExists, match="already exists"):
        wallet.create_wallet("w", PASSWORD)
    with pytest.raises(wallet.WalletExists):
        wallet.create_hotkey("w", "default")
    assert snapshot(home) == before
    second = wallet.create_wallet("w", PASSWORD, overwrite=True)
    assert second.coldkey.ss58_address != first.coldkey.ss58_address
    assert wallet.coldkey_address("w") == second.coldkey.ss58_address


def test_bad_mnemonic_is_refused_without_echoing_it(home: Path) -> None:
    phrase = "abandon " * 11 + "wrongword"
    with pytest.raises(wallet.WalletError) as info:
        wallet.create_wallet("w", PASSWORD, mnemonic=phrase)
    assert "wrongword" not in str(info.value)
    assert snapshot(home) == {}


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", "-flag", "", "x" * 65,
                                  "sp ace"])
def test_unsafe_names_are_refused(home: Path, name: str) -> None:
    with pytest.raises(wallet.WalletError, match="is not allowed"):
        wallet.create_wallet(name, PASSWORD)
    with pytest.raises(wallet.WalletError, match=r"hotkey name .* is not allowed"):
        wallet.create_hotkey("ok", name)
    assert snapshot(home) == {}


def test_unknown_wallet_names_the_directory_searched(home: Path) -> None:
    for call in (lambda: wallet.load_coldkey("ghost", PASSWORD),
                 lambda: wallet.coldkey_address("ghost"),
                 lambda: wallet.load_hotkey("ghost"),
                 lambda: wallet.wallet_info("ghost")):
        with pytest.raises(wallet.WalletNotFound, match=f"no wallet 'ghost' in {home}"):
            call()


def test_unknown_hotkey_of_a_known_wallet() -> None:
    wallet.create_wallet("w", PASSWORD)
    with pytest.raises(wallet.WalletNotFound, match="hotkey 'nope' of wallet 'w' not found"):
        wallet.load_hotkey("w", "nope")


def test_a_key_file_that_is_not_json_is_named(home: Path) -> None:
    wallet.create_wallet("w", PASSWORD)
    (home / "wallets" / "w" / "hotkeys" / "default").write_text("not json")
    with pytest.raises(wallet.WalletError, match="not a subnetlab key file"):
        wallet.load_hotkey("w")


def test_a_hotkey_whose_secret_does_not_match_its_address_is_refused(home: Path) -> None:
    wallet.create_wallet("w", PASSWORD)
    path = home / "wallets" / "w" / "hotkeys" / "default"
    document = json.loads(path.read_text())
    document["mnemonic"] = MNEMONIC
    path.write_text(json.dumps(document))
    with pytest.raises(wallet.WalletError, match="does not match the stored address"):
        wallet.load_hotkey("w")
