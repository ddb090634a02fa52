"""The `subnetlab` console script as a real process, without a ledger.

What only a real process shows: the password prompt on a real terminal (a pty), stdin
piping for mnemonics, and that a failure is one `error:` line with no traceback when the
command runs the way users run it, not inside a test runner.
"""

from __future__ import annotations

import json
import os
import re
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from subnetlab import wallet
from subnetlab.keys.keypair import Keypair
from tests.integration.chainclient import run_cli
from tests.integration.conftest import free_port

PASSWORD = "typed at the prompt"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    base = {k: v for k, v in os.environ.items()
            if k not in (wallet.PASSWORD_ENV, "SUBNETLAB_LEDGER")}
    return {**base, "HOME": str(home), wallet.HOME_ENV: str(home), "COLUMNS": "250"}


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stdout == ""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def read_until(fd: int, marker: bytes, deadline: float) -> bytes:
    """Bytes from a pty master until ``marker`` shows up (a hang guard, not a timing test)."""
    seen = b""
    while marker not in seen:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {marker!r} from the terminal; got {seen!r}")
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            seen += os.read(fd, 4096)
    return seen


def drain(fd: int) -> bytes:
    """What is left on a pty master once the program exited (EIO marks the end)."""
    rest = b""
    while select.select([fd], [], [], 0.5)[0]:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        rest += chunk
    return rest


def run_on_terminal(args: list[str], env: dict[str, str], answers: list[tuple[bytes, bytes]]
                    ) -> subprocess.CompletedProcess[str]:
    """Run the CLI with a pseudo-terminal as stdin/stderr and answer its prompts in order.

    Each marker must be what the terminal shows once the program reads: the hidden prompt
    turns echo off and flushes pending input first, so typing ahead would be lost.
    """
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "subnetlab", *args], stdin=slave,
                            stdout=subprocess.PIPE, stderr=slave, env=env,
                            start_new_session=True, text=True)
    os.close(slave)
    deadline = time.monotonic() + 60
    terminal = b""
    try:
        for marker, answer in answers:
            terminal += read_until(master, marker, deadline)
            os.write(master, answer)
        stdout, _ = proc.communicate(timeout=60)
        terminal += drain(master)
    finally:
        proc.kill()
        os.close(master)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout,
                                       terminal.decode(errors="replace"))


def test_wallet_new_asks_for_the_password_twice_on_a_terminal(env: dict[str, str],
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    typed = PASSWORD.encode() + b"\n"
    proc = run_on_terminal(["wallet", "new", "--name", "tty", "--json"], env,
                           [(b"password: ", typed), (b"confirmation: ", typed)])
    assert proc.returncode == 0, proc
    made = json.loads(proc.stdout)
    assert PASSWORD not in proc.stderr  # the prompt hides what is typed
    monkeypatch.setenv(wallet.HOME_ENV, env[wallet.HOME_ENV])
    assert wallet.load_coldkey("tty", PASSWORD).ss58_address == made["coldkey"]
    with pytest.raises(wallet.WrongPassword):
        wallet.load_coldkey("tty", "something else")


def test_end_of_input_at_the_prompt_is_one_line(env: dict[str, str]) -> None:
    proc = run_on_terminal(["wallet", "new", "--name", "tty"], env,
                           [(b"password: ", b"\x04")])
    assert proc.returncode == 2
    shown = re.sub(r"\x1b\[[0-9;]*m", "", proc.stderr)  # a terminal gets colours
    assert "Traceback" not in shown
    assert [line for line in shown.splitlines() if line.strip()] == [
        "Coldkey password: ", "error: no password entered"]
    assert not (Path(env[wallet.HOME_ENV]) / "wallets" / "tty").exists()


def test_no_terminal_and_no_password_is_one_line(env: dict[str, str]) -> None:
    line = one_error_line(run_cli(["wallet", "new", "--name", "x"], env=env))
    assert line == ("error: a coldkey password is needed: set SUBNETLAB_PASSWORD or run in "
                    "a terminal")
    assert not Path(env[wallet.HOME_ENV]).exists()


def test_mnemonic_from_stdin_and_listing(env: dict[str, str]) -> None:
    phrase = Keypair.generate().mnemonic
    assert phrase is not None
    proc = subprocess.run([sys.executable, "-m", "subnetlab", "wallet", "new", "--name", "imp",
                           "--mnemonic", "-", "--json"], input=phrase + "\n",
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**env, wallet.PASSWORD_ENV: PASSWORD})
    assert proc.returncode == 0, proc.stderr
    made = json.loads(proc.stdout)
    assert made["coldkey"] == Keypair.from_mnemonic(phrase).ss58_address
    assert made["coldkey_mnemonic"] is None  # imported: not echoed back
    listed = run_cli(["wallet", "list"], env=env)
    assert listed.returncode == 0 and "imp" in listed.stdout and made["coldkey"] in listed.stdout


