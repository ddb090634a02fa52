"""What every wallet and chain command shares: options, output, the ledger session, passwords.

One definition of `--name`/`--wallet`, `--hotkey`, `--ledger` (read from
`$SUBNETLAB_LEDGER` by Typer, never at import), `--netuid`/NETUID (0..65535) and `--json`
keeps the commands one dialect (tests/unit/test_cli_errors.py walks every command for
it); one :func:`ledger_session` is the only place where a ledger failure (refused
extrinsic, unreachable URL) becomes an ``error: ...`` line, so no command needs its own
try/except and every refusal shows the ledger's code and message the same way.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.status import Status
from rich.table import Table

from subnetlab.cli.errors import fail, usage_error
from subnetlab.cli.inputs import U16_MAX, parse_whole
from subnetlab.keys.keypair import Keypair
from subnetlab.keys.ss58 import InvalidAddress, ss58_decode
from subnetlab.ledger.client import (
    DEFAULT_LEDGER_URL,
    LEDGER_ENV,
    Json,
    LedgerClient,
    LedgerError,
    LedgerUnreachable,
    format_rao,
)
from subnetlab.wallet import PASSWORD_ENV, password_from_env

__all__ = [
    "DEFAULT_LEDGER_URL",
    "AsJson",
    "HotkeyName",
    "LedgerUrl",
    "Netuid",
    "NetuidArg",
    "NeuronWallet",
    "WalletName",
    "ask_password",
    "check_address",
    "console",
    "ledger_option",
    "ledger_session",
    "print_json",
    "print_table",
    "progress",
    "report",
    "submit",
    "wallet_option",
    "whole_number",
]

console = Console(highlight=False, soft_wrap=True)
_status_console = Console(stderr=True, highlight=False)

def wallet_option(help_tail: str = "", show_default: bool = True) -> Any:
    """The one `--name`/`--wallet` option: its spelling and help are written here only; what
    a command does without one (a default wallet, a dev key instead, an error) differs, and
    only `help_tail` says so."""
    return typer.Option("--name", "--wallet", metavar="NAME", show_default=show_default,
                        help=f"Wallet name (a folder under $SUBNETLAB_HOME/wallets).{help_tail}")


WalletName = Annotated[str, wallet_option()]
"""A wallet command's wallet (`default` when not given)."""
NeuronWallet = Annotated[str | None, wallet_option(" Or --dev-key; one of the two is needed.",
                                                   show_default=False)]
"""A neuron's wallet: no default, since a neuron with neither a wallet nor a dev key is an
error, not the `default` wallet by surprise."""
HotkeyName = Annotated[str, typer.Option("--hotkey", help="Hotkey name in the wallet.")]


def ledger_option(help_text: str = "Ledger URL (or $SUBNETLAB_LEDGER).") -> Any:
    """The one `--ledger` option (`$SUBNETLAB_LEDGER` when not given); only its help may
    differ between commands (what the URL is for there, what happens without one)."""
    return typer.Option("--ledger", envvar=LEDGER_ENV, help=help_text)


LedgerUrl = Annotated[str, ledger_option()]

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts, not tables.")]


def whole_number(option: str, lo: int, hi: int) -> Callable[[str | int], int]:
    """A typer parser for an integer option that fails with one `error:` line.

    Typer's own int parsing reports a bad value in a multi-line usage panel; every other
    bad input of these commands is one `error: ...` line, so integers are no exception.
    """

    def parse(text: str | int) -> int:
        if isinstance(text, int):  # typer passes defaults through the parser as they are
            return text
        try:
            return parse_whole(text, option, lo, hi)
        except ValueError as exc:
            raise usage_error(str(exc)) from None

    return parse


Netuid = Annotated[
    int,
    typer.Option("--netuid", help="Subnet id.", metavar="NETUID",
                 parser=whole_number("--netuid", 0, U16_MAX)),
]
NetuidArg = Annotated[
    int,
    typer.Argument(help="Subnet id.", metavar="NETUID", parser=whole_number("NETUID", 0, U16_MAX)),
]


def print_json(data: object) -> None:
    """One JSON document on stdout (the `--json` output of every command)."""
    typer.echo(json.dumps(data))


