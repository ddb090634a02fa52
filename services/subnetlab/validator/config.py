"""A validator's settings, checked once when they are made so the loop never meets a bad one."""

from __future__ import annotations

from dataclasses import dataclass, field

from subnetlab.keys.keypair import Keypair
from subnetlab.tasks import TASK_KINDS
from subnetlab.validator.weights import BEHAVIOURS, DEFAULT_ALPHA

MIN_INTERVAL_S = 0.05
"""The shortest round interval: below it a validator only burns its miners' rate limit."""


@dataclass
class ValidatorConfig:
    keypair: Keypair
    netuid: int
    ledger_url: str
    redis_url: str
    behaviour: str = "honest"
    sample_size: int = 4
    timeout_s: float = 5.0
    round_interval_s: float = 1.0
    alpha: float = DEFAULT_ALPHA
    cabal: frozenset[int] = frozenset()
    task_weights: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TASK_KINDS, 1.0))
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour {self.behaviour!r} is not one of {', '.join(BEHAVIOURS)}")
        if self.sample_size < 1:
            raise ValueError(f"sample_size must be at least 1, got {self.sample_size}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s}")
        if not self.round_interval_s >= MIN_INTERVAL_S:
            raise ValueError(f"round_interval_s must be at least {MIN_INTERVAL_S}, got "
                             f"{self.round_interval_s}")
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
