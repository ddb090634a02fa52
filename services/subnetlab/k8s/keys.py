"""Keys on a cluster: which key a Subnet or Neuron uses, and how it sits in a Secret.

A key Secret holds one hotkey file in the wallet format of `subnetlab.wallet` (data key
`hotkey`), so a pod mounts it as `$SUBNETLAB_HOME/wallets/neuron/hotkeys/default` and the
ordinary `--wallet neuron --hotkey default` flags load it: no key ever appears in a pod
spec, an argument list or a log line. The address is kept beside it (`ss58Address`) and
in an annotation, so reading who a Secret belongs to never touches the secret part.

A Secret created by hand before the resource may instead hold just `mnemonic` (or a
`0x` `seed`): the operator adopts it and imports that key.

A sybil miner's further hotkeys sit in the same Secret, one hotkey file each under
`default-sybil-1`, `default-sybil-2`, ... (`neuron.command.sybil_key_names`), mounted
beside `default` and loaded with `--sybil-key default-sybil-1 ...`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from subnetlab.keys.keypair import Keypair
from subnetlab.neuron.command import sybil_key_names
from subnetlab.specs import KeySource
from subnetlab.wallet import WalletError, hotkey_document, hotkey_from_document, keypair_from_secret

HOTKEY_KEY = "hotkey"
ADDRESS_KEY = "ss58Address"
IMPORT_KEYS = ("mnemonic", "seed")
WALLET_NAME = "neuron"
HOTKEY_NAME = "default"
ADDRESS_ANNOTATION = "subnetlab.io/ss58-address"
SYBIL_ADDRESSES_ANNOTATION = "subnetlab.io/sybil-addresses"
_SYBIL_KEY = re.compile(re.escape(HOTKEY_NAME) + r"-sybil-[1-9][0-9]*")


class KeyMaterialError(ValueError):
    """A key that cannot be used; the message names the Secret and the field, never the
    secret itself."""


@dataclass(frozen=True)
class ResolvedKey:
    """The key a resource uses, and whether its Secret must be (re)written."""

    keypair: Keypair
    write_secret: bool


def neuron_secret_name(neuron: str) -> str:
    return f"{neuron}-hotkey"


def owner_secret_name(subnet: str) -> str:
    return f"{subnet}-owner"


def cluster_key_problem(source: KeySource, field: str) -> str | None:
    """Why a key source cannot work on a cluster (wallets live on a person's disk)."""
    if source.wallet:
        return (f"{field}.wallet: on-disk wallets do not exist on a cluster; give "
                f"{field}.devKey (a public test key) or nothing (the operator generates a key "
                "into a Secret; put your own in that Secret to import it)")
    return None


def encoded(string_data: Mapping[str, str]) -> dict[str, str]:
    """A Secret's `data` (base64) for `stringData`: what the API server returns, so that
    creating, applying and patching a Secret all write the same field."""
    return {k: base64.b64encode(v.encode()).decode() for k, v in string_data.items()}


def _key_file(keypair: Keypair) -> str:
    return json.dumps(hotkey_document(keypair), sort_keys=True)


def secret_data(keypair: Keypair) -> dict[str, str]:
    """`stringData` of a key Secret."""
    return {HOTKEY_KEY: _key_file(keypair), ADDRESS_KEY: keypair.ss58_address}


def sybil_secret_keys(count: int) -> list[str]:
    """The data keys of a sybil's further hotkeys, which are also their hotkey names in
    the pod's wallet (what `--sybil-key` names)."""
    return sybil_key_names(HOTKEY_NAME, count)


def _decoded(data: Mapping[str, str], key: str, where: str) -> str:
    try:
        return base64.b64decode(data[key], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise KeyMaterialError(f"{where}: data.{key} is not base64 of UTF-8 text") from None


def key_from_secret(data: Mapping[str, str] | None, where: str) -> Keypair | None:
    """The key in a Secret's (base64) `data`, None when it holds none.

    Errors name the Secret and the data key; they never quote the secret.
    """
    if not data:
        return None
    if HOTKEY_KEY in data:
        return _key_file_in(data, HOTKEY_KEY, where)
    try:
        for key in IMPORT_KEYS:
            if key in data:
                return keypair_from_secret(_decoded(data, key, where))
    except WalletError as exc:
        raise KeyMaterialError(str(exc)) from None
    return None


def _key_file_in(data: Mapping[str, str], key: str, where: str) -> Keypair:
    """The keypair of the hotkey file under data key `key`; errors name it, not the secret."""
    try:
        document = json.loads(_decoded(data, key, where))
    except json.JSONDecodeError:
        raise KeyMaterialError(f"{where}: data.{key} is not a key file (JSON)") from None
    try:
        return hotkey_from_document(document, f"{where}: data.{key}")
    except WalletError as exc:
        raise KeyMaterialError(str(exc)) from None


def stored_sybil_keys(data: Mapping[str, str] | None, where: str) -> dict[str, Keypair]:
    """Every sybil hotkey a Secret's (base64) `data` holds, by data key."""
    return {key: _key_file_in(data, key, where) for key in sorted(data or {})
            if data and _SYBIL_KEY.fullmatch(key)}


@dataclass(frozen=True)
class SybilKeys:
    """A sybil's further hotkeys, and what their Secret needs.

    `write` is the `stringData` to add (new or corrected entries); `surplus` the entries
    the spec no longer asks for (`sybilHotkeys` lowered, or the behaviour changed): their
    hotkeys are deregistered first, then the entries are dropped.
    """

    keys: list[Keypair] = field(default_factory=list)
    write: dict[str, str] = field(default_factory=dict)
    surplus: dict[str, Keypair] = field(default_factory=dict)

    @property
    def addresses(self) -> list[str]:
        return [key.ss58_address for key in self.keys]


def resolve_sybil_keys(source: KeySource, count: int, secret: Mapping[str, str] | None,
                       where: str) -> SybilKeys:
    """The `count` further hotkeys of a sybil: with `source.devKey` NAME, the dev keys
    `NAME-sybil-1` ... (as `subnetlab up` derives them); else the ones already in the
    Secret, and fresh ones for the rest."""
    stored = stored_sybil_keys(secret, where)
    names = sybil_secret_keys(count)
    dev_names = sybil_key_names(source.dev_key, count) if source.dev_key else []
    keys: list[Keypair] = []
    write: dict[str, str] = {}
    for i, name in enumerate(names):
        have = stored.get(name)
        wanted = Keypair.dev(dev_names[i]) if dev_names else have or Keypair.generate()
        if have is None or have.ss58_address != wanted.ss58_address:
            write[name] = _key_file(wanted)
        keys.append(wanted)
    return SybilKeys(keys, write, {k: v for k, v in stored.items() if k not in names})


def resolve_key(source: KeySource, secret: Mapping[str, str] | None, where: str) -> ResolvedKey:
    """The key to use: the spec's dev key, else the one in the Secret, else a new one.

    `secret` is the existing Secret's `data` (None: no Secret). The Secret is (re)written
    when it is missing, holds a different key than the spec's dev key, or holds an imported
    mnemonic that is not yet in the wallet format.
    """
    stored = key_from_secret(secret, where)
    in_wallet_format = bool(secret) and HOTKEY_KEY in (secret or {})
    if source.dev_key:
        wanted = Keypair.dev(source.dev_key)
        same = stored is not None and stored.ss58_address == wanted.ss58_address
        return ResolvedKey(wanted, write_secret=not (same and in_wallet_format))
    if stored is not None:
        return ResolvedKey(stored, write_secret=not in_wallet_format)
    return ResolvedKey(Keypair.generate(), write_secret=True)
