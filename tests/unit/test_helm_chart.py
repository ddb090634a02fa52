"""The Helm chart's static parts, checked against the code they describe (no helm needed).

Why: a dashboard or alert that names a metric the code does not export shows an empty
panel or never fires, and nobody notices until the day it matters. The chart's RBAC rules
and CRDs are copies (Helm cannot read files outside the chart), so each copy is compared
with its source here. Rendering and installing the chart is tests/k8s/test_chart.py.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml
from prometheus_client import CollectorRegistry

import subnetlab
from subnetlab.k8s.crds import rendered

ROOT = Path(__file__).parents[2]
CHART = ROOT / "helm" / "subnetlab"
DASHBOARDS = sorted((CHART / "dashboards").glob("*.json"))
RULES = CHART / "files" / "prometheus-rules.yaml"

METRIC = re.compile(r"\bsubnetlab_[a-z0-9_]+")
# What Prometheus sees for each family type: a counter `x` is scraped as x_total (and
# x_created), a histogram as x_bucket, x_sum, x_count.
SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",),
            "histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("", "_sum", "_count", "_created"), "info": ("_info",)}


def metrics_registries() -> Iterator[CollectorRegistry]:
    """The registry of every `*Metrics` class in the package's `metrics` modules."""
    for module_info in pkgutil.walk_packages(subnetlab.__path__, "subnetlab."):
        if not module_info.name.endswith(".metrics"):
            continue
        module = importlib.import_module(module_info.name)
        for name, cls in vars(module).items():
            defined_here = isinstance(cls, type) and cls.__module__ == module.__name__
            if name.endswith("Metrics") and defined_here:
                yield cls().registry


def exported_names() -> set[str]:
    """Every series name the package can export, as a scrape shows it."""
    names: set[str] = set()
    for registry in metrics_registries():
        for family in registry.collect():
            names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def dashboard_expressions(node: Any) -> Iterator[str]:
    """PromQL in a Grafana dashboard: panel targets' `expr` and template-variable queries."""
    if isinstance(node, dict):
        for key, value in node.items():
            promql = key in ("expr", "definition") or (key == "query" and "(" in str(value))
            if promql and isinstance(value, str):
                yield value
            else:
                yield from dashboard_expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from dashboard_expressions(item)


def rule_expressions() -> Iterator[tuple[str, str]]:
    """(alert or record name, expr) of every rule in the chart's PrometheusRule."""
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def unknown_metrics(expressions: dict[str, str], known: set[str]) -> dict[str, list[str]]:
    """Where -> subnetlab_* names used there that the code does not export."""
    missing = {where: sorted(set(METRIC.findall(expr)) - known)
               for where, expr in expressions.items()}
    return {where: names for where, names in missing.items() if names}


def dashboard(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in doc["panels"] if p["type"] != "row"]


def test_the_code_exports_the_series_the_checks_rely_on() -> None:
    known = exported_names()
    # A sample of each component's families, in their scraped form: the catalogue is real.
    for name in ("subnetlab_block_height", "subnetlab_extrinsics_total",
                 "subnetlab_validator_miner_latency_seconds_bucket",
                 "subnetlab_miner_tokens_generated_total", "subnetlab_operator_ledger_up"):
        assert name in known
    assert "subnetlab_extrinsics" not in known  # a counter is only scraped with _total


def test_the_checker_catches_a_misspelt_metric() -> None:
    known = exported_names()
    exprs = {"ok": "rate(subnetlab_extrinsics_total[5m])",
             "typo": "rate(subnetlab_extrinsic_total[5m]) + subnetlab_block_height",
             "counter without _total": "rate(subnetlab_miner_requests[5m])"}
    assert unknown_metrics(exprs, known) == {
        "typo": ["subnetlab_extrinsic_total"],
        "counter without _total": ["subnetlab_miner_requests"],
    }


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_queries_use_exported_metrics(path: Path) -> None:
    doc = dashboard(path)
    exprs = {f"{path.name}#{i}": expr for i, expr in enumerate(dashboard_expressions(doc))}
    assert len(exprs) >= len(panels(doc)), "every panel has a query"
    assert unknown_metrics(exprs, exported_names()) == {}


def test_alert_rules_use_exported_metrics() -> None:
    rules = dict(rule_expressions())
    assert len(rules) >= 8
    assert unknown_metrics(rules, exported_names()) == {}


def test_every_alert_has_severity_summary_and_a_for_clause() -> None:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
            assert re.fullmatch(r"[0-9]+[smh]", rule["for"]), rule["alert"]


