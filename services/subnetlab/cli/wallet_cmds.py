"""`subnetlab wallet new|new-hotkey|list|show|balance`: wallets on disk, like btcli's.

The files and their encryption are :mod:`subnetlab.wallet`'s business; these commands only
ask for what is missing (the password, on a terminal), refuse what cannot work before
asking (a bad name, an existing wallet, a bad mnemonic), and print the result as a table
or, with `--json`, for scripts.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from subnetlab.cli.errors import OneLineCommand, OneLineGroup, checked
from subnetlab.cli.shared import (
    DEFAULT_LEDGER_URL,
    AsJson,
    HotkeyName,
    LedgerUrl,
    WalletName,
    ask_password,
    check_address,
    console,
    ledger_session,
    print_json,
    print_table,
)
from subnetlab.ledger.client import format_rao
from subnetlab.wallet import (
    NewWallet,
    WalletInfo,
    coldkey_address,
    create_hotkey,
    create_wallet,
    ensure_creatable,
    keypair_from_secret,
    list_wallets,
    wallet_info,
)

wallet_app = typer.Typer(
    cls=OneLineGroup,
    help="Create and inspect wallets: an encrypted coldkey and hotkeys, like btcli's.",
    no_args_is_help=True,
)

Mnemonic = Annotated[
    str | None,
    typer.Option("--mnemonic", help="Import this BIP-39 phrase (or 0x seed); '-' reads stdin."),
]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace keys that exist.")]


def _read_mnemonic(mnemonic: str | None) -> str | None:
    """`--mnemonic -` reads the phrase from stdin, keeping it out of shell history."""
    if mnemonic == "-":
        return sys.stdin.readline().strip()
    return mnemonic


# ---- commands ---------------------------------------------------------------------------


@wallet_app.command("new", cls=OneLineCommand)
def new(
    name: WalletName = "default",
    hotkey: HotkeyName = "default",
    mnemonic: Mnemonic = None,
    overwrite: Overwrite = False,
    as_json: AsJson = False,
) -> None:
    """Create a wallet: an encrypted coldkey (new, or imported) and one new hotkey."""
    secret = _read_mnemonic(mnemonic)
    # Refuse bad names, an existing wallet or a bad mnemonic before asking for a password.
    checked(ensure_creatable, name, hotkey, overwrite)
    if secret is not None:
        checked(keypair_from_secret, secret)
    password = ask_password(confirm=True)
    made = checked(create_wallet, name, password, hotkey=hotkey, mnemonic=secret,
                   overwrite=overwrite)
    _report_new(made, imported=secret is not None, as_json=as_json)


def _report_new(made: NewWallet, imported: bool, as_json: bool) -> None:
    """Show the addresses, and each generated mnemonic once: it is the only backup."""
    record: dict[str, Any] = {
        "name": made.name, "path": str(made.path), "coldkey": made.coldkey.ss58_address,
        "hotkey_name": made.hotkey_name, "hotkey": made.hotkey.ss58_address,
        "coldkey_mnemonic": None if imported else made.coldkey.mnemonic,
        "hotkey_mnemonic": made.hotkey.mnemonic,
    }
    if as_json:
        print_json(record)
        return
    console.print(f"created wallet [bold]{made.name}[/] in {made.path}")
    console.print(f"  coldkey          {record['coldkey']}")
    console.print(f"  hotkey {made.hotkey_name:<9} {record['hotkey']}")
    if record["coldkey_mnemonic"]:
        console.print("coldkey mnemonic (write it down: it is the only way to recover the "
                      f"coldkey):\n  {record['coldkey_mnemonic']}")
    console.print(f"hotkey mnemonic:\n  {record['hotkey_mnemonic']}")


@wallet_app.command("new-hotkey", cls=OneLineCommand)
def new_hotkey(
    name: WalletName = "default",
    hotkey: HotkeyName = "default",
    mnemonic: Mnemonic = None,
    overwrite: Overwrite = False,
    as_json: AsJson = False,
) -> None:
    """Add a hotkey to a wallet (new, or imported with --mnemonic)."""
    secret = _read_mnemonic(mnemonic)
    keypair = checked(create_hotkey, name, hotkey, mnemonic=secret, overwrite=overwrite)
    shown = None if secret is not None else keypair.mnemonic
    if as_json:
        print_json({"name": name, "hotkey_name": hotkey, "hotkey": keypair.ss58_address,
                    "hotkey_mnemonic": shown})
        return
    console.print(f"hotkey [bold]{hotkey}[/] of wallet [bold]{name}[/]: {keypair.ss58_address}")
    if shown:
        console.print(f"hotkey mnemonic:\n  {shown}")


def _info_record(info: WalletInfo) -> dict[str, Any]:
    return {"name": info.name, "path": str(info.path), "coldkey": info.coldkey,
            "hotkeys": info.hotkeys}


@wallet_app.command("list", cls=OneLineCommand)
def list_(as_json: AsJson = False) -> None:
    """List the wallets, their coldkeys and hotkey names."""
    wallets = checked(list_wallets)
    if as_json:
        print_json([_info_record(w) for w in wallets])
        return
    if not wallets:
        console.print("no wallets yet: create one with `subnetlab wallet new`")
        return
    table = Table(title="wallets")
    for column in ("name", "coldkey", "hotkeys"):
        table.add_column(column)
    for w in wallets:
        table.add_row(w.name, w.coldkey or "(none)", ", ".join(w.hotkeys) or "(none)")
    print_table(table)


@wallet_app.command("show", cls=OneLineCommand)
def show(name: WalletName = "default", as_json: AsJson = False) -> None:
    """Show a wallet's coldkey and hotkey addresses (no password needed)."""
    info = checked(wallet_info, name)
    if as_json:
        print_json(_info_record(info))
        return
    table = Table(title=f"wallet {info.name} ({info.path})")
    for column in ("key", "name", "address"):
        table.add_column(column)
    table.add_row("coldkey", "", info.coldkey or "(none)")
    for hotkey, address in info.hotkeys.items():
        table.add_row("hotkey", hotkey, address)
    print_table(table)


@wallet_app.command("balance", cls=OneLineCommand)
def balance(
    name: WalletName = "default",
    address: Annotated[
        str | None, typer.Option("--address", help="Any SS58 address instead of a wallet.")
    ] = None,
    ledger: LedgerUrl = DEFAULT_LEDGER_URL,
    as_json: AsJson = False,
) -> None:
    """Free balance, stake and nonce of a wallet's coldkey (or of any --address)."""
    who = check_address(address, "--address") if address else checked(coldkey_address, name)
    with ledger_session(ledger, "balance") as client:
        account = client.account(who)
    if as_json:
        print_json(account)
        return
    free = int(account["balance"])
    staked = sum(int(position["amount"]) for position in account.get("stake", []))
    table = Table(title="balance (tokens)")
    table.add_column("address")
    for column in ("free", "staked", "total", "nonce"):
        table.add_column(column, justify="right")
    table.add_row(who, format_rao(free), format_rao(staked), format_rao(free + staked),
                  str(account["nonce"]))
    print_table(table)
