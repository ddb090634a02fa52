"""`Subnet` and `Neuron`: the one definition of a network, for `subnetlab up` and Kubernetes.

These pydantic models are the specs users write (YAML, `apiVersion: subnetlab.io/v1alpha1`)
and the source of the CRDs' OpenAPI schemas (`subnetlab.k8s.schema`): one definition, two
uses. Field names are camelCase on the wire, as Kubernetes resources are; every field has a
default where one makes sense, and every bad value is refused with the file, the field and
the reason. Cross-field rules that a JSON schema cannot say are written twice, on purpose
and side by side: as a pydantic validator (for `subnetlab up` and the operator) and as a
CEL rule under `x-kubernetes-validations` (for the API server, which refuses the object
before anything runs). Types are strict: YAML's `tempo: true` or `stake: "5"` is refused,
not coerced, because the API server refuses them too and a spec must mean the same on a
laptop and on a cluster.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, TypeVar, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from subnetlab.chain.hyperparameters import U16_MAX, Hyperparameters
from subnetlab.engines import SimModel
from subnetlab.problems import ProblemsError, pydantic_reason
from subnetlab.tasks import TASK_KINDS as VALIDATOR_TASK_KINDS
from subnetlab.urls import HTTP_SCHEMES, url_problem

API_VERSION: Literal["subnetlab.io/v1alpha1"] = "subnetlab.io/v1alpha1"
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
"""A Kubernetes memory quantity such as `16Gi` (the forms a person writes)."""
CPU_QUANTITY_PATTERN = r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$"
"""A Kubernetes CPU quantity: cores (`1`, `0.5`) or millicores (`100m`)."""


LOCAL_SIM_ENGINE = "local-sim-engine"
"""An openai backend `url` that `subnetlab up` resolves to the simulated engine it starts
(for passthrough miners); on a cluster, give a real URL."""
URL_MAX_LENGTH = 2048


class SpecError(ProblemsError):
    """Specs that cannot be used: one or more `file (Kind name): path.to.field: reason`.

    Every problem of every document is collected before anything is reported, so a person
    fixing a spec sees all of its mistakes in one run, not one per run.
    """

    what = "the specs"


class FieldError(ValueError):
    """A cross-field rule broken at one field: raised in a model validator, reported at
    `field` (camelCase, dotted, relative to the model) instead of at the model."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True,
                              strict=True)


def cel(rule: str, message: str, field: str | None = None) -> dict[str, str]:
    """One `x-kubernetes-validations` entry; `field` (".name") makes the API server's
    error name the field instead of the object holding it."""
    entry = {"rule": rule, "message": message}
    if field:
        entry["fieldPath"] = field
    return entry


def _schema_rules(*rules: dict[str, str]) -> dict[str, Any]:
    """`json_schema_extra` carrying CEL rules; pydantic itself ignores them."""
    return {"x-kubernetes-validations": list(rules)}


IMMUTABLE = _schema_rules(cel("self == oldSelf", "is immutable once created"))

_CEL_HTTP_URL = ("(isURL(self) && url(self).getScheme() in ['http', 'https'] "
                 "&& url(self).getHostname() != '')")


def _http_url(value: str) -> str:
    if problem := url_problem(value, HTTP_SCHEMES, "http://engine:8000"):
        raise ValueError(problem)
    return value


def _engine_url(value: str) -> str:
    if value != LOCAL_SIM_ENGINE and (problem := url_problem(value, HTTP_SCHEMES,
                                                             "http://engine:8000")):
        raise ValueError(f"{problem}, or {LOCAL_SIM_ENGINE} (with `subnetlab up`)")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url), Field(
    min_length=1, max_length=URL_MAX_LENGTH,
    json_schema_extra=_schema_rules(cel(_CEL_HTTP_URL, "must be an http:// or https:// URL "
                                                       "with a host")))]
"""A URL kept as written (no normalising: it is passed on to a process as given)."""

EngineUrl = Annotated[str, AfterValidator(_engine_url), Field(
    min_length=1, max_length=URL_MAX_LENGTH,
    json_schema_extra=_schema_rules(cel(
        f"self == '{LOCAL_SIM_ENGINE}' || {_CEL_HTTP_URL}",
        f"must be an http:// or https:// URL with a host, or {LOCAL_SIM_ENGINE} (only with "
        "`subnetlab up`)")))]


