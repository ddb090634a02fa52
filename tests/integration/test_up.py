"""`subnetlab up` end to end: the default example, a crash and its restart, the report, no
orphans; bad specs refused before anything starts; --detach and `subnetlab down`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest


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


def test_bad_spec_is_refused_before_anything_starts(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: subnetlab.io/v1alpha1\nkind: Subnet\nmetadata: {name: s}\n"
                   "spec: {hyperparameters: {kappa: 3}}\n")
    proc = subprocess.run([sys.executable, "-m", "subnetlab", "up", "-f", str(bad)],
                          capture_output=True, text=True, timeout=60, env=env(tmp_path),
                          check=False)
    assert proc.returncode == 2
    assert str(bad) in proc.stderr and "spec.hyperparameters.kappa" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "home" / "runs").exists()


def test_default_testnet_runs_restarts_a_crashed_neuron_and_reports(tmp_path: Path) -> None:
    report, run_dir = tmp_path / "report", tmp_path / "run"
    up = subprocess.Popen(
        [sys.executable, "-m", "subnetlab", "up", "--duration", "75", "--report", str(report),
         "--run-dir", str(run_dir), "--organic-rate", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env(tmp_path))
    seen: set[int] = set()
    killed: list[int] = []

    def watch() -> None:
        while up.poll() is None:
            seen.update(children_of(up.pid))
            logs = run_dir / "logs"
            if not killed and (logs / "miner-1.log").exists() and time.monotonic() - start > 40:
                for pid in children_of(up.pid):
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                    if b"demo-miner-1" in cmdline:
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                        break
            time.sleep(0.5)

    start = time.monotonic()
    watcher = threading.Thread(target=watch)
    watcher.start()
    output, _ = up.communicate(timeout=240)
    watcher.join()
    text = output.decode(errors="replace")
    assert up.returncode == 0, text[-3000:]
    assert killed, "the test never found miner-1 to crash"

    summary = json.loads((report / "summary.json").read_text())
    subnet = summary["subnets"][0]
    print(json.dumps({k: v for k, v in subnet.items() if k != "neurons"}))
    assert subnet["epochs"] >= 5
    neurons = {n["name"]: n for n in subnet["neurons"]}
    honest = [n for n in neurons.values() if n["role"] == "miner" and n["behaviour"] == "honest"]
    assert all(n["incentive"] > 0 for n in honest), honest
    assert all(n["incentive"] > neurons["miner-lazy"]["incentive"] for n in honest)
    assert all(neurons[v]["dividends"] > 0 for v in ("validator-0", "validator-1"))
    # broadcast with fan-out 3: three miners' answers plus one reference answer, over one
    assert subnet["overhead_ratio"] is not None and 2.5 <= subnet["overhead_ratio"] <= 6
    assert subnet["organic_latency_ms"]["p50"] is not None
    assert neurons["miner-1"]["restarts"] >= 1
    assert any("miner-1 crashed; restarted" in e for e in summary["events"])
    assert (report / "report.md").read_text().count("![") == 2
    assert (report / "demo-emission-share.png").read_bytes()[:4] == b"\x89PNG"
    # no orphans: every process the run started is gone
    time.sleep(1)
    leftovers = [p for p in seen if alive(p)]
    assert not leftovers, leftovers


def test_detach_and_down(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    started = subprocess.run(
        [sys.executable, "-m", "subnetlab", "up", "--miners", "2", "--validators", "1",
         "--run-dir", str(run_dir), "--detach"],
        capture_output=True, text=True, timeout=60, env=env(tmp_path), check=False)
    assert started.returncode == 0, started.stderr
    pid = int((tmp_path / "home" / "up.pid").read_text())
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