def test_empty_wallet_list(env: dict[str, str]) -> None:
    proc = run_cli(["wallet", "list"], env=env)
    assert proc.returncode == 0 and "no wallets yet" in proc.stdout
    assert json.loads(run_cli(["wallet", "list", "--json"], env=env).stdout) == []


def test_unreachable_ledger_from_the_console_script(env: dict[str, str]) -> None:
    made = run_cli(["wallet", "new", "--name", "w", "--json"],
                   env={**env, wallet.PASSWORD_ENV: PASSWORD})
    assert made.returncode == 0, made.stderr
    url = f"http://127.0.0.1:{free_port()}"
    line = one_error_line(run_cli(["faucet", "--name", "w", "--ledger", url],
                                  env={**env, wallet.PASSWORD_ENV: PASSWORD}))
    assert line.startswith(f"error: cannot reach the ledger at {url}")
    # The env var picks the ledger for every command, as --ledger does.
    line = one_error_line(run_cli(["subnet", "list"], env={**env, "SUBNETLAB_LEDGER": url}))
    assert url in line


def test_bad_input_fails_before_anything_else(env: dict[str, str]) -> None:
    # No wallet, no ledger, no password: the amount is still the first thing reported.
    line = one_error_line(run_cli(["transfer", "--dest", Keypair.dev("bob").ss58_address,
                                   "--amount", "-3", "--name", "nobody"], env=env))
    assert line == "error: --amount '-3' must be positive"
    line = one_error_line(run_cli(["weights", "set", "--netuid", "1", "--uids", "0,0",
                                   "--weights", "1,1"], env=env))
    assert line == "error: --uids: uid 0 appears more than once"


@pytest.mark.parametrize(("args", "line"), [
    (["transfer", "--amount", "1"], "error: Missing option '--dest' (see `"),
    (["transfer", "--dest", "x", "--amount", "1", "--amout", "2"], "error: No such option: "
     "--amout"),
    (["metagraph"], "error: Missing argument 'NETUID'"),
    (["wallet", "new", "--name"], "error: Option '--name' requires an argument"),
    (["weights", "reveal", "--netuid", "1", "--timeout", "soon"],
     "error: Invalid value for '--timeout'"),
    (["subnet", "lst"], "error: No such command 'lst'. Did you mean 'list'"),
    (["transferr"], "error: No such command 'transferr'. Did you mean 'transfer'"),
])
def test_usage_errors_are_one_line(env: dict[str, str], args: list[str], line: str) -> None:
    shown = one_error_line(run_cli(args, env=env))
    assert shown.startswith(line), shown
    assert shown.endswith(" --help`)")


# ---- miner serve, validator run, audit: every bad flag is one line, before anything runs --

ALICE = Keypair.dev("alice").ss58_address


def _nowhere() -> list[str]:
    """A ledger and an evidence store nobody answers at: a check that wrongly let its flag
    through would fail further on with another line (and start nothing)."""
    return ["--ledger", f"http://127.0.0.1:{free_port()}", "--ledger-wait", "0",
            "--redis-url", f"redis://127.0.0.1:{free_port()}/0"]


@pytest.mark.parametrize(("args", "line"), [
    (["--behaviour", "cabal", "--cabal", "-1"],
     "error: --cabal: '-1' is not a uid (a whole number 0..65535)"),
    (["--behaviour", "cabal", "--cabal", "1,99999"],
     "error: --cabal: '99999' is not a uid (a whole number 0..65535)"),
    (["--behaviour", "cabal", "--cabal", "1,,2"], "error: --cabal '1,,2': entry 1 is empty"),
    (["--behaviour", "cabal", "--cabal", ""], "error: --cabal: give at least one entry"),
    (["--behaviour", "cabal"], "error: --cabal: --behaviour cabal needs the miner uids to boost"),
    (["--cabal", "1,2"], "error: --cabal: only applies to --behaviour cabal, not honest"),
    (["--behaviour", "lazy", "--cabal", "3"],
     "error: --cabal: only applies to --behaviour cabal, not lazy"),
    (["--host", "192.0.2.1"],  # TEST-NET-1: an address this machine does not have
     "error: --host 192.0.2.1: cannot listen on 192.0.2.1:"),
    (["--host", "nonsense.invalid"], "error: --host nonsense.invalid: "),
])
def test_bad_validator_flags_are_one_line(env: dict[str, str], args: list[str], line: str
                                          ) -> None:
    proc = run_cli(["validator", "run", "--dev-key", "v-bad", "--port", str(free_port()),
                    *_nowhere(), *args], env={**env, "SUBNETLAB_API_KEYS": "k"})
    shown = one_error_line(proc)
    assert shown.startswith(line), shown
    assert not Path(env[wallet.HOME_ENV]).exists()  # nothing written, no Redis started


