"""Faults on a real cluster: pods deleted, the ledger restarted, the operator away, a Subnet
deleted. Each is what a cluster operator does by accident or on purpose; the testnet must
come back by itself (Kubernetes restarts, the operator's timer, the validators' retries)."""

from __future__ import annotations

from typing import Any

import pytest

from subnetlab.ledger.client import LedgerClientError
from tests.e2e.conftest import (
    DEFAULT_NEURONS,
    Cluster,
    fresh_namespace,
    netuid_of,
    neuron_named,
    neurons,
    wait_all_ready,
    wait_epochs,
)
from tests.k8s.conftest import eventually

pytestmark = pytest.mark.timeout(1500)

# A small subnet for the deletion test (it deletes everything it made).
SMALL = """
apiVersion: subnetlab.io/v1alpha1
kind: Subnet
metadata: {name: demo}
spec:
  hyperparameters: {tempo: 20, weightsRateLimit: 5, immunityPeriod: 1000}
---
apiVersion: subnetlab.io/v1alpha1
kind: Neuron
metadata: {name: validator-0}
spec: {subnet: demo, role: validator, stake: 100}
---
apiVersion: subnetlab.io/v1alpha1
kind: Neuron
metadata: {name: miner-0}
spec: {subnet: demo, role: miner, miner: {backend: {type: sim}}}
"""


