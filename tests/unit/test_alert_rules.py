"""The chart's alert rules, evaluated by Prometheus's own `promtool` (Debian's `prometheus`
package; `.ci/run` installs it).

Why: a rule that parses can still never fire, fire on the wrong series, or print nonsense
(the ledger-stalled alert once said "stuck at block 0": its `$value` was the `changes()`
result, not the height). tests/prometheus/alerts.test.yaml feeds each alert series that
must fire it and series that must not, and compares the labels and the rendered
annotations exactly; this file runs it and checks that no alert is left without a test.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[2]
RULES = ROOT / "helm" / "subnetlab" / "files" / "prometheus-rules.yaml"
RULE_TESTS = ROOT / "tests" / "prometheus" / "alerts.test.yaml"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool") or ("/usr/bin/promtool"
                                         if Path("/usr/bin/promtool").is_file() else None)
    if found is None:
        pytest.fail("promtool is missing: `apt-get install prometheus` (Debian's package "
                    "ships /usr/bin/promtool; .ci/run installs it)")
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120,
                          check=False, cwd=ROOT)


def alerts() -> list[str]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule["alert"] for group in doc["groups"] for rule in group["rules"]
            if "alert" in rule]


def rule_tests() -> list[dict[str, Any]]:
    doc: dict[str, Any] = yaml.safe_load(RULE_TESTS.read_text())
    assert (RULE_TESTS.parent / doc["rule_files"][0]).resolve() == RULES.resolve()
    tests: list[dict[str, Any]] = doc["tests"]
    return tests


def test_promtool_accepts_the_rules(promtool: str) -> None:
    done = run(promtool, "check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in done.stdout


def test_the_rule_unit_tests_pass(promtool: str) -> None:
    done = run(promtool, "test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_is_tested_firing_and_quiet() -> None:
    """Each alert has a case where it fires (labels and annotations compared) and one where
    it must stay quiet (`exp_alerts: []`)."""
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in rule_tests():
        for check in case.get("alert_rule_test", []):
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
            for expected in check["exp_alerts"]:
                assert expected["exp_annotations"]["description"], check["alertname"]
                assert expected["exp_labels"]["severity"], check["alertname"]
    names = set(alerts())
    assert len(names) == len(alerts()) >= 11
    assert names - fired == set(), "alerts with no case where they fire"
    assert names - quiet == set(), "alerts with no case where they must not fire"
    assert (fired | quiet) - names == set(), "tests of alerts that do not exist"


def test_the_stalled_ledger_alert_names_the_height() -> None:
    """$value of the stalled alert is the height (the rule's `and` keeps the left side)."""
    rule = next(rule for group in yaml.safe_load(RULES.read_text())["groups"]
                for rule in group["rules"] if rule.get("alert") == "SubnetlabLedgerStalled")
    assert rule["expr"].startswith("subnetlab_block_height and ")
    expected = [a for case in rule_tests() for check in case["alert_rule_test"]
                if check["alertname"] == "SubnetlabLedgerStalled" for a in check["exp_alerts"]]
    assert "stuck at block 1234567;" in expected[0]["exp_annotations"]["description"]
