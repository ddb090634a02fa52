"""Servers stop within a bound: real `miner serve` and `ledger serve` processes, real HTTP.

Issue 13, point 7: a miner whose engine was still answering stayed alive long after
SIGTERM (uvicorn waited for the request however long it took). Shown here: SIGTERM ends a
miner within its `--drain-seconds` (plus slack) while a whole answer or a stream is held
open by its engine, whereas a request that finishes within the drain is answered; the
ledger ends the same way with a block stream open; a server whose shutdown hangs is ended
by the watchdog (protocol/drain.py); `--max-body-bytes` sets the cap each server answers
413 past; bad values of either flag are one `error:` line.

The assertions are about whether a process exited, never how fast: the bounds given to
`wait` are several times the drain, and far below how long the held request would last.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from subnetlab.chain.units import TOKEN
from subnetlab.keys.keypair import Keypair
from subnetlab.local.bootstrap import bootstrap_subnet
from subnetlab.local.processes import Child
from subnetlab.protocol.drain import STOP_GRACE_S
from subnetlab.protocol.epistula import sign_request
from tests.integration.chainclient import read_ledger
from tests.integration.conftest import LedgerProcess, free_port, start_ledger, wait_until
from tests.integration.test_cli_offline import one_error_line
from tests.integration.test_miner_process import HOLD, FaultyUpstream

HYPER = {"tempo": 10, "weights_rate_limit": 0, "max_registrations_per_block": 64,
         "target_registrations_per_interval": 64, "immunity_period": 1000}
VALIDATOR = Keypair.dev("drain-validator")
MINERS = {name: Keypair.dev(f"drain-{name}") for name in ("whole", "stream", "answered")}
EXITED_WITHIN = 20.0
"""How long a process with a 1 s drain is given to exit: generous slack, and still well
below the 30 s the held engine would take (before the fix the miner waited it out)."""


@dataclass
class Net:
    ledger_url: str
    netuid: int
    upstream: FaultyUpstream
    logs: Path


@pytest.fixture(scope="module")
def net(module_ledger: LedgerProcess, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Net]:
    ledger = module_ledger.url
    netuid = bootstrap_subnet(ledger, Keypair.dev("alice"), HYPER, miners=list(MINERS.values()),
                              validators=[(VALIDATOR, 1_000 * TOKEN)])

    def permit() -> bool:
        with read_ledger(ledger) as client:
            rows = client.metagraph(netuid)
        return any(n["hotkey"] == VALIDATOR.ss58_address and n["validator_permit"]
                   for n in rows["neurons"])

    wait_until(permit, 60, "the validator's permit")
    upstream = FaultyUpstream()
    try:
        yield Net(ledger, netuid, upstream, tmp_path_factory.mktemp("drain-logs"))
    finally:
        upstream.close()


@dataclass
class Miner:
    child: Child
    hotkey: str

    @property
    def url(self) -> str:
        assert self.child.health_url is not None
        return self.child.health_url.replace("/healthz", "/v1/chat/completions")

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self.child.process is not None
        return self.child.process


@pytest.fixture
def start_miner(net: Net) -> Iterator[Any]:
    """Start a passthrough miner in front of the test's upstream, with further flags."""
    started: list[Child] = []

    def start(name: str, *flags: str) -> Miner:
        port = free_port()
        child = Child(name, ["miner", "serve", "--dev-key", f"drain-{name}", "--netuid",
                             str(net.netuid), "--ledger", net.ledger_url, "--port", str(port),
                             "--log-level", "warning", "--behaviour", "passthrough",
                             "--backend", "openai", "--backend-url", net.upstream.url,
                             "--model", "m", *flags],
                      net.logs / f"{name}.log", f"http://127.0.0.1:{port}/healthz",
                      env=_env(net.logs / "home"))
        started.append(child)
        child.start()
        child.wait_healthy(90)
        return Miner(child, MINERS[name].ss58_address)

    yield start
    net.upstream.release.set()
    for child in started:
        child.stop()


