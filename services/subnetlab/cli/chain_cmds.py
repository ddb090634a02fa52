"""Chain commands: faucet, transfer, subnets, registration, stake and the metagraph.

Every command checks its own inputs first (amounts, addresses, hyperparameters), so a typo
fails at once with one `error: ...` line, before any password is asked for and before the
network is touched. Then the wallet must exist and the ledger must answer; only then is
the coldkey password asked for. Coldkeys sign what moves funds (faucet, transfer, create
and tune subnets, register, stake); hotkeys sign what a running neuron does (weights, in
:mod:`subnetlab.cli.weights_cmds`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from subnetlab.cli.errors import OneLineCommand, OneLineGroup, checked, fail
from subnetlab.cli.faucet_work import drip
from subnetlab.cli.inputs import parse_hyperparameters
from subnetlab.cli.shared import (
    DEFAULT_LEDGER_URL,
    AsJson,
    HotkeyName,
    LedgerUrl,
    Netuid,
    NetuidArg,
    check_address,
    console,
    ledger_session,
    print_json,
    print_table,
    progress,
    report,
    submit,
)
from subnetlab.cli.signer import DevKey, Signer, SignerWallet, signer
from subnetlab.cli.weights_cmds import weights_app
from subnetlab.keys.ss58 import is_valid_ss58
from subnetlab.ledger.client import LedgerClient, format_rao, parse_tokens
from subnetlab.ledger.documents import stake_position, uid_of
from subnetlab.protocol.metagraph import is_vacant

subnet_app = typer.Typer(
    cls=OneLineGroup, help="Create, list, inspect and tune subnets.", no_args_is_help=True
)
stake_app = typer.Typer(
    cls=OneLineGroup, help="Stake to hotkeys and list positions.", no_args_is_help=True
)

Amount = Annotated[str, typer.Option("--amount", help="Tokens, e.g. 1.5 (at most 9 decimals).")]
Params = Annotated[
    list[str] | None,
    typer.Option("--param", help="Hyperparameter NAME=VALUE (repeatable), e.g. tempo=10."),
]
StakeHotkey = Annotated[
    str, typer.Option("--hotkey", help="Hotkey: an SS58 address or a hotkey name of the wallet.")
]
OwnHotkey = Annotated[
    str, typer.Option("--hotkey", help="Hotkey: a hotkey name of the wallet or an SS58 address "
                      "the wallet's coldkey owns.")
]
# Subnet fields that are amounts of rao: shown in tokens in tables (JSON keeps rao).
_RAO_FIELDS = frozenset({"burn", "lock", "pending_emission", "min_burn", "max_burn"})


def add_chain_commands(app: typer.Typer) -> None:
    """Register every chain command on the top-level app (one call from `cli.main`)."""
    app.command("faucet", cls=OneLineCommand)(faucet)
    app.command("transfer", cls=OneLineCommand)(transfer)
    app.command("register", cls=OneLineCommand)(register)
    app.command("deregister", cls=OneLineCommand)(deregister)
    app.command("metagraph", cls=OneLineCommand)(metagraph)
    app.add_typer(subnet_app, name="subnet")
    app.add_typer(stake_app, name="stake")
    app.add_typer(weights_app, name="weights")


# ---- balances ---------------------------------------------------------------------------


def faucet(name: SignerWallet = None, dev_key: DevKey = None,
           ledger: LedgerUrl = DEFAULT_LEDGER_URL, as_json: AsJson = False) -> None:
    """Ask the testnet faucet for tokens (to the wallet's coldkey); when the faucet asks
    for a proof of work, it is solved here, with a progress bar."""
    who = signer(name, dev_key)
    with ledger_session(ledger, "faucet refused") as client:
        key = who.coldkey(client)
        receipt = drip(client, key)
        balance = int(client.account(key.ss58_address)["balance"])
    report(f"faucet paid {key.ss58_address}; balance now {format_rao(balance)} tokens",
           receipt, as_json, balance=balance)


def transfer(
    dest: Annotated[str, typer.Option("--dest", help="Recipient SS58 address.")],
    amount: Amount,
    name: SignerWallet = None,
    dev_key: DevKey = None,
    ledger: LedgerUrl = DEFAULT_LEDGER_URL,
    as_json: AsJson = False,
) -> None:
    """Send tokens from the wallet's coldkey (or a dev key) to an address."""
    check_address(dest, "--dest")
    rao = checked(parse_tokens, amount, "--amount")
    who = signer(name, dev_key)
    with ledger_session(ledger, "transfer refused") as client:
        key = who.coldkey(client)
        receipt = submit(client, key, "transfer", {"dest": dest, "amount": rao})
    report(f"sent {format_rao(rao)} tokens from {key.ss58_address} to {dest}", receipt,
           as_json, dest=dest, amount=rao)


# ---- subnets ----------------------------------------------------------------------------


def _created_netuid(client: LedgerClient, owner: str, block: object) -> int | None:
    """The netuid a create_subnet made: receipts carry no result, so find it by owner and
    creation block (the newest, should the owner have created several in that block)."""
    made = [s["netuid"] for s in client.subnets()
            if s.get("owner") == owner and s.get("created_at") == block]
    return int(max(made)) if made else None


def _shown(value: object) -> str:
    """A hyperparameter value as typed on the command line: true, 10, 0.5."""
    return json.dumps(value) if isinstance(value, bool) else str(value)


@subnet_app.command("create", cls=OneLineCommand)
def subnet_create(
    params: Params = None,
    name: SignerWallet = None,
    dev_key: DevKey = None,
    ledger: LedgerUrl = DEFAULT_LEDGER_URL,
    as_json: AsJson = False,
) -> None:
    """Create a subnet owned by the wallet's coldkey (locks the subnet lock cost)."""
    changes = checked(parse_hyperparameters, params)
    who = signer(name, dev_key)
    with ledger_session(ledger, "subnet create refused") as client:
        key = who.coldkey(client)
        receipt = submit(client, key, "create_subnet",
                         {"hyperparameters": changes} if changes else {})
        netuid = _created_netuid(client, key.ss58_address, receipt.get("block"))
    report(f"created subnet {netuid} owned by {key.ss58_address}", receipt, as_json,
           netuid=netuid)


@subnet_app.command("list", cls=OneLineCommand)
def subnet_list(ledger: LedgerUrl = DEFAULT_LEDGER_URL, as_json: AsJson = False) -> None:
    """List subnets: owner, size, tempo, registration burn, epochs."""
    with ledger_session(ledger, "subnet list") as client:
        subnets = client.subnets()
    if as_json:
        print_json({"subnets": subnets})
        return
    if not subnets:
        console.print("no subnets yet: create one with `subnetlab subnet create`")
        return
    table = Table(title="subnets")
    for column in ("netuid", "owner", "uids", "tempo", "burn", "epochs", "next epoch"):
        table.add_column(column, justify="left" if column == "owner" else "right")
    for s in subnets:
        hp = s.get("hyperparameters", {})
        held = int(s.get("n", 0)) - int(s.get("vacant", 0))
        table.add_row(str(s["netuid"]), str(s.get("owner")),
                      f"{held}/{hp.get('max_allowed_uids')}", str(hp.get("tempo")),
                      format_rao(int(s.get("burn", 0))), str(s.get("epochs_run")),
                      str(s.get("next_epoch_block")))
    print_table(table)


def _field_value(key: str, value: object) -> str:
    if key in _RAO_FIELDS and isinstance(value, int) and not isinstance(value, bool):
        return f"{format_rao(value)} tokens"
    return _shown(value)


@subnet_app.command("show", cls=OneLineCommand)
def subnet_show(
    netuid: NetuidArg, ledger: LedgerUrl = DEFAULT_LEDGER_URL, as_json: AsJson = False
) -> None:
    """Show one subnet and all of its hyperparameters."""
    with ledger_session(ledger, f"subnet {netuid}") as client:
        info = client.subnet(netuid)
    if as_json:
        print_json(info)
        return
    table = Table(title=f"subnet {netuid}")
    table.add_column("field")
    table.add_column("value")
    for key, value in info.items():
        if key != "hyperparameters":
            table.add_row(key, _field_value(key, value))
    for key, value in sorted(info.get("hyperparameters", {}).items()):
        table.add_row(f"hyperparameters.{key}", _field_value(key, value))
    print_table(table)


@subnet_app.command("set", cls=OneLineCommand)
def subnet_set(
    netuid: NetuidArg,
    params: Params = None,
    name: SignerWallet = None,
    dev_key: DevKey = None,
    ledger: LedgerUrl = DEFAULT_LEDGER_URL,
    as_json: AsJson = False,
) -> None:
    """Change hyperparameters of a subnet (its owner's or the sudo key: --dev-key alice
    on a local chain)."""
    changes = checked(parse_hyperparameters, params)
    if not changes:
        fail("--param: give at least one NAME=VALUE, e.g. --param tempo=10")
    who = signer(name, dev_key)
    with ledger_session(ledger, "subnet set refused") as client:
        key = who.coldkey(client)
        receipt = submit(client, key, "set_hyperparameters", {"netuid": netuid, **changes})
    shown = ", ".join(f"{k}={_shown(v)}" for k, v in changes.items())
    report(f"subnet {netuid}: set {shown}", receipt, as_json, netuid=netuid, changed=changes)


# ---- registration and metagraph ---------------------------------------------------------


def register(
    netuid: Netuid,
    name: SignerWallet = None,
    hotkey: HotkeyName = "default",
    dev_key: DevKey = None,
    ledger: LedgerUrl = DEFAULT_LEDGER_URL,
    as_json: AsJson = False,
) -> None:
    """Register the wallet's hotkey on a subnet (the coldkey pays the burn)."""
    who = signer(name, dev_key)
    hotkey_ss58 = who.own_hotkey_address(hotkey)
    with ledger_session(ledger, "register refused") as client:
        key = who.coldkey(client)
        receipt = submit(client, key, "register", {"netuid": netuid, "hotkey": hotkey_ss58})
        uid = uid_of(client.metagraph(netuid), hotkey_ss58)
    report(f"registered {hotkey_ss58} on subnet {netuid} as uid {uid}", receipt, as_json,
           netuid=netuid, hotkey=hotkey_ss58, uid=uid)


def deregister(
    netuid: Netuid,
    name: SignerWallet = None,
    hotkey: OwnHotkey = "default",
    dev_key: DevKey = None,
    ledger: LedgerUrl = DEFAULT_LEDGER_URL,
    as_json: AsJson = False,
) -> None:
    """Give up a hotkey's uid on a subnet (signed by the coldkey that owns the hotkey).

    The uid becomes vacant; when it was the hotkey's last uid, the stake on it goes back
    to the stakers' free balances in the same block (nothing to unstake first).
    """
    who = signer(name, dev_key)
    hotkey_ss58 = who.any_hotkey_address(hotkey)
    with ledger_session(ledger, "deregister refused") as client:
        key = who.coldkey(client)
        uid = uid_of(client.metagraph(netuid), hotkey_ss58)
        staked_before = stake_position(client.account(key.ss58_address), hotkey_ss58)
        with progress("deregister: waiting for a block"):
            receipt = client.deregister(key, netuid, hotkey_ss58)
        account = client.account(key.ss58_address)
    staked = stake_position(account, hotkey_ss58)
    balance = int(account["balance"])
    if staked:
        stake_note = (f"your {format_rao(staked)} tokens of stake stay on it (it holds a uid "
                      "on another subnet)")
    elif staked_before:
        stake_note = f"your stake on it is back in your free balance ({format_rao(balance)} tokens)"
    else:
        stake_note = "it held no stake of yours"
    report(f"deregistered {hotkey_ss58} from subnet {netuid}: uid {uid} is vacant; "
           f"{stake_note}", receipt, as_json, netuid=netuid, hotkey=hotkey_ss58, uid=uid,
           stake=staked, balance=balance)


def _axon(axon: object) -> str:
    if not isinstance(axon, dict):
        return ""
    return f"{axon.get('protocol', 'http')}://{axon.get('ip')}:{axon.get('port')}"


def metagraph(
    netuid: NetuidArg, ledger: LedgerUrl = DEFAULT_LEDGER_URL, as_json: AsJson = False
) -> None:
    """Show a subnet's neurons: stake and the last epoch's consensus outputs."""
    with ledger_session(ledger, f"metagraph of subnet {netuid}") as client:
        graph = client.metagraph(netuid)
    if as_json:
        print_json(graph)
        return
    neurons = graph.get("neurons", [])
    if not neurons:
        console.print(f"subnet {netuid} has no neurons yet: `subnetlab register --netuid "
                      f"{netuid}` adds one", markup=False)
        return
    table = Table(title=f"subnet {netuid} metagraph at block {graph.get('block')}")
    columns = ("uid", "hotkey", "stake", "incentive", "dividends", "consensus", "trust",
               "vtrust", "emission", "permit", "active", "axon")
    for column in columns:
        table.add_column(column, justify="left" if column in ("hotkey", "axon") else "right")
    for n in neurons:
        if is_vacant(n):
            table.add_row(str(n["uid"]), "(vacant)", *[""] * (len(columns) - 2))
            continue
        table.add_row(
            str(n["uid"]), f"{n['hotkey'][:10]}…", format_rao(int(n["stake"])),
            *(f"{float(n[k]):.4f}" for k in ("incentive", "dividends", "consensus", "trust",
                                              "validator_trust")),
            format_rao(int(n["emission"])), "yes" if n.get("validator_permit") else "",
            "yes" if n.get("active") else "", _axon(n.get("axon")),
        )
    print_table(table)


# ---- stake ------------------------------------------------------------------------------


def _move_stake(call: str, hotkey: str, amount: str, who: Signer, ledger: str,
                as_json: bool) -> None:
    """add_stake / remove_stake: same inputs, same checks, opposite directions."""
    rao = checked(parse_tokens, amount, "--amount")
    target = who.any_hotkey_address(hotkey)
    command = "stake add" if call == "add_stake" else "stake remove"
    hint = (f"register it first: `subnetlab register --netuid NETUID {who.options()} "
            f"--hotkey {hotkey}`" if not is_valid_ss58(hotkey)
            else "only a registered hotkey takes stake")
    with ledger_session(ledger, f"{command} refused", {"unknown_account": hint}) as client:
        key = who.coldkey(client)
        receipt = submit(client, key, call, {"hotkey": target, "amount": rao})
    verb = "staked" if call == "add_stake" else "unstaked"
    report(f"{verb} {format_rao(rao)} tokens on {target}", receipt, as_json, hotkey=target,
           amount=rao)


@stake_app.command("add", cls=OneLineCommand)
def stake_add(amount: Amount, hotkey: StakeHotkey = "default", name: SignerWallet = None,
              dev_key: DevKey = None, ledger: LedgerUrl = DEFAULT_LEDGER_URL,
              as_json: AsJson = False) -> None:
    """Stake free balance of the wallet's coldkey to a hotkey (yours, or a delegate)."""
    _move_stake("add_stake", hotkey, amount, signer(name, dev_key), ledger, as_json)


@stake_app.command("remove", cls=OneLineCommand)
def stake_remove(amount: Amount, hotkey: StakeHotkey = "default",
                 name: SignerWallet = None, dev_key: DevKey = None,
                 ledger: LedgerUrl = DEFAULT_LEDGER_URL, as_json: AsJson = False) -> None:
    """Move stake from a hotkey back to the coldkey's free balance."""
    _move_stake("remove_stake", hotkey, amount, signer(name, dev_key), ledger, as_json)


@stake_app.command("list", cls=OneLineCommand)
def stake_list(name: SignerWallet = None, dev_key: DevKey = None,
               ledger: LedgerUrl = DEFAULT_LEDGER_URL, as_json: AsJson = False) -> None:
    """The wallet coldkey's stake positions, by hotkey."""
    who = signer(name, dev_key)
    coldkey = who.coldkey_address()
    with ledger_session(ledger, "stake list") as client:
        account = client.account(coldkey)
    positions: list[Any] = list(account.get("stake", []))
    if as_json:
        print_json({"coldkey": coldkey, "stake": positions})
        return
    if not positions:
        console.print(f"no stake held by {coldkey}")
        return
    names = who.hotkey_names()
    table = Table(title=f"stake of {coldkey} (tokens)")
    for column in ("hotkey", "name", "amount"):
        table.add_column(column, justify="right" if column == "amount" else "left")
    for position in positions:
        table.add_row(position["hotkey"], names.get(position["hotkey"], ""),
                      format_rao(int(position["amount"])))
    print_table(table)
