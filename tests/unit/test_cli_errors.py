"""Every command of the CLI fails the same way: one `error: ...` line, exit code 2.

The test walks the whole command tree of the real app (click's, as Typer builds it), so a
command added later without the one-line machinery fails here instead of printing Typer's
multi-line usage box to a user.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, get_args

import pytest
import typer
from typer.testing import CliRunner

from subnetlab.cli.main import app
from subnetlab.cli.shared import in_cli_words
from subnetlab.keys.keypair import Keypair

ROOT = typer.main.get_command(app)


def _walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(words, command) for every group and command under ``command``."""
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _walk(sub, (*path, name))


ALL = list(_walk(ROOT))
LEAVES = [(path, command) for path, command in ALL if not hasattr(command, "commands")]
GROUPS = [(path, command) for path, command in ALL if hasattr(command, "commands")]


def _numeric(param: Any) -> bool:
    """Whether an option takes a number (int or float, optional or not)."""
    kind = param.type_descriptor.annotation
    return param.param_type_name == "option" and not param.is_flag and bool(
        {kind, *get_args(kind)} & {int, float})


# Options that take a number: a word there is a usage error.
TYPED = [(path, param.opts[0]) for path, command in LEAVES for param in command.params
         if _numeric(param)]


def _one_error_line(args: list[str]) -> str:
    result = CliRunner().invoke(app, args, env={"SUBNETLAB_LEDGER": "http://127.0.0.1:9"})
    assert result.exit_code == 2, (args, result.exit_code, result.output)
    assert result.stdout == "", (args, result.stdout)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.stderr)
    return lines[0]


def test_the_walk_sees_every_command() -> None:
    names = {" ".join(path) for path, _ in LEAVES}
    assert {"up", "down", "simulate yuma", "bench epoch", "operator run", "crds generate",
            "transfer", "weights commit", "ledger serve", "miner serve"} <= names
    assert len(TYPED) > 10


@pytest.mark.parametrize(("path", "command"), LEAVES, ids=[" ".join(p) for p, _ in LEAVES])
def test_an_unknown_option_is_one_line(path: tuple[str, ...], command: Any) -> None:
    line = _one_error_line([*path, "--no-such-option"])
    assert line.startswith("error: No such option: --no-such-option"), line
    assert line.endswith(f"(see `subnetlab {' '.join(path)} --help`)"), line


@pytest.mark.parametrize(("path", "option"), TYPED,
                         ids=[f"{' '.join(p)} {o}" for p, o in TYPED])
def test_a_bad_value_of_a_typed_option_is_one_line(path: tuple[str, ...], option: str) -> None:
    _one_error_line([*path, option, "not-a-value"])


@pytest.mark.parametrize(("path", "group"), GROUPS,
                         ids=[" ".join(p) or "subnetlab" for p, _ in GROUPS])
def test_an_unknown_command_is_one_line(path: tuple[str, ...], group: Any) -> None:
    line = _one_error_line([*path, "no-such-command"])
    assert line.startswith("error: No such command 'no-such-command'"), line


@pytest.mark.parametrize(("path", "group"), GROUPS,
                         ids=[" ".join(p) or "subnetlab" for p, _ in GROUPS])
def test_a_group_alone_shows_its_help(path: tuple[str, ...], group: Any) -> None:
    result = CliRunner().invoke(app, list(path))
    assert "Usage:" in result.output and "error:" not in result.output


# ---- words users see --------------------------------------------------------------------

OPTIONS = [(path, param) for path, command in LEAVES for param in command.params
           if param.param_type_name == "option"]


def test_every_ledger_option_reads_subnetlab_ledger() -> None:
    ledgers = [(path, param) for path, param in OPTIONS if "--ledger" in param.opts]
    assert len(ledgers) > 20
    assert [" ".join(path) for path, param in ledgers
            if param.envvar != "SUBNETLAB_LEDGER"] == []


@pytest.mark.parametrize(("path", "command"), LEAVES, ids=[" ".join(p) for p, _ in LEAVES])
def test_defaults_written_in_help_texts_are_shown(path: tuple[str, ...], command: Any) -> None:
    """Rich reads `[default: 0.95]` in a help text as markup and drops it, leaving a blank:
    each one written must reach the rendered --help."""
    written = [match for param in command.params
               for match in re.findall(r"\[default: ([^\]]+)\]", param.help or "")]
    shown = CliRunner().invoke(app, [*path, "--help"]).output
    flat = " ".join(shown.replace("│", " ").split())  # a wrapped help text, unwrapped
    assert [default for default in written if f"[default: {default}]" not in flat] == []


SIGNING = ["faucet", "transfer", "register", "deregister", "subnet create", "subnet set",
           "stake add", "stake remove", "stake list", "weights set", "weights commit",
           "weights reveal"]