def _pod_of(cluster: Cluster, namespace: str, neuron: str) -> dict[str, Any] | None:
    pods = cluster.get_json("pods", "-n", namespace, "-l",
                            f"subnetlab.io/neuron={neuron}")["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    return live[0] if live else None


def _ready(pod: dict[str, Any] | None) -> bool:
    if pod is None or pod["status"].get("phase") != "Running":
        return False
    return all(c["ready"] for c in pod["status"].get("containerStatuses", [])) and bool(
        pod["status"].get("containerStatuses"))


def _restarts(cluster: Cluster, namespace: str, selector: str) -> int:
    pods = cluster.get_json("pods", "-n", namespace, "-l", selector)["items"]
    return sum(c.get("restartCount", 0) for p in pods
               for c in p["status"].get("containerStatuses", []))


def test_deleted_miner_pod_is_replaced_and_earns_again(cluster: Cluster, demo: str) -> None:
    netuid = netuid_of(cluster, demo)
    before = _pod_of(cluster, demo, "miner-0")
    assert before is not None
    cluster.kubectl("delete", "pod", before["metadata"]["name"], "-n", demo, "--wait=false")

    def replaced() -> dict[str, Any] | None:
        pod = _pod_of(cluster, demo, "miner-0")
        if pod and pod["metadata"]["uid"] != before["metadata"]["uid"] and _ready(pod):
            return pod
        return None

    eventually(replaced, 300, "a new, Ready miner-0 pod")
    uid = neuron_named(cluster, demo, "miner-0")["status"]["uid"]
    start = wait_epochs(cluster, netuid, 1, timeout=120)["epochs_run"]

    def earning() -> bool:
        graph = cluster.chain.metagraph(netuid)["neurons"]
        info = cluster.chain.subnet(netuid)
        return info["epochs_run"] > start and float(graph[uid]["incentive"]) > 0

    eventually(earning, 300, "miner-0's incentive to be positive after its pod came back")


def test_ledger_pod_restart_keeps_every_block(cluster: Cluster, demo: str) -> None:
    ns, release = cluster.release_ns, cluster.release
    netuid = netuid_of(cluster, demo)
    height = int(cluster.chain.chain()["block"])
    block = cluster.chain.block(height)
    operator_restarts = _restarts(cluster, ns, "app.kubernetes.io/component=operator")
    validator_restarts = _restarts(cluster, demo, "subnetlab.io/role=validator")
    pods = cluster.get_json("pods", "-n", ns, "-l", "app.kubernetes.io/component=ledger")["items"]
    cluster.kubectl("delete", "pod", "-n", ns, *[p["metadata"]["name"] for p in pods],
                    "--wait=true", "--timeout=120s")
    cluster.kubectl("rollout", "status", f"deployment/{release}-ledger", "-n", ns,
                    "--timeout=300s", timeout=320)

    def serving() -> bool:
        try:
            return int(cluster.chain.chain()["block"]) > height
        except LedgerClientError:  # refused or not ready while the pod starts
            return False

    eventually(serving, 300, "the restarted ledger to serve blocks past the old height")
    # `persisted_at` is the old process's own measurement, not part of the block
    after = cluster.chain.block(height)
    assert {k: v for k, v in after.items() if k != "persisted_at"} == {
        k: v for k, v in block.items() if k != "persisted_at"}, "block changed after restart"
    verify = cluster.kubectl("exec", "-n", ns, f"deployment/{release}-ledger", "--",
                             "sh", "-c", "subnetlab ledger verify --redis-url \"$REDIS_URL\"",
                             timeout=600)
    assert " OK" in verify.stdout, verify.stdout + verify.stderr
    # the network carries on: epochs with weights, nobody restarted
    wait_epochs(cluster, netuid, 2, timeout=300)
    assert _restarts(cluster, ns, "app.kubernetes.io/component=operator") == operator_restarts
    assert _restarts(cluster, demo, "subnetlab.io/role=validator") == validator_restarts


def test_operator_away_then_back(cluster: Cluster, demo: str) -> None:
    ns, release = cluster.release_ns, cluster.release
    netuid = netuid_of(cluster, demo)
    cluster.kubectl("scale", f"deployment/{release}-operator", "-n", ns, "--replicas=0")
    try:
        # without the operator, the neurons go on: epochs keep coming
        wait_epochs(cluster, netuid, 2, timeout=300)
        # a change made while it is away ...
        cluster.kubectl("patch", "neuron.subnetlab.io", "validator-1", "-n", demo, "--type=merge",
                        "-p", '{"spec": {"stake": 600}}')
    finally:
        cluster.kubectl("scale", f"deployment/{release}-operator", "-n", ns, "--replicas=1")
    cluster.kubectl("rollout", "status", f"deployment/{release}-operator", "-n", ns,
                    "--timeout=300s", timeout=320)

    # ... is carried out when it is back, and everything is Ready again
    def staked() -> bool:
        status = neuron_named(cluster, demo, "validator-1").get("status", {})
        return status.get("observedGeneration") == neuron_named(cluster, demo, "validator-1")[
            "metadata"]["generation"] and float(status.get("stake") or 0) >= 600
    eventually(staked, 300, "validator-1 staked to its new spec.stake")
    wait_all_ready(cluster, demo, DEFAULT_NEURONS, timeout=300)


def test_deleting_the_subnet_releases_everything(cluster: Cluster) -> None:
    with fresh_namespace(cluster, "e2e-delete") as namespace:
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=SMALL)
        wait_all_ready(cluster, namespace, 2, timeout=600)
        netuid = netuid_of(cluster, namespace)
        owner = cluster.get_json("subnet.subnetlab.io", "demo", "-n", namespace)["status"]["owner"]
        hotkeys = [n["status"]["hotkey"] for n in neurons(cluster, namespace)]
        staked = {p["hotkey"] for p in cluster.chain.account(owner)["stake"]}
        assert staked & set(hotkeys), "the owner's stake should sit on the neurons' hotkeys"
        cluster.kubectl("delete", "subnet.subnetlab.io", "demo", "-n", namespace,
                        "--wait=true", "--timeout=300s", timeout=320)
        for kind in ("neurons.subnetlab.io", "deployments", "services", "pods"):
            def gone(kind: str = kind) -> bool:
                return not cluster.get_json(kind, "-n", namespace)["items"]
            eventually(gone, 180, f"every {kind} in {namespace} to be gone")
        graph = cluster.chain.metagraph(netuid)["neurons"]
        registered = {row["hotkey"] for row in graph if not row.get("vacant")}
        assert not registered & set(hotkeys), "a deleted Neuron's hotkey is still registered"
        # the owner's stake came back: no position left on any of those hotkeys
        staked = {p["hotkey"] for p in cluster.chain.account(owner)["stake"]}
        assert not staked & set(hotkeys), "stake is still on a deleted Neuron's hotkey"
