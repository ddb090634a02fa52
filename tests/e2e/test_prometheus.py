"""A real Prometheus finds and scrapes what the chart's ServiceMonitors describe.

Prometheus (built into the bin dir by `tests/k8s/controlplane.sh build`: Debian's package
lacks the kubernetes service discovery) runs on the test host with kubernetes service
discovery against the cluster's API server, configured from the ServiceMonitors the chart
renders (tests/e2e/scrape.py translates them as the Prometheus operator would). Organic
requests go through a validator's gateway; the N+V ratio and latency series are then read back
through Prometheus's HTTP API, labelled with the neuron they came from.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import REPO, Cluster, gateway_key, in_cluster_python, neuron_named
from tests.e2e.scrape import Prometheus, running_prometheus, scrape_configs
from tests.k8s.conftest import eventually

pytestmark = pytest.mark.timeout(900)


def _service_monitors(cluster: Cluster) -> list[dict[str, Any]]:
    """The ServiceMonitors of the installed release, rendered with the chart."""
    rendered = cluster.helm(
        "template", cluster.release, str(REPO / "helm" / "subnetlab"),
        "--namespace", cluster.release_ns,
        "--set", "monitoring.serviceMonitors.enabled=true",
        "--show-only", "templates/servicemonitors.yaml").stdout
    return [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "ServiceMonitor"]


@pytest.fixture(scope="module")
def prometheus(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    jobs = scrape_configs(_service_monitors(cluster), cluster.kubeconfig)
    with running_prometheus(jobs, Path(tmp_path_factory.mktemp("prometheus"))) as prom:
        yield prom


def _send_organic(cluster: Cluster, namespace: str, count: int) -> None:
    key = gateway_key(cluster, namespace)
    endpoint = neuron_named(cluster, namespace, "validator-0")["status"]["endpoint"]
    body = {"model": "subnetlab", "max_tokens": 16,
            "messages": [{"role": "user", "content": "Sort 3 1 2."}]}
    code = (
        "import httpx\n"
        f"for _ in range({count}):\n"
        f"    r = httpx.post({endpoint!r} + '/v1/chat/completions', json={body!r},\n"
        f"                   headers={{'Authorization': 'Bearer ' + {key!r}}}, timeout=60)\n"
        "    assert r.status_code == 200, r.text\n"
        "print('sent')\n"
    )
    assert "sent" in in_cluster_python(cluster, namespace, code)


def test_prometheus_discovers_and_scrapes_every_component(
    cluster: Cluster, demo: str, prometheus: Prometheus
) -> None:
    def healthy_jobs() -> set[str] | None:
        up = {t["labels"].get("job", "") + "|" + t["labels"].get("subnetlab_io_role", "")
              for t in prometheus.targets() if t["health"] == "up"}
        wanted = {"ledger", "operator", "miner", "validator"}
        seen = {w for w in wanted if any(w in entry for entry in up)}
        return up if seen == wanted else None

    eventually(healthy_jobs, 240, "ledger, operator, miner and validator targets up")
    heights = eventually(lambda: prometheus.query("subnetlab_block_height"), 120,
                         "subnetlab_block_height scraped from the ledger")
    assert float(heights[0]["value"][1]) > 0


def test_nv_ratio_and_latency_read_back_through_prometheus(
    cluster: Cluster, demo: str, prometheus: Prometheus
) -> None:
    _send_organic(cluster, demo, 5)
    count = f'subnetlab_organic_overhead_ratio_count{{namespace="{demo}"}}'
    ratio = eventually(
        lambda: prometheus.query(f"sum by (subnetlab_io_neuron) ({count}) > 0"),
        180, "the N+V ratio series of validator-0")
    assert {r["metric"]["subnetlab_io_neuron"] for r in ratio} == {"validator-0"}
    mean = prometheus.query(
        f'sum(subnetlab_organic_overhead_ratio_sum{{namespace="{demo}"}}) / '
        f'sum(subnetlab_organic_overhead_ratio_count{{namespace="{demo}"}})')
    # broadcast to fanOut 4 miners plus the validator's grading: well above one answer
    assert float(mean[0]["value"][1]) > 1.0
    latency = eventually(
        lambda: prometheus.query(
            f'histogram_quantile(0.5, sum by (le) (subnetlab_organic_latency_seconds_bucket'
            f'{{namespace="{demo}"}}))'),
        120, "the organic latency histogram")
    assert float(latency[0]["value"][1]) > 0
