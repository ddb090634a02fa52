"""The test control plane is a real one: controllers reconcile, GC follows owner references,
RBAC denies, the API server validates, and stopping it leaves no process behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.k8s.conftest import (
    SCRIPT,
    ControlPlane,
    build_binaries,
    eventually,
    start_controlplane,
    stop_group,
)

WAIT_S = 120.0


def deployment(name: str, replicas: int) -> str:
    """A minimal Deployment manifest (JSON is YAML) whose Pods can never run: no kubelet."""
    labels = {"app": name}
    return json.dumps({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": "registry.invalid/none:0"}]},
            },
        },
    })


def items(plane: ControlPlane, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
    """The objects of `kind` matching a label selector, as parsed JSON."""
    out = plane.kubectl("get", kind, "-n", namespace, "-l", selector, "-o", "json").stdout
    found: list[dict[str, Any]] = json.loads(out)["items"]
    return found


def owner_uids(obj: dict[str, Any]) -> list[str]:
    return [ref["uid"] for ref in obj["metadata"].get("ownerReferences", [])]


def apply_and_wait(plane: ControlPlane, namespace: str, name: str, replicas: int) -> tuple[
    dict[str, Any], dict[str, Any], list[dict[str, Any]]
]:
    """Apply a Deployment and wait for the controllers: its ReplicaSet and all its Pods."""
    plane.kubectl("apply", "-n", namespace, "-f", "-", input=deployment(name, replicas))
    deploy = json.loads(plane.kubectl("get", "deployment", name, "-n", namespace,
                                      "-o", "json").stdout)
    replicasets = eventually(lambda: items(plane, "replicasets", namespace, f"app={name}"),
                             WAIT_S, f"a ReplicaSet for Deployment {name}")
    pods = eventually(
        lambda: (found if len(found := items(plane, "pods", namespace, f"app={name}")) == replicas
                 else []),
        WAIT_S, f"{replicas} Pods for Deployment {name}",
    )
    return deploy, replicasets[0], pods


def test_deployment_gets_a_replicaset_and_pending_pods(
    kube_controlplane: ControlPlane, kube_namespace: str
) -> None:
    deploy, replicaset, pods = apply_and_wait(kube_controlplane, kube_namespace, "web", 2)

    assert owner_uids(replicaset) == [deploy["metadata"]["uid"]]
    assert replicaset["spec"]["replicas"] == 2
    for pod in pods:
        assert owner_uids(pod) == [replicaset["metadata"]["uid"]]
        assert pod["status"]["phase"] == "Pending"  # no scheduler, no kubelet
        assert "nodeName" not in pod["spec"]


def test_deleting_a_deployment_garbage_collects_its_replicaset_and_pods(
    kube_controlplane: ControlPlane, kube_namespace: str
) -> None:
    plane, ns = kube_controlplane, kube_namespace
    apply_and_wait(plane, ns, "doomed", 1)

    plane.kubectl("delete", "deployment", "doomed", "-n", ns, "--cascade=background")

    eventually(lambda: not items(plane, "replicasets", ns, "app=doomed"), WAIT_S,
               "the garbage collector to delete the ReplicaSet")
    eventually(lambda: not items(plane, "pods", ns, "app=doomed"), WAIT_S,
               "the garbage collector to delete the Pods")


def test_orphan_deletion_keeps_the_replicaset_and_drops_its_owner(
    kube_controlplane: ControlPlane, kube_namespace: str
) -> None:
    plane, ns = kube_controlplane, kube_namespace
    _, replicaset, _ = apply_and_wait(plane, ns, "kept", 1)

    plane.kubectl("delete", "deployment", "kept", "-n", ns, "--cascade=orphan")

    orphaned = eventually(
        lambda: [rs for rs in items(plane, "replicasets", ns, "app=kept") if not owner_uids(rs)],
        WAIT_S, "the garbage collector to orphan the ReplicaSet",
    )
    assert [rs["metadata"]["uid"] for rs in orphaned] == [replicaset["metadata"]["uid"]]


def can_i(plane: ControlPlane, namespace: str, account: str, verb: str, resource: str) -> str:
    done = plane.kubectl(
        "auth", "can-i", verb, resource, "-n", namespace,
        f"--as=system:serviceaccount:{namespace}:{account}", check=False,
    )
    return done.stdout.strip()


def token_kubeconfig(plane: ControlPlane, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig that authenticates with a real token issued for the ServiceAccount."""
    token = plane.kubectl("create", "token", account, "-n", namespace).stdout.strip()
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "test", "cluster": {
            "server": plane.server,
            "certificate-authority": str(plane.workdir / "pki" / "ca.crt")}}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "test", "user": account}}],
    }))
    return path


