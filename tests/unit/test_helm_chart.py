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


def metrics_registries() -> Iterator[tuple[str, CollectorRegistry]]:
    """(module.Class, registry) of every `*Metrics` class in the package's `metrics`
    modules: the process (ledger, operator, miner, validator) and what it exports."""
    for module_info in pkgutil.walk_packages(subnetlab.__path__, "subnetlab."):
        if not module_info.name.endswith(".metrics"):
            continue
        module = importlib.import_module(module_info.name)
        for name, cls in vars(module).items():
            defined_here = isinstance(cls, type) and cls.__module__ == module.__name__
            if name.endswith("Metrics") and defined_here:
                yield f"{module.__name__}.{name}", cls().registry


def exported_names() -> set[str]:
    """Every series name the package can export, as a scrape shows it."""
    return set(exporters())


def exporters() -> dict[str, str]:
    """Series name (as a scrape shows it) -> the `*Metrics` class that exports it."""
    owner: dict[str, str] = {}
    for exporter, registry in metrics_registries():
        for family in registry.collect():
            for suffix in SUFFIXES[family.type]:
                owner[family.name + suffix] = exporter
    return owner


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


SELECTOR = re.compile(r"(subnetlab_[a-z0-9_]+)\{([^}]*)\}")
LABEL_VALUES = re.compile(r"label_values\((.+), *namespace\)")


def variable_series(query: str) -> set[str]:
    """The series whose `namespace` labels a `label_values(SELECTOR, namespace)` variable
    lists: one metric name, or the names of a `{__name__=~"a|b"}` selector."""
    match = LABEL_VALUES.fullmatch(query)
    assert match, f"not a label_values(..., namespace) query: {query}"
    selector = match.group(1)
    alternatives = re.fullmatch(r'\{__name__=~"([a-z0-9_|]+)"\}', selector)
    if alternatives:
        return set(alternatives.group(1).split("|"))
    return {selector.split("{")[0]}


def namespace_variables(doc: dict[str, Any]) -> dict[str, set[str]]:
    """Variable name -> the series it takes namespaces from, for every variable that lists
    namespaces (`namespace`, and `ledger` where the ledger's series are shown beside the
    neurons' own)."""
    found = {}
    for variable in doc["templating"]["list"]:
        query = variable.get("definition", "")
        if variable["type"] == "query" and query.endswith(", namespace)"):
            assert variable["query"]["query"] == query, variable["name"]
            found[variable["name"]] = variable_series(query)
    return found