def _env(home: Path) -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith("SUBNETLAB_")} | {"SUBNETLAB_HOME": str(home),
                                                 "HOME": str(home), "COLUMNS": "250"}


def _signed(miner: Miner, body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    return raw, {"Content-Type": "application/json",
                 **sign_request(VALIDATOR, raw, miner.hotkey)}


def _held(stream: bool = False) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": HOLD}], "stream": stream}


def _post_in_background(miner: Miner, body: dict[str, Any]) -> dict[str, Any]:
    """POST `body` from a thread; the returned dict gets `response` or `error`."""
    outcome: dict[str, Any] = {}
    raw, headers = _signed(miner, body)

    def post() -> None:
        try:
            outcome["response"] = httpx.post(miner.url, content=raw, headers=headers,
                                             timeout=120)
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    outcome["thread"] = thread
    return outcome


def _exited(process: subprocess.Popen[bytes], within: float = EXITED_WITHIN) -> int:
    """The exit status, or a failure saying the process outlived `within` seconds."""
    try:
        return process.wait(within)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {within:.0f} s after SIGTERM")


def test_sigterm_ends_a_miner_whose_engine_is_still_answering(net: Net, start_miner: Any
                                                               ) -> None:
    miner = start_miner("whole", "--drain-seconds", "1", "--max-body-bytes", "2000")
    # the flag's cap first: a body over it is refused unread, one under it is not
    raw, headers = _signed(miner, {"model": "m", "messages": [
        {"role": "user", "content": "x" * 3000}]})
    refused = httpx.post(miner.url, content=raw, headers=headers, timeout=30)
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "too_large"
    assert "at most 2000" in refused.json()["error"]["message"]
    net.upstream.hold()  # the engine answers only when released (never, in this test)
    request = _post_in_background(miner, _held())
    assert net.upstream.arrived.get(timeout=30) == "whole"  # in flight, at the engine
    miner.process.send_signal(signal.SIGTERM)
    assert _exited(miner.process) == -signal.SIGTERM
    request["thread"].join(30)
    assert "response" not in request or request["response"].status_code != 200


def test_sigterm_ends_a_miner_with_a_stream_open(net: Net, start_miner: Any) -> None:
    miner = start_miner("stream", "--drain-seconds", "1")
    net.upstream.hold()
    raw, headers = _signed(miner, _held(stream=True))
    with httpx.stream("POST", miner.url, content=raw, headers=headers, timeout=120) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        assert "Waiting" in first  # the stream is open, its engine holding the rest
        assert net.upstream.arrived.get(timeout=30) == "stream"
        miner.process.send_signal(signal.SIGTERM)
        assert _exited(miner.process) == -signal.SIGTERM
        try:
            rest = list(lines)
        except httpx.HTTPError:  # the body was cut off mid-chunk
            rest = []
    assert "data: [DONE]" not in rest  # cut off, not finished


def test_a_request_that_finishes_within_the_drain_is_answered(net: Net, start_miner: Any
                                                               ) -> None:
    miner = start_miner("answered", "--drain-seconds", "120")
    release = net.upstream.hold()
    request = _post_in_background(miner, _held())
    assert net.upstream.arrived.get(timeout=30) == "whole"
    miner.process.send_signal(signal.SIGTERM)
    # draining: the listening socket is closed, the request in flight is not
    wait_until(lambda: _refused(miner), 30, "the miner to stop accepting connections")
    assert miner.process.poll() is None
    release.set()
    request["thread"].join(60)
    response = request["response"]
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "Held whole"
    assert _exited(miner.process, 60) == -signal.SIGTERM


def _refused(miner: Miner) -> bool:
    assert miner.child.health_url is not None
    try:
        httpx.get(miner.child.health_url, timeout=2)
    except httpx.ConnectError:
        return True
    return False


# ---- the ledger ---------------------------------------------------------------------------


def test_sigterm_ends_a_ledger_with_a_block_stream_open(tmp_path: Path, system_redis: Any
                                                        ) -> None:
    ledger = start_ledger(tmp_path, system_redis.url,
                          ["--drain-seconds", "1", "--max-body-bytes", "2000"])
    try:
        batch = json.dumps({"extrinsics": [{"call": "x" * 100}] * 30}).encode()
        refused = httpx.post(f"{ledger.url}/v1/extrinsics/batch", content=batch, timeout=30,
                             headers={"Content-Type": "application/json"})
        assert refused.status_code == 413
        assert "at most 2000" in refused.json()["error"]["message"]
        single = httpx.post(f"{ledger.url}/v1/extrinsics", content=b" " * 3000, timeout=30,
                            headers={"Content-Type": "application/json"})
        assert single.status_code == 413  # one extrinsic: the smaller of the two caps
        assert "at most 2000" in single.json()["error"]["message"]
        with httpx.stream("GET", f"{ledger.url}/v1/stream/blocks", timeout=60) as stream:
            lines = stream.iter_lines()
            assert next(line for line in lines if line.startswith("event:")) == "event: block"
            assert ledger.process is not None
            ledger.process.send_signal(signal.SIGTERM)
            assert _exited(ledger.process) == -signal.SIGTERM
    finally:
        ledger.kill()


# ---- the watchdog: a shutdown that hangs does not keep the process alive ------------------

HANGING_SERVER = """
import sys, time
from subnetlab.protocol.drain import DrainingServer

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                time.sleep(600)  # a shutdown handler stuck in a blocking call
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})

DrainingServer(app, 0.5, host="127.0.0.1", port=int(sys.argv[1]), lifespan="on").run()
"""


def test_a_server_whose_shutdown_hangs_is_ended_by_the_watchdog(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "hanging.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-c", HANGING_SERVER, str(port)],
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code
                   == 200, 60, "the server")
        process.send_signal(signal.SIGTERM)
        assert _exited(process, 0.5 + STOP_GRACE_S + EXITED_WITHIN) == 128 + signal.SIGTERM
        assert "exiting now" in log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