def kubectl_as(
    plane: ControlPlane, kubeconfig: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """kubectl with another identity than the admin's."""
    return subprocess.run([str(plane.bin_dir / "kubectl"), f"--kubeconfig={kubeconfig}", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_rbac_forbids_an_unbound_serviceaccount_to_list_secrets(
    kube_controlplane: ControlPlane, kube_namespace: str, tmp_path: Path
) -> None:
    plane, ns = kube_controlplane, kube_namespace
    plane.kubectl("create", "serviceaccount", "nobody", "-n", ns)
    plane.kubectl("create", "serviceaccount", "reader", "-n", ns)
    plane.kubectl("create", "role", "secret-reader", "-n", ns, "--verb=list", "--resource=secrets")
    plane.kubectl("create", "rolebinding", "reader", "-n", ns, "--role=secret-reader",
                  f"--serviceaccount={ns}:reader")

    assert can_i(plane, ns, "nobody", "list", "secrets") == "no"
    assert can_i(plane, ns, "reader", "list", "secrets") == "yes"
    assert can_i(plane, ns, "reader", "delete", "secrets") == "no"

    # The same through real tokens: the API server verifies the controller's signing key.
    denied = kubectl_as(plane, token_kubeconfig(plane, ns, "nobody", tmp_path / "nobody"),
                        "get", "secrets", "-n", ns)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()
    assert f'system:serviceaccount:{ns}:nobody" cannot list resource "secrets"' in denied.stderr
    allowed = kubectl_as(plane, token_kubeconfig(plane, ns, "reader", tmp_path / "reader"),
                         "get", "secrets", "-n", ns)
    assert allowed.returncode == 0, allowed.stderr


def test_the_api_server_refuses_an_invalid_deployment_and_stores_nothing(
    kube_controlplane: ControlPlane, kube_namespace: str
) -> None:
    plane, ns = kube_controlplane, kube_namespace
    done = plane.kubectl("apply", "-n", ns, "-f", "-", input=deployment("bad", -1), check=False)

    assert done.returncode != 0
    assert "spec.replicas" in done.stderr
    assert "must be greater than or equal to 0" in done.stderr
    assert not items(plane, "deployments", ns, "app=bad")


def script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "a command is required"),
        (("start",), "unknown command 'start'"),
        (("build", "extra"), "build: takes no arguments"),
        (("prune", "all"), "prune: takes no arguments"),
        (("run",), "run: DIR is required"),
        (("run", "DIR", "--watch-pid", "abc"), "--watch-pid: 'abc' is not a process id"),
        (("run", "DIR", "--watch-pid"), "--watch-pid: needs a process id"),
        (("run", "DIR", "--verbose"), "run: unknown option '--verbose'"),
        (("run", "NONEMPTY"), "is not empty"),
        (("run", "FILE"), "exists and is not a directory"),
    ],
)
def test_the_script_refuses_bad_arguments_and_leaves_the_directory_alone(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    (tmp_path / "NONEMPTY").mkdir()
    (tmp_path / "NONEMPTY" / "keep").write_text("state")
    (tmp_path / "FILE").write_text("state")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    concrete = [str(tmp_path / a) if a in {"DIR", "NONEMPTY", "FILE"} else a for a in args]

    done = script(*concrete)

    assert done.returncode == 2
    assert message in done.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_a_go_mod_without_the_kubernetes_pin_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "controlplane.sh"
    copy.write_text(SCRIPT.read_text())
    (tmp_path / "go.mod").write_text("module example.com/x\n\ngo 1.22.0\n")
    env = {**os.environ, "SUBNETLAB_K8S_CACHE": str(tmp_path / "cache")}

    for args in (["build"], ["bin-dir"]):
        done = subprocess.run(["bash", str(copy), *args], capture_output=True, text=True,
                              env=env, timeout=60, check=False)
        assert done.returncode == 2
        assert "go.mod: no 'require k8s.io/kubernetes vX.Y.Z' line" in done.stderr
    assert not (tmp_path / "cache").exists()


K8S_DIR = SCRIPT.parent
# Every binary `controlplane.sh build` puts in the bin dir, with the go.mod that pins it and
# the module whose version it reports.
BINARIES = {
    "kube-apiserver": (".", "k8s.io/kubernetes"),
    "kube-controller-manager": (".", "k8s.io/kubernetes"),
    "kubectl": (".", "k8s.io/kubernetes"),
    "kubelet": (".", "k8s.io/kubernetes"),
    "kube-scheduler": (".", "k8s.io/kubernetes"),
    "kube-proxy": (".", "k8s.io/kubernetes"),
    "helm": ("helmtool", "helm.sh/helm/v3"),
    "coredns": ("addons/coredns", "github.com/coredns/coredns"),
    "local-path-provisioner": ("addons/local-path-provisioner",
                               "github.com/rancher/local-path-provisioner"),
    "actionlint": ("actionlinttool", "github.com/rhysd/actionlint"),
    "prometheus": ("prometheustool", "github.com/prometheus/prometheus"),
}


def go_mod_lines() -> list[list[str]]:
    """The words of every line of every go.mod under tests/k8s."""
    return [line.split() for mod in K8S_DIR.rglob("go.mod")
            for line in mod.read_text().splitlines()]


def highest_go_line() -> str:
    versions = [words[1] for words in go_mod_lines() if words[:1] == ["go"]]
    return max(versions, key=lambda v: tuple(int(part) for part in v.split(".")))


def required_version(module_dir: str, module: str) -> str:
    """The version of `module` that tests/k8s/MODULE_DIR/go.mod requires."""
    for line in (K8S_DIR / module_dir / "go.mod").read_text().splitlines():
        words = line.split()
        if words[:2] == ["require", module]:
            return words[2]
        if words[:1] == [module]:
            return words[1]
    raise AssertionError(f"{module} is not required in {module_dir}/go.mod")


def test_a_missing_go_is_named_before_anything_is_built(tmp_path: Path) -> None:
    """Go is a prerequisite of the build; without it on PATH the script says so (and where
    the usual install lives, if it is there), and touches no cache."""
    tools = tmp_path / "bin"  # what the script needs besides go, and no go
    tools.mkdir()
    for tool in ("bash", "awk", "dirname", "sed", "cut", "sha256sum", "cat", "mkdir"):
        found = shutil.which(tool)
        assert found is not None, tool
        (tools / tool).symlink_to(found)
    env = {"PATH": str(tools), "HOME": str(tmp_path), "SUBNETLAB_K8S_CACHE": str(tmp_path / "c")}

    done = subprocess.run([str(tools / "bash"), str(SCRIPT), "build"], capture_output=True,
                          text=True, env=env, timeout=60, check=False)

    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("controlplane.sh: error: go: not found on PATH; the Kubernetes test "
                           "binaries are built from Go source: ")
    if Path("/usr/local/go/bin/go").exists():
        assert line.endswith("/usr/local/go/bin/go exists: add /usr/local/go/bin to PATH")
    else:
        assert line.endswith(f"install Go {highest_go_line()} or newer (the highest go line of "
                             "the go.mod files under tests/k8s) and put its bin directory on PATH")
    assert not (tmp_path / "c").exists()


def test_prune_keeps_only_the_binaries(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    binary = cache / "v1.30.14" / "bin" / "kubectl"
    module = cache / "gopath" / "pkg" / "mod" / "example.com" / "m@v1" / "m.go"
    for path in (binary, module, cache / "gocache" / "00" / "obj"):
        path.parent.mkdir(parents=True)
        path.write_text("x")
    module.chmod(0o444)
    module.parent.chmod(0o555)  # as go leaves its module cache

    done = subprocess.run(["bash", str(SCRIPT), "prune"], capture_output=True, text=True,
                          env={**os.environ, "SUBNETLAB_K8S_CACHE": str(cache)},
                          timeout=60, check=False)

    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in cache.iterdir()) == [".build.lock", "v1.30.14"]
    assert binary.read_text() == "x"


@pytest.fixture(scope="module")
def bin_dir(request: pytest.FixtureRequest) -> Path:
    """The bin dir after `controlplane.sh build` (a no-op on a warm cache)."""
    build_binaries(request.config)
    done = script("bin-dir")
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())


