"""The btcli-like CLI against a real ledger process (fast blocks, Debian's redis-server).

The commands run in-process through Typer's CliRunner (the same `app` the console script
runs) and talk real HTTP to the ledger; the chain's state is read back over HTTP with the
package's own client. One test walks the whole btcli workflow; the others feed bad input
and check that each fails with one `error:` line, a non-zero exit, no traceback, and the
ledger state (and the files on disk) exactly as before.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from subnetlab.chain.model import DEV_FEE
from subnetlab.chain.units import TOKEN
from subnetlab.cli.main import app
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.client import LedgerClient
from tests.integration.conftest import LedgerProcess, RedisServer, free_port, wait_until

PASSWORD = "pw-for-tests"
WAIT_S = 120.0
"""Upper bound on waits for epochs; a guard against a hang, never a timing assertion."""


@dataclass
class Cli:
    """`subnetlab ...` in-process, with its own SUBNETLAB_HOME, password and ledger."""

    home: Path
    ledger_url: str
    runner: CliRunner

    def env(self, password: str | None) -> dict[str, str | None]:
        return {"SUBNETLAB_HOME": str(self.home), "SUBNETLAB_PASSWORD": password,
                "SUBNETLAB_LEDGER": self.ledger_url, "COLUMNS": "250"}

    def run(self, *args: str, password: str | None = PASSWORD) -> Result:
        return self.runner.invoke(app, list(args), env=self.env(password))

    def ok(self, *args: str) -> Result:
        result = self.run(*args)
        assert result.exit_code == 0, (args, result.stdout, result.stderr, result.exception)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)

    def fails(self, *args: str, password: str | None = PASSWORD) -> str:
        """Run a command that must fail; return its one error line."""
        result = self.run(*args, password=password)
        return one_error_line(result)


def one_error_line(result: Result) -> str:
    """Exit code 2, nothing on stdout, exactly one `error: ...` line, no exception."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exc_info
    )
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def chain(module_ledger: LedgerProcess) -> Iterator[LedgerClient]:
    with LedgerClient(module_ledger.url) as client:
        yield client


