"""A validator's settings, checked once when they are made so the loop never meets a bad one.

The settings a `ValidatorSpec` holds take their defaults and rules from that model
(`from_spec` builds the config from a spec plus the runner's endpoints)."""

from __future__ import annotations

from dataclasses import dataclass, field

from subnetlab.keys.keypair import Keypair
from subnetlab.neuron.flags import SpecFlag, bounds_of, from_flags
from subnetlab.specs import ValidatorSpec
from subnetlab.tasks import TASK_KINDS
from subnetlab.validator.weights import BEHAVIOURS, DEFAULT_ALPHA

MIN_INTERVAL_S: float = bounds_of(ValidatorSpec, ("interval_seconds",))["ge"]
"""The shortest round interval (`ValidatorSpec.interval_seconds`'s lower bound): below it a
validator only burns its miners' rate limit."""

_SPEC = ValidatorSpec()
_SPEC_FIELDS = (SpecFlag("sample_size", ("sample_size",)),
                SpecFlag("timeout_s", ("timeout_seconds",)),
                SpecFlag("round_interval_s", ("interval_seconds",)))
"""The config's attributes that are `ValidatorSpec` fields: their defaults and ranges are
the spec's, and errors name the attribute."""


@dataclass
class ValidatorConfig:
    keypair: Keypair
    netuid: int
    ledger_url: str
    redis_url: str
    behaviour: str = "honest"
    sample_size: int = _SPEC.sample_size
    timeout_s: float = _SPEC.timeout_seconds
    round_interval_s: float = _SPEC.interval_seconds
    alpha: float = DEFAULT_ALPHA
    cabal: frozenset[int] = frozenset()
    task_weights: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TASK_KINDS, 1.0))
    seed: int | None = None

    @classmethod
    def from_spec(cls, spec: ValidatorSpec, keypair: Keypair, netuid: int, ledger_url: str,
                  redis_url: str, behaviour: str,
                  task_weights: dict[str, float] | None = None) -> ValidatorConfig:
        """The validator a spec describes, with the runner's endpoints and key."""
        return cls(keypair, netuid, ledger_url, redis_url, behaviour, spec.sample_size,
                   spec.timeout_seconds, spec.interval_seconds, cabal=frozenset(spec.cabal),
                   task_weights=dict.fromkeys(TASK_KINDS, 1.0) if task_weights is None
                   else task_weights)

    def __post_init__(self) -> None:
        if self.behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour {self.behaviour!r} is not one of {', '.join(BEHAVIOURS)}")
        # The spec's settings are checked by the spec's model: its rules, not a copy of them.
        from_flags(ValidatorSpec, _SPEC_FIELDS, {"sample_size": self.sample_size,
                                                 "timeout_s": self.timeout_s,
                                                 "round_interval_s": self.round_interval_s})
        unknown = set(self.task_weights) - set(TASK_KINDS)
        if unknown:
            raise ValueError(f"unknown task kinds {sorted(unknown)}; known: "
                             f"{', '.join(TASK_KINDS)}")
        negative = sorted(k for k, w in self.task_weights.items() if not w >= 0)
        if negative:
            raise ValueError(f"task weights must be >= 0: {', '.join(negative)}")
        if not any(w > 0 for w in self.task_weights.values()):
            raise ValueError("at least one task kind needs a positive weight")

    @property
    def hotkey(self) -> str:
        """The validator's hotkey (what its weights and evidence are signed by)."""
        return self.keypair.ss58_address