def version_of(binary: Path, *args: str) -> str:
    done = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, f"{binary.name} {' '.join(args)}: {done.stderr}"
    return done.stdout


def test_build_is_warm_and_every_binary_runs_at_its_pinned_version(bin_dir: Path) -> None:
    """A second build reuses all eleven binaries through their own stamps and prints the bin
    dir; each one runs and reports the version its go.mod pins."""
    done = script("build")

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == str(bin_dir)
    assert "go build" not in done.stderr
    assert f"up to date in {bin_dir}: {' '.join(BINARIES)}" in done.stderr
    for name in BINARIES:
        assert (bin_dir / name).is_file(), name
        stamp = (bin_dir / f".{name}.stamp").read_text().splitlines()
        assert [line.split("=")[0] for line in stamp] == ["build", "sources"], name
    assert not (bin_dir / ".stamp").exists()  # the stamp shared by three before

    k8s = required_version(".", "k8s.io/kubernetes")
    for name in ("kube-apiserver", "kube-controller-manager", "kubelet", "kube-scheduler",
                 "kube-proxy"):
        assert version_of(bin_dir / name, "--version").strip() == f"Kubernetes {k8s}", name
    kubectl = json.loads(version_of(bin_dir / "kubectl", "version", "--client", "--output=json"))
    assert kubectl["clientVersion"]["gitVersion"] == k8s
    helm = version_of(bin_dir / "helm", "version", "--short")
    assert helm.startswith(required_version("helmtool", "helm.sh/helm/v3"))
    coredns = required_version("addons/coredns", "github.com/coredns/coredns")
    assert version_of(bin_dir / "coredns", "-version").startswith(f"CoreDNS-{coredns[1:]}")
    plugins = version_of(bin_dir / "coredns", "-plugins").split()
    for plugin in ("kubernetes", "forward", "cache", "errors", "health", "ready", "loop",
                   "reload"):
        assert plugin in plugins, plugin
    local_path = required_version("addons/local-path-provisioner",
                                  "github.com/rancher/local-path-provisioner")
    assert version_of(bin_dir / "local-path-provisioner", "--version").strip() == (
        f"local-path-provisioner version {local_path}")
    assert "start" in version_of(bin_dir / "local-path-provisioner", "--help")
    actionlint = version_of(bin_dir / "actionlint", "-version").splitlines()
    assert actionlint[0] == required_version("actionlinttool", "github.com/rhysd/actionlint")
    # Prometheus 3.x is tagged v0.3XY.Z in its Go module (v0.316.0: 3.16.0); built with the
    # kubernetes service discovery only (the e2e tests' scrapes, tests/e2e/scrape.py).
    module = required_version("prometheustool", "github.com/prometheus/prometheus")
    minor, patch = module.removeprefix("v0.").split(".", 1)
    prometheus = version_of(bin_dir / "prometheus", "--version").splitlines()
    assert prometheus[0].startswith(
        f"prometheus, version {int(minor) // 100}.{int(minor) % 100}.{patch} "), prometheus
    assert "tags: remove_all_sd,enable_kubernetes_sd" in " ".join(prometheus[-1].split())