def namespace_filters(doc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(series, variable) for every `series{namespace=~"$variable"}` in the panels."""
    for panel in panels(doc):
        for target in panel["targets"]:
            for metric, matchers in SELECTOR.findall(target["expr"]):
                for variable in re.findall(r'namespace=~"\$(\w+)"', matchers):
                    yield metric, variable


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_namespace_variables_list_the_namespaces_of_the_series_they_filter(path: Path) -> None:
    """A namespace list taken from one process's series hides every namespace the others
    run in: with the ledger's `subnetlab_block_height` as the only source, miners and
    validators in a neuron namespace (`demo`) could not be picked at all. Every series a
    panel filters by a variable must come from a process that feeds that variable."""
    doc = dashboard(path)
    owner = exporters()
    variables = namespace_variables(doc)
    assert "namespace" in variables
    for name, series in variables.items():
        assert series <= set(owner), f"{path.name} ${name}: {sorted(series - set(owner))}"
    filters = sorted(set(namespace_filters(doc)))
    assert filters, f"{path.name}: no panel is filtered by namespace"
    for metric, variable in filters:
        assert variable in variables, f"{path.name}: {metric} filtered by unknown ${variable}"
        feeding = {owner[s] for s in variables[variable]}
        assert owner[metric] in feeding, (
            f"{path.name}: {metric} ({owner[metric]}) is filtered by ${variable}, whose "
            f"namespaces come only from {sorted(feeding)}")


def test_neuron_dashboards_list_neuron_namespaces() -> None:
    """Miners and validators run in their Neurons' namespaces, the ledger in the release's:
    their dashboards list the former from the neurons' own series and keep a separate
    ledger variable for the ledger's per-uid series."""
    owner = exporters()
    expected = {"miners": "subnetlab.miner.metrics.MinerMetrics",
                "validators": "subnetlab.validator.metrics.ValidatorMetrics",
                "overhead": "subnetlab.validator.metrics.ValidatorMetrics"}
    for name, exporter in expected.items():
        variables = namespace_variables(dashboard(CHART / "dashboards" / f"{name}.json"))
        assert {owner[s] for s in variables["namespace"]} == {exporter}, name
        if name != "overhead":
            assert variables["ledger"] == {"subnetlab_block_height"}, name


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
    # Optional, absent from the defaults: genesis fields, and the Kubernetes security-context
    # fields the schema types but the defaults leave to Kubernetes.
    optional = {k for k in keys if k.startswith(("ledger.genesis.", "podSecurityContext.",
                                                 "securityContext."))}
    assert values == keys - (optional - values)


def lookup(node: dict[str, Any], dotted: str) -> dict[str, Any]:
    for part in dotted.split("."):
        node = node["properties"][part]
    return node


@pytest.mark.parametrize(("values", "field"), [
    ({"operator": {"metricsPort": -1}}, "operator.metricsPort"),
    ({"ledger": {"blockTime": 0}}, "ledger.blockTime"),
    ({"ledger": {"blockTime": "fast"}}, "ledger.blockTime"),
    ({"ledger": {"blockTime": "0.001"}}, "ledger.blockTime"),
    ({"operator": {"logLevel": "loud"}}, "operator.logLevel"),
    ({"operator": {"replicas": 2}}, "operator"),
    ({"redis": {"enabled": False}}, "redis.external.url"),
    ({"redis": {"external": {"url": "http://redis:6379"}}}, "redis.external.url"),
    ({"gatewayKeys": {"apiKeys": ["a,b-and-more"]}}, "gatewayKeys.apiKeys.0"),
    ({"monitoring": {"serviceMonitors": {"enabled": "maybe"}}},
     "monitoring.serviceMonitors.enabled"),
    ({"ledger": {"service": {"metricsPort": 0}}}, "ledger.service.metricsPort"),
    # security contexts: typed, and never loosened to root
    ({"podSecurityContext": {"runAsNonRoot": False}}, "podSecurityContext.runAsNonRoot"),
    ({"podSecurityContext": {"runAsUser": 0}}, "podSecurityContext.runAsUser"),
    ({"podSecurityContext": {"runAsNonRoot": None}}, "podSecurityContext"),
    ({"podSecurityContext": {"runAsUsr": 10001}}, "podSecurityContext"),
    ({"podSecurityContext": {"seccompProfile": {"type": "Unconfined"}}},
     "podSecurityContext.seccompProfile.type"),
    ({"securityContext": {"runAsNonRoot": False}}, "securityContext.runAsNonRoot"),
    ({"securityContext": {"runAsUser": 0}}, "securityContext.runAsUser"),
    ({"securityContext": {"privileged": True}}, "securityContext.privileged"),
    ({"securityContext": {"allowPrivilegeEscalation": True}},
     "securityContext.allowPrivilegeEscalation"),
    ({"securityContext": {"allowPrivilegeEscalation": None}}, "securityContext"),
    ({"securityContext": {"capabilities": {"drop": []}}}, "securityContext.capabilities.drop"),
    ({"securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}},
     "securityContext.capabilities.add.0"),
    ({"securityContext": {"procMount": "Unmasked"}}, "securityContext.procMount"),
    ({"securityContext": {"readOnlyRootFilesystem": "yes"}},
     "securityContext.readOnlyRootFilesystem"),
])
def test_schema_refuses_bad_values_naming_the_field(values: dict[str, Any], field: str) -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    merged = merge(defaults, values)
    errors = list(jsonschema.Draft7Validator(schema()).iter_errors(merged))
    paths = {".".join(str(p) for p in e.absolute_path) for e in errors}
    assert field in paths, [e.message for e in errors]


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`, as Helm merges values: a None removes the key."""
    out = dict(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge(base[key], value) if isinstance(value, dict) and isinstance(
                base.get(key), dict) else value
    return out


def test_security_contexts_accept_what_kubernetes_and_the_restricted_standard_allow() -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    fine = merge(defaults, {
        "podSecurityContext": {"runAsUser": 20000, "runAsGroup": 0,
                               "fsGroupChangePolicy": "OnRootMismatch",
                               "supplementalGroups": [5], "seLinuxOptions": {"level": "s0"},
                               "seccompProfile": {"type": "Localhost",
                                                  "localhostProfile": "p.json"}},
        "securityContext": {"runAsUser": 20000, "readOnlyRootFilesystem": False,
                            "privileged": False,
                            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}},
    })
    assert list(jsonschema.Draft7Validator(schema()).iter_errors(fine)) == []


@pytest.mark.parametrize("block_time", [0.5, "0.5", "12", 3600])
def test_block_time_takes_a_number_or_the_decimal_string_helm_set_passes(
    block_time: float | str,
) -> None:
    merged = merge(yaml.safe_load((CHART / "values.yaml").read_text()),
                   {"ledger": {"blockTime": block_time}})
    assert not list(jsonschema.Draft7Validator(schema()).iter_errors(merged))