def test_dashboards_are_well_formed() -> None:
    uids = [dashboard(p)["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == len(uids) == len(DASHBOARDS)
    for path in DASHBOARDS:
        doc = dashboard(path)
        ids = [p["id"] for p in doc["panels"]]
        assert len(set(ids)) == len(ids), f"{path.name}: duplicate panel ids"
        variables = {v["name"] for v in doc["templating"]["list"]}
        assert {"datasource", "namespace"} <= variables, path.name
        for panel in panels(doc):
            assert panel["title"] and panel["description"], f"{path.name}: {panel['id']}"
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
            for target in panel["targets"]:
                expr = target["expr"]
                assert expr.count("(") == expr.count(")"), f"{panel['title']}: {expr}"
                assert expr.count("{") == expr.count("}"), f"{panel['title']}: {expr}"


# What each dashboard must show (the design's list), as the series it must query.
REQUIRED = {
    "network": ["subnetlab_block_height", "subnetlab_epochs", "subnetlab_extrinsics_total",
                "subnetlab_gini", "subnetlab_nakamoto_coefficient"],
    "overhead": ["subnetlab_organic_overhead_ratio_sum", "subnetlab_organic_overhead_ratio_bucket",
                 "subnetlab_organic_latency_seconds_bucket"],
    "miners": ["subnetlab_miner_requests_total", "subnetlab_miner_backend_seconds_bucket",
               "subnetlab_miner_tokens_generated_total"],
    "validators": ["subnetlab_validator_queries_total",
                   "subnetlab_validator_miner_latency_seconds_bucket",
                   "subnetlab_validator_moving_score"],
}


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_each_dashboard_shows_what_the_design_asks_for(name: str) -> None:
    doc = dashboard(CHART / "dashboards" / f"{name}.json")
    used = set(METRIC.findall(" ".join(dashboard_expressions(doc))))
    assert set(REQUIRED[name]) <= used, sorted(set(REQUIRED[name]) - used)
    if name == "network":  # Gini and Nakamoto of both stake and emission
        exprs = " ".join(dashboard_expressions(doc))
        assert 'of="stake"' in exprs and 'of="emission"' in exprs
    if name in ("overhead",):  # broken down by routing strategy
        assert all("strategy" in t["expr"] for p in panels(doc) for t in p["targets"]
                   if "organic" in t["expr"] and p["type"] != "heatmap")


def test_chart_rbac_rules_are_the_manifest_rules() -> None:
    """One set of rules: the chart's copy (Helm cannot read manifests/) equals the manifest."""
    manifest = yaml.safe_load((ROOT / "manifests" / "rbac" / "clusterrole.yaml").read_text())
    chart = yaml.safe_load((CHART / "files" / "operator-clusterrole-rules.yaml").read_text())
    assert set(chart) == {"rules"}
    assert chart["rules"] == manifest["rules"]


def test_chart_crds_are_what_the_models_generate() -> None:
    for name, text in rendered().items():
        copy = CHART / "crds" / name
        assert copy.is_file(), f"{copy} is missing: run `subnetlab crds generate`"
        assert copy.read_text() == text, f"{copy} is stale: run `subnetlab crds generate`"
    assert sorted(p.name for p in (CHART / "crds").glob("*.yaml")) == sorted(rendered())


def schema() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return doc


def test_values_schema_is_valid_and_accepts_the_defaults() -> None:
    jsonschema.Draft7Validator.check_schema(schema())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft7Validator(schema()).validate(defaults)


def schema_keys(node: dict[str, Any], path: str = "") -> Iterator[str]:
    for key, sub in node.get("properties", {}).items():
        yield f"{path}{key}"
        if isinstance(sub, dict) and sub.get("type") == "object" and "properties" in sub:
            yield from schema_keys(sub, f"{path}{key}.")


def value_keys(node: dict[str, Any], free: set[str], path: str = "") -> Iterator[str]:
    for key, sub in node.items():
        yield f"{path}{key}"
        if isinstance(sub, dict) and f"{path}{key}" not in free:
            yield from value_keys(sub, free, f"{path}{key}.")


def test_every_documented_value_is_in_the_schema_and_back() -> None:
    """values.yaml documents the keys; the schema checks them: the two lists agree."""
    keys = set(schema_keys(schema()))
    free = {k for k in keys if not {*schema_keys(lookup(schema(), k))}}  # maps of anything
    values = set(value_keys(yaml.safe_load((CHART / "values.yaml").read_text()), free))
    genesis = {k for k in keys if k.startswith("ledger.genesis.")}  # optional, empty default
    assert values == keys - genesis


def lookup(node: dict[str, Any], dotted: str) -> dict[str, Any]:
    for part in dotted.split("."):
        node = node["properties"][part]
    return node


@pytest.mark.parametrize(("values", "field"), [
    ({"operator": {"metricsPort": -1}}, "operator.metricsPort"),
    ({"ledger": {"blockTime": 0}}, "ledger.blockTime"),
    ({"operator": {"logLevel": "loud"}}, "operator.logLevel"),
    ({"operator": {"replicas": 2}}, "operator"),
    ({"redis": {"enabled": False}}, "redis.external.url"),
    ({"redis": {"external": {"url": "http://redis:6379"}}}, "redis.external.url"),
    ({"gatewayKeys": {"apiKeys": ["a,b-and-more"]}}, "gatewayKeys.apiKeys.0"),
    ({"monitoring": {"serviceMonitors": {"enabled": "maybe"}}},
     "monitoring.serviceMonitors.enabled"),
])
def test_schema_refuses_bad_values_naming_the_field(values: dict[str, Any], field: str) -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    merged = merge(defaults, values)
    errors = list(jsonschema.Draft7Validator(schema()).iter_errors(merged))
    paths = {".".join(str(p) for p in e.absolute_path) for e in errors}
    assert field in paths, [e.message for e in errors]


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = merge(base[key], value) if isinstance(value, dict) and isinstance(
            base.get(key), dict) else value
    return out
