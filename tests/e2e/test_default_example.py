"""The default example on a real cluster: `kubectl apply` gives Running pods and epochs.

What a user of the README's Kubernetes route sees: every Neuron Ready with its pod
Running and Ready (real probes), the Subnet Ready, the in-cluster ledger running epochs,
the lazy miner earning exactly nothing while every honest miner earns, and the
validator's organic gateway answering through its Service (CoreDNS name) with an API key
from the namespace's gateway-keys Secret.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.conftest import (
    DEFAULT_NEURONS,
    Cluster,
    gateway_key,
    in_cluster_python,
    netuid_of,
    neurons,
    wait_epochs,
)
from tests.k8s.conftest import eventually

pytestmark = pytest.mark.timeout(1200)

def _by_name(cluster: Cluster, namespace: str) -> dict[str, dict[str, Any]]:
    return {n["metadata"]["name"]: n for n in neurons(cluster, namespace)}


def test_every_neuron_ready_and_epochs_advance(cluster: Cluster, demo: str) -> None:
    netuid = netuid_of(cluster, demo)
    info = wait_epochs(cluster, netuid, 2, timeout=300)
    assert info["n"] >= DEFAULT_NEURONS
    # every Neuron's uid is registered on the in-cluster ledger under its hotkey
    graph = cluster.chain.metagraph(netuid)["neurons"]
    for name, neuron in _by_name(cluster, demo).items():
        status = neuron["status"]
        assert graph[status["uid"]]["hotkey"] == status["hotkey"], name


def test_lazy_miner_earns_nothing_and_honest_miners_earn(cluster: Cluster, demo: str) -> None:
    netuid = netuid_of(cluster, demo)

    def incentives() -> dict[str, float] | None:
        graph = cluster.chain.metagraph(netuid)["neurons"]
        uids = {name: n["status"]["uid"] for name, n in _by_name(cluster, demo).items()
                if n["spec"]["role"] == "miner"}
        values = {name: float(graph[uid]["incentive"]) for name, uid in uids.items()}
        honest = [v for name, v in values.items() if name != "miner-lazy"]
        return values if all(v > 0 for v in honest) else None

    values = eventually(incentives, 420, "every honest miner's incentive to be positive")
    assert values is not None
    assert values["miner-lazy"] == 0.0
    assert all(v > 0 for name, v in values.items() if name != "miner-lazy")


def test_gateway_answers_through_its_service(cluster: Cluster, demo: str) -> None:
    key = gateway_key(cluster, demo)
    validator = _by_name(cluster, demo)["validator-0"]
    endpoint = validator["status"]["endpoint"]  # http://validator-0.NS.svc:8092
    body = {"model": "subnetlab", "messages": [{"role": "user", "content": "What is 17 + 25?"}],
            "max_tokens": 32}
    code = (
        "import httpx, json, sys\n"
        f"r = httpx.post({endpoint!r} + '/v1/chat/completions', json={body!r},\n"
        f"               headers={{'Authorization': 'Bearer ' + {key!r}}}, timeout=60)\n"
        "print(json.dumps({'status': r.status_code, 'body': r.json()}))\n"
        f"r = httpx.post({endpoint!r} + '/v1/chat/completions', json={body!r}, timeout=60)\n"
        "print(json.dumps({'status': r.status_code}))\n"
    )
    lines = in_cluster_python(cluster, demo, code).strip().splitlines()
    answered, refused = json.loads(lines[-2]), json.loads(lines[-1])
    assert answered["status"] == 200, answered
    assert answered["body"]["choices"][0]["message"]["content"]
    assert refused["status"] == 401
