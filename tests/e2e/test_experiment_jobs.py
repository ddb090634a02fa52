"""`subnetlab experiment run --kubernetes NAMESPACE`: each point of a sweep runs as a Job
on the cluster, from the subnetlab image, and the rows it gathers are the rows a local run
of the same sweep gives (the cabal experiment is deterministic per seed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Cluster, fresh_namespace

pytestmark = pytest.mark.timeout(900)

SWEEP = ["experiment", "run", "cabal", "--stake-shares", "0.4,0.6", "--kappa", "0.5",
         "--subnet-stakes", "1000", "--epochs", "4", "--seeds", "2", "--json"]


def _run(cluster: Cluster, out: Path, *extra: str) -> list[dict[str, Any]]:
    done = subprocess.run([sys.executable, "-m", "subnetlab", *SWEEP, "--out", str(out),
                           *extra], capture_output=True, text=True, env=cluster.env,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_a_sweep_runs_as_jobs_and_gathers_the_rows_a_local_run_gives(
        cluster: Cluster, tmp_path: Path) -> None:
    local = _run(cluster, tmp_path / "local")
    with fresh_namespace(cluster, "exp") as namespace:
        remote = _run(cluster, tmp_path / "kube", "--kubernetes", namespace,
                      "--image", cluster.image, "--jobs", "2")
        left = cluster.get_json("jobs", "-n", namespace, "-l", "subnetlab.io/experiment=cabal")
        assert left["items"] == []  # each Job is deleted once its row is read
    assert len(remote) == 4 and remote == local
    kube_doc = json.loads((tmp_path / "kube" / "results.json").read_text())
    local_doc = json.loads((tmp_path / "local" / "results.json").read_text())
    assert kube_doc["rows"] == local_doc["rows"]
    assert (tmp_path / "kube" / "cabal.png").exists()


def test_a_point_whose_pod_cannot_run_ends_the_sweep_in_one_line_and_leaves_no_job(
        cluster: Cluster, tmp_path: Path) -> None:
    """An image without the subnetlab command (the cluster's own Redis image, present on
    its node, so nothing is pulled): the container cannot start, and the error says so."""
    redis = cluster.get_json("statefulset", f"{cluster.release}-redis", "-n",
                             cluster.release_ns)
    image = redis["spec"]["template"]["spec"]["containers"][0]["image"]
    with fresh_namespace(cluster, "expfail") as namespace:
        done = subprocess.run(
            [sys.executable, "-m", "subnetlab", *SWEEP, "--out", str(tmp_path / "out"),
             "--kubernetes", namespace, "--image", image],
            capture_output=True, text=True, env=cluster.env, timeout=300, check=False)
        assert done.returncode == 2, done.stderr
        error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(error) == 1, done.stderr
        assert error[0].startswith("error: experiment cabal: Job exp-cabal-"), error
        assert "the container ended with" in error[0] and "subnetlab" in error[0], error
        left = cluster.get_json("jobs", "-n", namespace, "-l", "subnetlab.io/experiment=cabal")
        assert left["items"] == []
    assert not (tmp_path / "out" / "results.json").exists()


def test_a_real_process_point_runs_its_testnet_inside_the_job(
        cluster: Cluster, tmp_path: Path) -> None:
    """overhead starts a ledger, miners and a validator per point: inside the Job's pod,
    under the restricted profile, they write only to the pod's emptyDirs."""
    with fresh_namespace(cluster, "expov") as namespace:
        done = subprocess.run(
            [sys.executable, "-m", "subnetlab", "experiment", "run", "overhead",
             "--fan-out", "2", "--strategies", "broadcast", "--validators", "1",
             "--organic-rates", "2", "--durations", "6", "--seeds", "1", "--json",
             "--out", str(tmp_path / "out"), "--kubernetes", namespace,
             "--image", cluster.image],
            capture_output=True, text=True, env=cluster.env, timeout=600, check=False)
        assert done.returncode == 0, done.stderr
    (row,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert row["requests"] > 0 and row["requests_ok"] == row["requests"], row
    assert row["expected_organic_ratio"] == 3.0  # broadcast to 2 miners plus the reference
    assert row["organic_ratio"] == pytest.approx(3.0, rel=0.15), row
    assert row["latency_p50_ms"] > 0 and row["direct_p50_ms"] > 0, row
