"""`subnetlab up --seed`: two real runs of one spec and seed repeat what the seed fixes.

Each run is the real thing (ledger, miner and validator processes, HTTP, Redis); the
evidence the validator stores in Redis holds each round's task and each miner's answer,
so the two runs are compared there: the same task in the same round, the same answer
from the same miner to it, and the same genesis but for its per-run salt. Timing is not
compared (how many rounds a run gets follows the machine's load), only the rounds both
runs reached.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis

from tests.integration.conftest import start_redis_server, stop_redis_server
from tests.integration.test_up import _refused, env

SPEC = """apiVersion: subnetlab.io/v1alpha1
kind: Subnet
metadata: {name: seeded}
spec:
  hyperparameters: {tempo: 8, weightsRateLimit: 2, immunityPeriod: 1000,
                    maxRegistrationsPerBlock: 64, targetRegistrationsPerInterval: 64}
---
apiVersion: subnetlab.io/v1alpha1
kind: Neuron
metadata: {name: validator}
spec: {subnet: seeded, role: validator, stake: 1000, validator: {intervalSeconds: 0.2}}
---
apiVersion: subnetlab.io/v1alpha1
kind: Neuron
metadata: {name: coin-miner}
spec: {subnet: seeded, role: miner, miner: {backend: {type: sim, accuracy: 0.5}}}
---
apiVersion: subnetlab.io/v1alpha1
kind: Neuron
metadata: {name: good-miner}
spec: {subnet: seeded, role: miner}
"""


def _run(tmp_path: Path, name: str, redis_url: str) -> Path:
    """`subnetlab up --seed 11` of SPEC for a few seconds; its run dir (report inside)."""
    spec = tmp_path / "seeded.yaml"
    spec.write_text(SPEC)
    run_dir = tmp_path / name
    done = subprocess.run(
        [sys.executable, "-m", "subnetlab", "up", "-f", str(spec), "--seed", "11",
         "--duration", "10", "--run-dir", str(run_dir), "--report", str(run_dir / "report"),
         "--redis-url", redis_url],
        capture_output=True, text=True, timeout=180, env=env(tmp_path), check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "seed 11" in done.stdout
    return run_dir


def _rounds(redis_url: str) -> dict[int, list[dict[str, Any]]]:
    """Every evidence record the run's validator stored, by round."""
    client = redis.Redis.from_url(redis_url)
    try:
        documents = [json.loads(client.get(key) or b"{}")
                     for key in client.scan_iter("subnetlab:evidence:*")]
    finally:
        client.close()
    rounds: dict[int, list[dict[str, Any]]] = {}
    for document in documents:
        for record in document.get("records", []):
            rounds.setdefault(int(record["round"]), []).append(record)
    return rounds


def test_same_seed_same_tasks_answers_and_genesis(tmp_path: Path) -> None:
    server = start_redis_server(tmp_path / "redis")
    try:
        urls = [server.url.removesuffix("/0") + f"/{db}" for db in (1, 2)]
        first, second = (_run(tmp_path, f"run-{i}", url) for i, url in enumerate(urls))
        a, b = _rounds(urls[0]), _rounds(urls[1])
    finally:
        stop_redis_server(server)
    common = sorted(set(a) & set(b))
    assert len(common) >= 3, (sorted(a), sorted(b))
    for round_ in common:
        tasks = {(r["kind"], r["seed"], r["prompt"]) for r in a[round_] + b[round_]}
        assert len(tasks) == 1, (round_, tasks)  # the round's task is the seed's
        answers_a = {r["hotkey"]: r["response"] for r in a[round_] if r["response"]}
        answers_b = {r["hotkey"]: r["response"] for r in b[round_] if r["response"]}
        for hotkey in answers_a.keys() & answers_b.keys():
            assert answers_a[hotkey] == answers_b[hotkey], round_  # sim answers per prompt
    genesis = [json.loads((run / "genesis.json").read_text()) for run in (first, second)]
    assert genesis[0].pop("salt") != genesis[1].pop("salt")  # fresh per run, on purpose
    assert genesis[0] == genesis[1]
    summary = json.loads((first / "report" / "summary.json").read_text())
    assert summary["seed"] == 11
    assert any("sim engines" in item and "coin-miner" in item for item in summary["simulated"])
    assert any("reference oracle" in item for item in summary["simulated"])
    assert any(item.startswith("chain: the ledger process") for item in summary["real"])
    report = (first / "report" / "report.md").read_text()
    assert "Seed: 11" in report and "- simulated: inference: sim engines" in report
    run_info = json.loads((first / "run.json").read_text())
    assert run_info["seed"] == 11 and run_info["simulated"] == summary["simulated"]


def test_a_seed_out_of_range_is_refused_before_anything_starts(tmp_path: Path) -> None:
    assert _refused(tmp_path, "--seed", "-1").startswith(
        "error: Invalid value for '--seed': Input should be greater than or equal to 0")
    assert "less than or equal to 2147483647" in _refused(tmp_path, "--seed", "2147483648")
