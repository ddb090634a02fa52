"""`subnetlab up` end to end: the acceptance command with a crash and its restart, the
report and the printed view; Ctrl-C and a ledger hiccup; the adversarial example with a
wallet miner; bad specs and flags refused before anything starts; --detach and `down`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from subnetlab.bench.processes import free_port
from subnetlab.local.processes import die_with_parent
from tests.integration.conftest import start_redis_server, stop_redis_server

EXAMPLES = Path(__file__).parents[2] / "manifests" / "examples"


def children_of(pid: int) -> set[int]:
    """Every live descendant of `pid` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and ") Z " not in stat.read_text()


def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "SUBNETLAB_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}


def _refused(tmp_path: Path, *args: str, cwd: Path | None = None,
             extra_env: dict[str, str] | None = None) -> str:
    """Run `subnetlab up ARGS`, which must fail in one line before starting anything;
    return that line."""
    proc = subprocess.run([sys.executable, "-m", "subnetlab", "up", *args],
                          capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={**env(tmp_path), **(extra_env or {})}, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert not (tmp_path / "home" / "runs").exists()  # nothing was started or written
    assert proc.stdout == ""
    return lines[0]


def test_bad_spec_is_refused_before_anything_starts(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: subnetlab.io/v1alpha1\nkind: Subnet\nmetadata: {name: s}\n"
                   "spec: {hyperparameters: {kappa: 3}}\n")
    line = _refused(tmp_path, "-f", str(bad))
    assert f"{bad} (Subnet s): spec.hyperparameters.kappa" in line


SUBNET_S = "apiVersion: subnetlab.io/v1alpha1\nkind: Subnet\nmetadata: {name: s}\n---\n"


@pytest.mark.parametrize(
    ("neuron", "expected"),
    [
        ("{subnet: s, role: miner, wallet: {wallet: nowhere}}", "(Neuron n): spec.wallet: "),
        ("{subnet: s, role: miner, miner: {backend: {type: vllm, model: Qwen/Qwen2.5-0.5B, "
         "gpus: 0}}}", "(Neuron n): spec.miner.backend.gpus: gpus: 0 runs the CPU build"),
        ("{subnet: s, role: miner, miner: {backend: {type: openai, url: 'engine:80', "
         "model: m}}}", "(Neuron n): spec.miner.backend.url: "),
        ("{subnet: s, role: validator, behaviour: cabal}", "(Neuron n): spec.validator.cabal: "),
    ],
)
def test_specs_this_machine_cannot_run_are_refused_before_anything_starts(
        tmp_path: Path, neuron: str, expected: str) -> None:
    spec = tmp_path / "net.yaml"
    spec.write_text(SUBNET_S + "apiVersion: subnetlab.io/v1alpha1\nkind: Neuron\n"
                    f"metadata: {{name: n}}\nspec: {neuron}\n")
    line = _refused(tmp_path, "-f", str(spec),
                    extra_env={"SUBNETLAB_CACHE": str(tmp_path / "empty-cache")})
    assert f"{spec} {expected}" in line, line


def test_bad_flags_are_refused_before_anything_starts(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    assert _refused(tmp_path, "--run-dir", str(afile)) == (
        f"error: --run-dir {afile}: exists and is not a directory")
    line = _refused(tmp_path, "--report", str(afile / "out"))
    assert line == f"error: --report {afile / 'out'}: cannot be created: {afile} is not a " \
        "directory"
    line = _refused(tmp_path, "--redis-url", "http://127.0.0.1:6379")
    assert "--redis-url: 'http://127.0.0.1:6379' must start with redis://" in line
    closed = f"redis://:secret@127.0.0.1:{free_port()}/0"
    line = _refused(tmp_path, "--redis-url", closed)
    assert "--redis-url redis://:***@127.0.0.1:" in line and "no Redis answers there" in line
    assert "secret" not in line


def test_a_redis_that_may_lose_blocks_is_refused_unless_volatile_is_said(
        tmp_path: Path) -> None:
    assert _refused(tmp_path, "--volatile-redis") == (
        "error: --volatile-redis: only with --redis-url (the embedded Redis is durable)")
    server = start_redis_server(tmp_path / "volatile-redis", durable=False)
    try:
        line = _refused(tmp_path, "--redis-url", server.url)
        assert f"--redis-url {server.url} may lose blocks on a crash" in line
        assert "appendonly" in line and "give --volatile-redis" in line
    finally:
        stop_redis_server(server)


def test_paths_of_the_wrong_kind_are_refused_in_one_line(tmp_path: Path) -> None:
    line = _refused(tmp_path, "-f", "/bin/ls")
    assert line == "error: /bin/ls: not a text file (not UTF-8), not a YAML spec"
    # root passes access() checks, but nothing can be created under /proc: the report
    # folder is tried for real before the run, which a bad --report must never lose
    line = _refused(tmp_path, "--report", "/proc/nope")
    assert line.startswith("error: --report /proc/nope: cannot be created"), line


def _wait_for(what: str, output: list[str], proc: subprocess.Popen[bytes],
              timeout: float = 180) -> None:
    """Until `what` appears in the collected output (the deadline only bounds a hang)."""
    deadline = time.monotonic() + timeout
    while what not in "".join(output):
        assert proc.poll() is None, "".join(output)[-3000:]
        assert time.monotonic() < deadline, f"never saw {what!r}: {''.join(output)[-3000:]}"
        time.sleep(0.2)


def _collect(proc: subprocess.Popen[bytes]) -> tuple[list[str], threading.Thread]:
    output: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            output.append(raw.decode(errors="replace"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return output, reader


def _pids_running(parent: int, marker: bytes) -> list[int]:
    found = []
    for pid in children_of(parent):
        try:
            if marker in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def test_the_acceptance_command_as_the_issue_writes_it(tmp_path: Path) -> None:
    """`subnetlab up --duration 90 --report out/` (the default example, the default organic
    rate), with one miner killed on the way: epochs, incentives, dividends, the N+V ratio,
    the restart, the printed view, and no orphans."""
    up = subprocess.Popen([sys.executable, "-m", "subnetlab", "up", "--duration", "90",
                           "--report", "out/"], cwd=tmp_path, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, env=env(tmp_path),
                          preexec_fn=die_with_parent())
    output, reader = _collect(up)
    seen: set[int] = set()
    killed: list[int] = []

    def watch() -> None:
        while up.poll() is None:
            seen.update(children_of(up.pid))
            if not killed and "testnet up:" in "".join(output):
                time.sleep(20)  # a few epochs first
                for pid in _pids_running(up.pid, b"demo-miner-1"):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.5)

    watcher = threading.Thread(target=watch)
    watcher.start()
    up.wait(timeout=300)
    watcher.join()
    reader.join(10)
    text = "".join(output)
    assert up.returncode == 0, text[-3000:]
    assert killed, "the test never found miner-1 to crash"

    report = tmp_path / "out"
    summary = json.loads((report / "summary.json").read_text())
    subnet = summary["subnets"][0]
    print(json.dumps({k: v for k, v in subnet.items() if k != "neurons"}))
    assert subnet["epochs"] >= 10  # tempo 20 at 0.25 s blocks: an epoch each 5 s
    neurons = {n["name"]: n for n in subnet["neurons"]}
    honest = [n for n in neurons.values() if n["role"] == "miner" and n["behaviour"] == "honest"]
    assert len(honest) == 5
    assert all(n["incentive"] > 0 for n in honest), honest
    assert all(n["incentive"] > neurons["miner-lazy"]["incentive"] for n in honest)
    assert all(neurons[v]["dividends"] > 0 for v in ("validator-0", "validator-1"))
    # broadcast: fanOut miners' answers plus the reference answer, over the delivered one;
    # one lazy miner of six answers a single token (docs/testnet.md)
    fan_out = 4
    ratio = subnet["overhead_ratio"]
    assert ratio is not None and fan_out - 0.1 <= ratio <= fan_out + 1, ratio
    assert subnet["organic_latency_ms"]["p50"] is not None
    assert subnet["organic_requests"] >= 60  # about one a second over 90 s
    assert neurons["miner-1"]["restarts"] >= 1
    assert any("miner-1 crashed; restarted (#1)" in e for e in summary["events"])
    assert (report / "report.md").read_text().count("![") == 2
    assert (report / "demo-emission-share.png").read_bytes()[:4] == b"\x89PNG"

    # what was printed: a line per setup step, the crash as it happened, the final view
    for step in ("starting the ledger on http://127.0.0.1:", "creating subnet demo, "
                 "registering and staking 8 neurons: done", "starting 8 miners and "
                 "validators: done"):
        assert step in text, text[:2000]
    assert "miner-1 crashed (exit code -9); restarting in 0.5 s" in text
    view = text[text.rindex("subnet demo (netuid"):]
    for column in ("uid", "neuron", "incentive", "dividends", "emission", "trust", "vtrust",
                   "restarts"):
        assert column in view
    assert all(name in view for name in neurons)
    shown = re.search(r"N\+V ratio (\d+\.\d\d)", view)  # the view's last refresh: a few
    assert shown and fan_out - 0.1 <= float(shown.group(1)) <= fan_out + 1  # requests fewer
    # each event printed once, as a line when it happened (not listed in the view again)
    assert text.count("miner-1 crashed; restarted (#1)") == 1
    assert "miner-1 crashed; restarted (#1)" not in view

    time.sleep(1)
    leftovers = [p for p in seen if alive(p)]
    assert not leftovers, leftovers


def test_ctrl_c_stops_everything_and_a_ledger_hiccup_does_not(tmp_path: Path) -> None:
    """SIGINT to `subnetlab up` (what Ctrl-C sends) stops every child; before that, the
    ledger is killed: the view says it does not answer, the supervisor restarts it, the run
    goes on."""
    run_dir = tmp_path / "run"
    up = subprocess.Popen([sys.executable, "-m", "subnetlab", "up", "--miners", "2",
                           "--validators", "1", "--run-dir", str(run_dir)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env(tmp_path),
                          preexec_fn=die_with_parent())
    output, reader = _collect(up)
    try:
        _wait_for("testnet up:", output, up)
        family = children_of(up.pid)
        assert len(family) >= 4  # redis, ledger, 2 miners, 1 validator
        [ledger] = _pids_running(up.pid, b"ledger\0serve")
        os.kill(ledger, signal.SIGKILL)
        _wait_for("ledger answering again", output, up)
        family |= children_of(up.pid)
        up.send_signal(signal.SIGINT)
        up.wait(timeout=120)
    finally:
        if up.poll() is None:
            up.kill()
    reader.join(10)
    text = "".join(output)
    assert up.returncode == 0, text[-3000:]
    assert "not answering" in text and "ledger crashed; restarted (#1)" in text
    assert "stopping" in text
    time.sleep(1)
    assert not [p for p in family if alive(p)]


EXTRA = """apiVersion: subnetlab.io/v1alpha1
kind: Neuron
metadata: {name: wallet-miner}
spec: {subnet: adversarial, role: miner, stake: 5, wallet: {wallet: mine, hotkey: h1}}
"""


def test_the_adversarial_example_with_a_wallet_miner(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The adversarial example, plus a miner whose hotkey is a wallet's and which holds
    stake: the attacks show in the summary, the wallet miner earns (it signs with the
    hotkey that was registered), and so does each of the sybil's three hotkeys, served by
    its one process."""
    from subnetlab import wallet

    monkeypatch.setenv(wallet.HOME_ENV, str(tmp_path / "home"))
    made = wallet.create_wallet("mine", "a password", hotkey="h1")
    extra = tmp_path / "extra.yaml"
    extra.write_text(EXTRA)
    report = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, "-m", "subnetlab", "up", "-f", str(EXAMPLES / "adversarial.yaml"),
         "-f", str(extra), "--duration", "40", "--report", str(report)],
        capture_output=True, text=True, timeout=240, env=env(tmp_path), check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    subnet = json.loads((report / "summary.json").read_text())["subnets"][0]
    neurons = {n["name"]: n for n in subnet["neurons"]}
    print(json.dumps(neurons, indent=1))
    assert subnet["epochs"] >= 4
    assert neurons["passthrough-miner"]["behaviour"] == "passthrough"
    assert neurons["passthrough-miner"]["uid"] is not None
    assert neurons["passthrough-miner"]["incentive"] > 0  # it forwards to a right engine
    copycat = neurons["copycat-miner"]
    assert copycat["behaviour"] == "copycat" and copycat["uid"] is not None
    assert copycat["incentive"] > 0  # it relays a right engine's answers as its own
    assert neurons["copier-validator"]["behaviour"] == "weight-copier"
    assert neurons["copier-validator"]["uid"] is not None
    assert neurons["copier-validator"]["dividends"] > 0  # the attack pays: it copies consensus
    assert neurons["lazy-miner"]["incentive"] < neurons["honest-miner-0"]["incentive"]
    mine = neurons["wallet-miner"]
    assert mine["hotkey"] == made.hotkey.ss58_address
    assert mine["stake"] >= 5  # miners are staked too
    assert mine["incentive"] > 0 and mine["restarts"] == 0
    sybil = neurons["sybil-miner"]
    uids = [sybil["uid"], *(s["uid"] for s in sybil["sybils"])]
    assert len(sybil["sybils"]) == 2 and None not in uids and len(set(uids)) == 3
    assert all(n["sybils"] == [] for name, n in neurons.items() if name != "sybil-miner")
    incentives = [sybil["incentive"], *(s["incentive"] for s in sybil["sybils"])]
    assert all(i > 0 for i in incentives), incentives  # every hotkey is asked and answers
    assert sum(incentives) > neurons["honest-miner-0"]["incentive"]  # the attack pays
    assert sybil["restarts"] == 0
    assert "passthrough" in done.stdout and "weight-copier" in done.stdout
    assert "sybil-miner sybil 2" in done.stdout  # the view: a line per hotkey
    assert "registering and staking 9 neurons (and 2 sybil hotkeys): done" in done.stdout


def test_detach_and_down(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    started = subprocess.run(
        [sys.executable, "-m", "subnetlab", "up", "--miners", "2", "--validators", "1",
         "--run-dir", str(run_dir), "--detach"],
        capture_output=True, text=True, timeout=60, env=env(tmp_path), check=False)
    assert started.returncode == 0, started.stderr
    pid = int((tmp_path / "home" / "up.pid").read_text())
    # It returns once the ledger answers, with the line that points the chain commands at it.
    ledger = json.loads((run_dir / "run.json").read_text())["ledger_url"]
    assert started.stdout.splitlines()[-2:] == [f"ledger: {ledger}",
                                                f"export SUBNETLAB_LEDGER={ledger}"]
    listed = subprocess.run([sys.executable, "-m", "subnetlab", "subnet", "list", "--json"],
                            capture_output=True, text=True, timeout=60, check=False,
                            env={**env(tmp_path), "SUBNETLAB_LEDGER": ledger})
    assert listed.returncode == 0, listed.stderr
    deadline = time.monotonic() + 120
    while "testnet up:" not in (run_dir / "up.log").read_text(errors="replace"):
        assert alive(pid), (run_dir / "up.log").read_text()[-2000:]
        assert time.monotonic() < deadline, "detached testnet did not come up"
        time.sleep(0.5)
    family = children_of(pid)
    assert len(family) >= 4  # ledger, redis, 2 miners, 1 validator
    again = subprocess.run(
        [sys.executable, "-m", "subnetlab", "up", "--miners", "1", "--validators", "1",
         "--detach"], capture_output=True, text=True, timeout=60, env=env(tmp_path),
        check=False)
    assert again.returncode == 2 and "already running" in again.stderr
    down = subprocess.run([sys.executable, "-m", "subnetlab", "down"], capture_output=True,
                          text=True, timeout=120, env=env(tmp_path), check=False)
    assert down.returncode == 0, down.stderr
    time.sleep(1)
    assert not alive(pid)
    assert not [p for p in family if alive(p)]
    assert not (tmp_path / "home" / "up.pid").exists()
    nothing = subprocess.run([sys.executable, "-m", "subnetlab", "down"], capture_output=True,
                             text=True, timeout=60, env=env(tmp_path), check=False)
    assert nothing.returncode == 2 and "no testnet" in nothing.stderr


@pytest.fixture(autouse=True)
def _no_stray_pid_file(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir(exist_ok=True)