def test_every_signing_command_takes_a_dev_key_or_a_wallet() -> None:
    takes = {" ".join(path): {opt for param in command.params for opt in param.opts}
             for path, command in LEAVES}
    for name in SIGNING:
        assert {"--dev-key", "--name", "--wallet"} <= takes[name], name
    for name in ("miner serve", "validator run"):  # --name, as on the chain commands
        assert {"--dev-key", "--name", "--wallet"} <= takes[name], name


@pytest.mark.parametrize("words", SIGNING)
def test_a_dev_key_and_a_wallet_together_are_one_line(words: str) -> None:
    weights = ["--netuid", "1", "--uids", "0", "--weights", "1"]
    required = {"transfer": ["--dest", Keypair.dev("bob").ss58_address, "--amount", "1"],
                "register": ["--netuid", "1"], "deregister": ["--netuid", "1"],
                "subnet set": ["1", "--param", "tempo=5"], "stake add": ["--amount", "1"],
                "stake remove": ["--amount", "1"], "weights set": weights,
                "weights commit": weights, "weights reveal": ["--netuid", "1"]}
    line = _one_error_line([*words.split(), *required.get(words, []), "--dev-key", "alice",
                            "--name", "val"])
    assert line == ("error: --dev-key and --name/--wallet are exclusive: sign with a dev key "
                    "or a wallet, not both"), line


@pytest.mark.parametrize(("ledger_says", "user_reads"), [
    ("insufficient_balance: amount: 12500000000 rao exceeds the free balance of 5 rao",
     "insufficient_balance: amount: 12.5 tokens exceeds the free balance of 0.000000005 "
     "tokens"),
    ("commit_reveal_enabled: netuid: subnet 2 uses commit-reveal: use commit_weights and "
     "reveal_weights",
     "commit_reveal_enabled: netuid: subnet 2 uses commit-reveal: use `subnetlab weights "
     "commit` and `subnetlab weights reveal`"),
    ("commit_reveal_disabled: use set_weights", "commit_reveal_disabled: use `subnetlab "
     "weights set`"),
    ("not_owner: origin: only the owner", "not_owner: origin: only the owner"),
])
def test_ledger_refusals_are_shown_in_the_words_of_the_cli(ledger_says: str,
                                                           user_reads: str) -> None:
    assert in_cli_words(ledger_says) == user_reads


# ---- one dialect (issue 14): the same option is declared once, so it behaves the same ----

NETUIDS = [(path, param) for path, command in LEAVES for param in command.params
           if param.name == "netuid"]


def _netuid_refusal(path: tuple[str, ...], param: Any, text: str) -> str:
    words = [*path, "--netuid", text] if param.param_type_name == "option" else [*path, text]
    line = _one_error_line(words)
    hint = f" (see `subnetlab {' '.join(path)} --help`)"
    assert line.endswith(hint), line  # the same hint as every other usage error
    return line.removesuffix(hint).replace("--netuid", "NETUID")


def test_every_netuid_takes_the_same_range() -> None:
    """A subnet id is a u16 wherever a command takes one (option or argument), refused in
    the same words: the same declaration everywhere, not look-alikes with other bounds."""
    assert len(NETUIDS) > 8
    refusals = {text: {_netuid_refusal(path, param, text) for path, param in NETUIDS}
                for text in ("65536", "x")}
    assert {text: len(found) for text, found in refusals.items()} == {"65536": 1, "x": 1}
    assert "0" in next(iter(refusals["65536"])) and "65535" in next(iter(refusals["65536"]))


def test_every_wallet_option_is_spelled_both_ways() -> None:
    """`--name` and `--wallet` are one option everywhere; `--dev-key` only ever names a
    dev key, next to a wallet option."""
    names = [(path, param) for path, param in OPTIONS
             if {"--name", "--wallet"} & set(param.opts)]
    assert len(names) > 15
    assert [" ".join(path) for path, param in names
            if sorted(param.opts) != ["--name", "--wallet"]] == []
    commands = {path: {opt for param in command.params for opt in param.opts}
                for path, command in LEAVES}
    dev_keys = [path for path, param in OPTIONS if "--dev-key" in param.opts]
    assert len(dev_keys) >= len(SIGNING)
    assert [" ".join(path) for path in dev_keys if "--name" not in commands[path]] == []


def test_options_of_one_name_share_one_declaration() -> None:
    """Every `--ledger`, `--json` and `--netuid` is the one declaration of cli/shared.py
    (same spellings, envvar and metavar): a copy with a small variation shows up here as
    a second shape."""
    shapes: dict[str, set[tuple[Any, ...]]] = {}
    for _, param in OPTIONS:
        for opt in ("--ledger", "--json", "--netuid"):
            if opt in param.opts:
                shapes.setdefault(opt, set()).add(
                    (tuple(param.opts), param.envvar, param.metavar, param.is_flag))
    assert {opt: len(found) for opt, found in shapes.items()} == {
        "--ledger": 1, "--json": 1, "--netuid": 1}
