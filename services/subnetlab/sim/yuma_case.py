"""Yuma case files: a scripted sequence of epochs run through our consensus.

A case gives stakes and, per epoch, the weights validators set just before it runs. It is
the same idea as the public Yuma simulators, but on the chain's own `epoch` so that what
the simulator shows is what the ledger will pay.

Semantics (kept identical to what docs/consensus.md states):
- every uid registers at block 0 and stays active (its last update is refreshed each epoch);
- epoch e runs at block (e + 1) * tempo; weights given for it are set at the block before;
- an epoch without `weights` keeps the previous ones; a validator's row replaces its
  previous row, and the uids it names (explicit zeros included) are the entries the chain
  stores, which matters under Yuma3 with liquid alpha (a bond survives only on a named
  entry, see `subnetlab.chain.yuma.bond_weight_presence`);
- permits start empty and, as on the chain, take effect one epoch after they are computed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from subnetlab.chain.hyperparameters import U16_MAX, Hyperparameters
from subnetlab.chain.yuma import EpochInputs, EpochResult, epoch, max_upscale_u16
from subnetlab.problems import ProblemsError, pydantic_reason


class CaseError(ProblemsError):
    """A case file that cannot be run: every problem, each naming the file, the field and
    why (all at once, so one run shows everything to fix)."""

    what = "the case"


class CaseEpoch(BaseModel):
    """One epoch of a case: the weights set just before it (validator -> miner -> u16)."""

    model_config = ConfigDict(extra="forbid")
    weights: dict[int, dict[int, int]] | None = None

    @field_validator("weights")
    @classmethod
    def _u16_weights(cls, value: dict[int, dict[int, int]] | None) -> Any:
        for row in (value or {}).values():
            for target, w in row.items():
                if not 0 <= w <= U16_MAX:
                    raise ValueError(f"weight to uid {target} is {w}; must be in [0, 65535]")
        return value


class YumaCase(BaseModel):
    """A whole case file."""

    model_config = ConfigDict(extra="forbid")
    name: str = "unnamed case"
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    stakes: list[float] = Field(min_length=1)
    epochs: list[CaseEpoch] = Field(min_length=1)

    @field_validator("stakes")
    @classmethod
    def _non_negative(cls, value: list[float]) -> list[float]:
        for uid, s in enumerate(value):
            if not np.isfinite(s) or s < 0:
                raise ValueError(f"stake of uid {uid} is {s}; must be finite and >= 0")
        return value

    def uid_problems(self) -> list[str]:
        """Every uid named in weights that does not exist (pydantic cannot see across
        fields), one problem per epoch and uid."""
        n = len(self.stakes)
        problems: list[str] = []
        for index, ep in enumerate(self.epochs):
            missing = sorted({uid for validator, row in (ep.weights or {}).items()
                              for uid in (validator, *row) if not 0 <= uid < n})
            problems.extend(f"epochs.{index}.weights: uid {uid} does not exist "
                            f"(the case has {n} uids, 0..{n - 1})" for uid in missing)
        return problems


def load_case(path: Path) -> YumaCase:
    """Read and validate a case file; every problem becomes one CaseError line."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise CaseError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise CaseError(f"{path}: is a directory, not a case file") from exc
    except OSError as exc:
        raise CaseError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise CaseError(f"{path}: not a text file (not UTF-8), not a case file") from exc
    except json.JSONDecodeError as exc:
        raise CaseError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    return parse_case(raw, source=str(path))


def parse_case(raw: object, source: str = "case") -> YumaCase:
    """Validate a decoded case object; every problem is reported, each at its field."""
    try:
        case = YumaCase.model_validate(raw)
    except ValidationError as exc:
        raise CaseError(*(
            f"{source}: {'.'.join(str(p) for p in e['loc']) or '(top level)'}: "
            f"{pydantic_reason(e)}"
            for e in exc.errors())) from exc
    if problems := case.uid_problems():
        raise CaseError(*(f"{source}: {problem}" for problem in problems))
    return case


def run_case(case: YumaCase) -> list[EpochResult]:
    """Run every epoch of a case in order and return what each produced."""
    hp = case.hyperparameters
    n = len(case.stakes)
    stake = np.asarray(case.stakes, dtype=np.float64)
    weights = np.zeros((n, n), dtype=np.uint16)
    named = np.zeros((n, n), dtype=np.bool_)
    bonds = np.zeros((n, n), dtype=np.uint16)
    permit = np.zeros(n, dtype=bool)
    registered = np.zeros(n, dtype=np.int64)
    results: list[EpochResult] = []
    for index, ep in enumerate(case.epochs):
        block = (index + 1) * hp.tempo
        for validator, row in (ep.weights or {}).items():
            values = np.zeros(n)
            named[validator] = False
            for target, w in row.items():
                values[target] = w
                named[validator, target] = True
            weights[validator] = max_upscale_u16(values)
        result = epoch(
            EpochInputs(
                block=block,
                stake=stake,
                weights=weights,
                bonds=bonds,
                last_update=np.full(n, block - 1, dtype=np.int64),
                block_at_registration=registered,
                validator_permit=permit,
                weights_present=named,
            ),
            hp,
        )
        bonds, permit = result.bonds, result.validator_permit
        results.append(result)
    return results


def result_record(index: int, result: EpochResult) -> dict[str, Any]:
    """One epoch as the plain JSON object the CLI prints."""

    def floats(values: np.ndarray) -> list[float]:
        return [round(float(v), 6) for v in values]

    return {
        "epoch": index,
        "incentive": floats(result.incentive),
        "dividends": floats(result.dividends),
        "consensus": floats(result.consensus),
        "validator_trust": floats(result.validator_trust),
        "validator_permit": [bool(p) for p in result.validator_permit],
        "bonds": [floats(row) for row in result.bonds.astype(np.float64) / U16_MAX],
        "emission": floats(result.emission),
    }