class Metadata(_Model):
    name: str = Field(pattern=NAME_PATTERN, max_length=63)
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class KeySource(_Model):
    """Where a key comes from: a dev key by name (local testnets) or a wallet on disk.

    With neither, `subnetlab up` derives a dev key from the resource's name and the
    Kubernetes operator generates a fresh key into a Secret (wallets on disk do not exist
    on a cluster).
    """

    model_config = ConfigDict(json_schema_extra=_schema_rules(
        cel("!has(self.devKey) || !has(self.wallet)", "give devKey or wallet, not both")))

    dev_key: str | None = None
    wallet: str | None = None
    hotkey: str = "default"

    @model_validator(mode="after")
    def _one_source(self) -> KeySource:
        if self.dev_key and self.wallet:
            raise ValueError("give devKey or wallet, not both")
        return self


TaskKind = Literal["arithmetic", "string", "sorting", "extraction", "open"]
TASK_KINDS: tuple[TaskKind, ...] = ("arithmetic", "string", "sorting", "extraction", "open")
assert TASK_KINDS == VALIDATOR_TASK_KINDS, "the spec's task kinds follow the validator's"


class TaskMix(_Model):
    """Which task kinds validators draw, and how often (relative weights): the four
    verifiable kinds, and `open` prompts graded against the validator's reference model."""

    kinds: dict[TaskKind, Annotated[float, Field(ge=0, le=1e6)]] = Field(
        default_factory=lambda: dict.fromkeys(TASK_KINDS, 1.0)
    )

    model_config = ConfigDict(json_schema_extra=_schema_rules(cel(
        "!has(self.kinds) || " + " || ".join(
            f"(has(self.kinds.{k}) && self.kinds.{k} > 0.0)" for k in TASK_KINDS),
        "kinds needs at least one kind with a positive weight", ".kinds")))

    @model_validator(mode="after")
    def _positive(self) -> TaskMix:
        if not any(w > 0 for w in self.kinds.values()):
            raise FieldError("kinds", "needs at least one kind with a positive weight")
        return self


class Emission(_Model):
    """Chain-level emission settings used when `subnetlab up` creates the chain."""

    block_emission_tokens: float = Field(1.0, ge=0, le=1e6,
                                         description="Tokens minted per block, split over subnets.")


ORDERED_HYPERPARAMETERS: tuple[tuple[str, str], ...] = (
    ("alpha_low", "alpha_high"), ("min_burn", "max_burn"), ("min_burn", "burn"),
    ("burn", "max_burn"))
"""Pairs (low, high) with low <= high: the chain's own range rules, by field."""


def _hyperparameter_rule(low: str, high: str) -> dict[str, str]:
    a, b = to_camel(low), to_camel(high)
    return cel(f"!has(self.{a}) || !has(self.{b}) || self.{a} <= self.{b}",
               f"{a} must not exceed {b}", f".{a}")


