"""The operator's settings: one frozen object, from flags or from the environment.

Why both: `subnetlab operator run` takes flags, while `kopf run -m subnetlab.k8s.handlers`
(and a container started by the Helm chart) can only pass the environment. Each setting
has one environment variable, named in `ENV`; a bad value is refused with its name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from subnetlab import __version__
from subnetlab.ledger.client import DEFAULT_LEDGER_URL, LEDGER_ENV


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the variable or flag."""


@dataclass(frozen=True)
class OperatorConfig:
    """Everything the operator needs to know that is not in a Subnet or Neuron."""

    ledger_url: str = DEFAULT_LEDGER_URL
    """Where the operator reaches the ledger."""
    pod_ledger_url: str = ""
    """Where neuron pods reach it (an in-cluster Service URL); default: `ledger_url`."""
    image: str = f"subnetlab:{__version__}"
    """Image of the miner and validator containers (it has the `subnetlab` command)."""
    image_pull_policy: str = "IfNotPresent"
    redis_url: str = ""
    """Evidence store for validators; empty: each validator uses its embedded Redis."""
    gateway_keys_secret: str = "subnetlab-gateway-keys"
    """Secret (key `api-keys`, comma-separated) holding the gateways' customer API keys."""
    sync_interval_s: float = 15.0
    """How often status is re-read from the metagraph (and drift corrected)."""
    delete_give_up_s: float = 300.0
    """How long a finalizer retries an unreachable ledger before it lets the object go."""
    max_backoff_s: float = 60.0
    metrics_port: int = 9090
    liveness_endpoint: str = "http://0.0.0.0:8080/healthz"
    log_level: str = "info"

    def __post_init__(self) -> None:
        for name in ("ledger_url", "image"):
            if not getattr(self, name):
                raise ConfigError(f"{ENV[name]}: must not be empty")
        if not self.ledger_url.startswith(("http://", "https://")):
            raise ConfigError(f"{ENV['ledger_url']}: {self.ledger_url!r} must look like "
                              "http://HOST:PORT")
        if self.image_pull_policy not in ("Always", "IfNotPresent", "Never"):
            raise ConfigError(f"{ENV['image_pull_policy']}: must be Always, IfNotPresent or "
                              f"Never, got {self.image_pull_policy!r}")
        for name in ("sync_interval_s", "delete_give_up_s", "max_backoff_s"):
            if not 0 < getattr(self, name) <= 86400:
                raise ConfigError(f"{ENV[name]}: must be in (0, 86400] seconds")
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"{ENV['metrics_port']}: must be a TCP port (0 turns it off)")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"{ENV['log_level']}: must be debug, info, warning or error")

    @property
    def ledger_for_pods(self) -> str:
        return self.pod_ledger_url or self.ledger_url

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorConfig:
        """Read every `SUBNETLAB_OPERATOR_*` variable that is set (and SUBNETLAB_LEDGER)."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(ENV[f.name])
            if raw is None or raw == "":
                continue
            if f.type in ("float", "int"):
                try:
                    values[f.name] = float(raw) if f.type == "float" else int(raw)
                except ValueError:
                    raise ConfigError(f"{ENV[f.name]}: {raw!r} is not a number") from None
            else:
                values[f.name] = raw
        return cls(**values)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """The environment that makes `from_env` return this config (for child processes)."""
        return {ENV[f.name]: str(getattr(self, f.name)) for f in fields(self)}


ENV: dict[str, str] = {
    f.name: (LEDGER_ENV if f.name == "ledger_url" else f"SUBNETLAB_OPERATOR_{f.name.upper()}")
    for f in fields(OperatorConfig)
}
