"""`helm upgrade` with a changed value rolls what it changes; `helm uninstall` leaves nothing.

A second release of the chart in a namespace of its own (operator off: the cluster's
release already reconciles every namespace), with the images the cluster's release uses.
"""

from __future__ import annotations

import json
import uuid

import pytest
import yaml

from tests.e2e.conftest import REPO, Cluster
from tests.k8s.conftest import eventually

pytestmark = pytest.mark.timeout(900)

KINDS = ("deployments,statefulsets,pods,services,configmaps,secrets,persistentvolumeclaims,"
         "networkpolicies")


def _image_values(cluster: Cluster) -> list[str]:
    """--set arguments for the images of the cluster's own release."""
    values = yaml.safe_load(cluster.helm("get", "values", cluster.release, "-n",
                                         cluster.release_ns, "-o", "yaml").stdout) or {}
    sets: list[str] = []
    for prefix, section in (("image", values.get("image", {})),
                            ("redis.image", values.get("redis", {}).get("image", {}))):
        for key in ("repository", "tag", "pullPolicy"):
            if key in section:
                sets += ["--set-string", f"{prefix}.{key}={section[key]}"]
    return sets


def _ledger_args(cluster: Cluster, namespace: str, release: str) -> list[str]:
    deployment = cluster.get_json("deployment", f"{release}-subnetlab-ledger", "-n", namespace)
    args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


def test_upgrade_then_uninstall_leaves_nothing(cluster: Cluster) -> None:
    release = f"lc{uuid.uuid4().hex[:5]}"
    namespace = f"e2e-helm-{release}"
    chart = str(REPO / "helm" / "subnetlab")
    common = ["-n", namespace, "--set", "operator.enabled=false",
              "--set", "redis.persistence.keepOnUninstall=false",
              "--set", "ledger.blockTime=1", *_image_values(cluster)]
    try:
        cluster.helm("install", release, chart, "--create-namespace", *common,
                     "--wait", "--timeout=5m")
        assert "--block-time=1" in _ledger_args(cluster, namespace, release)
        before = cluster.get_json("pods", "-n", namespace, "-l",
                                  "app.kubernetes.io/component=ledger")["items"]

        cluster.helm("upgrade", release, chart, *common, "--set", "ledger.blockTime=0.25",
                     "--wait", "--timeout=5m")
        assert "--block-time=0.25" in _ledger_args(cluster, namespace, release)

        def rolled() -> bool:
            pods = cluster.get_json("pods", "-n", namespace, "-l",
                                    "app.kubernetes.io/component=ledger")["items"]
            old = {p["metadata"]["uid"] for p in before}
            return bool(pods) and all(p["metadata"]["uid"] not in old for p in pods)

        eventually(rolled, 180, "the ledger pod replaced by the upgrade")

        cluster.helm("uninstall", release, "-n", namespace, "--wait", "--timeout=5m")

        def leftovers() -> list[str]:
            items = cluster.get_json(KINDS, "-n", namespace, "-l",
                                     f"app.kubernetes.io/instance={release}")["items"]
            left = [f"{i['kind']}/{i['metadata']['name']}" for i in items]
            pvcs = cluster.get_json("persistentvolumeclaims", "-n", namespace)["items"]
            left += [f"PersistentVolumeClaim/{p['metadata']['name']}" for p in pvcs]
            pvs = [pv for pv in cluster.get_json("persistentvolumes")["items"]
                   if pv["spec"].get("claimRef", {}).get("namespace") == namespace]
            left += [f"PersistentVolume/{pv['metadata']['name']}" for pv in pvs]
            return left

        try:
            eventually(lambda: not leftovers(), 180, "the release's objects to go")
        except TimeoutError:
            pytest.fail(f"left behind by helm uninstall: {json.dumps(leftovers())}")
        releases = cluster.helm("list", "-n", namespace, "-q").stdout.split()
        assert release not in releases
    finally:
        cluster.helm("uninstall", release, "-n", namespace, check=False)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
