"""A miner's runtime settings: one pydantic model, read from `miner serve`'s flags.

Why a module of its own: a miner is made from its `MinerSpec` (its backend, the engine a
copycat copies, its concurrency), the Neuron's `behaviour`, the runner's endpoints (the
backend's URL, the names of a sybil's further hotkeys) and the knobs only a process has
(blacklist, rate limit, body cap). `MinerSettings` holds all of them, and each default and
rule is written once: on the spec models where the spec has the setting (`SimBackendSpec`'s
ranges, `MinerSpec.concurrency`, the URL rule, `specs.miner_problem`), here for the rest.
`miner serve` takes its flags' defaults from this model and turns their values back into it
(`from_serve_flags`, through `neuron.flags.from_flags`), so pydantic is the only check and
every error names the flag. The model's own cross-field reasons are said in flags for the
same reason: the command line is how every runner (`up`, the pods) starts a miner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from subnetlab.engines import SimModel
from subnetlab.keys import InvalidAddress, ss58_decode
from subnetlab.neuron.flags import MINER_FLAGS, SIM_FLAGS, SpecFlag, bounds_of, from_flags
from subnetlab.protocol.bodies import MAX_BODY_BYTES_LIMIT, MAX_PROMPT_BODY_BYTES
from subnetlab.protocol.limits import RateLimit
from subnetlab.specs import (
    MAX_SYBIL_HOTKEYS,
    BackendType,
    FieldError,
    HttpUrl,
    MinerBehaviour,
    MinerSpec,
    MinerWords,
    NeuronSpec,
    Probability,
    SimBackendSpec,
    miner_problem,
)
from subnetlab.tasks import KINDS, parse_kind_values

__all__ = ["SERVE_FLAGS", "MinerSettings", "SimSettings", "from_serve_flags"]

_ACCURACY = bounds_of(SimBackendSpec, ("accuracy",))


def _parse_task_accuracy(value: Any) -> Any:
    """`arithmetic=0.9,sorting=0.5` (the flag's text) into accuracies per task kind; a
    mapping is left to the field's type."""
    if not isinstance(value, str):
        return value
    lo, hi = _ACCURACY["ge"], _ACCURACY["le"]
    accuracy = parse_kind_values(value, KINDS, "accuracy", lambda p: lo <= p <= hi,
                                 f"in [{lo:g}, {hi:g}]")
    if not accuracy:
        raise ValueError("name at least one KIND=P (e.g. arithmetic=0.9,sorting=0.5)")
    return accuracy


def _known_kinds(accuracy: dict[str, float]) -> dict[str, float]:
    if unknown := sorted(set(accuracy) - set(KINDS)):
        raise ValueError(f"unknown task kind {unknown[0]!r}; known: {', '.join(KINDS)}")
    return accuracy


TaskAccuracy = Annotated[dict[str, Probability], BeforeValidator(_parse_task_accuracy),
                         AfterValidator(_known_kinds)]
"""A sim engine's accuracy per verifiable task kind (the others keep `accuracy`)."""


class SimSettings(SimBackendSpec):
    """The sim engine's settings: `SimBackendSpec`'s, and the accuracy per task kind that
    only the command line sets (`--task-accuracy`)."""

    task_accuracy: TaskAccuracy | None = None

    def engine(self) -> SimModel:
        """The simulated engine these settings describe."""
        return SimModel(ttft_s=self.ttft_seconds, tokens_per_s=self.tokens_per_second,
                        default_accuracy=self.accuracy, accuracy=dict(self.task_accuracy or {}))


def _addresses(value: Any) -> Any:
    """`--blacklist` values, each one hotkey or several comma-separated, as one tuple
    (each hotkey once, in the order given)."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(dict.fromkeys(a.strip() for v in value for a in str(v).split(",")
                                   if a.strip()))
    return value


def _ss58(address: str) -> str:
    try:
        ss58_decode(address)
    except InvalidAddress as exc:
        raise ValueError(str(exc)) from None
    return address


Hotkey = Annotated[str, AfterValidator(_ss58)]
KeyName = Annotated[str, Field(min_length=1, max_length=256)]
Rate = Annotated[float, Field(allow_inf_nan=False, le=1e9)]


class MinerSettings(BaseModel):
    """Everything a miner process runs with: the spec's settings, the Neuron's behaviour,
    the runner's endpoints and the process-only knobs. `sim` is filled in for a sim
    backend (the spec's defaults) once the settings are checked."""

    model_config = ConfigDict(extra="forbid")

    behaviour: MinerBehaviour = "honest"
    backend: BackendType = "sim"
    backend_url: HttpUrl | None = None
    model: str | None = Field(None, min_length=1, max_length=256)
    sim: SimSettings | None = None
    copy_from: HttpUrl | None = None
    sybil_keys: tuple[KeyName, ...] = Field((), max_length=MAX_SYBIL_HOTKEYS)
    blacklist: Annotated[tuple[Hotkey, ...], BeforeValidator(_addresses)] = ()
    rate_limit: Rate = Field(RateLimit().rate, ge=0)
    rate_burst: Rate = Field(RateLimit().burst, ge=1)
    concurrency: int = MinerSpec.model_fields["concurrency"]  # type: ignore[assignment]
    """The spec's field itself: its default and range."""
    max_body_bytes: int = Field(MAX_PROMPT_BODY_BYTES, ge=1, le=MAX_BODY_BYTES_LIMIT)

    @model_validator(mode="after")
    def _fits(self) -> MinerSettings:
        """The rules between settings; a setting that would be ignored is refused."""
        remote = self.backend != "sim"
        if remote and self.backend_url is None:
            raise FieldError("backend_url", f"--backend {self.backend} needs it (its server's "
                                            "base URL)")
        if not remote and self.backend_url is not None:
            raise FieldError("backend_url", "applies only to --backend openai or vllm, "
                                            f"not {self.backend}")
        if self.model is not None and not (remote or self.behaviour == "copycat"):
            raise FieldError("model", "applies only to --backend openai or vllm, or to the "
                                      "engine a --behaviour copycat copies")
        if remote and self.sim is not None:
            raise FieldError("sim", f"apply only to --backend sim, not {self.backend}")
        if problem := miner_problem(self.behaviour, self.backend, self.copy_from is not None,
                                    bool(self.sybil_keys), _FLAG_WORDS):
            field, reason = problem
            raise FieldError({"sybil": "sybil_keys"}.get(field, field), reason)
        if self.rate_limit == 0 and "rate_burst" in self.model_fields_set:
            raise FieldError("rate_burst", "applies only with a --rate-limit above 0 "
                                           "(0 turns rate limiting off)")
        if not remote and self.sim is None:
            self.sim = SimSettings()  # the spec's defaults
        return self

    @classmethod
    def from_spec(cls, neuron: NeuronSpec, backend_url: str | None = None,
                  sybil_keys: Sequence[str] = ()) -> MinerSettings:
        """The settings a miner Neuron's spec describes, with the runner's endpoints: the
        URL of a vllm or openai backend's server, the names of a sybil's further hotkeys
        (`neuron.command.sybil_key_names`). What `role_args`' flags parse back into."""
        spec = neuron.miner or MinerSpec()
        backend = spec.backend
        engine: dict[str, Any] = {}
        if isinstance(backend, SimBackendSpec):
            engine["sim"] = SimSettings.model_validate(backend.model_dump())
        else:
            engine.update(backend_url=backend_url, model=backend.model)
        return cls(behaviour=neuron.behaviour, backend=backend.type, copy_from=spec.copy_from,
                   sybil_keys=tuple(sybil_keys), concurrency=spec.concurrency, **engine)

    @property
    def rate(self) -> RateLimit | None:
        """The per-caller token bucket, or None when `rate_limit` 0 turns it off."""
        return RateLimit(self.rate_limit, self.rate_burst) if self.rate_limit else None


_FLAG_WORDS = MinerWords(behaviour="--behaviour", backend="--backend",
                         sybil_needs="a NAME for each further hotkey the same engine "
                                     "serves; repeat the flag")
"""`specs.miner_problem`'s rules, said in `miner serve`'s flags."""

SERVE_FLAGS: tuple[SpecFlag, ...] = (
    SpecFlag("--behaviour", ("behaviour",)),
    SpecFlag("--backend", ("backend",)),
    SpecFlag("--backend-url", ("backend_url",)),
    SpecFlag("--model", ("model",)),
    *(SpecFlag(f.flag, ("sim", *f.path)) for f in SIM_FLAGS),
    SpecFlag("--task-accuracy", ("sim", "task_accuracy")),
    SpecFlag("--copy-from", ("copy_from",)),
    SpecFlag("--sybil-key", ("sybil_keys",)),
    SpecFlag("--blacklist", ("blacklist",)),
    SpecFlag("--rate-limit", ("rate_limit",)),
    SpecFlag("--rate-burst", ("rate_burst",)),
    *MINER_FLAGS,
    SpecFlag("--max-body-bytes", ("max_body_bytes",)),
)
"""`miner serve`'s flags and the `MinerSettings` fields they spell (the spec's own flags,
`MINER_FLAGS` and `SIM_FLAGS`, are the ones `role_args` writes)."""


def from_serve_flags(values: Mapping[str, Any]) -> MinerSettings:
    """The settings `miner serve`'s flag values spell, by parameter name (a flag left out,
    or None, takes the model's default); a `ValueError` names the flag:
    `--ttft -1.0: must be at least 0`."""
    return from_flags(MinerSettings, SERVE_FLAGS, values)