@pytest.fixture(scope="module")
def cli(module_ledger: LedgerProcess, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return Cli(tmp_path_factory.mktemp("cli-home"), module_ledger.url, CliRunner())


def neuron(graph: dict[str, Any], uid: int) -> dict[str, Any]:
    return next(n for n in graph["neurons"] if n["uid"] == uid)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


# ---- the whole btcli workflow -----------------------------------------------------------


def test_full_workflow(cli: Cli, chain: LedgerClient) -> None:
    # Wallets: an owner, a validator with two hotkeys, a miner.
    owner = cli.json("wallet", "new", "--name", "owner")
    val = cli.json("wallet", "new", "--name", "val")
    spare = cli.json("wallet", "new-hotkey", "--name", "val", "--hotkey", "spare")
    miner = cli.json("wallet", "new", "--name", "miner")
    assert owner["coldkey_mnemonic"] and val["hotkey_mnemonic"]
    listed = {w["name"]: w for w in cli.json("wallet", "list")}
    assert set(listed) >= {"owner", "val", "miner"}
    assert listed["val"]["hotkeys"] == {"default": val["hotkey"], "spare": spare["hotkey"]}
    assert cli.json("wallet", "show", "--name", "miner")["coldkey"] == miner["coldkey"]
    assert "spare" in cli.ok("wallet", "show", "--name", "val").stdout

    # Funding: the faucet, then a transfer, exact to the rao.
    assert cli.json("wallet", "balance", "--name", "owner")["balance"] == 0
    paid = cli.json("faucet", "--name", "owner")
    assert paid["status"] == "included" and paid["balance"] == 1000 * TOKEN
    cli.ok("faucet", "--name", "val")
    sent = cli.json("transfer", "--dest", miner["coldkey"], "--amount", "10.5", "--name", "val")
    assert sent["amount"] == 10_500_000_000
    assert chain.account(miner["coldkey"])["balance"] == 10_500_000_000
    # the transfer's fee is burned on top of the amount (the faucet is free)
    assert chain.account(val["coldkey"])["balance"] == 1000 * TOKEN - 10_500_000_000 - DEV_FEE
    assert "10.5" in cli.ok("wallet", "balance", "--name", "miner").stdout

    # A subnet, created with hyperparameters and then tuned by its owner.
    created = cli.json("subnet", "create", "--name", "owner", "--param", "tempo=20",
                       "--param", "weights_rate_limit=0")
    netuid = created["netuid"]
    cli.ok("subnet", "set", str(netuid), "--param", "tempo=10", "--name", "owner")
    shown = cli.json("subnet", "show", str(netuid))
    assert shown["owner"] == owner["coldkey"]
    assert shown["hyperparameters"]["tempo"] == 10
    assert shown["hyperparameters"]["weights_rate_limit"] == 0
    assert netuid in [s["netuid"] for s in cli.json("subnet", "list")["subnets"]]
    assert "hyperparameters.tempo" in cli.ok("subnet", "show", str(netuid)).stdout

    # Registration: the coldkey pays the burn for its hotkey.
    assert cli.json("register", "--netuid", str(netuid), "--name", "val")["uid"] == 0
    assert cli.json("register", "--netuid", str(netuid), "--name", "miner")["uid"] == 1

    # Stake: add, list, remove; the free balance moves by exactly the amounts and fees.
    free = chain.account(val["coldkey"])["balance"]
    cli.ok("stake", "add", "--amount", "100", "--name", "val")
    assert chain.account(val["coldkey"])["balance"] == free - 100 * TOKEN - DEV_FEE
    positions = cli.json("stake", "list", "--name", "val")["stake"]
    assert [p["hotkey"] for p in positions] == [val["hotkey"]]
    assert positions[0]["amount"] >= 100 * TOKEN  # dividends may already have added some
    table = cli.ok("stake", "list", "--name", "val").stdout
    assert val["hotkey"] in table and "default" in table
    cli.ok("stake", "remove", "--amount", "40", "--hotkey", "default", "--name", "val")
    assert chain.account(val["coldkey"])["balance"] == free - 60 * TOKEN - 2 * DEV_FEE

    # Weights: the validator weights the miner; two epochs later the miner earns incentive
    # (validator permits are granted in one epoch and used in the next).
    weights = cli.json("weights", "set", "--netuid", str(netuid), "--uids", "1",
                       "--weights", "1", "--name", "val")
    assert weights["weights"] == [65535]

    def miner_earns() -> bool:
        graph = cli.json("metagraph", str(netuid))
        return bool(neuron(graph, 1)["incentive"] > 0 and neuron(graph, 0)["dividends"] > 0)

    wait_until(miner_earns, WAIT_S, "incentive for the weighted miner")
    table = cli.ok("metagraph", str(netuid)).stdout
    assert "incentive" in table and val["hotkey"][:10] in table

    # Commit-reveal on a second subnet: commit saves the salt, reveal --wait finds it.
    cr = cli.json("subnet", "create", "--name", "owner", "--param", "tempo=10",
                  "--param", "commit_reveal_weights_enabled=true",
                  "--param", "weights_rate_limit=0")["netuid"]
    cli.ok("register", "--netuid", str(cr), "--name", "val")
    cli.ok("register", "--netuid", str(cr), "--name", "miner")
    refused = cli.fails("weights", "set", "--netuid", str(cr), "--uids", "1", "--weights",
                        "1", "--name", "val")
    assert "commit_reveal_enabled" in refused
    assert "use `subnetlab weights commit` and `subnetlab weights reveal`" in refused
    committed = cli.json("weights", "commit", "--netuid", str(cr), "--uids", "1",
                         "--weights", "1", "--name", "val")
    saved = Path(committed["saved"])
    assert saved.parent == cli.home / "commits"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert json.loads(saved.read_text())["commit_hash"] == committed["commit_hash"]
    pending = cli.json("weights", "pending", "--netuid", str(cr), "--address", val["hotkey"])
    assert [c["hash"] for c in pending["commits"]] == [committed["commit_hash"]]
    assert pending["commits"][0]["hotkey"] == val["hotkey"]
    assert committed["commit_hash"][:18] in cli.ok("weights", "pending", "--netuid",
                                                   str(cr)).stdout
    revealed = cli.json("weights", "reveal", "--netuid", str(cr), "--wait", "--name", "val")
    assert revealed["commit_hash"] == committed["commit_hash"]
    assert revealed["status"] == "included"
    assert not saved.exists()
    assert cli.json("weights", "pending", "--netuid", str(cr))["commits"] == []
    assert "no weight commits waiting" in cli.ok("weights", "pending", "--netuid",
                                                 str(cr)).stdout

    def cr_miner_earns() -> bool:
        return bool(neuron(cli.json("metagraph", str(cr)), 1)["incentive"] > 0)

    wait_until(cr_miner_earns, WAIT_S, "incentive from revealed weights")
    graph = cli.json("metagraph", str(cr))
    assert graph["netuid"] == cr
    assert [n["hotkey"] for n in graph["neurons"]] == [val["hotkey"], miner["hotkey"]]
    assert neuron(graph, 1)["incentive"] == pytest.approx(1.0)


# ---- deregistration ---------------------------------------------------------------------


def test_deregister_leaves_a_vacant_uid_and_returns_the_stake(
    cli: Cli, chain: LedgerClient, module_redis: RedisServer
) -> None:
    owner = cli.json("wallet", "new", "--name", "dereg-owner")
    miner = cli.json("wallet", "new", "--name", "dereg-miner")
    cli.ok("faucet", "--name", "dereg-owner")
    cli.ok("faucet", "--name", "dereg-miner")
    netuid = cli.json("subnet", "create", "--name", "dereg-owner", "--param", "tempo=5")[
        "netuid"]
    assert cli.json("register", "--netuid", str(netuid), "--name", "dereg-owner")["uid"] == 0
    assert cli.json("register", "--netuid", str(netuid), "--name", "dereg-miner")["uid"] == 1
    cli.ok("stake", "add", "--amount", "25", "--name", "dereg-miner")
    free = chain.account(miner["coldkey"])["balance"]

    out = cli.json("deregister", "--netuid", str(netuid), "--wallet", "dereg-miner",
                   "--hotkey", "default")
    assert out["status"] == "included" and out["uid"] == 1
    assert out["hotkey"] == miner["hotkey"] and out["stake"] == 0
    # the stake (with any dividends it earned meanwhile) is free again, less the call's fee
    balance = chain.account(miner["coldkey"])["balance"]
    assert out["balance"] == balance >= free + 25 * TOKEN - DEV_FEE
    vacant = neuron(chain.metagraph(netuid), 1)
    assert vacant["vacant"] is True and vacant["hotkey"] is None and vacant["stake"] == 0
    assert neuron(chain.metagraph(netuid), 0)["hotkey"] == owner["hotkey"]
    assert chain.subnet(netuid)["vacant"] == 1
    assert "(vacant)" in cli.ok("metagraph", str(netuid)).stdout

    line = cli.fails("deregister", "--netuid", str(netuid), "--name", "dereg-miner")
    assert "deregister refused: not_registered: hotkey:" in line, line
    # the lowest vacant uid is the next registration's
    assert cli.json("register", "--netuid", str(netuid), "--name", "dereg-miner")["uid"] == 1
    text = cli.ok("deregister", "--netuid", str(netuid), "--name", "dereg-owner").stdout
    assert f"deregistered {owner['hotkey']} from subnet {netuid}: uid 0 is vacant" in text
    assert "it held no stake of yours" in text

    # the audit replays the whole block log, deregistrations included, to the same roots
    verified = cli.ok("ledger", "verify", "--redis-url", module_redis.url).stdout
    assert verified.startswith("height ") and verified.rstrip().endswith(" OK"), verified


# ---- bad input: one line, non-zero exit, nothing changed --------------------------------


@dataclass
class Stage:
    """A funded user registered on a plain subnet and on a commit-reveal subnet."""

    coldkey: str
    hotkey: str
    netuid: int
    cr_netuid: int


@pytest.fixture(scope="module")
def stage(cli: Cli) -> Stage:
    owner = cli.json("wallet", "new", "--name", "boss")
    user = cli.json("wallet", "new", "--name", "user")
    cli.ok("faucet", "--name", "boss")
    cli.ok("transfer", "--dest", user["coldkey"], "--amount", "50", "--name", "boss")
    netuid = cli.json("subnet", "create", "--name", "boss")["netuid"]
    # A long tempo: the reveal epoch is far away, so "too early" is certain.
    cr = cli.json("subnet", "create", "--name", "boss", "--param", "tempo=5000",
                  "--param", "commit_reveal_weights_enabled=true",
                  "--param", "weights_rate_limit=0")["netuid"]
    cli.ok("register", "--netuid", str(netuid), "--name", "user")
    cli.ok("register", "--netuid", str(cr), "--name", "user")
    cli.ok("stake", "add", "--amount", "5", "--name", "user")
    assert owner["coldkey"] != user["coldkey"]
    return Stage(user["coldkey"], user["hotkey"], netuid, cr)


@dataclass(frozen=True)
class Snapshot:
    """What a refused command must not change: the user's account (not its stake, which
    earns dividends every epoch), its hotkey's nonce, both subnets' settings and sizes,
    and every file under SUBNETLAB_HOME."""

    account: tuple[int, int, object]
    hotkey_nonce: int
    subnets: tuple[tuple[object, object], ...]
    files: tuple[tuple[str, bytes], ...]


def tunable(info: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters only extrinsics change (the chain adjusts the burn by itself)."""
    return {k: v for k, v in info["hyperparameters"].items() if k != "burn"}


def snapshot(cli: Cli, chain: LedgerClient, stage: Stage) -> Snapshot:
    account = chain.account(stage.coldkey)
    subnets = tuple((tunable(info), (info["n"], info["vacant"]))
                    for info in (chain.subnet(stage.netuid), chain.subnet(stage.cr_netuid)))
    return Snapshot((account["balance"], account["nonce"], account.get("last_faucet")),
                    chain.nonce(stage.hotkey), subnets, tuple(files(cli.home).items()))


BAD_INPUTS: list[tuple[str, list[str], str | None, list[str]]] = [
    # (case, args with {netuid}/{cr}/{dest} placeholders, password, fragments of the line)
    ("wrong password", ["transfer", "--dest", "{dest}", "--amount", "1", "--name", "user"],
     "not-the-password", ["wrong password for the coldkey of wallet 'user'"]),
    ("no password and no terminal", ["transfer", "--dest", "{dest}", "--amount", "1",
                                     "--name", "user"], None,
     ["a coldkey password is needed", "SUBNETLAB_PASSWORD"]),
    ("unknown wallet", ["transfer", "--dest", "{dest}", "--amount", "1", "--name", "ghost"],
     PASSWORD, ["no wallet 'ghost' in"]),
    ("unknown wallet for weights", ["weights", "set", "--netuid", "{netuid}", "--uids", "0",
                                    "--weights", "1", "--name", "ghost"],
     PASSWORD, ["no wallet 'ghost' in"]),
    ("negative amount", ["transfer", "--dest", "{dest}", "--amount", "-1", "--name", "user"],
     PASSWORD, ["--amount '-1' must be positive"]),
    ("zero amount", ["stake", "add", "--amount", "0", "--name", "user"], PASSWORD,
     ["--amount '0' must be positive"]),
    ("too precise amount", ["transfer", "--dest", "{dest}", "--amount", "0.0000000001",
                            "--name", "user"], PASSWORD, ["more than 9 decimals"]),
    ("bad destination", ["transfer", "--dest", "not-an-address", "--amount", "1",
                         "--name", "user"], PASSWORD, ["--dest:"]),
    ("transfer more than the balance", ["transfer", "--dest", "{dest}", "--amount", "1000000",
                                        "--name", "user"], PASSWORD,
     ["transfer refused: insufficient_balance:", "amount:"]),
    ("stake more than the balance", ["stake", "add", "--amount", "1000000", "--name", "user"],
     PASSWORD, ["stake add refused: insufficient_balance:",
                "1000000 tokens exceeds the free balance"]),
    ("unstake more than staked", ["stake", "remove", "--amount", "1000000", "--name", "user"],
     PASSWORD, ["stake remove refused: insufficient_stake:", "1000000 tokens exceeds"]),
    ("stake to an unknown hotkey name", ["stake", "add", "--amount", "1", "--hotkey", "nope",
                                         "--name", "user"], PASSWORD,
     ["--hotkey 'nope': neither an SS58 address nor a hotkey of wallet 'user'"]),
    ("register on an unknown netuid", ["register", "--netuid", "999", "--name", "user"],
     PASSWORD, ["register refused: unknown_subnet:", "subnet 999 does not exist"]),
    ("register twice", ["register", "--netuid", "{netuid}", "--name", "user"], PASSWORD,
     ["register refused: already_registered:"]),
    ("deregister on an unknown netuid", ["deregister", "--netuid", "999", "--name", "user"],
     PASSWORD, ["deregister refused: unknown_subnet:", "subnet 999 does not exist"]),
    ("deregister a hotkey with no uid there",
     ["deregister", "--netuid", "{netuid}", "--hotkey", "{dest}", "--name", "user"], PASSWORD,
     ["deregister refused: not_registered: hotkey:", "is not registered on subnet"]),
    ("deregister another coldkey's hotkey",
     ["deregister", "--netuid", "{netuid}", "--hotkey", "{hotkey}", "--wallet", "boss"],
     PASSWORD, ["deregister refused: not_owner: hotkey:", "only it may deregister"]),
    ("deregister with a hotkey name the wallet lacks",
     ["deregister", "--netuid", "{netuid}", "--hotkey", "nope", "--name", "user"], PASSWORD,
     ["--hotkey 'nope': neither an SS58 address nor a hotkey of wallet 'user'"]),
    ("deregister with a netuid that is not a number",
     ["deregister", "--netuid", "one", "--name", "user"], PASSWORD,
     ["--netuid 'one': must be a whole number in [0, 65535]"]),
    ("metagraph of an unknown netuid", ["metagraph", "999"], PASSWORD,
     ["unknown_subnet", "subnet 999 does not exist"]),
    ("subnet show of an unknown netuid", ["subnet", "show", "999"], PASSWORD,
     ["unknown_subnet"]),
    ("netuid that is not a number", ["metagraph", "one"], PASSWORD,
     ["NETUID 'one': must be a whole number in [0, 65535]"]),
    ("set hyperparameters of a subnet one does not own",
     ["subnet", "set", "{netuid}", "--param", "tempo=7", "--name", "user"], PASSWORD,
     ["subnet set refused: not_owner:"]),
    ("unknown hyperparameter", ["subnet", "set", "{netuid}", "--param", "speed=7",
                                "--name", "user"], PASSWORD,
     ["--param speed: not a hyperparameter"]),
    ("hyperparameter out of the chain's range",
     ["subnet", "create", "--param", "tempo=0", "--name", "user"], PASSWORD,
     ["subnet create refused: invalid_param: hyperparameters.tempo:"]),
    ("weights for a uid that does not exist",
     ["weights", "set", "--netuid", "{netuid}", "--uids", "0,77", "--weights", "1,1",
      "--name", "user"], PASSWORD, ["weights set refused: invalid_uid:"]),
    ("weights that are not numbers",
     ["weights", "set", "--netuid", "{netuid}", "--uids", "0", "--weights", "lots",
      "--name", "user"], PASSWORD, ["--weights: 'lots' is not a number"]),
    ("weights on an unknown netuid",
     ["weights", "set", "--netuid", "999", "--uids", "0", "--weights", "1", "--name", "user"],
     PASSWORD, ["weights set refused: unknown_subnet:"]),
    ("pending commits of a bad address",
     ["weights", "pending", "--netuid", "{cr}", "--address", "5notanaddress"], PASSWORD,
     ["--address: "]),
    ("pending commits on an unknown netuid", ["weights", "pending", "--netuid", "999"],
     PASSWORD, ["unknown_subnet"]),
    ("reveal without a commit", ["weights", "reveal", "--netuid", "{cr}", "--name", "user"],
     PASSWORD, ["no saved commit for this hotkey on subnet", "weights commit"]),
    ("commit on a subnet without commit-reveal",
     ["weights", "commit", "--netuid", "{netuid}", "--uids", "0", "--weights", "1",
      "--name", "user"], PASSWORD, ["weights commit refused: commit_reveal_disabled:"]),
    ("wallet new over an existing wallet", ["wallet", "new", "--name", "user"], PASSWORD,
     ["already exists", "--overwrite"]),
    ("wallet name with a path in it", ["wallet", "new", "--name", "../up"], PASSWORD,
     ["wallet name '../up' is not allowed"]),
    ("ledger URL that is not http", ["wallet", "balance", "--name", "user", "--ledger",
                                     "ftp://example"], PASSWORD,
     ["--ledger: ledger URL 'ftp://example' must look like http://HOST:PORT"]),
]


@pytest.mark.parametrize(("args", "password", "fragments"),
                         [case[1:] for case in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_one_line_and_changes_nothing(
    cli: Cli, chain: LedgerClient, stage: Stage, args: list[str], password: str | None,
    fragments: list[str],
) -> None:
    dest = chain.chain()["sudo"]
    filled = [a.format(netuid=stage.netuid, cr=stage.cr_netuid, dest=dest, hotkey=stage.hotkey)
              for a in args]
    before = snapshot(cli, chain, stage)
    line = cli.fails(*filled, password=password)
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    # Anything the ledger would have included shows up as a nonce bump; give the next
    # block a chance to come, then compare.
    height = chain.chain()["block"]
    wait_until(lambda: chain.chain()["block"] > height + 1, 30, "two more blocks")
    assert snapshot(cli, chain, stage) == before


def test_unreachable_ledger(cli: Cli, stage: Stage) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    before = files(cli.home)
    for args in (["wallet", "balance", "--name", "user"], ["subnet", "list"],
                 ["metagraph", "1"], ["transfer", "--dest", stage.coldkey, "--amount", "1",
                                      "--name", "user"],
                 ["weights", "set", "--netuid", "1", "--uids", "0", "--weights", "1",
                  "--name", "user"]):
        line = cli.fails(*args, "--ledger", url)
        assert f"cannot reach the ledger at {url}" in line, line
        assert "subnetlab ledger serve" in line
    assert files(cli.home) == before


def test_a_refused_commit_leaves_no_salt_behind(cli: Cli, stage: Stage) -> None:
    before = files(cli.home)
    line = cli.fails("weights", "commit", "--netuid", "999", "--uids", "0", "--weights", "1",
                     "--name", "user")
    assert "weights commit refused: unknown_subnet:" in line
    assert files(cli.home) == before


def test_reveal_too_early_keeps_the_salt(cli: Cli, chain: LedgerClient, stage: Stage) -> None:
    committed = cli.json("weights", "commit", "--netuid", str(stage.cr_netuid), "--uids", "0",
                         "--weights", "1", "--name", "user")
    saved = Path(committed["saved"])
    record = json.loads(saved.read_text())
    assert record["reveal_epoch"] == chain.subnet(stage.cr_netuid)["epochs_run"] + 1
    nonce = chain.nonce(stage.hotkey)
    line = cli.fails("weights", "reveal", "--netuid", str(stage.cr_netuid), "--name", "user")
    assert "weights reveal refused: reveal_too_early:" in line, line
    assert saved.exists() and json.loads(saved.read_text()) == record
    assert chain.nonce(stage.hotkey) == nonce
    # A second commit makes the choice ambiguous: the CLI asks which one, by hash.
    second = cli.json("weights", "commit", "--netuid", str(stage.cr_netuid), "--uids", "0",
                      "--weights", "0.5", "--name", "user")
    line = cli.fails("weights", "reveal", "--netuid", str(stage.cr_netuid), "--name", "user")
    assert "2 saved commits" in line and "--commit HASH" in line
    line = cli.fails("weights", "reveal", "--netuid", str(stage.cr_netuid), "--commit",
                     second["commit_hash"], "--name", "user")
    assert "reveal_too_early" in line


# ---- dev keys: the local chain's own accounts, without wallets ---------------------------


def test_dev_keys_sign_without_a_wallet(cli: Cli, chain: LedgerClient) -> None:
    """alice is the genesis sudo key and bob a funded dev account: both sign from their
    names, with no wallet file and no password, and the hotkey of a dev key is itself."""
    before = files(cli.home)
    alice, bob = Keypair.dev("alice").ss58_address, Keypair.dev("bob").ss58_address
    assert chain.chain()["sudo"] == alice
    net = cli.json("subnet", "create", "--dev-key", "alice", "--param", "weights_rate_limit=0",
                   "--param", "tempo=5000")["netuid"]
    assert chain.subnet(net)["owner"] == alice
    cli.ok("subnet", "set", str(net), "--param", "tempo=4000", "--dev-key", "alice")
    assert chain.subnet(net)["hyperparameters"]["tempo"] == 4000
    # Never registered: the refusal says so, in tokens, and what to do.
    line = cli.fails("stake", "add", "--amount", "2.5", "--dev-key", "bob", password=None)
    assert line.startswith("error: stake add refused: unknown_account: "), line
    assert line.endswith("register it first: `subnetlab register --netuid NETUID --dev-key "
                         "bob --hotkey default`"), line
    registered = cli.json("register", "--netuid", str(net), "--dev-key", "bob")
    assert registered["hotkey"] == bob and registered["uid"] == 0
    cli.ok("stake", "add", "--amount", "2.5", "--dev-key", "bob")
    assert cli.json("stake", "list", "--dev-key", "bob")["stake"] == [
        {"hotkey": bob, "amount": 2_500_000_000}]
    sent = cli.json("transfer", "--dest", alice, "--amount", "1", "--dev-key", "bob")
    assert sent["amount"] == TOKEN
    cli.ok("weights", "set", "--netuid", str(net), "--uids", "0", "--weights", "1",
           "--dev-key", "bob")
    line = cli.fails("stake", "remove", "--amount", "1000000000", "--dev-key", "bob")
    assert "stake remove refused: insufficient_stake: amount: 1000000000 tokens exceeds the "\
           "2.5 tokens staked" in line, line
    assert files(cli.home) == before  # no wallet, no key file was needed or made
