"""The command line of a neuron process, from its spec: one mapping for every runner.

Why a module of its own: `subnetlab up` starts neurons as local processes and the
Kubernetes operator starts them as containers; both must turn the same `Neuron` spec into
the same `subnetlab miner serve` / `subnetlab validator run` flags, or a spec would mean
one thing on a laptop and another on a cluster. What differs between runners (where the
ledger is, which port, which key file, where the model server listens) is passed in.
"""

from __future__ import annotations

from subnetlab.neuron.flags import MINER_FLAGS, SIM_FLAGS, VALIDATOR_FLAGS, to_flags
from subnetlab.specs import LOCAL_SIM_ENGINE, KeySource, NeuronSpec, TaskMix


def task_mix_arg(tasks: TaskMix) -> str:
    """`--tasks` of a validator: `arithmetic=1.0,string=1.0,...`."""
    return ",".join(f"{kind}={weight}" for kind, weight in tasks.kinds.items())


def sybil_count(spec: NeuronSpec) -> int:
    """How many further hotkeys the neuron's engine serves (0 unless behaviour sybil)."""
    return (spec.miner.sybil_hotkeys or 0) if spec.miner else 0


def key_name(source: KeySource, default_dev_key: str) -> str:
    """The name the neuron's hotkey goes by: the wallet's hotkey name, or the dev key's
    (the spec's, or `default_dev_key`, which a runner derives from the neuron's name)."""
    return source.hotkey if source.wallet else source.dev_key or default_dev_key


def sybil_key_names(primary: str, count: int) -> list[str]:
    """The names of a sybil's further hotkeys, after its own key's name: `NAME-sybil-1` ...

    With a dev key they are dev key names; with a wallet, hotkey names of that wallet
    (what `miner serve --sybil-key` reads either way). One rule for every runner, so the
    keys registered and the keys the miner signs with are the same.
    """
    return [f"{primary}-sybil-{i}" for i in range(1, count + 1)]


def key_args(source: KeySource, default_dev_key: str, sybils: int = 0) -> list[str]:
    """The key flags: `--wallet W --hotkey H` for a wallet, else `--dev-key NAME`, and a
    `--sybil-key` for each of the `sybils` further hotkeys (`sybil_key_names`).

    Whoever registers the hotkeys must derive them from the same source (`subnetlab up`:
    `local.preflight`; the operator: the neuron's Secret), or the neuron signs with keys
    the chain does not know.
    """
    name = key_name(source, default_dev_key)
    args = (["--wallet", source.wallet, "--hotkey", name] if source.wallet
            else ["--dev-key", name])
    for sybil in sybil_key_names(name, sybils):
        args += ["--sybil-key", sybil]
    return args


def copying_from(spec: NeuronSpec, engine_url: str | None) -> NeuronSpec:
    """The spec with a copycat's `miner.copyFrom: local-sim-engine` pointed at `engine_url`
    (the simulated engine `subnetlab up` starts); any other spec is returned as it is.

    Why: `local-sim-engine` is a name only `up` can resolve (like a passthrough's backend
    `url`), while the miner process needs a URL; a ValueError names the field when there
    is no engine to point at (on a cluster there is none)."""
    miner = spec.miner
    if miner is None or miner.copy_from != LOCAL_SIM_ENGINE:
        return spec
    if not engine_url:
        raise ValueError(f"miner.copyFrom: {LOCAL_SIM_ENGINE} names the engine `subnetlab up` "
                         "starts; give the copied engine's http:// or https:// URL")
    return spec.model_copy(update={"miner": miner.model_copy(update={"copy_from": engine_url})})


def role_args(spec: NeuronSpec, tasks: TaskMix, backend_url: str | None = None) -> list[str]:
    """The subcommand and the flags that follow from the spec alone: the spec's settings
    through the flag tables of `neuron.flags` (what the commands parse back into the spec).

    `backend_url` is where a `vllm` or `openai` miner reaches its model server (a sidecar
    on a cluster, a local server with `up`); it is required for those backends, and a
    `ValueError` names the field when it is missing.
    """
    if spec.role == "miner":
        assert spec.miner is not None  # NeuronSpec fills it in for miners
        backend = spec.miner.backend
        args = ["miner", "serve", "--behaviour", spec.behaviour,
                *to_flags(spec.miner, MINER_FLAGS)]
        if backend.type == "sim":
            args += ["--backend", "sim", *to_flags(backend, SIM_FLAGS)]
        else:
            if not backend_url:
                raise ValueError(f"miner.backend.url: a {backend.type} miner needs the URL "
                                 "of its model server")
            args += ["--backend", backend.type, "--backend-url", backend_url,
                     "--model", backend.model]
        if spec.miner.copy_from:
            args += ["--copy-from", spec.miner.copy_from]
        return args
    assert spec.validator is not None  # NeuronSpec fills it in for validators
    v = spec.validator
    args = ["validator", "run", "--behaviour", spec.behaviour, *to_flags(v, VALIDATOR_FLAGS),
            "--tasks", task_mix_arg(tasks)]
    if v.cabal:
        args += ["--cabal", ",".join(map(str, v.cabal))]
    if v.reference.backend != "sim":  # sim, the validator's default, needs no flags
        assert v.reference.url is not None  # ReferenceSpec requires it for these
        args += ["--reference-backend", v.reference.backend, "--reference-url", v.reference.url]
        if v.reference.model:
            args += ["--reference-model", v.reference.model]
    return args
