"""On-disk wallets, laid out like btcli's, so people who know Bittensor find their keys.

::

    $SUBNETLAB_HOME/wallets/          (default ~/.subnetlab/wallets/)        mode 0700
        NAME/                                                                mode 0700
            coldkey           the coldkey's secret, encrypted with a password   0600
            coldkeypub.txt    the coldkey's SS58 address, one line              0600
            hotkeys/                                                         mode 0700
                HOTKEY        a hotkey's secret, NOT encrypted (as btcli does)  0600

Why the split: the coldkey owns the funds and stake, is used rarely and by a person, so it
is encrypted and every use asks for the password; a hotkey signs weights and requests all
day from an unattended process, so it stays in the clear (protected by file modes), and
losing one costs a registration, not the funds. ``coldkeypub.txt`` lets read-only commands
(balances, stake lists) name the coldkey without asking for its password.

Coldkey encryption: scrypt (n=2**14, r=8, p=1, 16-byte salt) derives a 32-byte key from
the password; AES-256-GCM (12-byte nonce) encrypts the secret with the SS58 address as
associated data, so a file whose public address was edited does not decrypt. The KDF
parameters are stored in the file, so stronger ones can be used later without breaking
old wallets; a wrong password (or a modified file) fails the GCM tag check.

The secret stored is the BIP-39 mnemonic when the key has one, else its 32-byte seed, else
its 64-byte secret key (see :class:`~subnetlab.keys.keypair.Keypair`).

Passwords come from the caller, else the ``SUBNETLAB_PASSWORD`` environment variable; this
module never prompts (the CLI does). Wallet and hotkey names are plain file names (letters,
digits, ``-``, ``_``, ``.``, not starting with ``.`` or ``-``), which rules out path
traversal.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from subnetlab.keys.keypair import Keypair
from subnetlab.keys.ss58 import is_valid_ss58

__all__ = [
    "HOME_ENV",
    "PASSWORD_ENV",
    "NewWallet",
    "PasswordRequired",
    "WalletError",
    "WalletExists",
    "WalletInfo",
    "WalletNotFound",
    "WrongPassword",
    "check_name",
    "coldkey_address",
    "create_hotkey",
    "create_wallet",
    "ensure_creatable",
    "hotkey_address",
    "hotkey_document",
    "hotkey_from_document",
    "keypair_from_secret",
    "list_hotkeys",
    "list_wallets",
    "load_coldkey",
    "load_hotkey",
    "password_from_env",
    "resolve_password",
    "subnetlab_home",
    "wallet_info",
    "wallet_path",
    "wallets_root",
    "write_private",
]

HOME_ENV = "SUBNETLAB_HOME"
PASSWORD_ENV = "SUBNETLAB_PASSWORD"
FORMAT_VERSION = 1

COLDKEY_FILE = "coldkey"
COLDKEYPUB_FILE = "coldkeypub.txt"
HOTKEYS_DIR = "hotkeys"

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
KEY_LENGTH = 32
SALT_LENGTH = 16
NONCE_LENGTH = 12
CIPHER = "aes-256-gcm"
# Bounds on KDF parameters read from a file: a hostile file must not make us allocate
# gigabytes or spin for minutes before failing.
_MAX_SCRYPT_N = 2**20
_MAX_SCRYPT_R = 32
_MAX_SCRYPT_P = 16

_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
_SEED_RE = re.compile(r"0x[0-9a-fA-F]{64}")


class WalletError(ValueError):
    """A wallet problem the user can fix; the message is one line that says what to do."""


class WalletNotFound(WalletError):  # noqa: N818 -- reads better at the call site
    """The wallet, coldkey or hotkey does not exist on disk."""


class WalletExists(WalletError):  # noqa: N818
    """Creating would overwrite an existing key (allowed with ``overwrite``)."""


class WrongPassword(WalletError):  # noqa: N818
    """The password does not decrypt the coldkey (or the file was modified)."""


class PasswordRequired(WalletError):  # noqa: N818
    """No password was given and none is set in the environment."""


class NewWallet(NamedTuple):
    """What :func:`create_wallet` made; the keypairs carry the mnemonics to show once."""

    name: str
    path: Path
    coldkey: Keypair
    hotkey_name: str
    hotkey: Keypair


@dataclass(frozen=True)
class WalletInfo:
    """The public side of a wallet: readable without any password."""

    name: str
    path: Path
    coldkey: str | None
    hotkeys: dict[str, str] = field(default_factory=dict)
    """Hotkey name -> SS58 address."""


# ---- locations and names ----------------------------------------------------------------


def subnetlab_home() -> Path:
    """``$SUBNETLAB_HOME``, else ``~/.subnetlab``: the root of everything kept on disk."""
    configured = os.environ.get(HOME_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".subnetlab"


def wallets_root() -> Path:
    """The directory holding one sub-directory per wallet."""
    return subnetlab_home() / "wallets"


def check_name(name: str, what: str = "wallet name") -> str:
    """Return ``name`` if it is a safe file name, else raise :class:`WalletError`.

    Names end up in paths; refusing separators, leading dots and anything exotic is what
    keeps ``--name ../../etc`` from escaping the wallets directory.
    """
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise WalletError(
            f"{what} {name!r} is not allowed: use 1-64 letters, digits, '-', '_' or '.', "
            "not starting with '.' or '-'"
        )
    return name


def wallet_path(name: str) -> Path:
    """The directory of wallet ``name`` (which need not exist)."""
    return wallets_root() / check_name(name)


def _hotkey_file(name: str, hotkey: str) -> Path:
    return wallet_path(name) / HOTKEYS_DIR / check_name(hotkey, "hotkey name")


def _existing_wallet(name: str) -> Path:
    """The directory of wallet ``name``, or WalletNotFound saying where we looked.

    A missing wallet is the most common mistake (a typo in ``--name``, another
    ``$SUBNETLAB_HOME``); naming the directory searched answers both at once.
    """
    directory = wallet_path(name)
    if not directory.is_dir():
        raise WalletNotFound(
            f"no wallet '{name}' in {wallets_root()} (create it with "
            f"`subnetlab wallet new --name {name}`, or set {HOME_ENV})"
        )
    return directory


# ---- passwords --------------------------------------------------------------------------


def password_from_env() -> str | None:
    """``$SUBNETLAB_PASSWORD`` when set and non-empty."""
    return os.environ.get(PASSWORD_ENV) or None


def resolve_password(password: str | None) -> str:
    """The given password, else the environment's; never empty."""
    resolved = password if password else password_from_env()
    if not resolved:
        raise PasswordRequired(
            f"a coldkey password is needed: pass one or set {PASSWORD_ENV}"
        )
    return resolved


