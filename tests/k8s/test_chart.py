"""The Helm chart against a real kube-apiserver: lint, render, refuse bad values, install
with least privilege, upgrade, uninstall.

Why here and not with a fake: only the API server says whether the rendered objects are
valid (server-side dry run), whether the pods pass the `restricted` Pod Security Standard
(the namespace enforces it, so a pod that breaks it is never created), and what the
operator's ServiceAccount may really do (`kubectl auth can-i --as`). helm is built from
source with the control plane (`controlplane.sh build`) and lives in the same bin dir.
There is no kubelet: pods stay Pending, which is enough to see them admitted.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s.conftest import ControlPlane, eventually

ROOT = Path(__file__).parents[2]
CHART = ROOT / "helm" / "subnetlab"
RULES = yaml.safe_load((CHART / "files" / "operator-clusterrole-rules.yaml").read_text())["rules"]
EXTERNAL_REDIS = ["--set", "redis.enabled=false",
                  "--set", "redis.external.url=redis://:secret@redis.example:6379/2"]

Helm = Callable[..., subprocess.CompletedProcess[str]]
Docs = list[dict[str, Any]]


@pytest.fixture(scope="module")
def helm(kube_controlplane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """Run the built helm against the test control plane, with its own config and cache."""
    binary = kube_controlplane.bin_dir / "helm"
    assert binary.is_file(), f"{binary} is missing: `controlplane.sh build` builds it"
    home = tmp_path_factory.mktemp("helm")
    env = {**kube_controlplane.env, "HELM_CACHE_HOME": str(home / "cache"),
           "HELM_CONFIG_HOME": str(home / "config"), "HELM_DATA_HOME": str(home / "data")}

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(binary), *args], capture_output=True, text=True, env=env,
                              timeout=120, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} exited {done.returncode}:\n"
                                 f"{done.stderr}")
        return done

    return run


def render(helm: Helm, *args: str) -> Docs:
    out = helm("template", "t1", str(CHART), "--namespace", "ns1", *args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def only(docs: Docs, kind: str, name_suffix: str = "") -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"{kind} *{name_suffix}: {[d['metadata']['name'] for d in found]}"
    return found[0]


def kinds(docs: Docs) -> dict[str, int]:
    counts: dict[str, int] = {}
    for doc in docs:
        counts[doc["kind"]] = counts.get(doc["kind"], 0) + 1
    return counts


def containers(docs: Docs) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(workload name, pod spec, container) of every workload."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            pod = doc["spec"]["template"]["spec"]
            for container in pod["containers"]:
                yield doc["metadata"]["name"], pod, container


def test_lint_strict(helm: Helm) -> None:
    assert "0 chart(s) failed" in helm("lint", "--strict", str(CHART)).stdout
    assert "0 chart(s) failed" in helm("lint", "--strict", str(CHART), *EXTERNAL_REDIS).stdout


def test_defaults_render_everything_and_the_api_server_accepts_it(
    helm: Helm, kube_controlplane: ControlPlane, kube_namespace: str
) -> None:
    docs = render(helm)
    assert kinds(docs) == {"ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1,
                           "Deployment": 2, "StatefulSet": 1, "Service": 3, "Secret": 2,
                           "ConfigMap": 4, "NetworkPolicy": 3}
    # Every object is valid to the real API server (schemas, required fields, enums).
    out = helm("template", "t1", str(CHART), "--namespace", kube_namespace).stdout
    applied = kube_controlplane.kubectl("apply", "--dry-run=server", "-n", kube_namespace,
                                        "-f", "-", input=out)
    assert applied.stdout.count("(server dry run)") == len(docs)


def test_workloads_are_locked_down(helm: Helm) -> None:
    docs = render(helm)
    seen = set()
    for name, pod, container in containers(docs):
        seen.add(name)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        ctx = container["securityContext"]
        assert ctx["readOnlyRootFilesystem"] is True, name
        assert ctx["allowPrivilegeEscalation"] is False, name
        assert ctx["capabilities"] == {"drop": ["ALL"]}, name
        assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert container["resources"]["limits"]["memory"], name
    assert seen == {"t1-subnetlab-operator", "t1-subnetlab-ledger", "t1-subnetlab-redis"}


def test_operator_and_ledger_are_wired_together(helm: Helm) -> None:
    docs = render(helm)
    operator = only(docs, "Deployment", "-operator")
    assert operator["spec"]["replicas"] == 1 and operator["spec"]["strategy"]["type"] == "Recreate"
    pod = operator["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "t1-subnetlab-operator"
    container = pod["containers"][0]
    assert container["args"] == ["--all-namespaces"]
    env = {e["name"]: e for e in container["env"]}
    assert env["SUBNETLAB_LEDGER"]["value"] == "http://t1-subnetlab-ledger.ns1.svc:9944"
    assert env["SUBNETLAB_OPERATOR_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "t1-subnetlab-redis-url", "key": "url"}
    assert env["SUBNETLAB_OPERATOR_GATEWAY_KEYS_SECRET"]["value"] == "subnetlab-gateway-keys"
    # copied from the release namespace into each validator's (subnetlab.k8s.gateway)
    assert env["SUBNETLAB_OPERATOR_GATEWAY_KEYS_NAMESPACE"]["value"] == "ns1"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 9090, "health": 8080}
    assert env["SUBNETLAB_OPERATOR_METRICS_PORT"]["value"] == "9090"
    assert env["SUBNETLAB_OPERATOR_LIVENESS_ENDPOINT"]["value"] == "http://0.0.0.0:8080/healthz"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}

    ledger = only(docs, "Deployment", "-ledger")
    assert ledger["spec"]["replicas"] == 1 and ledger["spec"]["strategy"]["type"] == "Recreate"
    lc = ledger["spec"]["template"]["spec"]["containers"][0]
    assert lc["command"] == ["subnetlab", "ledger", "serve"]
    assert "--redis-url=$(REDIS_URL)" in lc["args"] and "--block-time=12" in lc["args"]
    assert not any(a.startswith("--genesis") for a in lc["args"])  # the dev genesis
    assert lc["readinessProbe"]["httpGet"]["path"] == "/readyz"
    service = only(docs, "Service", "-ledger")
    assert service["spec"]["ports"][0]["port"] == 9944
    secret = only(docs, "Secret", "-redis-url")
    assert secret["stringData"]["url"] == "redis://t1-subnetlab-redis.ns1.svc:6379/0"
    redis = only(docs, "StatefulSet", "-redis")
    assert redis["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"] == {
        "storage": "2Gi"}


def test_genesis_comes_from_a_configmap(helm: Helm) -> None:
    docs = render(helm, "--set", "ledger.genesis.chain_id=lab-1",
                  "--set", "ledger.genesis.subnet_lock_cost=5")
    config = only(docs, "ConfigMap", "-genesis")
    assert json.loads(config["data"]["genesis.json"]) == {"chain_id": "lab-1",
                                                          "subnet_lock_cost": 5}
    ledger = only(docs, "Deployment", "-ledger")["spec"]["template"]
    args = ledger["spec"]["containers"][0]["args"]
    assert "--genesis=/etc/subnetlab/genesis/genesis.json" in args
    assert ledger["metadata"]["annotations"]["checksum/genesis"]  # a change restarts the ledger


def test_external_redis_renders_without_the_statefulset(helm: Helm) -> None:
    docs = render(helm, *EXTERNAL_REDIS)
    assert "StatefulSet" not in kinds(docs)
    assert not [d for d in docs if d["metadata"]["name"] in ("t1-subnetlab-redis",)]
    assert only(docs, "Secret", "-redis-url")["stringData"]["url"] == (
        "redis://:secret@redis.example:6379/2")
    policies = {d["metadata"]["name"] for d in docs if d["kind"] == "NetworkPolicy"}
    assert policies == {"t1-subnetlab-ledger", "t1-subnetlab-operator"}
    # The URL (it may hold a password) reaches the ledger only through the Secret.
    ledger = only(docs, "Deployment", "-ledger")["spec"]["template"]["spec"]["containers"][0]
    assert "secret@" not in json.dumps(ledger)


def test_the_redis_is_durable_and_only_an_external_one_may_be_volatile(helm: Helm) -> None:
    """The ledger refuses a Redis that may lose acknowledged writes: the chart's own is
    fsynced on every write; an external one runs the ledger with --volatile-redis only
    when the values say so."""
    docs = render(helm)
    args = only(docs, "StatefulSet", "-redis")["spec"]["template"]["spec"]["containers"][0][
        "args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--appendfsync") + 1] == "always"
    ledger_args = only(docs, "Deployment", "-ledger")["spec"]["template"]["spec"][
        "containers"][0]["args"]
    assert "--volatile-redis" not in ledger_args
    for extra, volatile in (([], False), (["--set", "redis.external.volatile=true"], True)):
        docs = render(helm, *EXTERNAL_REDIS, *extra)
        ledger_args = only(docs, "Deployment", "-ledger")["spec"]["template"]["spec"][
            "containers"][0]["args"]
        assert ("--volatile-redis" in ledger_args) is volatile


def test_network_policies_admit_only_the_callers(helm: Helm) -> None:
    docs = render(helm)
    redis = only(docs, "NetworkPolicy", "-redis")["spec"]["ingress"]
    assert len(redis) == 1 and redis[0]["ports"] == [{"port": "redis", "protocol": "TCP"}]
    peers = redis[0]["from"]
    assert peers[0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "ledger"
    assert "namespaceSelector" not in peers[0]  # the ledger of this release only
    assert peers[1]["podSelector"]["matchLabels"]["subnetlab.io/role"] == "validator"
    assert len(peers) == 2
    api, metrics = only(docs, "NetworkPolicy", "-ledger")["spec"]["ingress"]
    assert api["ports"] == [{"port": "http", "protocol": "TCP"}]
    ledger = api["from"]
    assert ledger[0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "operator"
    assert ledger[1]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/part-of": "subnetlab",
        "app.kubernetes.io/managed-by": "subnetlab-operator"}
    assert len(ledger) == 2
    # metricsFrom empty (the default): the metrics ports admit every scraper (a rule
    # without `from`), so ServiceMonitor scrapes work out of the box; the API does not.
    assert metrics == {"ports": [{"port": "metrics", "protocol": "TCP"}]}
    assert only(docs, "NetworkPolicy", "-operator")["spec"]["ingress"] == [
        {"ports": [{"port": "metrics", "protocol": "TCP"}]}]
    scrape = '{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mon"}}}'
    opened = render(helm, "--set-json", f"networkPolicy.metricsFrom=[{scrape}]")
    api, metrics = only(opened, "NetworkPolicy", "-ledger")["spec"]["ingress"]
    assert json.loads(scrape) not in api["from"]  # the scrapers reach the metrics only
    assert metrics["from"] == [json.loads(scrape)]
    assert metrics["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert only(opened, "NetworkPolicy", "-operator")["spec"]["ingress"][0]["from"] == [
        json.loads(scrape)]


def test_every_port_a_service_monitor_scrapes_is_admitted(helm: Helm) -> None:
    """With the defaults (NetworkPolicies on, metricsFrom empty), each port the chart's
    ServiceMonitors scrape is one its NetworkPolicies admit from any peer, and that port
    serves nothing but metrics (the ledger's API port is not opened to scrapers)."""
    docs = render(helm, "--api-versions", "monitoring.coreos.com/v1")
    for component in ("ledger", "operator"):
        monitor = only(docs, "ServiceMonitor", f"-{component}")["spec"]
        (endpoint,) = monitor["endpoints"]
        assert endpoint["port"] == "metrics", component
        open_rules = [rule for rule in only(docs, "NetworkPolicy", f"-{component}")["spec"][
            "ingress"] if "from" not in rule]
        assert [p["port"] for rule in open_rules for p in rule["ports"]] == ["metrics"]
    ledger = only(docs, "Deployment", "-ledger")["spec"]["template"]["spec"]["containers"][0]
    assert "--metrics-port=9945" in ledger["args"]
    assert {p["name"]: p["containerPort"] for p in ledger["ports"]} == {
        "http": 9944, "metrics": 9945}
    ports = {p["name"]: p["port"] for p in only(docs, "Service", "-ledger")["spec"]["ports"]}
    assert ports == {"http": 9944, "metrics": 9945}
    notes = helm("install", "t1", str(CHART), "--dry-run=client", "--namespace", "ns1").stdout
    assert "admit scrapes from any pod or address" in notes
    assert "--set-json 'networkPolicy.metricsFrom=[{" in notes


def test_dashboards_are_configmaps_for_grafana(helm: Helm) -> None:
    docs = render(helm)
    maps = [d for d in docs if d["metadata"]["name"].startswith("t1-subnetlab-dashboard-")]
    assert len(maps) == len(list((CHART / "dashboards").glob("*.json"))) == 4
    for config in maps:
        assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
        (key, text), = config["data"].items()
        name = key.removeprefix("subnetlab-")
        assert json.loads(text) == json.loads((CHART / "dashboards" / name).read_text())
    assert "ConfigMap" not in kinds(render(helm, "--set", "monitoring.dashboards.enabled=false"))


def test_monitoring_objects_follow_the_api(helm: Helm) -> None:
    served = ("--api-versions", "monitoring.coreos.com/v1")
    assert "ServiceMonitor" not in kinds(render(helm))  # the test cluster has no Prometheus
    docs = render(helm, *served)
    assert kinds(docs)["ServiceMonitor"] == 3 and kinds(docs)["PrometheusRule"] == 1
    rules = yaml.safe_load((CHART / "files" / "prometheus-rules.yaml").read_text())
    assert only(docs, "PrometheusRule")["spec"] == rules
    neurons = only(docs, "ServiceMonitor", "-neurons")["spec"]
    assert {e["port"] for e in neurons["endpoints"]} == {"axon", "gateway"}
    assert neurons["namespaceSelector"] == {"any": True}
    off = render(helm, *served, "--set", "monitoring.serviceMonitors.enabled=false",
                 "--set", "monitoring.prometheusRules.enabled=false")
    assert "ServiceMonitor" not in kinds(off) and "PrometheusRule" not in kinds(off)
    forced = render(helm, "--set", "monitoring.serviceMonitors.enabled=true")
    assert kinds(forced)["ServiceMonitor"] == 3
    scoped = render(helm, *served, "--set", "operator.watchNamespaces={a,b}")
    assert only(scoped, "ServiceMonitor", "-neurons")["spec"]["namespaceSelector"] == {
        "matchNames": ["a", "b"]}
    assert only(scoped, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0][
        "args"] == ["--namespace=a", "--namespace=b"]


@pytest.mark.parametrize(("args", "field", "reason"), [
    (["--set", "operator.metricsPort=-1"], "operator.metricsPort", "greater than or equal to 1"),
    (["--set", "ledger.blockTime=-12"], "ledger.blockTime", "greater than or equal to 0.01"),
    (["--set", "operator.replicas=2"], "operator", "Additional property replicas is not allowed"),
    (["--set", "colour=blue"], "(root)", "Additional property colour is not allowed"),
    (["--set", "operator.logLevel=loud"], "operator.logLevel", "must be one of"),
    (["--set", "image.pullPolicy=Sometimes"], "image.pullPolicy", "must be one of"),
    (["--set", "redis.enabled=false"], "redis.external.url", "greater than or equal to 1"),
    (["--set", "redis.external.url=http://redis:6379"], "redis.external.url",
     "Does not match pattern"),
    (["--set", "ledger.service.type=LoadBalancer"], "ledger.service.type", "must be one of"),
    # the security contexts are typed and cannot be loosened to root
    (["--set", "podSecurityContext.runAsNonRoot=false"], "podSecurityContext.runAsNonRoot",
     "must be one of the following: true"),
    (["--set", "podSecurityContext.runAsNonRoot=null"], "podSecurityContext",
     "runAsNonRoot is required"),
    (["--set", "podSecurityContext.runAsUser=0"], "podSecurityContext.runAsUser",
     "greater than or equal to 1"),
    (["--set", "podSecurityContext.runAsUsr=1"], "podSecurityContext",
     "Additional property runAsUsr is not allowed"),
    (["--set", "securityContext.runAsUser=0"], "securityContext.runAsUser",
     "greater than or equal to 1"),
    (["--set", "securityContext.privileged=true"], "securityContext.privileged",
     "must be one of the following: false"),
    (["--set", "securityContext.allowPrivilegeEscalation=true"],
     "securityContext.allowPrivilegeEscalation", "must be one of the following: false"),
    (["--set", "securityContext.allowPrivilegeEscalation=null"], "securityContext",
     "allowPrivilegeEscalation is required"),
    (["--set-json", 'securityContext.capabilities.add=["SYS_ADMIN"]'],
     "securityContext.capabilities.add.0", 'must be one of the following: "NET_BIND_SERVICE"'),
    (["--set-json", 'securityContext.capabilities.drop=["NET_RAW"]'],
     "securityContext.capabilities.drop", "At least one of the items must match"),
    (["--set", "podSecurityContext.seccompProfile.type=Unconfined"],
     "podSecurityContext.seccompProfile.type", "must be one of the following"),
])
def test_bad_values_are_refused_naming_the_field(
    helm: Helm, args: list[str], field: str, reason: str
) -> None:
    done = helm("template", "t1", str(CHART), *args, check=False)
    assert done.returncode != 0 and done.stdout == ""
    line = next((ln for ln in done.stderr.splitlines() if ln.startswith(f"- {field}:")), None)
    assert line is not None and reason in line, done.stderr


def can_i(plane: ControlPlane, who: str, verb: str, resource: str, namespace: str,
          subresource: str = "") -> bool:
    args = ["auth", "can-i", verb, resource, f"--as={who}", "-n", namespace]
    if subresource:
        args.append(f"--subresource={subresource}")
    done = plane.kubectl(*args, check=False)
    assert done.stdout.strip() in ("yes", "no"), done.stderr
    return done.stdout.strip() == "yes"


VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
OTHER_RESOURCES = [("", "pods"), ("", "configmaps"), ("", "namespaces"),
                   ("", "serviceaccounts"), ("apps", "statefulsets"),
                   ("apiextensions.k8s.io", "customresourcedefinitions"),
                   ("rbac.authorization.k8s.io", "clusterroles")]


def allowed_by_rules() -> set[tuple[str, str, str, str]]:
    """(group, resource, subresource, verb) that the ClusterRole grants."""
    granted = set()
    for rule in RULES:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                name, _, sub = resource.partition("/")
                granted.update((group, name, sub, verb) for verb in rule["verbs"])
    return granted


def test_install_upgrade_uninstall_on_the_api_server(
    helm: Helm, kube_controlplane: ControlPlane, kube_namespace: str
) -> None:
    plane, ns, release = kube_controlplane, kube_namespace, "lab"
    # Pods that break the restricted Pod Security Standard are never created here.
    plane.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    installed = helm("install", release, str(CHART), "-n", ns,
                     "--set", "redis.persistence.keepOnUninstall=false")
    assert "STATUS: deployed" in installed.stdout
    assert "PodSecurity" not in installed.stderr, installed.stderr
    assert f"http://{release}-subnetlab-ledger.{ns}.svc:9944" in installed.stdout  # NOTES

    # CRDs from the chart's crds/ folder: established, and what the chart holds.
    for crd in ("subnets.subnetlab.io", "neurons.subnetlab.io"):
        plane.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    crds = helm("template", release, str(CHART), "--include-crds").stdout
    assert crds.count("kind: CustomResourceDefinition") == 2

    # Admitted pods (restricted passed); they stay Pending without a kubelet.
    def pods() -> dict[str, str] | None:
        out = plane.kubectl("get", "pods", "-n", ns, "-l", f"app.kubernetes.io/instance={release}",
                            "-o", "json").stdout
        found = {p["metadata"]["labels"]["app.kubernetes.io/component"]: p["status"]["phase"]
                 for p in json.loads(out)["items"]}
        return found if len(found) == 3 else None

    assert eventually(pods, 60, "the operator, ledger and redis pods") == {
        "operator": "Pending", "ledger": "Pending", "redis": "Pending"}
    plain = plane.kubectl("run", "plain", "--image=busybox", "-n", ns, check=False)
    assert plain.returncode != 0 and "violates PodSecurity" in plain.stderr  # it is enforced

    # The operator's ServiceAccount may do exactly what the ClusterRole grants, in any
    # namespace, and nothing else.
    who = f"system:serviceaccount:{ns}:{release}-subnetlab-operator"
    granted = allowed_by_rules()
    groups = {g for g, *_ in granted}
    assert groups == {"subnetlab.io", "", "apps"}
    checks = {(g, r, s, v) for g, r, s, _ in granted for v in VERBS}
    checks |= {(g, r, "", v) for g, r in OTHER_RESOURCES for v in VERBS}
    assert len(checks) > 100

    def check(item: tuple[str, str, str, str]) -> tuple[tuple[str, str, str, str], bool]:
        group, resource, sub, verb = item
        qualified = f"{resource}.{group}" if group else resource
        return item, can_i(plane, who, verb, qualified, "default", sub)

    with ThreadPoolExecutor(4) as pool:
        answers = dict(pool.map(check, sorted(checks)))
    assert {k for k, yes in answers.items() if yes} == granted

    # Upgrade keeps the generated gateway key (it is read back from the cluster).
    def key() -> str:
        return plane.kubectl("get", "secret", "subnetlab-gateway-keys", "-n", ns,
                             "-o", "jsonpath={.data.api-keys}").stdout

    before = key()
    assert len(before) > 40
    helm("upgrade", release, str(CHART), "-n", ns, "--reuse-values",
         "--set", "ledger.blockTime=6")
    assert key() == before
    args = plane.kubectl("get", "deployment", f"{release}-subnetlab-ledger", "-n", ns, "-o",
                         "jsonpath={.spec.template.spec.containers[0].args}").stdout
    assert "--block-time=6" in args

    # A bad upgrade changes nothing.
    refused = helm("upgrade", release, str(CHART), "-n", ns, "--reuse-values",
                   "--set", "ledger.blockTime=0", check=False)
    assert refused.returncode != 0 and "ledger.blockTime" in refused.stderr
    status = json.loads(helm("status", release, "-n", ns, "-o", "json").stdout)
    assert (status["version"], status["info"]["status"]) == (2, "deployed")

    # Uninstall removes every object of the release, cluster-wide ones too; the CRDs stay
    # (Helm never deletes CRDs: that would delete every Subnet and Neuron).
    helm("uninstall", release, "-n", ns, "--wait", "--timeout", "120s")
    selector = f"app.kubernetes.io/instance={release}"

    def leftovers() -> str:
        return plane.kubectl(
            "get", "all,secrets,configmaps,serviceaccounts,networkpolicies,pvc", "-n", ns,
            "-l", selector, "-o", "name").stdout.strip() + plane.kubectl(
            "get", "clusterroles,clusterrolebindings", "-l", selector, "-o", "name").stdout.strip()

    eventually(lambda: leftovers() == "", 120, "the release's objects to be deleted")
    assert plane.kubectl("get", "pvc", "-n", ns, "-o", "name").stdout.strip() == ""
    assert plane.kubectl("get", "crd", "subnets.subnetlab.io", "neurons.subnetlab.io",
                         "-o", "name").stdout.split() == [
        "customresourcedefinition.apiextensions.k8s.io/subnets.subnetlab.io",
        "customresourcedefinition.apiextensions.k8s.io/neurons.subnetlab.io"]


def test_a_bad_install_leaves_the_namespace_untouched(
    helm: Helm, kube_controlplane: ControlPlane, kube_namespace: str
) -> None:
    done = helm("install", "bad", str(CHART), "-n", kube_namespace,
                "--set", "operator.metricsPort=70000", check=False)
    assert done.returncode != 0 and "operator.metricsPort" in done.stderr
    assert helm("list", "-a", "-q", "-n", kube_namespace).stdout.strip() == ""
    assert kube_controlplane.kubectl(
        "get", "all,secrets,configmaps,networkpolicies", "-n", kube_namespace,
        "-l", "app.kubernetes.io/instance=bad", "-o", "name").stdout.strip() == ""
