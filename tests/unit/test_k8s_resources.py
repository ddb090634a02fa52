"""The objects a Neuron owns: Deployment, Service and key Secret bodies, from its spec."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from subnetlab.k8s.config import OperatorConfig
from subnetlab.k8s.keys import HOTKEY_KEY, secret_data
from subnetlab.k8s.resources import (
    GATEWAY_PORT,
    HOME,
    KEY_DIR,
    NON_ROOT,
    NeuronWorkload,
    deployment,
    key_secret,
    labels_for,
    owner_reference,
    service,
)
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.redis_server import default_data_dir
from subnetlab.neuron.command import role_args
from subnetlab.specs import NeuronSpec, TaskMix

OWNER_BODY = {"apiVersion": "subnetlab.io/v1alpha1", "kind": "Neuron",
              "metadata": {"name": "m0", "namespace": "ns", "uid": "u-1"}}
CONFIG = OperatorConfig(ledger_url="http://operator-view:9944",
                        pod_ledger_url="http://ledger.subnetlab.svc:9944",
                        image="registry.example/subnetlab:1", redis_url="redis://redis:6379/0")
GPU_MINER = {
    "subnet": "gpu", "role": "miner",
    "miner": {"backend": {
        "type": "vllm", "model": "Qwen/Qwen2.5-0.5B-Instruct", "gpus": 2, "memory": "24Gi",
        "args": ["--max-model-len", "4096"],
        "nodeSelector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "runtimeClassName": "nvidia"}},
}


def workload(spec: dict[str, Any], name: str = "m0") -> NeuronWorkload:
    parsed = NeuronSpec.model_validate(spec)
    return NeuronWorkload(name, "ns", parsed.subnet, parsed, TaskMix(), 7, "5Hot", f"{name}-hotkey",
                          owner_reference(OWNER_BODY), CONFIG)


def containers(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in body["spec"]["template"]["spec"]["containers"]}


def test_vllm_miner_gets_a_gpu_sidecar_and_the_pod_settings() -> None:
    body = deployment(workload(GPU_MINER))
    pod = body["spec"]["template"]["spec"]
    found = containers(body)
    assert set(found) == {"vllm", "miner"}
    vllm = found["vllm"]
    assert vllm["resources"]["limits"] == {"nvidia.com/gpu": "2", "memory": "24Gi"}
    assert vllm["resources"]["requests"]["nvidia.com/gpu"] == "2"
    assert vllm["args"][:2] == ["--model", "Qwen/Qwen2.5-0.5B-Instruct"]
    assert vllm["args"][-3:] == ["--enable-per-request-metrics", "--max-model-len", "4096"]
    startup = vllm["startupProbe"]
    assert startup["httpGet"]["path"] == "/health"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 1800  # time to load a model
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists",
                                   "effect": "NoSchedule"}]
    assert pod["runtimeClassName"] == "nvidia"
    miner = found["miner"]
    args = miner["args"]
    assert args[args.index("--backend-url") + 1] == "http://127.0.0.1:8000"
    assert args[args.index("--ledger") + 1] == "http://ledger.subnetlab.svc:9944"
    assert "nvidia.com/gpu" not in json.dumps(miner)
    assert body["spec"]["strategy"] == {"type": "Recreate"}  # never two signers at once
    assert body["metadata"]["ownerReferences"][0]["uid"] == "u-1"


def test_sim_miner_is_the_miner_alone_with_its_key_mounted() -> None:
    body = deployment(workload({"subnet": "demo", "role": "miner", "behaviour": "lazy"}))
    pod = body["spec"]["template"]["spec"]
    (miner,) = pod["containers"]
    assert miner["command"] == ["subnetlab"]
    assert miner["args"][:2] == ["miner", "serve"]
    args = miner["args"]
    assert args[args.index("--behaviour") + 1] == "lazy"
    assert args[args.index("--wallet") + 1] == "neuron"
    assert args[args.index("--external-host") + 1] == "$(POD_IP)"
    assert "nodeSelector" not in pod and "runtimeClassName" not in pod
    mount = next(m for m in miner["volumeMounts"] if m["name"] == "hotkey")
    assert mount == {"name": "hotkey", "mountPath": KEY_DIR, "readOnly": True}
    volume = next(v for v in pod["volumes"] if v["name"] == "hotkey")
    assert volume["secret"]["secretName"] == "m0-hotkey"
    assert volume["secret"]["items"] == [{"key": HOTKEY_KEY, "path": "default"}]
    assert pod["automountServiceAccountToken"] is False
    assert miner["securityContext"]["runAsNonRoot"] is True


def test_a_sybil_miner_mounts_and_names_each_further_hotkey() -> None:
    parsed = NeuronSpec.model_validate({"subnet": "demo", "role": "miner", "behaviour": "sybil",
                                        "miner": {"sybilHotkeys": 2}})
    w = NeuronWorkload("m0", "ns", "demo", parsed, TaskMix(), 7, "5Hot", "m0-hotkey",
                       owner_reference(OWNER_BODY), CONFIG, ("5Syb1", "5Syb2"))
    body = deployment(w)
    pod = body["spec"]["template"]["spec"]
    (miner,) = pod["containers"]
    args = miner["args"]
    assert args[args.index("--behaviour") + 1] == "sybil"
    at = args.index("--wallet")
    assert args[at:at + 8] == ["--wallet", "neuron", "--hotkey", "default",
                               "--sybil-key", "default-sybil-1", "--sybil-key", "default-sybil-2"]
    volume = next(v for v in pod["volumes"] if v["name"] == "hotkey")
    assert volume["secret"]["items"] == [  # each file beside the hotkey, under its own name
        {"key": HOTKEY_KEY, "path": "default"},
        {"key": "default-sybil-1", "path": "default-sybil-1"},
        {"key": "default-sybil-2", "path": "default-sybil-2"}]
    annotations = body["spec"]["template"]["metadata"]["annotations"]
    assert annotations["subnetlab.io/sybil-addresses"] == "5Syb1,5Syb2"  # new keys: a new pod
    honest = deployment(workload({"subnet": "demo", "role": "miner"}))
    assert "--sybil-key" not in honest["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "subnetlab.io/sybil-addresses" not in honest["spec"]["template"]["metadata"][
        "annotations"]


def test_validator_runs_its_gateway_with_keys_from_a_secret() -> None:
    w = workload({"subnet": "demo", "role": "validator", "stake": 10,
                  "validator": {"sampleSize": 3, "gateway": {"strategy": "best-of-n"}}},
                 name="v0")
    (container,) = containers(deployment(w)).values()
    args = container["args"]
    assert args[:2] == ["validator", "run"]
    assert args[args.index("--strategy") + 1] == "best-of-n"
    assert args[args.index("--port") + 1] == str(GATEWAY_PORT)
    assert args[args.index("--redis-url") + 1] == "redis://redis:6379/0"
    keys = next(e for e in container["env"] if e["name"] == "SUBNETLAB_API_KEYS")
    # its own copy in its own namespace (the original may be in another one)
    assert keys["valueFrom"]["secretKeyRef"] == {"name": "v0-gateway-keys", "key": "api-keys"}
    template = deployment(w)["spec"]["template"]["metadata"]["annotations"]
    assert "subnetlab.io/gateway-keys-source" not in template
    parsed = NeuronSpec.model_validate({"subnet": "demo", "role": "validator"})
    keyed = NeuronWorkload("v0", "ns", "demo", parsed, TaskMix(), 7, "5Hot", "v0-hotkey",
                           owner_reference(OWNER_BODY), CONFIG,
                           gateway_keys_source="lab/subnetlab-gateway-keys@812")
    template = deployment(keyed)["spec"]["template"]["metadata"]["annotations"]
    assert template["subnetlab.io/gateway-keys-source"] == "lab/subnetlab-gateway-keys@812"
    svc = service(w)
    assert svc["spec"]["ports"] == [{"name": "gateway", "port": GATEWAY_PORT,
                                     "targetPort": "gateway", "protocol": "TCP"}]
    assert svc["spec"]["selector"] == {"subnetlab.io/neuron": "v0"}
    assert w.endpoint == f"http://v0.ns.svc:{GATEWAY_PORT}"


def test_role_args_follow_the_spec_and_need_a_url_for_served_backends() -> None:
    openai = NeuronSpec.model_validate({"subnet": "s", "role": "miner", "behaviour": "passthrough",
                                        "miner": {"backend": {"type": "openai",
                                                              "url": "http://engine:8000",
                                                              "model": "m"}}})
    assert role_args(openai, TaskMix(), "http://engine:8000")[-6:] == [
        "--backend", "openai", "--backend-url", "http://engine:8000", "--model", "m"]
    with pytest.raises(ValueError, match=r"miner\.backend\.url"):
        role_args(openai, TaskMix(), None)
    validator = NeuronSpec.model_validate({"subnet": "s", "role": "validator",
                                           "behaviour": "cabal", "validator": {"cabal": [1, 2]}})
    tasks = TaskMix.model_validate({"kinds": {"arithmetic": 2, "sorting": 0}})
    args = role_args(validator, tasks)
    assert args[args.index("--tasks") + 1] == "arithmetic=2.0,sorting=0.0"
    assert args[args.index("--cabal") + 1] == "1,2"


def test_key_secret_holds_base64_data_and_only_the_address_in_clear() -> None:
    key = Keypair.generate()
    body = key_secret("m0-hotkey", "ns", secret_data(key), key.ss58_address,
                      labels_for("m0", "demo", "miner"), owner_reference(OWNER_BODY))
    assert "stringData" not in body
    decoded = {k: base64.b64decode(v).decode() for k, v in body["data"].items()}
    assert json.loads(decoded[HOTKEY_KEY])["ss58_address"] == key.ss58_address
    assert key.mnemonic is not None
    visible = json.dumps({k: v for k, v in body.items() if k != "data"})
    assert key.mnemonic not in visible and key.ss58_address in visible
    assert body["metadata"]["labels"]["subnetlab.io/neuron"] == "m0"


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What the `restricted` Pod Security Standard (v1.30) would refuse in a pod spec:
    the checks that apply to what the operator builds (no host namespaces, ports or paths
    are ever set; their absence is checked too)."""
    found = []
    pod_sc = pod.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            found.append(key)
    found += [f"volume {v['name']}: only emptyDir, secret, configMap, projected or PVC"
              for v in pod["volumes"]
              if not {"emptyDir", "secret", "configMap", "projected",
                      "persistentVolumeClaim"} & set(v)]
    for c in pod["containers"]:
        sc = c.get("securityContext") or {}
        name = c["name"]
        if sc.get("privileged"):
            found.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation must be false")
        if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc.get("capabilities", {}).get(
                "add"):
            found.append(f"{name}: capabilities must drop ALL and add none")
        if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
            found.append(f"{name}: runAsNonRoot")
        if (sc.get("runAsUser", pod_sc.get("runAsUser")) or 0) == 0:
            found.append(f"{name}: runAsUser 0")
        seccomp = sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            found.append(f"{name}: hostPort")
    return found