# ---- files ------------------------------------------------------------------------------


def _private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) and make ``path`` itself owner-only."""
    if not path.parent.exists():
        _private_dir(path.parent)
    path.mkdir(mode=0o700, exist_ok=True)
    path.chmod(0o700)


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600, in an owner-only directory.

    The file is written under a temporary name and renamed, so a crash never leaves a
    half-written key, and it is created 0600 from the start, so the secret is never
    readable by others, not even for a moment.
    """
    _private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _write_json(path: Path, document: dict[str, Any]) -> None:
    write_private(path, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode())


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WalletNotFound(f"{what} not found (no file {path})") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WalletError(f"{path}: not a subnetlab key file ({exc.msg})") from None
    if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
        raise WalletError(f"{path}: not a version-{FORMAT_VERSION} subnetlab key file")
    return document


# ---- secrets ----------------------------------------------------------------------------


def _secret_fields(keypair: Keypair) -> dict[str, str]:
    """The most portable form of the key's secret: mnemonic, else seed, else secret key."""
    if keypair.mnemonic:
        return {"mnemonic": keypair.mnemonic}
    if keypair.seed is not None:
        return {"seed": "0x" + keypair.seed.hex()}
    return {"secret_key": "0x" + keypair.secret_key.hex()}


def _hex_field(value: object, where: str) -> bytes:
    if not isinstance(value, str):
        raise WalletError(f"{where} must be a hex string")
    try:
        return bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        raise WalletError(f"{where} is not valid hex") from None


