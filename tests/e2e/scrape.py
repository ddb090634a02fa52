"""ServiceMonitors as a plain Prometheus scrape configuration, and a Prometheus to run it.

Why: the chart describes its scrapes as ServiceMonitors (the Prometheus operator's CRD).
The e2e tests check that a real Prometheus, discovering the cluster through its API
server (kubernetes service discovery, role `endpoints`), finds and scrapes exactly what
those ServiceMonitors select. This module does the translation the Prometheus operator
does for the fields the chart uses (selector.matchLabels, namespaceSelector, endpoints'
port/path/interval, targetLabels), and starts Prometheus with the result: the one
`tests/k8s/controlplane.sh build` puts in the bin dir (built from tests/k8s/prometheustool,
the kubernetes service discovery included; Debian's package is built without it).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from subnetlab.bench.processes import free_port, started_server


def _label_name(name: str) -> str:
    """A Kubernetes label as Prometheus spells it in service discovery (`a.b/c` -> `a_b_c`)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def scrape_configs(monitors: Sequence[Mapping[str, Any]], kubeconfig: str) -> list[dict[str, Any]]:
    """One scrape job per ServiceMonitor endpoint, as the Prometheus operator writes them."""
    jobs: list[dict[str, Any]] = []
    for monitor in monitors:
        meta, spec = monitor["metadata"], monitor["spec"]
        selector = spec.get("namespaceSelector", {})
        sd: dict[str, Any] = {"role": "endpoints", "kubeconfig_file": kubeconfig}
        if not selector.get("any"):
            sd["namespaces"] = {"names": selector.get("matchNames", [meta["namespace"]])}
        for index, endpoint in enumerate(spec["endpoints"]):
            keep = [
                {"source_labels": [f"__meta_kubernetes_service_label_{_label_name(k)}"],
                 "regex": re.escape(str(v)), "action": "keep"}
                for k, v in spec["selector"].get("matchLabels", {}).items()
            ]
            keep.append({"source_labels": ["__meta_kubernetes_endpoint_port_name"],
                         "regex": re.escape(endpoint["port"]), "action": "keep"})
            labels = [
                {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            ] + [
                {"source_labels": [f"__meta_kubernetes_service_label_{_label_name(name)}"],
                 "target_label": _label_name(name)}
                for name in spec.get("targetLabels", [])
            ]
            jobs.append({
                "job_name": f"serviceMonitor/{meta['namespace']}/{meta['name']}/{index}",
                "scrape_interval": endpoint.get("interval", "30s"),
                "metrics_path": endpoint.get("path", "/metrics"),
                "kubernetes_sd_configs": [sd],
                "relabel_configs": keep + labels,
            })
    return jobs


CONTROLPLANE_SH = Path(__file__).resolve().parents[1] / "k8s" / "controlplane.sh"


def prometheus_binary() -> Path:
    """The bin dir's prometheus; a missing one fails naming the command that builds it."""
    done = subprocess.run(["bash", str(CONTROLPLANE_SH), "bin-dir"], capture_output=True,
                          text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"tests/k8s/controlplane.sh bin-dir failed: {done.stderr.strip()}")
    binary = Path(done.stdout.strip()) / "prometheus"
    if not binary.is_file():
        raise RuntimeError(
            f"{binary} is missing: `bash tests/k8s/controlplane.sh build` builds it from "
            "tests/k8s/prometheustool/go.mod (with the kubernetes service discovery, which "
            "Debian's prometheus package lacks)")
    return binary


@dataclass(frozen=True)
class Prometheus:
    url: str

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()["data"]["result"]
        return result

    def targets(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v1/targets", timeout=10)
        response.raise_for_status()
        active: list[dict[str, Any]] = response.json()["data"]["activeTargets"]
        return active


@contextmanager
def running_prometheus(jobs: list[dict[str, Any]], workdir: Path) -> Iterator[Prometheus]:
    """The bin dir's prometheus on loopback with `jobs`, until the block ends."""
    binary = prometheus_binary()
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump({"global": {"scrape_interval": "5s"},
                                      "scrape_configs": jobs}))
    port = free_port()
    argv = [str(binary), f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    with started_server(argv, "prometheus", port, workdir / "prometheus.log", timeout=60,
                        ready_path="/-/ready", stop_timeout=15) as url:
        yield Prometheus(url)
