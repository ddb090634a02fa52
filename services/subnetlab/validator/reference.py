"""The validator's reference model: what open prompts and organic answers are graded by.

`--reference-backend sim` (the default) is a simulated oracle: the task generator's answer
key for verifiable prompts and the sim engine's deterministic answer for open ones. It is
labelled simulated wherever its answers count (evidence, the gateway's `subnetlab` block).
`openai` and `vllm` use the miner's own backend classes against a real server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, get_args

from subnetlab.engines import (
    Backend,
    Completion,
    OpenAIBackend,
    SimBackend,
    SimModel,
    VllmBackend,
)
from subnetlab.specs import ReferenceBackend
from subnetlab.urls import check_http_url
from subnetlab.validator.health import Health
from subnetlab.validator.metrics import ValidatorMetrics

REFERENCE_BACKENDS: tuple[str, ...] = get_args(ReferenceBackend)


def simulated_oracle() -> SimBackend:
    """The default reference: a sim engine that is always right (labelled simulated)."""
    return SimBackend(SimModel(default_accuracy=1.0), "reference")


def is_simulated(backend: Backend) -> bool:
    """Whether everything `backend` produces is simulated (a sim engine's always is)."""
    return bool(getattr(backend, "simulated", isinstance(backend, SimBackend)))


def reference_backend(kind: str, url: str | None = None, model: str | None = None) -> Backend:
    """The reference model `--reference-backend/--reference-url/--reference-model` name;
    ValueError (naming the flag) for a combination that cannot work."""
    if kind not in REFERENCE_BACKENDS:
        raise ValueError(f"--reference-backend {kind}: must be one of "
                         f"{', '.join(REFERENCE_BACKENDS)}")
    if kind == "sim":
        given = [flag for flag, value in (("--reference-url", url), ("--reference-model", model))
                 if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)} apply only to --reference-backend openai "
                             "or vllm, not sim")
        return simulated_oracle()
    if not url:
        raise ValueError(f"--reference-backend {kind} needs --reference-url (its server's "
                         "base URL)")
    check_http_url("--reference-url", url)
    if kind == "vllm":
        return VllmBackend(url, model or "default")
    return OpenAIBackend(url, model or "default", os.environ.get("OPENAI_API_KEY"))


@dataclass
class Grader:
    """The reference model as the validator uses it: every answer it gives counted and its
    health kept, whether a scoring round (open tasks) or the gateway (organic strategies)
    asked. The one place either asks it."""

    backend: Backend
    health: Health
    metrics: ValidatorMetrics

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def simulated(self) -> bool:
        return is_simulated(self.backend)

    async def complete(self, body: dict[str, Any], purpose: str) -> Completion:
        """The reference model's answer to `body`, its completion tokens counted under
        `purpose` (`open_task`, or an organic strategy). A failure is re-raised as it came,
        with the reference marked unreachable until it answers again."""
        try:
            completion = await self.backend.complete(body)
        except Exception:
            self.health.reference = "unreachable"
            raise
        self.health.reference = "ok"
        self.metrics.reference_tokens.labels(purpose=purpose).inc(completion.completion_tokens)
        return completion
