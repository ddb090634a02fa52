"""Operator settings from the environment (and back), bad values named."""

from __future__ import annotations

import pytest

from subnetlab.k8s.config import ENV, ConfigError, OperatorConfig


def test_environment_round_trip() -> None:
    config = OperatorConfig(ledger_url="http://ledger:9944", sync_interval_s=2.5,
                            metrics_port=0, image="img:1")
    assert OperatorConfig.from_env(config.to_env()) == config
    assert ENV["ledger_url"] == "SUBNETLAB_LEDGER"
    assert config.ledger_for_pods == "http://ledger:9944"


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("SUBNETLAB_OPERATOR_SYNC_INTERVAL_S", "soon", "is not a number"),
    ("SUBNETLAB_OPERATOR_SYNC_INTERVAL_S", "0", r"must be in \(0, 86400\]"),
    ("SUBNETLAB_LEDGER", "ledger:9944", "must look like http://HOST:PORT"),
    ("SUBNETLAB_OPERATOR_IMAGE_PULL_POLICY", "Sometimes", "Always, IfNotPresent or Never"),
    ("SUBNETLAB_OPERATOR_METRICS_PORT", "70000", "must be a TCP port"),
    ("SUBNETLAB_OPERATOR_LOG_LEVEL", "loud", "debug, info, warning or error"),
])
def test_bad_settings_name_the_variable(variable: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        OperatorConfig.from_env({variable: value})
    assert str(info.value).startswith(variable)


def test_operator_run_refuses_bad_flags_before_touching_a_cluster(cli: object) -> None:
    run = cli  # the real `subnetlab` command in a child process
    nothing = run("operator", "run")  # type: ignore[operator]
    assert nothing.returncode == 2 and "--all-namespaces" in nothing.stderr
    both = run("operator", "run", "-n", "a", "-A")  # type: ignore[operator]
    assert both.returncode == 2 and "exclusive" in both.stderr
    bad = run("operator", "run", "-A", "--ledger", "nope")  # type: ignore[operator]
    assert bad.returncode == 2 and "SUBNETLAB_LEDGER" in bad.stderr
