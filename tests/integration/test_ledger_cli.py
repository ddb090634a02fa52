"""`subnetlab ledger serve|verify` fail like a CLI should: one `error:` line, no traceback.

Each command runs as a real subprocess with HOME pointing into the test's tmp dir, so a
mistake can never start (or touch) an embedded Redis under the real ~/.subnetlab.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from subnetlab.ledger.genesis import dev_genesis
from subnetlab.ledger.redis_server import EmbeddedRedis
from subnetlab.ledger.store import BlockStore
from subnetlab.local.processes import die_with_parent
from tests.integration.chainclient import ChainClient, run_cli
from tests.integration.conftest import LedgerProcess, RedisServer, free_port, wait_until

UNREACHABLE = "redis://127.0.0.1:1/0"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return {**os.environ, "HOME": str(home), "SUBNETLAB_HOME": str(home), "COLUMNS": "300"}


def assert_one_error_line(stderr: str, stdout: str, *fragments: str) -> str:
    """stderr is exactly one non-blank line, `error: ...`, holding every fragment."""
    assert "Traceback" not in stderr + stdout, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{stderr}"
    line = lines[0]
    assert line.startswith("error: "), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


def serve(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    result = run_cli(["ledger", "serve", "--port", str(free_port()), *args], env=env, cwd=cwd,
                     timeout=30)
    return result.returncode, result.stdout, result.stderr


def test_serve_with_missing_genesis_file(env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "genesis.json"
    code, out, err = serve(["--genesis", str(missing), "--redis-url", UNREACHABLE], env,
                           tmp_path)
    assert code != 0
    assert_one_error_line(err, out, str(missing), "no such file")


def test_serve_with_genesis_that_is_not_json(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "genesis.json"
    path.write_text('{"chain_id": "x",\n  "balances": {oops}}')
    code, out, err = serve(["--genesis", str(path), "--redis-url", UNREACHABLE], env, tmp_path)
    assert code != 0
    assert_one_error_line(err, out, str(path), "not valid JSON", "line 2")


@pytest.mark.parametrize("genesis, fragments", [
    ({"balances": {"not-an-address": 5}}, ("balances", "not-an-address", "SS58")),
    ({"sudo": "5Gnope"}, ("sudo", "5Gnope", "SS58")),
    ({"balances": {dev_genesis().sudo: -5}}, ("balances",)),
    ({"chain_id": "x", "block_emission": "lots"}, ("block_emission",)),
], ids=["bad_balance_address", "bad_sudo_address", "negative_balance", "wrong_type"])
def test_serve_with_invalid_genesis(
    env: dict[str, str], tmp_path: Path, genesis: dict[str, object], fragments: tuple[str, ...]
) -> None:
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(genesis))
    code, out, err = serve(["--genesis", str(path), "--redis-url", UNREACHABLE], env, tmp_path)
    assert code != 0
    assert_one_error_line(err, out, str(path), *fragments)


def test_serve_with_unreachable_redis(env: dict[str, str], tmp_path: Path) -> None:
    code, out, err = serve(["--redis-url", UNREACHABLE], env, tmp_path)
    assert code != 0
    assert_one_error_line(err, out, "redis", UNREACHABLE, "refused")


def test_serve_on_a_redis_holding_another_genesis(
    env: dict[str, str], tmp_path: Path, system_redis: RedisServer
) -> None:
    """Same chain id, different genesis: refused, never mixed into the stored chain."""
    other = dev_genesis().model_copy(update={"block_emission": 7})
    client = redis.Redis.from_url(system_redis.url)
    BlockStore(client, other.chain_id).write_genesis(other.model_dump(mode="json"))
    code, out, err = serve(["--redis-url", system_redis.url], env, tmp_path)
    assert code != 0
    assert_one_error_line(err, out, "another genesis")
    stored = BlockStore(client, other.chain_id).genesis()
    assert stored is not None and stored["block_emission"] == 7
    client.close()


def test_verify_on_an_empty_redis(
    env: dict[str, str], tmp_path: Path, system_redis: RedisServer
) -> None:
    result = run_cli(["ledger", "verify", "--redis-url", system_redis.url], env=env,
                     cwd=tmp_path)
    assert result.returncode not in (0, 1), "exit 1 is reserved for a failed audit"
    assert_one_error_line(result.stderr, result.stdout, "no chain", "no genesis")


def test_verify_with_unreachable_redis(env: dict[str, str], tmp_path: Path) -> None:
    result = run_cli(["ledger", "verify", "--redis-url", UNREACHABLE], env=env, cwd=tmp_path)
    assert result.returncode not in (0, 1), f"exit {result.returncode}: {result.stderr[-300:]}"
    assert_one_error_line(result.stderr, result.stdout, UNREACHABLE)


@pytest.mark.parametrize("command", ["serve", "verify"])
def test_redis_url_that_is_not_a_redis_url(
    env: dict[str, str], tmp_path: Path, command: str
) -> None:
    bad = "http://127.0.0.1:6379"
    if command == "serve":
        code, out, err = serve(["--redis-url", bad], env, tmp_path)
    else:
        result = run_cli(["ledger", "verify", "--redis-url", bad], env=env, cwd=tmp_path)
        code, out, err = result.returncode, result.stdout, result.stderr
    assert code not in (0, 1), f"exit {code}: {err[-300:]}"
    assert_one_error_line(err, out, "--redis-url", bad, "redis://")


def test_fast_and_block_time_together_are_refused(env: dict[str, str], tmp_path: Path) -> None:
    code, out, err = serve(["--fast", "--block-time", "1", "--redis-url", UNREACHABLE], env,
                           tmp_path)
    assert code == 2
    assert_one_error_line(err, out, "--fast", "--block-time")


@pytest.mark.parametrize("level", ["loud", "INFO", ""])
def test_log_level_must_be_one_of_the_choices(
    env: dict[str, str], tmp_path: Path, level: str
) -> None:
    code, out, err = serve(["--log-level", level, "--redis-url", UNREACHABLE], env, tmp_path)
    assert code == 2
    assert_one_error_line(err, out, "--log-level", "debug", "warning")


def _ledger_with(args: list[str], env: dict[str, str], log: Path) -> LedgerProcess:
    ledger = LedgerProcess(free_port(), args, log, env)
    ledger.start()
    return ledger


def test_embedded_redis_lives_under_subnetlab_home_for_serve_and_verify(
    tmp_path: Path
) -> None:
    """No --redis-url, no --data-dir: $SUBNETLAB_HOME/ledger, for `serve` and `verify`."""
    home, user_home = tmp_path / "slhome", tmp_path / "userhome"
    user_home.mkdir()
    env = {**os.environ, "SUBNETLAB_HOME": str(home), "HOME": str(user_home),
           "PYTHONUNBUFFERED": "1"}
    ledger = _ledger_with(["--fast"], env, tmp_path / "ledger")
    embedded = EmbeddedRedis(home / "ledger")
    try:
        assert embedded.is_running(), "no embedded Redis under $SUBNETLAB_HOME/ledger"
        assert not (user_home / ".subnetlab").exists()
        assert str(embedded.socket) in ledger.logs[-1].read_text()  # the log says where
        ChainClient(ledger.url).wait_blocks(2)
        ledger.kill(signal.SIGTERM)
        audit = run_cli(["ledger", "verify"], env=env, cwd=tmp_path)
        assert audit.returncode == 0, audit.stderr
        assert re.search(r"^height [1-9]\d* OK$", audit.stdout, re.M), audit.stdout
    finally:
        ledger.kill(signal.SIGTERM)
        embedded.stop()
    assert not (user_home / ".subnetlab").exists()


def test_a_redis_that_does_not_fsync_every_write_is_refused_unless_volatile(
    env: dict[str, str], tmp_path: Path, system_redis: RedisServer
) -> None:
    """Receipts are reported once Redis acknowledged the block: a server that can lose
    acknowledged writes is refused (one line naming the setting), unless the user says
    --volatile-redis; then it runs, with one warning."""
    client = redis.Redis.from_url(system_redis.url)
    durable = _ledger_with(["--redis-url", system_redis.url, "--fast"], env, tmp_path / "a")
    durable.kill(signal.SIGTERM)
    assert "may lose blocks" not in durable.logs[-1].read_text()

    for name, value in (("appendfsync", "everysec"), ("appendonly", "no")):
        client.config_set(name, value)
        code, out, err = serve(["--redis-url", system_redis.url], env, tmp_path)
        assert code == 2
        assert_one_error_line(err, out, f"{name} is '{value}', not", "--volatile-redis")

    volatile = _ledger_with(["--redis-url", system_redis.url, "--fast", "--volatile-redis"],
                            env, tmp_path / "b")
    volatile.kill(signal.SIGTERM)
    warnings = [json.loads(line) for line in volatile.logs[-1].read_text().splitlines()
                if "may lose blocks" in line]
    assert len(warnings) == 1 and warnings[0]["level"] == "warning", warnings
    assert "appendonly is 'no', not 'yes'" in warnings[0]["msg"]
    assert "--volatile-redis" in warnings[0]["msg"]
    client.close()


@pytest.mark.parametrize(("args", "fragments"), [
    (["--genesis", "/tmp"], ("/tmp: is a directory, not a genesis file",)),
    (["--genesis", "/bin/ls"], ("/bin/ls: not a text file",)),
    (["--data-dir", "/bin/ls"], ("--data-dir /bin/ls: exists and is not a directory",)),
], ids=["genesis_is_a_directory", "genesis_is_binary", "data_dir_is_a_file"])
def test_serve_with_a_path_of_the_wrong_kind(
    env: dict[str, str], tmp_path: Path, args: list[str], fragments: tuple[str, ...]
) -> None:
    code, out, err = serve(args, env, tmp_path)
    assert code == 2
    assert_one_error_line(err, out, *fragments)


def test_serve_on_a_busy_port_is_one_line_and_starts_no_redis(
    env: dict[str, str], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = run_cli(["ledger", "serve", "--port", str(port), "--data-dir", str(data)],
                         env=env, cwd=tmp_path, timeout=30)
    assert result.returncode == 2
    assert_one_error_line(result.stderr, result.stdout, f"http://127.0.0.1:{port}",
                          "Address already in use", "give another --port")
    assert "listening" not in result.stderr + result.stdout
    assert not (data / "redis.pid").exists() and not (data / "redis.sock").exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl_c"])
def test_a_stopped_ledger_stops_the_embedded_redis_it_started(
    env: dict[str, str], tmp_path: Path, sig: signal.Signals
) -> None:
    """SIGTERM, or Ctrl-C as a terminal sends it (to the whole process group, the
    signature worker included): the embedded redis-server ends too, no traceback."""
    data = tmp_path / "data"
    port = free_port()
    log = tmp_path / "ledger.log"
    ledger = subprocess.Popen(
        [sys.executable, "-m", "subnetlab", "ledger", "serve", "--fast", "--port", str(port),
         "--data-dir", str(data)], stdout=log.open("wb"), stderr=subprocess.STDOUT,
        env={**env, "PYTHONUNBUFFERED": "1"}, start_new_session=True,
        preexec_fn=die_with_parent())
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{url}/readyz", timeout=1).status_code == 200, 30,
                   f"the ledger (log: {log})")
        ChainClient(url).wait_blocks(2)
        redis_pid = int((data / "redis.pid").read_text())
        assert _running(redis_pid)
        os.killpg(ledger.pid, sig)
        assert ledger.wait(30) == -sig  # it ends as the signal would end it
    finally:
        if ledger.poll() is None:
            ledger.kill()
            ledger.wait(10)
    deadline = time.monotonic() + 10
    while _running(redis_pid):
        assert time.monotonic() < deadline, f"redis-server {redis_pid} outlived the ledger"
        time.sleep(0.05)
    output = log.read_text()
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert f"ledger stopped ({sig.name})" in output


def _running(pid: int) -> bool:
    """Running (a zombie waiting for its reaper is dead)."""
    try:
        return ") Z " not in Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