# ---- the flags: one error line for each bad value -----------------------------------------

BAD_VALUES = [
    (["--drain-seconds", "-1"], {}, "--drain-seconds -1.0: must be a number of seconds in "
     "[0, 300]"),
    (["--drain-seconds", "301"], {}, "--drain-seconds 301.0: must be"),
    (["--drain-seconds", "nan"], {}, "--drain-seconds nan: must be"),
    (["--drain-seconds", "soon"], {}, "Invalid value for '--drain-seconds'"),
    ([], {"SUBNETLAB_DRAIN_SECONDS": "inf"}, "--drain-seconds inf: must be"),
    (["--max-body-bytes", "0"], {}, "--max-body-bytes"),
    (["--max-body-bytes", str(64 * 1024 * 1024 + 1)], {}, "--max-body-bytes"),
]


MINER = ["miner", "serve", "--dev-key", "drain-whole"]
OTHERS = [["validator", "run", "--dev-key", "drain-validator"], ["ledger", "serve"]]
CASES = [(MINER, *case) for case in BAD_VALUES] + [
    (command, *case) for command in OTHERS for case in (BAD_VALUES[2], BAD_VALUES[5])] + [
    (["engine", "serve"], *BAD_VALUES[2])]


@pytest.mark.parametrize(("command", "args", "env", "fragment"), CASES)
def test_bad_flag_values_are_one_error_line(tmp_path: Path, command: list[str],
                                            args: list[str], env: dict[str, str],
                                            fragment: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "subnetlab", *command, "--port",
                           str(free_port()), *args], capture_output=True, text=True,
                          timeout=120, check=False, env=_env(tmp_path) | env)
    line = one_error_line(proc)
    assert fragment in line, line
