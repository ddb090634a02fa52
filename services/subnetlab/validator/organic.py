"""What the organic gateway needs of a validator, and nothing more.

The gateway answers customers with the validator's miners, grades with its reference
model and penalises through its scoreboard; it does so through this interface, so the
validator's internals (its rounds, weights, evidence) can change without the gateway
noticing, and a test can stand a gateway before any object that keeps these promises.
"""

from __future__ import annotations

import random
from typing import Any, Protocol

from subnetlab.engines import Completion
from subnetlab.validator.metrics import ValidatorMetrics
from subnetlab.validator.miners import MinerAnswer


class OrganicService(Protocol):
    """A validator as the gateway sees it (loop.Validator implements it)."""

    @property
    def metrics(self) -> ValidatorMetrics:
        """Where the gateway's counters live (served on its `/metrics`)."""
        ...

    @property
    def rng(self) -> random.Random:
        """The validator's seeded generator: whom to ask, whether to spot-check."""
        ...

    @property
    def reference_name(self) -> str:
        """The reference model's backend name (`sim:reference`, `vllm:MODEL`...)."""
        ...

    @property
    def reference_simulated(self) -> bool:
        """Whether everything the reference model produces is simulated."""
        ...

    def health_json(self) -> dict[str, Any]:
        """The body of `/healthz`."""
        ...

    def miners(self) -> list[dict[str, Any]]:
        """The metagraph rows of the miners worth asking now."""
        ...

    def moving_score(self, uid: int) -> float:
        """Miner `uid`'s moving score (0 for one never scored)."""
        ...

    async def ask(self, miner: dict[str, Any], body: dict[str, Any]) -> MinerAnswer:
        """One signed request to one miner; any failure is an answer with ok=False."""
        ...

    async def grade(self, body: dict[str, Any], purpose: str) -> Completion:
        """The reference model's answer to `body`, counted under `purpose`; its failure
        raised as it came."""
        ...

    def penalise(self, uid: int, penalty: dict[str, Any]) -> None:
        """A spot-check caught miner `uid`: cut its score, keep the proof for the evidence."""
        ...
