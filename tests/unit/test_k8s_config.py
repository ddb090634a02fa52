"""Operator settings from flags and the environment (and back), bad values named by where
they came from."""

from __future__ import annotations

import pytest

from subnetlab.k8s.config import ENV, FLAGS, ConfigError, OperatorConfig


def test_environment_round_trip() -> None:
    config = OperatorConfig(ledger_url="http://ledger:9944", sync_interval_s=2.5,
                            metrics_port=0, image="img:1", redis_url="unix:///run/r.sock")
    assert OperatorConfig.from_env(config.to_env()) == config
    assert ENV["ledger_url"] == "SUBNETLAB_LEDGER"
    assert config.ledger_for_pods == "http://ledger:9944"


def test_flags_win_over_the_environment() -> None:
    env = {"SUBNETLAB_OPERATOR_SYNC_INTERVAL_S": "9", "SUBNETLAB_OPERATOR_IMAGE": "env:1"}
    config = OperatorConfig.load({"sync_interval_s": 2.0, "image": None}, env)
    assert config.sync_interval_s == 2.0 and config.image == "env:1"


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("SUBNETLAB_OPERATOR_SYNC_INTERVAL_S", "soon", "'soon' is not a number"),
    ("SUBNETLAB_OPERATOR_SYNC_INTERVAL_S", "0", r"must be in \(0, 86400\] seconds, got 0"),
    ("SUBNETLAB_LEDGER", "ledger:9944", "must start with http:// or https://"),
    ("SUBNETLAB_LEDGER", "http://:9944", "names no host"),
    ("SUBNETLAB_OPERATOR_POD_LEDGER_URL", "ledger.ns.svc:9944", "must start with http://"),
    ("SUBNETLAB_OPERATOR_POD_LEDGER_URL", "http://ledger:99999", "is not a URL"),
    ("SUBNETLAB_OPERATOR_REDIS_URL", "redis-host:6379", "must start with redis:// or rediss:// "
     "or unix://"),
    ("SUBNETLAB_OPERATOR_REDIS_URL", "redis:///0", "names no host"),
    ("SUBNETLAB_OPERATOR_REDIS_URL", "unix://", "names no socket path"),
    ("SUBNETLAB_OPERATOR_LIVENESS_ENDPOINT", "0.0.0.0:8080", "must start with http://"),
    ("SUBNETLAB_OPERATOR_IMAGE_PULL_POLICY", "Sometimes", "Always, IfNotPresent or Never"),
    ("SUBNETLAB_OPERATOR_METRICS_PORT", "70000", "must be a TCP port"),
    ("SUBNETLAB_OPERATOR_LOG_LEVEL", "loud", "debug, info, warning or error"),
])
def test_bad_settings_name_the_variable(variable: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        OperatorConfig.from_env({variable: value})
    assert str(info.value).startswith(f"{variable}: ")


@pytest.mark.parametrize(("setting", "value", "expected"), [
    ("sync_interval_s", -1.0, "must be in (0, 86400] seconds, got -1.0"),
    ("delete_give_up_s", 0.0, "must be in (0, 86400] seconds"),
    ("ledger_url", "ledger:9944", "must start with http://"),
    ("pod_ledger_url", "http://", "names no host"),
    ("redis_url", "localhost:6379", "must start with redis://"),
    ("metrics_port", 70000, "must be a TCP port"),
    ("liveness_endpoint", "https://0.0.0.0:8080/healthz", "must start with http://"),
    ("log_level", "loud", "debug, info, warning or error"),
])
def test_bad_flags_name_the_flag(setting: str, value: object, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        OperatorConfig.load({setting: value}, {})
    assert str(info.value).startswith(f"{FLAGS[setting]}: ")
    assert expected in str(info.value)
    assert ENV[setting] not in str(info.value)


def test_a_bad_variable_is_named_even_when_flags_are_given() -> None:
    env = {"SUBNETLAB_OPERATOR_REDIS_URL": "nope"}
    with pytest.raises(ConfigError, match=r"^SUBNETLAB_OPERATOR_REDIS_URL: 'nope' must start"):
        OperatorConfig.load({"sync_interval_s": 5.0}, env)


def test_a_password_in_a_url_never_reaches_the_message() -> None:
    with pytest.raises(ConfigError) as info:
        OperatorConfig.load({"redis_url": "redis://:hunter2@redis:port/0"})
    assert "hunter2" not in str(info.value)
    assert str(info.value).startswith("--redis-url: 'redis://:***@redis:port/0' is not a URL")


def test_every_flag_names_a_setting() -> None:
    names = {f for f in OperatorConfig.__dataclass_fields__}
    assert set(FLAGS) <= names
    with pytest.raises(ValueError, match="no flag for settings"):
        OperatorConfig.load({"max_backoff_s": 1.0})


def test_operator_run_refuses_bad_flags_before_touching_a_cluster(cli: object) -> None:
    run = cli  # the real `subnetlab` command in a child process
    nothing = run("operator", "run")  # type: ignore[operator]
    assert nothing.returncode == 2 and "--all-namespaces" in nothing.stderr
    both = run("operator", "run", "-n", "a", "-A")  # type: ignore[operator]
    assert both.returncode == 2 and "exclusive" in both.stderr
    bad = run("operator", "run", "-A", "--ledger", "nope")  # type: ignore[operator]
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("error: --ledger: 'nope' must start with http:// or https:// "
                                  "(e.g. http://HOST:PORT)")
    negative = run("operator", "run", "-A", "--sync-interval", "-1")  # type: ignore[operator]
    assert negative.returncode == 2
    assert negative.stderr.strip() == ("error: --sync-interval: must be in (0, 86400] seconds, "
                                       "got -1.0")
    redis = run("operator", "run", "-A", "--redis-url", "redis-host")  # type: ignore[operator]
    assert redis.returncode == 2 and redis.stderr.startswith("error: --redis-url: ")
    assert len(redis.stderr.strip().splitlines()) == 1 and "Traceback" not in redis.stderr
