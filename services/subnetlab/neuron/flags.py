"""A neuron's spec settings as command-line flags: one table, read in both directions.

Why a module of its own: a setting of `MinerSpec`/`ValidatorSpec` (its default, its range,
its rules) is written once, on the model in `subnetlab.specs`. The pods and `subnetlab up`
turn a spec into flags (`to_flags`, used by `neuron.command.role_args`); `miner serve` and
`validator run` take the defaults of those flags from the model (`default_of`) and turn the
values back into the model (`from_flags`), so the model's own validation is the only check
and its errors name the flag. A rule added to the model reaches the CRD, `up`, the CLI and
the pods with no second edit; the table below only says which flag spells which field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from subnetlab.problems import pydantic_reason
from subnetlab.specs import FieldError
from subnetlab.urls import shown

ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class SpecFlag:
    """One flag and the field it spells: `path` is the snake_case field path from the
    role's spec model (`("gateway", "fan_out")` for `--fan-out`)."""

    flag: str
    path: tuple[str, ...]

    @property
    def param(self) -> str:
        """The name of the flag's parameter in a Typer command (`--fan-out`: `fan_out`)."""
        return self.flag.removeprefix("--").replace("-", "_")


VALIDATOR_FLAGS: tuple[SpecFlag, ...] = (
    SpecFlag("--sample-size", ("sample_size",)),
    SpecFlag("--timeout", ("timeout_seconds",)),
    SpecFlag("--interval", ("interval_seconds",)),
    SpecFlag("--strategy", ("gateway", "strategy")),
    SpecFlag("--fan-out", ("gateway", "fan_out")),
    SpecFlag("--spot-check-rate", ("gateway", "spot_check_rate")),
    SpecFlag("--spot-check-others", ("gateway", "spot_check_others")),
)
"""`ValidatorSpec`'s scalar settings, in the order `role_args` writes them (`cabal`, a list,
and `reference`, whose flags depend on its backend, are spelled by the commands)."""

MINER_FLAGS: tuple[SpecFlag, ...] = (SpecFlag("--concurrency", ("concurrency",)),)
"""`MinerSpec`'s scalar settings (its backend's are `SIM_FLAGS`, or the backend's URL and
model, which the runner resolves)."""

SIM_FLAGS: tuple[SpecFlag, ...] = (
    SpecFlag("--accuracy", ("accuracy",)),
    SpecFlag("--ttft", ("ttft_seconds",)),
    SpecFlag("--tokens-per-s", ("tokens_per_second",)),
)
"""`SimBackendSpec`'s settings: a sim miner's engine."""


def field_info(model: type[BaseModel], path: Sequence[str]) -> FieldInfo:
    """The pydantic field at `path` (nested models followed by their annotation, an
    optional one, `SimSettings | None`, by the model in it)."""
    info = model.model_fields[path[0]]
    if len(path) == 1:
        return info
    inner = info.annotation
    if get_origin(inner) in (Union, UnionType):
        inner = next(arg for arg in get_args(inner) if arg is not type(None))
    assert isinstance(inner, type) and issubclass(inner, BaseModel), (model, path)
    return field_info(inner, path[1:])


def default_of(model: type[BaseModel], path: Sequence[str]) -> Any:
    """The field's default, as the model declares it: the CLI's default for its flag."""
    return field_info(model, path).get_default(call_default_factory=True)


def bounds_of(model: type[BaseModel], path: Sequence[str]) -> dict[str, float]:
    """The field's numeric bounds, `{"ge": 0.05, "le": 3600}`: what help texts and the
    checks against the model read (the model is where they are written)."""
    bounds: dict[str, float] = {}
    for item in field_info(model, path).metadata:
        for name in ("ge", "gt", "le", "lt"):
            if (value := getattr(item, name, None)) is not None:
                bounds[name] = value
    return bounds


_BOUND_WORDS = {"ge": "at least", "gt": "above", "le": "at most", "lt": "below"}


def range_text(model: type[BaseModel], path: Sequence[str]) -> str:
    """`at least 0.05, at most 3600`: the field's range in words ("" when unbounded)."""
    return ", ".join(f"{_BOUND_WORDS[name]} {value:g}"
                     for name, value in bounds_of(model, path).items())


def _get(spec: BaseModel, path: Sequence[str]) -> Any:
    value: Any = spec
    for name in path:
        value = getattr(value, name)
    return value


def to_flags(spec: BaseModel, flags: Sequence[SpecFlag]) -> list[str]:
    """The spec's values as `--flag value` pairs (fields left unset, None, are left out)."""
    args: list[str] = []
    for flag in flags:
        value = _get(spec, flag.path)
        if value is not None:
            args += [flag.flag, str(value)]
    return args


_REASONS = {"greater_than_equal": "must be at least {ge:g}", "greater_than": "must be above {gt:g}",
            "less_than_equal": "must be at most {le:g}", "less_than": "must be below {lt:g}"}


def _shown(value: Any, reason: str) -> str:
    """The value as an error shows it after its flag: lists comma-joined, a password in a
    URL masked; "" when there is nothing to show or the reason begins by quoting it (a
    URL's problem does: the value is said once)."""
    if value is None:
        return ""
    text = shown(",".join(map(str, value)) if isinstance(value, list | tuple) else str(value))
    return "" if not text.strip() or reason.startswith(repr(text)) else text


def from_flags(model: type[ModelT], flags: Sequence[SpecFlag], values: Mapping[str, Any],
               extra: Mapping[str, Any] | None = None) -> ModelT:
    """The model from the flags' `values` (by parameter name; a flag left out, or None, is
    not given: the model's default applies) and `extra` fields (snake_case); a `ValueError`
    names the first bad flag: `--interval 0.01: must be at least 0.05`.

    A cross-field rule broken at one field (`specs.FieldError`) is named by that field's
    flag; at a group of fields (`sim`), by the flags given in it; a bad item of a list
    flag (`--blacklist`), with that item."""
    data: dict[str, Any] = dict(extra or {})
    by_path = {flag.path: flag for flag in flags}
    for flag in flags:
        if values.get(flag.param) is None:
            continue
        node = data
        for name in flag.path[:-1]:
            node = node.setdefault(name, {})
        node[flag.path[-1]] = values[flag.param]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
    loc = tuple(str(part) for part in error["loc"])
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, FieldError):  # a rule between fields, reported at one of them
        loc += tuple(cause.field.split("."))
    reason = _REASONS.get(error["type"], "").format(**error.get("ctx", {})) \
        or pydantic_reason(error)
    for end in range(len(loc), 0, -1):  # the flag of the field, or of the list holding it
        if (bad := by_path.get(loc[:end])) is not None:
            value = error["input"] if end < len(loc) else \
                values.get(bad.param, default_of(model, bad.path))
            text = _shown(value, reason)
            raise ValueError(f"{bad.flag} {text}: {reason}" if text else
                             f"{bad.flag}: {reason}") from None
    group = [f.flag for f in flags if loc and f.path[:len(loc)] == loc
             and values.get(f.param) is not None]
    if group:  # a rule about a group of fields: the flags given in it
        raise ValueError(f"{', '.join(group)}: {reason}") from None
    # an `extra` field, named as its flag (`--cabal`), or the whole model
    where = f"--{loc[0].replace('_', '-')}" if loc else model.__name__
    raise ValueError(f"{where}: {reason}") from None


__all__ = ["MINER_FLAGS", "SIM_FLAGS", "VALIDATOR_FLAGS", "SpecFlag", "bounds_of", "default_of",
           "field_info", "from_flags", "range_text", "to_flags"]