class HyperparameterSpec(Hyperparameters):
    """The chain's hyperparameters as a spec spells them: camelCase, like every other field.

    The same fields, bounds and defaults as `Hyperparameters` (it is one); snake_case names
    are accepted too, and `model_dump()` gives the chain's snake_case names. The range
    rules are the chain's, restated here so that errors name the camelCase field and the
    API server checks them too.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, strict=True,
                              json_schema_extra=_schema_rules(
                                  *(_hyperparameter_rule(a, b)
                                    for a, b in ORDERED_HYPERPARAMETERS)))

    @model_validator(mode="after")
    def _check_ranges(self) -> HyperparameterSpec:  # replaces the chain's snake_case one
        for low, high in ORDERED_HYPERPARAMETERS:
            if getattr(self, low) > getattr(self, high):
                raise FieldError(to_camel(low), f"must not exceed {to_camel(high)} "
                                 f"({getattr(self, high)}), got {getattr(self, low)}")
        return self


class SubnetSpec(_Model):
    model_config = ConfigDict(json_schema_extra=_schema_rules(  # netuid: not added, not removed
        cel("has(self.netuid) == has(oldSelf.netuid)", "is immutable once created", ".netuid")))

    hyperparameters: HyperparameterSpec = Field(default_factory=HyperparameterSpec)
    tasks: TaskMix = Field(default_factory=TaskMix)
    emission: Emission = Field(default_factory=Emission)
    owner: KeySource = Field(
        default_factory=lambda: KeySource(dev_key="alice"),
        description="Who creates the subnet and pays for registrations and stake.",
        json_schema_extra=IMMUTABLE,
    )
    netuid: int | None = Field(
        None, ge=0, le=65535,
        description="Bind to this existing subnet of the ledger (owned by spec.owner) instead "
        "of creating one. Kubernetes only: `subnetlab up` starts a new chain.",
        json_schema_extra=IMMUTABLE,
    )


class Subnet(_Model):
    api_version: Literal["subnetlab.io/v1alpha1"] = API_VERSION
    kind: Literal["Subnet"] = "Subnet"
    metadata: Metadata
    spec: SubnetSpec = Field(default_factory=SubnetSpec)


_SIM = SimModel()
"""The simulated engine's own defaults: a sim backend's, written once (in `engines`)."""


Probability = Annotated[float, Field(ge=0, le=1)]
"""A chance, 0 to 1: a sim engine's accuracy (overall, or per task kind on the command
line)."""


class SimBackendSpec(_Model):
    type: Literal["sim"] = "sim"
    accuracy: Probability = _SIM.default_accuracy
    ttft_seconds: float = Field(_SIM.ttft_s, ge=0, le=60)
    tokens_per_second: float = Field(_SIM.tokens_per_s, gt=0, le=1e6)


class Toleration(_Model):
    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


VLLM_METRICS_FLAG = "--enable-per-request-metrics"
"""Passed to every vLLM server subnetlab starts (a pod's sidecar, `up`'s local server): each
answer then carries vLLM's own timing, the miner's engine seconds."""
VLLM_CONFLICTING_ARGS = ("--disable-log-stats",)
"""vLLM flags that turn those metrics off again: refused in `args`."""


def _vllm_args(args: list[str]) -> list[str]:
    for arg in args:
        flag = arg.split("=", 1)[0]
        if flag in VLLM_CONFLICTING_ARGS:
            raise ValueError(f"{arg!r} conflicts with the {VLLM_METRICS_FLAG} that subnetlab "
                             "passes (the miner's engine seconds come from those metrics); "
                             "leave it out")
    return args


VllmArgs = Annotated[
    list[Annotated[str, Field(max_length=4096)]], AfterValidator(_vllm_args),
    Field(max_length=256, json_schema_extra=_schema_rules(cel(
        "!self.exists(a, " + " || ".join(f"a == '{f}' || a.startsWith('{f}=')"
                                          for f in VLLM_CONFLICTING_ARGS) + ")",
        f"{', '.join(VLLM_CONFLICTING_ARGS)} conflicts with the {VLLM_METRICS_FLAG} that "
        "subnetlab passes (the miner's engine seconds come from those metrics)")))]
"""Extra vLLM server flags; bounded, so the API server can afford the CEL rule."""


class VllmBackendSpec(_Model):
    type: Literal["vllm"] = "vllm"
    model: str = Field(min_length=1)
    image: str = "vllm/vllm-openai:latest"
    args: VllmArgs = Field(default_factory=list)
    gpus: int = Field(1, ge=0, le=16)
    memory: str = Field("16Gi", pattern=QUANTITY_PATTERN)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    runtime_class_name: str | None = None
    url: HttpUrl | None = Field(None, description="Locally: an already running vLLM server.")


class OpenAIBackendSpec(_Model):
    type: Literal["openai"] = "openai"
    url: EngineUrl = Field(description="The OpenAI-compatible engine the miner forwards to.")
    model: str = Field(min_length=1)


Backend = Annotated[SimBackendSpec | VllmBackendSpec | OpenAIBackendSpec,
                    Field(discriminator="type")]
BackendType = Literal["sim", "openai", "vllm"]
"""A miner backend's `type`: where its answers come from (`miner serve --backend`)."""


MAX_SYBIL_HOTKEYS = 64


class MinerSpec(_Model):
    backend: Backend = Field(default_factory=SimBackendSpec)
    copy_from: EngineUrl | None = Field(
        None, description=f"copycat: the engine URL it copies ({LOCAL_SIM_ENGINE}: the simulated "
        "engine `subnetlab up` starts).")
    sybil_hotkeys: int | None = Field(
        None, ge=1, le=MAX_SYBIL_HOTKEYS,
        description="sybil: how many further hotkeys the same engine serves, each registered "
        "on the subnet (spec.stake goes to the neuron's own hotkey only).")
    concurrency: int = Field(8, ge=1, le=1024)


