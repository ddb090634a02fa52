"""Keys on a cluster: which key a Subnet or Neuron uses, and how it sits in a Secret.

A key Secret holds one hotkey file in the wallet format of `subnetlab.wallet` (data key
`hotkey`), so a pod mounts it as `$SUBNETLAB_HOME/wallets/neuron/hotkeys/default` and the
ordinary `--wallet neuron --hotkey default` flags load it: no key ever appears in a pod
spec, an argument list or a log line. The address is kept beside it (`ss58Address`) and
in an annotation, so reading who a Secret belongs to never touches the secret part.

A Secret created by hand before the resource may instead hold just `mnemonic` (or a
`0x` `seed`): the operator adopts it and imports that key.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass

from subnetlab.keys.keypair import Keypair
from subnetlab.specs import KeySource
from subnetlab.wallet import WalletError, hotkey_document, hotkey_from_document, keypair_from_secret

HOTKEY_KEY = "hotkey"
ADDRESS_KEY = "ss58Address"
IMPORT_KEYS = ("mnemonic", "seed")
WALLET_NAME = "neuron"
HOTKEY_NAME = "default"
ADDRESS_ANNOTATION = "subnetlab.io/ss58-address"


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


def secret_data(keypair: Keypair) -> dict[str, str]:
    """`stringData` of a key Secret."""
    return {HOTKEY_KEY: json.dumps(hotkey_document(keypair), sort_keys=True),
            ADDRESS_KEY: keypair.ss58_address}


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
    try:
        if HOTKEY_KEY in data:
            try:
                document = json.loads(_decoded(data, HOTKEY_KEY, where))
            except json.JSONDecodeError:
                raise KeyMaterialError(
                    f"{where}: data.{HOTKEY_KEY} is not a key file (JSON)") from None
            return hotkey_from_document(document, f"{where}: data.{HOTKEY_KEY}")
        for key in IMPORT_KEYS:
            if key in data:
                return keypair_from_secret(_decoded(data, key, where))
    except WalletError as exc:
        raise KeyMaterialError(str(exc)) from None
    return None


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