WORKLOADS = {
    "vllm miner": GPU_MINER,
    "sim miner": {"subnet": "demo", "role": "miner"},
    "openai miner": {"subnet": "demo", "role": "miner", "behaviour": "passthrough",
                     "miner": {"backend": {"type": "openai", "url": "http://engine:8000",
                                           "model": "m"}}},
    "validator": {"subnet": "demo", "role": "validator", "stake": 10},
    "sybil miner": {"subnet": "demo", "role": "miner", "behaviour": "sybil",
                    "miner": {"sybilHotkeys": 3}},
}


@pytest.mark.parametrize("kind", list(WORKLOADS))
def test_every_pod_meets_the_restricted_pod_security_standard(kind: str) -> None:
    pod = deployment(workload(WORKLOADS[kind]))["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    assert {c["securityContext"]["runAsUser"] for c in pod["containers"]} == {NON_ROOT}
    assert pod["securityContext"]["fsGroup"] == NON_ROOT  # emptyDirs writable by that uid


@pytest.mark.parametrize("kind", list(WORKLOADS))
def test_what_a_container_writes_lies_on_an_emptydir(kind: str) -> None:
    """A read-only root file system, so $SUBNETLAB_HOME and $HOME must be volumes; and the
    hotkey Secret sits below the writable $SUBNETLAB_HOME, read-only."""
    pod = deployment(workload(WORKLOADS[kind]))["spec"]["template"]["spec"]
    empty = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    for c in pod["containers"]:
        env = {e["name"]: e.get("value") for e in c["env"]}
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        writes = [env["HOME"]] + ([env["SUBNETLAB_HOME"]] if c["name"] != "vllm" else ["/cache"])
        for path in writes:
            assert path in mounts and mounts[path]["name"] in empty, (c["name"], path)
            assert not mounts[path].get("readOnly")
        if c["name"] != "vllm":
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert env["SUBNETLAB_HOME"] == HOME and KEY_DIR.startswith(f"{HOME}/")
            assert mounts[KEY_DIR]["readOnly"] is True


def test_a_validator_without_a_redis_url_uses_its_embedded_redis_on_an_emptydir(
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = OperatorConfig(ledger_url="http://ledger:9944")  # no redis_url
    parsed = NeuronSpec.model_validate(WORKLOADS["validator"])
    w = NeuronWorkload("v0", "ns", "demo", parsed, TaskMix(), 7, "5Hot", "v0-hotkey",
                       owner_reference(OWNER_BODY), config)
    pod = deployment(w)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "--redis-url" not in container["args"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    for name, value in env.items():  # where the validator process will look
        monkeypatch.setenv(name, value)
    data_dir = default_data_dir()  # subnetlab.ledger.redis_server: the embedded Redis
    mounts = [m for m in container["volumeMounts"]
              if data_dir.is_relative_to(Path(m["mountPath"]))]
    deepest = max(mounts, key=lambda m: len(m["mountPath"]))
    assert deepest["mountPath"] == HOME and not deepest.get("readOnly")
    assert {"name": deepest["name"], "emptyDir": {}} in pod["volumes"]


def test_the_neuron_container_gets_the_specs_resources_and_defaults() -> None:
    plain = containers(deployment(workload({"subnet": "demo", "role": "validator"})))
    assert plain["validator"]["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"},
                                               "limits": {"memory": "1Gi"}}
    sized = containers(deployment(workload({
        "subnet": "demo", "role": "miner",
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"},
                      "limits": {"cpu": "500m", "memory": "256Mi"}}})))
    assert sized["miner"]["resources"] == {"requests": {"cpu": "10m", "memory": "64Mi"},
                                           "limits": {"cpu": "500m", "memory": "256Mi"}}


def test_a_vllm_miners_resources_size_its_sidecar_and_not_the_engine() -> None:
    spec = {**GPU_MINER, "resources": {"requests": {"cpu": "50m", "memory": "96Mi"}}}
    found = containers(deployment(workload(spec)))
    assert found["miner"]["resources"] == {"requests": {"cpu": "50m", "memory": "96Mi"},
                                           "limits": {"memory": "1Gi"}}
    engine = {"nvidia.com/gpu": "2", "memory": "24Gi"}  # the backend's gpus and memory
    assert found["vllm"]["resources"] == {"requests": engine, "limits": engine}