def _keypair_from_fields(fields: dict[str, Any], where: str) -> Keypair:
    """Rebuild a keypair from :func:`_secret_fields` output, naming the file when bad."""
    try:
        if isinstance(fields.get("mnemonic"), str):
            return Keypair.from_mnemonic(fields["mnemonic"])
        if "seed" in fields:
            return Keypair.from_seed(_hex_field(fields["seed"], f"{where}: seed"))
        if "secret_key" in fields:
            return Keypair.from_secret_key(_hex_field(fields["secret_key"], f"{where}: key"))
    except WalletError:
        raise
    except (TypeError, ValueError) as exc:
        raise WalletError(f"{where}: the stored secret is invalid ({exc})") from None
    raise WalletError(f"{where}: holds no mnemonic, seed or secret key")


def keypair_from_secret(secret: str | None) -> Keypair:
    """A new random keypair, or the one of a BIP-39 mnemonic or a ``0x`` 32-byte seed.

    Errors never repeat the secret: it would end up in terminals and logs.
    """
    if secret is None:
        return Keypair.generate()
    text = secret.strip()
    if _SEED_RE.fullmatch(text):
        return Keypair.from_seed(bytes.fromhex(text[2:]))
    try:
        return Keypair.from_mnemonic(text)
    except ValueError as exc:
        raise WalletError(str(exc)) from None


def _derive_key(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    # OpenSSL needs about 128 * r * (n + p) bytes; the default 32 MiB cap is too tight
    # for the larger parameters a file may legitimately carry.
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=KEY_LENGTH,
        maxmem=256 * r * (n + p) + 2**20,
    )


def _associated_data(ss58: str) -> bytes:
    return f"subnetlab-coldkey-v{FORMAT_VERSION}:{ss58}".encode()


def _encrypt(secret: dict[str, str], password: str, ss58: str) -> dict[str, Any]:
    salt = secrets.token_bytes(SALT_LENGTH)
    nonce = secrets.token_bytes(NONCE_LENGTH)
    key = _derive_key(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    plaintext = json.dumps(secret, sort_keys=True).encode()
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, _associated_data(ss58))
    return {
        "kdf": "scrypt",
        "kdfparams": {"n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "dklen": KEY_LENGTH,
                      "salt": salt.hex()},
        "cipher": CIPHER,
        "nonce": nonce.hex(),
        "ciphertext": ciphertext.hex(),
    }


def _bounded_int(params: dict[str, Any], name: str, hi: int, where: str) -> int:
    value = params.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= hi:
        raise WalletError(f"{where}: kdfparams.{name} must be an integer in [1, {hi}]")
    return value


def _scrypt_params(crypto: dict[str, Any], where: str) -> tuple[bytes, int, int, int]:
    """Salt, n, r, p from a coldkey file, refusing anything unsupported or outsized."""
    params = crypto.get("kdfparams")
    if crypto.get("kdf") != "scrypt" or not isinstance(params, dict):
        raise WalletError(f"{where}: unsupported key derivation (expected scrypt)")
    if params.get("dklen", KEY_LENGTH) != KEY_LENGTH:
        raise WalletError(f"{where}: kdfparams.dklen must be {KEY_LENGTH}")
    n = _bounded_int(params, "n", _MAX_SCRYPT_N, where)
    if n < 2 or n & (n - 1):
        raise WalletError(f"{where}: kdfparams.n must be a power of two")
    r = _bounded_int(params, "r", _MAX_SCRYPT_R, where)
    p = _bounded_int(params, "p", _MAX_SCRYPT_P, where)
    return _hex_field(params.get("salt"), f"{where}: kdfparams.salt"), n, r, p


