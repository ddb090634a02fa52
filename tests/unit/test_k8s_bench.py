"""`subnetlab bench kubernetes` without a cluster: its manifest, its checks, its table.

The timings themselves need a cluster (docs/BENCHMARKS.md records them); here, what the
bench applies must be a valid network, and bad options must fail before anything runs.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from rich.console import Console

from subnetlab.bench.k8s_bench import DefaultRun, KubeBenchResult, ManyRun, many_neurons_manifest
from subnetlab.cli.bench import kubernetes_table
from subnetlab.specs import parse_documents


def test_the_many_neurons_manifest_is_one_valid_network_with_the_requests() -> None:
    text = many_neurons_manifest(300, "10m", "96Mi")
    network = parse_documents(("bench", doc) for doc in yaml.safe_load_all(text))
    assert len(network.neurons) == 300
    assert [n.spec.role for n in network.neurons].count("validator") == 1
    assert network.subnets[0].spec.hyperparameters.max_allowed_uids >= 300
    assert {n.spec.resources.as_kubernetes()["requests"]["cpu"] for n in network.neurons} == {
        "10m"}
    plain = parse_documents(("bench", doc) for doc in
                            yaml.safe_load_all(many_neurons_manifest(3, None, None)))
    assert all("resources" not in n.spec.model_fields_set for n in plain.neurons)


def test_the_table_has_a_row_per_run_and_the_medians() -> None:
    result = KubeBenchResult(
        default_runs=[DefaultRun(8, 25.9, 30.4, 13.7), DefaultRun(8, 24.0, 30.1, 14.0),
                      DefaultRun(8, 26.1, 31.0, 13.0)],
        many=ManyRun(100, "10m", "96Mi", 20.0, 60.0, 120.0, 30.0),
        node={"nodes": "1", "allocatable": "vm: 2 CPU"})
    console = Console(width=160, record=True)
    console.print(kubernetes_table(result))
    text = console.export_text()
    assert "median" in text and "25.9" in text and "30.4" in text
    assert "10m, 96Mi each" in text and "120.0" in text
    assert result.as_json()["default"] == {
        "runs": [{"neurons": 8, "ready_s": 25.9, "first_epoch_s": 30.4, "delete_s": 13.7},
                 {"neurons": 8, "ready_s": 24.0, "first_epoch_s": 30.1, "delete_s": 14.0},
                 {"neurons": 8, "ready_s": 26.1, "first_epoch_s": 31.0, "delete_s": 13.0}],
        "ready_median_s": 25.9, "first_epoch_median_s": 30.4}


@pytest.mark.parametrize(("args", "expected"), [
    (["--cpu", "100Mi"], "--cpu '100Mi': not a CPU quantity"),
    (["--memory", "lots"], "--memory 'lots': not a memory quantity"),
    (["--neurons", "1"], "--neurons 1: must be 0 (skip) or in [2, 1000]"),
    (["--repeats", "1", "--neurons", "0"], "--ledger (or SUBNETLAB_LEDGER)"),
])
def test_bad_options_fail_before_touching_a_cluster(
        cli: Any, monkeypatch: pytest.MonkeyPatch, args: list[str], expected: str) -> None:
    monkeypatch.delenv("SUBNETLAB_LEDGER", raising=False)
    monkeypatch.setenv("KUBECONFIG", "/nonexistent")
    done = cli("bench", "kubernetes", *args)
    assert done.returncode != 0
    assert expected in done.stderr