def print_table(table: Table) -> None:
    """Print a table; piped into a file or a program, at its natural width, uncut.

    Rich assumes 80 columns when stdout is not a terminal and would squeeze wide tables
    (the metagraph) into ellipses, which is useless in a log or a pager.
    """
    if console.is_terminal:
        console.print(table)
        return
    width = Measurement.get(console, console.options.update_width(10_000), table).maximum
    Console(width=max(width, console.width), highlight=False).print(table)


def progress(message: str) -> Status:
    """A spinner on stderr for a wait (a block, an epoch); invisible when not a terminal,
    so scripts and `--json` consumers see nothing but the result."""
    return _status_console.status(message, spinner="dots")


@contextmanager
def ledger_session(url: str, what: str, hints: dict[str, str] | None = None
                   ) -> Iterator[LedgerClient]:
    """A client for ``url``; any ledger failure inside the block becomes one error line.

    ``what`` prefixes refusals (``transfer refused: insufficient_balance: ...``); an
    unreachable ledger is reported as is, because its message already names the URL.
    ``hints`` maps an error code to what the user can do about it (appended after `; `).
    """
    try:
        client = LedgerClient(url)
    except ValueError as exc:
        fail(f"--ledger: {exc}")
    try:
        with client:
            yield client
    except LedgerUnreachable as exc:
        fail(str(exc))
    except LedgerError as exc:
        hint = (hints or {}).get(exc.code)
        fail(f"{what}: {in_cli_words(str(exc))}" + (f"; {hint}" if hint else ""))


# The ledger speaks its API: extrinsic names and rao. A person at the CLI typed commands
# and tokens, so refusals are shown in those words (the error code stays as it is).
_COMMAND_OF_CALL = {
    "set_weights": "subnetlab weights set", "commit_weights": "subnetlab weights commit",
    "reveal_weights": "subnetlab weights reveal", "add_stake": "subnetlab stake add",
    "remove_stake": "subnetlab stake remove", "create_subnet": "subnetlab subnet create",
    "set_hyperparameters": "subnetlab subnet set",
}
_CALL_RE = re.compile(r"\b(" + "|".join(_COMMAND_OF_CALL) + r")\b")
_RAO_RE = re.compile(r"\b(\d+) rao\b")


def in_cli_words(message: str) -> str:
    """A ledger message with command names for extrinsic names and tokens for rao:
    `use commit_weights` -> ``use `subnetlab weights commit` ``, `1500000000 rao` ->
    `1.5 tokens`."""
    message = _CALL_RE.sub(lambda m: f"`{_COMMAND_OF_CALL[m.group(1)]}`", message)
    return _RAO_RE.sub(lambda m: f"{format_rao(int(m.group(1)))} tokens", message)


def check_address(value: str, option: str) -> str:
    """``value`` if it is an SS58 address of this network, else ``error: OPTION: why``."""
    try:
        ss58_decode(value)
    except InvalidAddress as exc:
        fail(f"{option}: {exc}")
    return value


def ask_password(confirm: bool) -> str:
    """The coldkey password: ``$SUBNETLAB_PASSWORD``, else a hidden prompt on a terminal.

    Without a terminal there is nobody to answer, so say how to pass it instead of hanging
    or aborting with a bare "Aborted!".
    """
    password = password_from_env()
    if password:
        return password
    if not sys.stdin.isatty():
        fail(f"a coldkey password is needed: set {PASSWORD_ENV} or run in a terminal")
    try:
        entered: str = typer.prompt(
            "Coldkey password", hide_input=True, confirmation_prompt=confirm, err=True
        )
    except typer.Abort:
        fail("no password entered")
    if not entered:
        fail("the password must not be empty")
    return entered


def submit(client: LedgerClient, key: Keypair, call: str, params: dict[str, Any]) -> Json:
    """Sign ``call`` with ``key``, submit it and wait for its block (with a spinner).

    A refusal or a failed receipt raises, and :func:`ledger_session` reports it.
    """
    with progress("waiting for the extrinsic's block"):
        return client.submit(key, call, params)


def report(what: str, receipt: Json, as_json: bool, **extra: Any) -> None:
    """The outcome of one extrinsic: its receipt (plus ``extra``) as JSON, or one line."""
    if as_json:
        print_json({**receipt, **extra})
    else:
        console.print(f"{what} (block {receipt.get('block')}, extrinsic {receipt.get('hash')})",
                      markup=False)