GatewayStrategy = Literal["broadcast", "best-of-n", "spot-check"]
"""How the validator's gateway answers an organic request (docs/protocol.md)."""


class GatewaySpec(_Model):
    strategy: GatewayStrategy = "broadcast"
    fan_out: int = Field(3, ge=1, le=256)
    spot_check_rate: float = Field(0.1, ge=0, le=1)
    spot_check_others: int = Field(
        2, ge=1, le=8, description="spot-check: other miners a re-check asks.")


ReferenceBackend = Literal["sim", "openai", "vllm"]
"""What a validator's reference model runs on: a simulated oracle or a real server."""


class ReferenceSpec(_Model):
    """The validator's reference model: what organic answers (and open prompts) are graded
    against. `sim` is a simulated oracle; `openai` and `vllm` a real server at `url`."""

    model_config = ConfigDict(json_schema_extra=_schema_rules(
        cel("self.backend != 'sim' || !has(self.url)",
            "url only applies to backend openai or vllm", ".url"),
        cel("self.backend != 'sim' || !has(self.model)",
            "model only applies to backend openai or vllm", ".model"),
        cel("self.backend == 'sim' || has(self.url)",
            "backend openai or vllm needs url (its server's base URL)", ".url")))

    backend: ReferenceBackend = "sim"
    url: HttpUrl | None = None
    model: str | None = Field(None, min_length=1, max_length=256)

    @model_validator(mode="after")
    def _url_fits(self) -> ReferenceSpec:
        if self.backend == "sim":
            for name, value in (("url", self.url), ("model", self.model)):
                if value is not None:
                    raise FieldError(name, "only applies to backend openai or vllm")
        elif self.url is None:
            raise FieldError("url", f"backend {self.backend} needs it (its server's base URL)")
        return self


Uid = Annotated[int, Field(ge=0, lt=U16_MAX)]


class ValidatorSpec(_Model):
    sample_size: int = Field(4, ge=1, le=4096)
    timeout_seconds: float = Field(5.0, gt=0, le=300)
    interval_seconds: float = Field(1.0, ge=0.05, le=3600)
    cabal: list[Uid] = Field(default_factory=list, max_length=256,
                             description="cabal: miner uids to boost (behaviour cabal only).")
    gateway: GatewaySpec = Field(default_factory=GatewaySpec)
    reference: ReferenceSpec = Field(default_factory=ReferenceSpec)


class MinerWords(NamedTuple):
    """How a caller names what the miner rules talk about: the spec's fields, or flags."""

    behaviour: str = "behaviour"
    backend: str = "backend type"
    sybil_needs: str = "how many further hotkeys its engine serves, at least 1"


SPEC_WORDS = MinerWords()
"""The Neuron spec's words for `miner_problem`."""


def miner_problem(behaviour: str, backend: str, copy_from: bool, sybil: bool,
                  words: MinerWords = SPEC_WORDS) -> tuple[str, str] | None:
    """Which setting does not fit the miner `behaviour`, and why: `("copy_from" | "sybil" |
    "backend", reason)`, or None.

    One rule for a Neuron's `miner` settings and `miner serve`'s flags (the CEL rules on
    `NeuronSpec` say it to the API server): a copycat needs the engine it copies, a sybil its
    further hotkeys, a passthrough miner an openai upstream; settings given to another
    behaviour would be silently ignored, so they are refused. `words` names the fields.
    """
    b = words.behaviour
    if behaviour == "copycat" and not copy_from:
        return "copy_from", f"{b} copycat needs it (the engine URL it copies)"
    if behaviour != "copycat" and copy_from:
        return "copy_from", f"only applies to {b} copycat, not {behaviour}"
    if behaviour == "sybil" and not sybil:
        return "sybil", f"{b} sybil needs it ({words.sybil_needs})"
    if behaviour != "sybil" and sybil:
        return "sybil", f"only applies to {b} sybil, not {behaviour}"
    if behaviour == "passthrough" and backend != "openai":
        return "backend", (f"{b} passthrough forwards to an upstream API: it needs "
                           f"{words.backend} openai (with its url and model), not {backend}")
    return None


