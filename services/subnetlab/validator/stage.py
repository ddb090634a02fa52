"""Where a validator's round is: one named stage, so a failed round says where it failed.

The stage is the `stage` label of `subnetlab_validator_round_failures_total`, the `stage=`
of the `round failed` log line and `/healthz`'s `last_stage`: a closed set of names, so a
typo cannot invent a label. Str-valued, so the label, the log and the JSON carry the same
words they always have.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Stage(StrEnum):
    """What a round is doing (docs/metrics.md lists these as the `stage` label values)."""

    IDLE = "idle"
    RESUME = "resume"
    QUERY = "query"
    REFERENCE = "reference"
    SUBNET = "subnet"
    REVEAL = "reveal"
    WEIGHTS = "weights"
    STORE_EVIDENCE = "store_evidence"
    COMMIT_EVIDENCE = "commit_evidence"


@dataclass
class StageMarker:
    """The current stage, shared by the loop and the collaborators that do each step: the
    loop reads it when a round fails, whichever collaborator was working."""

    now: Stage = Stage.IDLE
