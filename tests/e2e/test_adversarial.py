"""The adversarial example on a real cluster.

Every behaviour of manifests/examples/adversarial.yaml runs as pods: a weight-copying
validator, a lazy miner, a sybil (one engine, three registered hotkeys), a passthrough
miner and a copycat. The example's URL `local-sim-engine` (the passthrough's backend, the
engine the copycat copies) names the engine `subnetlab up` starts; on a cluster the test
runs that same engine (`subnetlab engine serve`) as a Deployment and Service and points
both miners at it, as a user would with any OpenAI-compatible endpoint.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml

from tests.e2e.conftest import (
    REPO,
    Cluster,
    fresh_namespace,
    netuid_of,
    neuron_named,
    neurons,
    wait_all_ready,
    wait_epochs,
)
from tests.k8s.conftest import eventually

pytestmark = pytest.mark.timeout(1200)

ENGINE = "sim-engine"


def _engine(image: str) -> str:
    """A simulated OpenAI-compatible engine as a Deployment and Service (restricted pods)."""
    security = {"runAsNonRoot": True, "runAsUser": 10001, "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"}}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": ENGINE},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": ENGINE}},
                 "template": {"metadata": {"labels": {"app": ENGINE}}, "spec": {
                     "containers": [{
                         "name": "engine", "image": image, "imagePullPolicy": "IfNotPresent",
                         "args": ["engine", "serve", "--host", "0.0.0.0", "--port", "8200"],
                         "ports": [{"name": "http", "containerPort": 8200}],
                         "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8200}},
                         "securityContext": security,
                         "resources": {"requests": {"cpu": "20m", "memory": "96Mi"}},
                         "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}],
                     "volumes": [{"name": "tmp", "emptyDir": {}}]}}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": ENGINE},
               "spec": {"selector": {"app": ENGINE},
                        "ports": [{"name": "http", "port": 8200, "targetPort": 8200}]}}
    return yaml.safe_dump_all([deployment, service])


def _example_on_cluster(namespace: str) -> str:
    """adversarial.yaml with the passthrough miner, and the engine the copycat copies,
    pointed at the in-cluster engine."""
    docs = list(yaml.safe_load_all((REPO / "manifests/examples/adversarial.yaml").read_text()))
    url = f"http://{ENGINE}.{namespace}.svc:8200"
    for doc in docs:
        miner = doc.get("spec", {}).get("miner", {})
        backend = miner.get("backend", {})
        if backend.get("url") == "local-sim-engine":
            backend["url"] = url
        if miner.get("copyFrom") == "local-sim-engine":
            miner["copyFrom"] = url
    return yaml.safe_dump_all(docs)


@pytest.fixture(scope="module")
def adversarial(cluster: Cluster) -> Iterator[str]:
    with fresh_namespace(cluster, "e2e-adversarial") as namespace:
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_engine(cluster.image))
        manifest = _example_on_cluster(namespace)
        expected = sum(1 for d in yaml.safe_load_all(manifest) if d["kind"] == "Neuron")
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)
        wait_all_ready(cluster, namespace, expected, timeout=600)
        yield namespace


def test_every_behaviour_runs_and_is_paid_accordingly(cluster: Cluster, adversarial: str) -> None:
    netuid = netuid_of(cluster, adversarial, "adversarial")
    wait_epochs(cluster, netuid, 2, timeout=300)
    by_name = {n["metadata"]["name"]: n for n in neurons(cluster, adversarial)}
    sybil = by_name["sybil-miner"]["status"]
    assert len(sybil.get("sybilUids", [])) == 2

    def paid() -> dict[str, float] | None:
        graph = cluster.chain.metagraph(netuid)["neurons"]
        values = {name: float(graph[n["status"]["uid"]]["incentive"])
                  for name, n in by_name.items() if n["spec"]["role"] == "miner"}
        earning = ("honest-miner-0", "honest-miner-1", "passthrough-miner", "copycat-miner",
                   "sybil-miner")
        return values if all(values[m] > 0 for m in earning) else None

    values = eventually(paid, 420, "the honest, passthrough, copycat and sybil miners to earn")
    assert values is not None
    assert values["lazy-miner"] == 0.0
    # the copier sets weights like anyone else: it holds a permit and earns dividends
    copier = neuron_named(cluster, adversarial, "copier-validator")["status"]
    graph = cluster.chain.metagraph(netuid)["neurons"]
    assert graph[copier["uid"]]["validator_permit"]