def _decrypt(document: dict[str, Any], password: str, where: str, wallet: str) -> bytes:
    crypto = document.get("crypto")
    ss58 = document.get("ss58_address")
    if not isinstance(crypto, dict) or not isinstance(ss58, str):
        raise WalletError(f"{where}: missing the crypto section or the address")
    if crypto.get("cipher") != CIPHER:
        raise WalletError(f"{where}: unsupported cipher (expected {CIPHER})")
    salt, n, r, p = _scrypt_params(crypto, where)
    nonce = _hex_field(crypto.get("nonce"), f"{where}: nonce")
    ciphertext = _hex_field(crypto.get("ciphertext"), f"{where}: ciphertext")
    if len(nonce) != NONCE_LENGTH:
        raise WalletError(f"{where}: nonce must be {NONCE_LENGTH} bytes")
    key = _derive_key(password, salt, n, r, p)
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, _associated_data(ss58))
    except InvalidTag:
        raise WrongPassword(
            f"wrong password for the coldkey of wallet '{wallet}' (or {where} was modified)"
        ) from None


# ---- creating ---------------------------------------------------------------------------


def _refuse_existing(paths: list[Path], overwrite: bool) -> None:
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise WalletExists(f"{existing[0]} already exists (--overwrite replaces it)")


def _public_fields(keypair: Keypair) -> dict[str, Any]:
    return {
        "version": FORMAT_VERSION,
        "ss58_address": keypair.ss58_address,
        "public_key": "0x" + keypair.public_key.hex(),
    }


def _wallet_dirs(name: str) -> Path:
    """Create (or tighten) the wallets root, the wallet and its hotkeys dir: all 0700."""
    directory = wallet_path(name)
    for path in (wallets_root(), directory, directory / HOTKEYS_DIR):
        _private_dir(path)
    return directory


def _save_coldkey(name: str, keypair: Keypair, password: str) -> None:
    directory = _wallet_dirs(name)
    document = {**_public_fields(keypair), "kind": "coldkey",
                "crypto": _encrypt(_secret_fields(keypair), password, keypair.ss58_address)}
    _write_json(directory / COLDKEY_FILE, document)
    write_private(directory / COLDKEYPUB_FILE, (keypair.ss58_address + "\n").encode())


def hotkey_document(keypair: Keypair) -> dict[str, Any]:
    """A hotkey file's content, for writers that keep it elsewhere (the operator's Secrets)."""
    return {**_public_fields(keypair), "kind": "hotkey", **_secret_fields(keypair)}


def hotkey_from_document(document: object, where: str) -> Keypair:
    """The keypair of a hotkey file's content read from elsewhere; errors name `where`."""
    if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
        raise WalletError(f"{where}: not a version-{FORMAT_VERSION} subnetlab key file")
    return _check_address(_keypair_from_fields(document, where), document, where)


def _save_hotkey(name: str, hotkey: str, keypair: Keypair) -> None:
    document = hotkey_document(keypair)
    _wallet_dirs(name)
    _write_json(_hotkey_file(name, hotkey), document)


def ensure_creatable(name: str, hotkey: str = "default", overwrite: bool = False) -> None:
    """Raise WalletError unless :func:`create_wallet` could write these names.

    Lets the CLI refuse a bad name or an existing wallet before it asks for a password.
    """
    directory = wallet_path(name)
    _refuse_existing(
        [directory / COLDKEY_FILE, directory / COLDKEYPUB_FILE, _hotkey_file(name, hotkey)],
        overwrite,
    )


def create_wallet(
    name: str,
    password: str | None,
    hotkey: str = "default",
    mnemonic: str | None = None,
    overwrite: bool = False,
) -> NewWallet:
    """Create wallet ``name``: an encrypted coldkey and one hotkey.

    ``mnemonic`` (a BIP-39 phrase or a ``0x`` seed) imports the coldkey instead of
    generating one; the hotkey is always new. Nothing is written when anything would be
    overwritten without ``overwrite``, or when the password or mnemonic is missing/bad.
    """
    ensure_creatable(name, hotkey, overwrite)
    secret = resolve_password(password)
    coldkey = keypair_from_secret(mnemonic)
    hot = Keypair.generate()
    _save_coldkey(name, coldkey, secret)
    _save_hotkey(name, hotkey, hot)
    return NewWallet(name, wallet_path(name), coldkey, hotkey, hot)


