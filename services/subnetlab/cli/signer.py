"""Who signs a chain command: a wallet on disk, or a public dev key of a local chain.

A local chain's genesis funds the dev accounts and makes `alice` its sudo key (and `up`
makes dev keys the subnet owners), so on a laptop the natural signer is often one of
them. ``--dev-key NAME`` signs with :meth:`Keypair.dev` of that name instead of a wallet:
no files, no password, nothing to derive by hand. The keys are public, so this is for
local testnets only, as the help says.

With a dev key, a hotkey option takes an SS58 address or another dev key's name, and
``default`` is the dev key itself (one key as coldkey and hotkey, as `up` registers them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer

from subnetlab.cli.errors import checked, fail
from subnetlab.cli.shared import ask_password, wallet_option
from subnetlab.keys.keypair import Keypair
from subnetlab.keys.ss58 import is_valid_ss58
from subnetlab.ledger.client import LedgerClient
from subnetlab.ledger.genesis import DEV_ACCOUNTS
from subnetlab.wallet import (
    WalletError,
    coldkey_address,
    hotkey_address,
    load_coldkey,
    load_hotkey,
    wallet_info,
)

DEFAULT_WALLET = "default"

SignerWallet = Annotated[
    str | None, wallet_option(f" \\[default: {DEFAULT_WALLET}]", show_default=False)]
"""A signer's wallet: None tells "not given" from `default`, so --dev-key can exclude it."""
DevKey = Annotated[
    str | None,
    typer.Option("--dev-key", metavar="NAME", show_default=False,
                 help=f"Sign with the public dev key NAME instead of a wallet (local chains: "
                      f"{', '.join(DEV_ACCOUNTS)} are funded, alice is sudo). Not with --name."),
]


@dataclass(frozen=True)
class Signer:
    """A wallet name, or a dev key; exactly one of the two."""

    wallet: str | None
    dev: Keypair | None
    dev_name: str = ""

    def options(self) -> str:
        """The options that name this signer again, for a hint: `--name val`."""
        return f"--dev-key {self.dev_name}" if self.dev is not None else f"--name {self.wallet}"

    def coldkey(self, client: LedgerClient) -> Keypair:
        """The coldkey, decrypted only once the ledger has answered.

        Order matters to the user: a missing wallet or a stopped ledger is reported before
        anyone types a password for nothing.
        """
        if self.dev is not None:
            client.chain_id()
            return self.dev
        assert self.wallet is not None
        checked(coldkey_address, self.wallet)
        client.chain_id()
        password = ask_password(confirm=False)
        return checked(load_coldkey, self.wallet, password)

    def coldkey_address(self) -> str:
        """The coldkey's address, without a password."""
        if self.dev is not None:
            return self.dev.ss58_address
        assert self.wallet is not None
        info = checked(wallet_info, self.wallet)
        if info.coldkey is None:
            fail(f"wallet '{self.wallet}' has no coldkey")
        return info.coldkey

    def hotkey_names(self) -> dict[str, str]:
        """Address -> hotkey name, to label a wallet's own hotkeys in tables."""
        if self.wallet is None:
            return {}
        return {address: name for name, address in checked(wallet_info,
                                                            self.wallet).hotkeys.items()}

    def hotkey(self, name: str) -> Keypair:
        """The hotkey that signs (weights): a wallet's hotkey file, or a dev key."""
        if self.dev is not None:
            return self.dev if name == DEFAULT_WALLET else _dev(name, "--hotkey")
        assert self.wallet is not None
        return checked(load_hotkey, self.wallet, name)

    def own_hotkey_address(self, name: str) -> str:
        """A hotkey of this signer by name (`register`): the wallet's, or a dev key's."""
        if self.dev is not None:
            return self.hotkey(name).ss58_address
        assert self.wallet is not None
        return checked(hotkey_address, self.wallet, name)

    def any_hotkey_address(self, value: str) -> str:
        """An SS58 address as is, else a hotkey of this signer by name (stake, deregister)."""
        if is_valid_ss58(value):
            return value
        if self.dev is not None:
            return self.own_hotkey_address(value)
        assert self.wallet is not None
        try:
            return hotkey_address(self.wallet, value)
        except WalletError as exc:
            fail(f"--hotkey {value!r}: neither an SS58 address nor a hotkey of wallet "
                 f"'{self.wallet}' ({exc})")


def _dev(name: str, option: str) -> Keypair:
    if not name.strip():
        fail(f"{option}: give a dev key name, e.g. {option} alice")
    return Keypair.dev(name)


def signer(name: str | None, dev_key: str | None) -> Signer:
    """The signer the options name: ``--dev-key`` or ``--name`` (default wallet otherwise)."""
    if dev_key is not None and name is not None:
        fail("--dev-key and --name/--wallet are exclusive: sign with a dev key or a wallet, "
             "not both")
    if dev_key is not None:
        return Signer(None, _dev(dev_key, "--dev-key"), dev_key)
    return Signer(name or DEFAULT_WALLET, None)
