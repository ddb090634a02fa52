"""The operator's settings: one frozen object, from flags or from the environment.

Why both: `subnetlab operator run` takes flags, while `kopf run -m subnetlab.k8s.handlers`
(and a container started by the Helm chart) can only pass the environment. Each setting
has one environment variable (`ENV`) and, on `subnetlab operator run`, one flag (`FLAGS`);
a bad value is refused naming the one it came from: `load` knows which settings the flags
gave, so `--sync-interval -1` names `--sync-interval`, and a bad
`SUBNETLAB_OPERATOR_SYNC_INTERVAL_S` names that variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields

from subnetlab import __version__
from subnetlab.ledger.client import DEFAULT_LEDGER_URL, LEDGER_ENV
from subnetlab.urls import HTTP_SCHEMES, REDIS_SCHEMES, url_problem

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


class ConfigError(ValueError):
    """A setting that cannot be used: `where: reason`, where `where` is the flag or the
    environment variable the value came from (the variable unless told otherwise)."""

    def __init__(self, setting: str, reason: str, where: str | None = None) -> None:
        self.setting, self.reason = setting, reason
        self.where = where or ENV[setting]
        super().__init__(f"{self.where}: {reason}")


DEFAULT_IMAGE = f"subnetlab:{__version__}"
"""The subnetlab image of this release (`subnetlab image build` tags it so)."""


@dataclass(frozen=True)
class OperatorConfig:
    """Everything the operator needs to know that is not in a Subnet or Neuron."""

    ledger_url: str = DEFAULT_LEDGER_URL
    """Where the operator reaches the ledger."""
    pod_ledger_url: str = ""
    """Where neuron pods reach it (an in-cluster Service URL); default: `ledger_url`."""
    image: str = DEFAULT_IMAGE
    """Image of the miner and validator containers (it has the `subnetlab` command)."""
    image_pull_policy: str = "IfNotPresent"
    redis_url: str = ""
    """Evidence store for validators; empty: each validator uses its embedded Redis."""
    gateway_keys_secret: str = "subnetlab-gateway-keys"
    """Secret (key `api-keys`, comma-separated) holding the gateways' customer API keys."""
    gateway_keys_namespace: str = ""
    """Where that Secret is when a validator's own namespace has none (the Helm chart sets
    its release namespace); empty: only in the validator's namespace. Each validator gets a
    copy, `<neuron>-gateway-keys` (`subnetlab.k8s.gateway`)."""
    sync_interval_s: float = 15.0
    """How often status is re-read from the metagraph (and drift corrected)."""
    delete_give_up_s: float = 300.0
    """How long a finalizer retries an unreachable ledger before it lets the object go."""
    max_backoff_s: float = 60.0
    metrics_port: int = 9090
    liveness_endpoint: str = "http://0.0.0.0:8080/healthz"
    log_level: str = "info"

    def __post_init__(self) -> None:
        for name in ("ledger_url", "image", "gateway_keys_secret"):
            if not getattr(self, name):
                raise ConfigError(name, "must not be empty")
        urls = {"ledger_url": (HTTP_SCHEMES, "http://HOST:PORT"),
                "pod_ledger_url": (HTTP_SCHEMES, "http://subnetlab-ledger.NS.svc:9944"),
                "redis_url": (REDIS_SCHEMES, "redis://HOST:6379/0"),
                "liveness_endpoint": (("http",), "http://0.0.0.0:8080/healthz")}
        for name, (schemes, example) in urls.items():
            value = getattr(self, name)
            problem = url_problem(value, schemes, example) if value else None
            if problem:
                raise ConfigError(name, problem)
        if self.gateway_keys_namespace and not _DNS_LABEL.fullmatch(self.gateway_keys_namespace):
            raise ConfigError("gateway_keys_namespace", "must be a namespace name (a DNS "
                              f"label), got {self.gateway_keys_namespace!r}")
        if self.image_pull_policy not in ("Always", "IfNotPresent", "Never"):
            raise ConfigError("image_pull_policy", "must be Always, IfNotPresent or Never, "
                              f"got {self.image_pull_policy!r}")
        for name in ("sync_interval_s", "delete_give_up_s", "max_backoff_s"):
            if not 0 < getattr(self, name) <= 86400:
                raise ConfigError(name, f"must be in (0, 86400] seconds, got {getattr(self, name)}")
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigError("metrics_port", "must be a TCP port (0 turns it off), got "
                              f"{self.metrics_port}")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError("log_level", "must be debug, info, warning or error, got "
                              f"{self.log_level!r}")

    @property
    def ledger_for_pods(self) -> str:
        return self.pod_ledger_url or self.ledger_url

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorConfig:
        """Read every `SUBNETLAB_OPERATOR_*` variable that is set (and SUBNETLAB_LEDGER)."""
        return cls(**_env_values(os.environ if env is None else env))  # type: ignore[arg-type]

    @classmethod
    def load(cls, flags: Mapping[str, object],
             env: Mapping[str, str] | None = None) -> OperatorConfig:
        """The environment's settings with `flags` ({setting: value}, None: not given) on
        top; an error names the flag when the bad value came from one."""
        given = {k: v for k, v in flags.items() if v is not None}
        unknown = set(given) - set(FLAGS)
        if unknown:
            raise ValueError(f"no flag for settings {sorted(unknown)}")
        values = _env_values(os.environ if env is None else env)
        try:
            return cls(**{**values, **given})  # type: ignore[arg-type]
        except ConfigError as exc:
            if exc.setting in given:
                raise ConfigError(exc.setting, exc.reason, FLAGS[exc.setting]) from None
            raise

    def to_env(self) -> dict[str, str]:
        """The environment that makes `from_env` return this config (for child processes)."""
        return {ENV[f.name]: str(getattr(self, f.name)) for f in fields(self)}


def _env_values(env: Mapping[str, str]) -> dict[str, object]:
    """The settings the environment sets, as typed values (a non-number is refused here)."""
    values: dict[str, object] = {}
    for f in fields(OperatorConfig):
        raw = env.get(ENV[f.name])
        if raw is None or raw == "":
            continue
        if f.type in ("float", "int"):
            try:
                values[f.name] = float(raw) if f.type == "float" else int(raw)
            except ValueError:
                raise ConfigError(f.name, f"{raw!r} is not a number") from None
        else:
            values[f.name] = raw
    return values


ENV: dict[str, str] = {
    f.name: (LEDGER_ENV if f.name == "ledger_url" else f"SUBNETLAB_OPERATOR_{f.name.upper()}")
    for f in fields(OperatorConfig)
}
FLAGS: dict[str, str] = {
    "ledger_url": "--ledger", "pod_ledger_url": "--pod-ledger", "image": "--image",
    "redis_url": "--redis-url", "sync_interval_s": "--sync-interval",
    "delete_give_up_s": "--delete-give-up", "metrics_port": "--metrics-port",
    "liveness_endpoint": "--liveness", "log_level": "--log-level",
}
"""The settings `subnetlab operator run` takes as flags, and each one's flag."""