def cabal_problem(behaviour: str, cabal: Collection[int],
                  behaviour_field: str = "behaviour") -> str | None:
    """Why the `cabal` uids do not fit the validator `behaviour` (None: they do).

    One rule for the spec's `validator.cabal` and `validator run --cabal` (the CEL rules
    below say it to the API server): a cabal validator with no uids would never set
    weights, and uids given to another behaviour would be silently ignored. Whether the
    uids exist on the subnet is left to the chain at run time (a uid may register later).
    `behaviour_field` is how the caller names the behaviour (`--behaviour` on the CLI).
    """
    if behaviour == "cabal" and not cabal:
        return f"{behaviour_field} cabal needs the miner uids to boost"
    if behaviour != "cabal" and cabal:
        return f"only applies to {behaviour_field} cabal, not {behaviour}"
    return None


_QUANTITY_SUFFIXES = {
    "m": Decimal("0.001"), "": Decimal(1),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12, "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}


def quantity_value(text: str) -> Decimal:
    """A Kubernetes quantity (`100m`, `0.5`, `128Mi`, `1G`) as a number of units (cores,
    bytes), to compare two; ValueError for what the quantity patterns refuse."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([A-Za-z]*)", text)
    if match is None or match[2] not in _QUANTITY_SUFFIXES:
        raise ValueError(f"{text!r} is not a quantity")
    return Decimal(match[1]) * _QUANTITY_SUFFIXES[match[2]]


DEFAULT_REQUESTS = {"cpu": "100m", "memory": "128Mi"}
DEFAULT_LIMITS = {"memory": "1Gi"}
"""A neuron container's requests and limits when the spec gives none: one subnetlab process
(a miner or a validator with its gateway) idles well under 100m and 128Mi; the memory limit
stops a leak from taking the node."""

CpuQuantity = Annotated[str, Field(pattern=CPU_QUANTITY_PATTERN, max_length=32,
                                   description="Cores (`1`, `0.5`) or millicores (`100m`).")]
MemoryQuantity = Annotated[str, Field(pattern=QUANTITY_PATTERN, max_length=32,
                                      description="Bytes with a suffix: `128Mi`, `1Gi`, `500M`.")]


class ResourceRequests(_Model):
    cpu: CpuQuantity = DEFAULT_REQUESTS["cpu"]
    memory: MemoryQuantity = DEFAULT_REQUESTS["memory"]


class ResourceLimits(_Model):
    cpu: CpuQuantity | None = Field(None, description="Unset by default: the container may "
                                    "use idle CPU (a limit throttles it).")
    memory: MemoryQuantity = DEFAULT_LIMITS["memory"]


def _fits_cel(name: str) -> dict[str, str]:
    """`requests.<name> <= limits.<name>`, with the defaults standing in for what is not
    written (the API server applies the schema's defaults only inside given objects)."""
    req = f"(has(self.requests) && has(self.requests.{name}) ? self.requests.{name} : " \
          f"'{DEFAULT_REQUESTS[name]}')"
    if name in DEFAULT_LIMITS:
        lim = f"(has(self.limits) && has(self.limits.{name}) ? self.limits.{name} : " \
              f"'{DEFAULT_LIMITS[name]}')"
        guard = ""
    else:
        lim, guard = f"self.limits.{name}", f"!has(self.limits) || !has(self.limits.{name}) || "
    return cel(f"{guard}quantity({req}).compareTo(quantity({lim})) <= 0",
               f"requests.{name} must not exceed limits.{name}", f".requests.{name}")


class ResourcesSpec(_Model):
    """The `miner` or `validator` container's requests and limits on Kubernetes, each
    quantity defaulting on its own (`DEFAULT_REQUESTS`, `DEFAULT_LIMITS`). `subnetlab up`
    ignores them: local processes have no requests. A `vllm` miner's vLLM container keeps
    its backend's own `gpus` and `memory`; these are its miner sidecar's."""

    model_config = ConfigDict(json_schema_extra=_schema_rules(
        _fits_cel("cpu"), _fits_cel("memory")))

    requests: ResourceRequests = Field(default_factory=ResourceRequests)
    limits: ResourceLimits = Field(default_factory=ResourceLimits)

    @model_validator(mode="after")
    def _requests_fit(self) -> ResourcesSpec:
        for name in ("cpu", "memory"):
            request, limit = getattr(self.requests, name), getattr(self.limits, name)
            if limit is not None and quantity_value(request) > quantity_value(limit):
                request_note, limit_note = (
                    "" if name in part.model_fields_set else " (the default)"
                    for part in (self.requests, self.limits))
                raise FieldError(f"requests.{name}", f"{request}{request_note} exceeds "
                                 f"limits.{name} {limit}{limit_note}; a request must not "
                                 "exceed its limit")
        return self

    def as_kubernetes(self) -> dict[str, dict[str, str]]:
        """`resources` of a container: the quantities as written, unset limits left out."""
        return {"requests": self.requests.model_dump(exclude_none=True),
                "limits": self.limits.model_dump(exclude_none=True)}


MinerBehaviour = Literal["honest", "lazy", "copycat", "passthrough", "sybil"]
ValidatorBehaviour = Literal["honest", "weight-copier", "cabal", "lazy"]
MINER_BEHAVIOURS: tuple[str, ...] = get_args(MinerBehaviour)
VALIDATOR_BEHAVIOURS: tuple[str, ...] = get_args(ValidatorBehaviour)
"""The behaviours of each role (docs/protocol.md): the spec's, the CLI's and the neurons'."""


def _one_of(values: Iterable[str]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


_MINER_FIELDS = {"copy_from": "miner.copyFrom", "sybil": "miner.sybilHotkeys",
                 "backend": "miner.backend.type"}
"""`miner_problem`'s settings as a Neuron's field paths."""


class NeuronSpec(_Model):
    model_config = ConfigDict(json_schema_extra=_schema_rules(
        cel(f"self.role == 'miner' ? self.behaviour in {_one_of(MINER_BEHAVIOURS)} "
            f": self.behaviour in {_one_of(VALIDATOR_BEHAVIOURS)}",
            f"must be a behaviour of the role: miners {', '.join(MINER_BEHAVIOURS)}; "
            f"validators {', '.join(VALIDATOR_BEHAVIOURS)}", ".behaviour"),
        cel("self.role == 'miner' || !has(self.miner)",
            "a validator takes `validator` settings, not `miner`", ".miner"),
        cel("self.role == 'validator' || !has(self.validator)",
            "a miner takes `miner` settings, not `validator`", ".validator"),
        cel("self.behaviour != 'copycat' || (has(self.miner) && has(self.miner.copyFrom))",
            "behaviour copycat needs miner.copyFrom", ".miner"),
        cel("self.behaviour == 'copycat' || !has(self.miner) || !has(self.miner.copyFrom)",
            "miner.copyFrom only applies to behaviour copycat", ".miner"),
        cel("self.behaviour != 'sybil' || (has(self.miner) && has(self.miner.sybilHotkeys))",
            "behaviour sybil needs miner.sybilHotkeys (how many further hotkeys its engine "
            "serves, at least 1)", ".miner.sybilHotkeys"),
        cel("self.behaviour == 'sybil' || !has(self.miner) || !has(self.miner.sybilHotkeys)",
            "miner.sybilHotkeys only applies to behaviour sybil", ".miner.sybilHotkeys"),
        cel("self.behaviour != 'passthrough' || (has(self.miner) && has(self.miner.backend) "
            "&& self.miner.backend.type == 'openai')",
            "behaviour passthrough forwards to an upstream API: it needs miner.backend type "
            "openai", ".miner.backend.type"),
        cel("self.behaviour != 'cabal' || (has(self.validator) && has(self.validator.cabal) "
            "&& size(self.validator.cabal) > 0)",
            "behaviour cabal needs validator.cabal (the miner uids to boost)", ".validator"),
        cel("self.behaviour == 'cabal' || !has(self.validator) || !has(self.validator.cabal) "
            "|| size(self.validator.cabal) == 0",
            "validator.cabal only applies to behaviour cabal", ".validator"),
    ))

    subnet: str = Field(pattern=NAME_PATTERN, max_length=63,
                        description="Name of the Subnet resource.", json_schema_extra=IMMUTABLE)
    role: Literal["miner", "validator"] = Field(json_schema_extra=IMMUTABLE)
    stake: float = Field(0.0, ge=0, le=1e9, description="Tokens staked to the hotkey.")
    wallet: KeySource = Field(default_factory=KeySource, json_schema_extra=IMMUTABLE)
    behaviour: str = "honest"
    miner: MinerSpec | None = None
    validator: ValidatorSpec | None = None
    resources: ResourcesSpec = Field(
        default_factory=ResourcesSpec,
        description="Kubernetes only (`subnetlab up` ignores it): requests and limits of the "
        "miner or validator container; a vllm backend's own container keeps its gpus and "
        "memory.")

    @model_validator(mode="after")
    def _role_fits(self) -> NeuronSpec:
        allowed = MINER_BEHAVIOURS if self.role == "miner" else VALIDATOR_BEHAVIOURS
        if self.behaviour not in allowed:
            raise FieldError("behaviour", f"{self.behaviour!r} is not a {self.role} behaviour; "
                             f"one of {', '.join(allowed)}")
        if self.role == "miner":
            if self.validator is not None:
                raise FieldError("validator", "a miner takes `miner` settings, not `validator`")
            self.miner = self.miner or MinerSpec()
            if misfit := miner_problem(self.behaviour, self.miner.backend.type,
                                       self.miner.copy_from is not None,
                                       self.miner.sybil_hotkeys is not None):
                field, reason = misfit
                raise FieldError(_MINER_FIELDS[field], reason)
        else:
            if self.miner is not None:
                raise FieldError("miner", "a validator takes `validator` settings, not `miner`")
            self.validator = self.validator or ValidatorSpec()
            if problem := cabal_problem(self.behaviour, self.validator.cabal):
                raise FieldError("validator.cabal", problem)
        return self


class Neuron(_Model):
    api_version: Literal["subnetlab.io/v1alpha1"] = API_VERSION
    kind: Literal["Neuron"] = "Neuron"
    metadata: Metadata
    spec: NeuronSpec


ResourceT = TypeVar("ResourceT", bound=BaseModel)


class Network(BaseModel):
    """Every Subnet and Neuron of a run, checked against each other.

    `sources` maps `Kind/name` to the file (or flag) the resource came from, so that an
    error found later (a rule between resources, a check of the machine before `subnetlab
    up` starts anything) still names the file.
    """

    subnets: list[Subnet]
    neurons: list[Neuron]
    sources: dict[str, str] = Field(default_factory=dict)

    def neurons_of(self, subnet: str) -> list[Neuron]:
        return [n for n in self.neurons if n.spec.subnet == subnet]

    def where(self, resource: Subnet | Neuron) -> str:
        """`file (Kind name)`: how errors about `resource` begin."""
        source = self.sources.get(f"{resource.kind}/{resource.metadata.name}", "(given)")
        return f"{source} ({resource.kind} {resource.metadata.name})"

    def error(self, resource: Subnet | Neuron, field: str, reason: str) -> SpecError:
        """`file (Kind name): field: reason`."""
        return SpecError(f"{self.where(resource)}: {field}: {reason}")


_UNION_TAGS = {"backend": set(get_args(BackendType))}
"""Discriminated unions by field: pydantic puts the tag in an error's location
(`backend.openai.url`); the spec's path has no such step (`backend.url`)."""
assert _UNION_TAGS["backend"] == {m.model_fields["type"].default for m in (
    SimBackendSpec, VllmBackendSpec, OpenAIBackendSpec)}


def _field_path(loc: tuple[int | str, ...]) -> list[str]:
    """An error location as the spec's field path: the union tags taken out."""
    path: list[str] = []
    for step in map(str, loc):
        if not (path and step in _UNION_TAGS.get(path[-1], ())):
            path.append(step)
    return path


def _problem(error: Any, source: str) -> str:
    """One pydantic error as `source: spec.field.path: reason`."""
    loc = _field_path(error["loc"])
    reason = pydantic_reason(error)
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, FieldError):  # a cross-field rule: report it at its field
        loc += cause.field.split(".")
    where = ".".join(loc) or "(top level)"
    return f"{source}: {where}: {reason}"


def _format(error: ValidationError, source: str) -> SpecError:
    """Every error pydantic found in one document, each at its own field."""
    return SpecError(*(_problem(e, source) for e in error.errors()))


def validate_resource(model: type[ResourceT], document: Any, source: str) -> ResourceT:
    """One Subnet or Neuron document, or SpecError `source: field: reason`.

    The operator validates what the API server stored with this, so a rule the CRD schema
    does not hold is refused with the same words `subnetlab up` uses.
    """
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise _format(exc, source) from None


def parse_documents(documents: Iterable[tuple[str, Any]],
                    problems: Iterable[str] = ()) -> Network:
    """Validate decoded documents (source label, object) into a consistent Network.

    ``problems`` are those found before (a file that could not be read): they are reported
    with every document's, in one SpecError.
    """
    found = list(problems)
    subnets: list[Subnet] = []
    neurons: list[Neuron] = []
    sources: dict[str, str] = {}
    for source, doc in documents:
        if doc is None:
            continue
        if not isinstance(doc, dict):
            found.append(f"{source}: a document must be a mapping, got {type(doc).__name__}")
            continue
        kind = doc.get("kind")
        model: type[Subnet] | type[Neuron]
        if kind == "Subnet":
            model = Subnet
        elif kind == "Neuron":
            model = Neuron
        else:
            found.append(f"{source}: kind: must be Subnet or Neuron, got {kind!r}")
            continue
        name = doc.get("metadata", {}).get("name", "?") if isinstance(
            doc.get("metadata"), dict) else "?"
        try:
            parsed = validate_resource(model, doc, f"{source} ({kind} {name})")
        except SpecError as exc:
            found.extend(exc.problems)
            continue
        key = f"{kind}/{parsed.metadata.name}"
        if key in sources:
            found.append(f"{source} ({kind} {name}): metadata.name: {kind} {name!r} is "
                         f"defined twice (first in {sources[key]})")
            continue
        sources[key] = source
        (subnets if isinstance(parsed, Subnet) else neurons).append(parsed)  # type: ignore[arg-type]
    network = Network(subnets=subnets, neurons=neurons, sources=sources)
    if not found:
        found = _network_problems(network)
    if found:
        raise SpecError(*found)
    return network


def _network_problems(network: Network) -> list[str]:
    """The rules between resources: every neuron's subnet exists, one chain emission."""
    if not network.subnets:
        files = sorted(set(network.sources.values()))
        return [f"{', '.join(files) or 'the given files'}: no Subnet: at least one is needed"]
    found: list[str] = []
    names = [s.metadata.name for s in network.subnets]
    for neuron in network.neurons:
        if neuron.spec.subnet not in names:
            found.append(f"{network.where(neuron)}: spec.subnet: no Subnet named "
                         f"{neuron.spec.subnet!r} (known: {', '.join(names)})")
    for subnet in network.subnets:  # spec.netuid is for the operator (a ledger that runs on)
        if subnet.spec.netuid is not None:
            found.append(f"{network.where(subnet)}: spec.netuid: binds to a subnet of a "
                         "running ledger (Kubernetes only); `subnetlab up` starts a new "
                         "chain: leave it out")
    first = network.subnets[0]
    for subnet in network.subnets[1:]:
        tokens = subnet.spec.emission.block_emission_tokens
        if tokens != first.spec.emission.block_emission_tokens:
            found.append(
                f"{network.where(subnet)}: spec.emission.blockEmissionTokens: {tokens} "
                f"differs from {first.spec.emission.block_emission_tokens} of "
                f"{network.where(first)}: the chain mints one block emission for all "
                "subnets, so every Subnet must give the same")
    return found


def load_specs(paths: Iterable[Path]) -> Network:
    """Read YAML files and directories (every *.yaml / *.yml inside, sorted).

    A file that cannot be read does not stop the others: its problem is reported with
    those of every other document.
    """
    documents: list[tuple[str, Any]] = []
    problems: list[str] = []
    for path in paths:
        files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")]) if path.is_dir() else [path]
        if path.is_dir() and not files:
            problems.append(f"{path}: no .yaml files in this directory")
        for file in files:
            try:
                text = file.read_text()
                documents.extend((str(file), doc) for doc in yaml.safe_load_all(text))
            except OSError as exc:
                problems.append(f"{file}: {exc.strerror or exc}")
            except UnicodeDecodeError:
                problems.append(f"{file}: not a text file (not UTF-8), not a YAML spec")
            except yaml.YAMLError as exc:
                problems.append(f"{file}: not valid YAML ({exc})")
    return parse_documents(documents, problems)