def test_validator_port_in_use_is_one_line_before_anything_starts(env: dict[str, str]
                                                                  ) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # No --redis-url: the embedded store would be started next, under the home dir.
        proc = run_cli(["validator", "run", "--dev-key", "v-port", "--port", str(port),
                        "--ledger", f"http://127.0.0.1:{free_port()}", "--ledger-wait", "0"],
                       env={**env, "SUBNETLAB_API_KEYS": "k"})
    line = one_error_line(proc)
    assert line.startswith(f"error: --port {port}: cannot listen on 127.0.0.1:{port}: "), line
    assert not Path(env[wallet.HOME_ENV]).exists()


@pytest.mark.parametrize(("args", "line"), [
    (["--backend", "openai", "--backend-url", "nonsense"],
     "error: --backend-url: 'nonsense' must start with http:// or https://"),
    (["--backend", "vllm", "--backend-url", "http://:8000"],
     "error: --backend-url: 'http://:8000' names no host"),
    (["--behaviour", "copycat", "--copy-from", "ftp://x"],
     "error: --copy-from: 'ftp://x' must start with http:// or https://"),
    (["--behaviour", "copycat", "--copy-from", "http://engine:port"],
     "error: --copy-from: 'http://engine:port' is not a URL"),
])
def test_bad_miner_urls_are_one_line(env: dict[str, str], args: list[str], line: str) -> None:
    proc = run_cli(["miner", "serve", "--dev-key", "m-bad", "--port", str(free_port()),
                    "--ledger", f"http://127.0.0.1:{free_port()}", *args], env=env)
    shown = one_error_line(proc)
    assert shown.startswith(line), shown


@pytest.mark.parametrize(("args", "line"), [
    (["audit", "1"], "error: Missing option '--validator' (see `"),
    (["audit", "1", "--validator", ALICE], "error: Missing option '--epoch'"),
    (["audit", "1", "--validator", "X", "--epoch", "-1"],
     "error: Invalid value for '--epoch': Input should be greater than or equal to 0"),
    (["audit", "abc", "--validator", ALICE, "--epoch", "0"],
     "error: NETUID 'abc': must be a whole number in [0, 65535]"),
    (["audit", "65536", "--validator", ALICE, "--epoch", "0"],
     "error: NETUID '65536': must be a whole number in [0, 65535]"),
    (["validator", "runn"], "error: No such command 'runn'. Did you mean 'run'"),
    (["validator", "run", "--cabl", "1"], "error: No such option: --cabl"),
])
def test_audit_and_validator_usage_errors_are_one_line(env: dict[str, str], args: list[str],
                                                       line: str) -> None:
    shown = one_error_line(run_cli(args, env=env))
    assert shown.startswith(line), shown
    assert shown.endswith(" --help`)")


@pytest.mark.parametrize("address", ["X", ALICE + "x", ALICE[:-1] + "0",
                                     ALICE[:-1] + ("W" if ALICE[-1] != "W" else "X")])
def test_audit_refuses_a_validator_that_is_no_ss58_address(env: dict[str, str],
                                                           address: str) -> None:
    # The ledger is never asked: the address is refused first.
    shown = one_error_line(run_cli(["audit", "1", "--validator", address, "--epoch", "0",
                                    *_nowhere()[:2]], env=env))
    assert shown.startswith(f"error: --validator: address {address!r} "), shown


def test_help_lists_every_command(env: dict[str, str]) -> None:
    proc = run_cli(["--help"], env=env)
    assert proc.returncode == 0
    for command in ("wallet", "faucet", "transfer", "subnet", "register", "stake", "weights",
                    "metagraph"):
        assert command in proc.stdout
