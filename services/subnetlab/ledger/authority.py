"""The key that seals blocks: the one whose address the genesis names as `authority`.

A dev chain's authority is a dev key (`Keypair.dev`, alice unless the genesis says
otherwise), found by its address with no file at all. Any other authority's secret is given
to `ledger serve --authority-key FILE`: the file holds its BIP-39 phrase, or its 32-byte
seed in hex (0x optional). Either way the key must be the genesis's: a ledger that sealed
with another key would write blocks its own audit refuses.
"""

from __future__ import annotations

from pathlib import Path

from subnetlab.chain.model import Genesis
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.genesis import DEV_ACCOUNTS


class AuthorityError(ValueError):
    """No usable key for the genesis's authority; the message says what to give."""


def dev_authority_name(genesis: Genesis) -> str | None:
    """The dev key name whose address is the genesis's authority, if it is one."""
    for name in DEV_ACCOUNTS:  # the dev keys a genesis may name without a key file
        if Keypair.dev(name).ss58_address == genesis.authority:
            return name
    return None


def authority_key(genesis: Genesis, key_file: Path | None = None) -> Keypair:
    """The authority's keypair: from `key_file`, or the dev key the genesis names."""
    if key_file is None:
        name = dev_authority_name(genesis)
        if name is None:
            raise AuthorityError(
                f"the genesis authority {genesis.authority} is not a dev key: give its "
                "secret with --authority-key FILE (a BIP-39 phrase or a 32-byte hex seed)")
        return Keypair.dev(name)
    keypair = _read_key(key_file)
    if keypair.ss58_address != genesis.authority:
        raise AuthorityError(
            f"--authority-key {key_file}: the key is {keypair.ss58_address}, but the "
            f"genesis authority is {genesis.authority}")
    return keypair


def _read_key(path: Path) -> Keypair:
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise AuthorityError(f"--authority-key {path}: cannot read it ({exc})") from None
    hex_text = text[2:] if text[:2] in ("0x", "0X") else text
    try:
        if len(hex_text) == 64:
            return Keypair.from_seed(bytes.fromhex(hex_text))
        return Keypair.from_mnemonic(text)
    except ValueError as exc:  # the message never repeats the secret
        raise AuthorityError(f"--authority-key {path}: not a key: {exc}") from None