def create_hotkey(
    name: str, hotkey: str = "default", mnemonic: str | None = None, overwrite: bool = False
) -> Keypair:
    """Add hotkey ``hotkey`` to wallet ``name`` (new, or imported from ``mnemonic``).

    Like btcli, a hotkey does not need the wallet's coldkey to exist.
    """
    path = _hotkey_file(name, hotkey)
    _refuse_existing([path], overwrite)
    keypair = keypair_from_secret(mnemonic)
    _save_hotkey(name, hotkey, keypair)
    return keypair


# ---- loading ----------------------------------------------------------------------------


def _check_address(keypair: Keypair, document: dict[str, Any], where: str) -> Keypair:
    """The secret must match the public address stored beside it, or the file is damaged."""
    if document.get("ss58_address") != keypair.ss58_address:
        raise WalletError(f"{where}: the secret does not match the stored address")
    return keypair


def load_coldkey(name: str, password: str | None = None) -> Keypair:
    """Decrypt wallet ``name``'s coldkey (password given, else ``$SUBNETLAB_PASSWORD``)."""
    path = _existing_wallet(name) / COLDKEY_FILE
    document = _read_json(path, f"coldkey of wallet '{name}'")
    plaintext = _decrypt(document, resolve_password(password), str(path), name)
    try:
        fields = json.loads(plaintext)
    except json.JSONDecodeError:
        raise WalletError(f"{path}: the decrypted secret is not valid") from None
    if not isinstance(fields, dict):
        raise WalletError(f"{path}: the decrypted secret is not valid")
    return _check_address(_keypair_from_fields(fields, str(path)), document, str(path))


def coldkey_address(name: str) -> str:
    """The SS58 address of wallet ``name``'s coldkey, without its password.

    Read from ``coldkeypub.txt``, or from the public field of the encrypted file when the
    ``.txt`` is missing (a wallet copied by hand).
    """
    directory = _existing_wallet(name)
    try:
        address = (directory / COLDKEYPUB_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        document = _read_json(directory / COLDKEY_FILE, f"coldkey of wallet '{name}'")
        address = str(document.get("ss58_address", ""))
    if not is_valid_ss58(address):
        raise WalletError(f"{directory}: the stored coldkey address {address!r} is not valid")
    return address


def load_hotkey(name: str, hotkey: str = "default") -> Keypair:
    """Wallet ``name``'s hotkey ``hotkey`` (hotkeys are stored unencrypted)."""
    _existing_wallet(name)
    path = _hotkey_file(name, hotkey)
    return hotkey_from_document(_read_json(path, f"hotkey '{hotkey}' of wallet '{name}'"),
                                str(path))


def hotkey_address(name: str, hotkey: str = "default") -> str:
    """The SS58 address of a hotkey, read from its file's public field."""
    _existing_wallet(name)
    path = _hotkey_file(name, hotkey)
    address = _read_json(path, f"hotkey '{hotkey}' of wallet '{name}'").get("ss58_address")
    if not isinstance(address, str) or not is_valid_ss58(address):
        raise WalletError(f"{path}: the stored address {address!r} is not valid")
    return address


def list_hotkeys(name: str) -> list[str]:
    """Names of the hotkeys of wallet ``name``, sorted (temporary files skipped)."""
    directory = wallet_path(name) / HOTKEYS_DIR
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if p.is_file() and _NAME_RE.fullmatch(p.name))


def wallet_info(name: str) -> WalletInfo:
    """Addresses of a wallet's coldkey and hotkeys; WalletNotFound if it has none of them."""
    directory = _existing_wallet(name)
    try:
        coldkey: str | None = coldkey_address(name)
    except WalletNotFound:
        coldkey = None
    hotkeys = {hk: hotkey_address(name, hk) for hk in list_hotkeys(name)}
    return WalletInfo(name, directory, coldkey, hotkeys)


def list_wallets() -> list[WalletInfo]:
    """Every wallet under :func:`wallets_root`, by name."""
    root = wallets_root()
    if not root.is_dir():
        return []
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and _NAME_RE.fullmatch(p.name))
    return [wallet_info(name) for name in names]