def scratch_copy(bin_dir: Path, tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """tests/k8s copied (go.mod files and the script) and a cache whose bin dir links to the
    real binaries (a rebuild replaces a link, never the binary) with copies of the stamps,
    sharing the real Go module and build caches."""
    here = tmp_path / "k8s"
    shutil.copytree(K8S_DIR, here, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    cache = tmp_path / "cache"
    real_cache = bin_dir.parents[1]
    (cache / bin_dir.parent.name / "bin").mkdir(parents=True)
    for shared in ("gopath", "gocache"):
        (cache / shared).symlink_to(real_cache / shared)
    for name in BINARIES:
        (cache / bin_dir.parent.name / "bin" / name).symlink_to(bin_dir / name)
        shutil.copy(bin_dir / f".{name}.stamp", cache / bin_dir.parent.name / "bin")
    return here / "controlplane.sh", cache / bin_dir.parent.name / "bin", {
        **os.environ, "SUBNETLAB_K8S_CACHE": str(cache)}


def build_in(copy: Path, env: dict[str, str]) -> str:
    done = subprocess.run(["bash", str(copy), "build"], capture_output=True, text=True,
                          env=env, timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_a_go_mod_change_rebuilds_only_the_binaries_whose_dependencies_changed(
    bin_dir: Path, tmp_path: Path
) -> None:
    copy, scratch, env = scratch_copy(bin_dir, tmp_path)

    # go.mod changed, actionlint's dependencies did not: kept, stamp renewed.
    mod = copy.parent / "actionlinttool" / "go.mod"
    mod.write_text("// edited\n" + mod.read_text())
    log = build_in(copy, env)
    assert "go build" not in log
    version = required_version("actionlinttool", "github.com/rhysd/actionlint")
    assert (f"actionlint {version} kept: tests/k8s/actionlinttool/go.mod or go.sum changed, "
            "its dependencies did not") in log
    assert log.count(" kept: ") == 1
    assert "go build" not in build_in(copy, env)  # the renewed stamp: no go list either
    assert (scratch / "actionlint").is_symlink()

    # A missing binary is built alone.
    (scratch / "actionlint").unlink()
    log = build_in(copy, env)
    assert [line for line in log.splitlines() if " go build " in line] == [
        f"controlplane.sh: [10/11] go build github.com/rhysd/actionlint/cmd/actionlint "
        f"{version} (cold: about 10 s)"]
    assert not (scratch / "actionlint").is_symlink()
    assert version_of(scratch / "actionlint", "-version").splitlines()[0] == version


def test_binaries_under_the_stamps_before_per_binary_ones_are_adopted_not_rebuilt(
    bin_dir: Path, tmp_path: Path
) -> None:
    """The shared BIN/.stamp of kube-apiserver, kube-controller-manager and kubectl and the
    bare-hash .helm.stamp of earlier builds: the binaries are checked against their sources
    (build info against go list) and kept, with a stamp of their own."""
    copy, scratch, env = scratch_copy(bin_dir, tmp_path)
    for name in ("kube-apiserver", "kube-controller-manager", "kubectl"):
        (scratch / f".{name}.stamp").unlink()
    (scratch / ".stamp").write_text("0" * 64 + "\n")
    (scratch / ".helm.stamp").write_text("0" * 64 + "\n")

    log = build_in(copy, env)

    assert "go build" not in log
    for name in ("kube-apiserver", "kube-controller-manager", "kubectl", "helm"):
        module_dir, module = BINARIES[name]
        mod = "tests/k8s/go.mod" if module_dir == "." else f"tests/k8s/{module_dir}/go.mod"
        assert (f"{name} {required_version(module_dir, module)} kept: an older controlplane.sh "
                f"stamped it, its dependencies match {mod}") in log, name
        stamp = (scratch / f".{name}.stamp").read_text()
        assert stamp == (bin_dir / f".{name}.stamp").read_text(), name
    assert log.count(" kept: ") == 4
    assert not (scratch / ".stamp").exists()


def test_a_missing_etcd_is_named(tmp_path: Path) -> None:
    env = {**os.environ, "ETCD": str(tmp_path / "no-etcd")}
    done = subprocess.run(["bash", str(SCRIPT), "run", str(tmp_path / "state")],
                          capture_output=True, text=True, env=env, timeout=60, check=False)

    assert done.returncode == 2
    assert "etcd: not found (install Debian's etcd-server package, or set ETCD)" in done.stderr
    assert not (tmp_path / "state").exists()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_end_of_the_watched_process_stops_every_component(
    kube_controlplane: ControlPlane, tmp_path: Path
) -> None:
    # A second, short-lived control plane watching a process of ours: when that process
    # ends (as pytest would if killed), etcd, the API server and the controller-manager go.
    watched = subprocess.Popen(["sleep", "3600"])
    plane, process = start_controlplane(tmp_path / "second", watch_pid=watched.pid)
    try:
        ready = (plane.workdir / "ready").read_text()
        pids = [int(p) for p in ready.split("pids=")[1].split()]
        assert len(pids) == 3 and all(alive(p) for p in pids)
        assert plane.server != kube_controlplane.server
        assert plane.kubectl("get", "--raw", "/readyz").stdout == "ok"

        watched.kill()
        watched.wait()

        process.wait(WAIT_S)
        assert process.returncode == 0
        eventually(lambda: not any(alive(p) for p in pids), WAIT_S, "the components to exit")
        assert not (plane.workdir / "ready").exists()
    finally:
        watched.kill()
        stop_group(process)
