"""The command line of a neuron process, from its spec: one mapping for every runner.

Why a module of its own: `subnetlab up` starts neurons as local processes and the
Kubernetes operator starts them as containers; both must turn the same `Neuron` spec into
the same `subnetlab miner serve` / `subnetlab validator run` flags, or a spec would mean
one thing on a laptop and another on a cluster. What differs between runners (where the
ledger is, which port, which key file, where the model server listens) is passed in.
"""

from __future__ import annotations

from subnetlab.specs import KeySource, NeuronSpec, TaskMix


def task_mix_arg(tasks: TaskMix) -> str:
    """`--tasks` of a validator: `arithmetic=1.0,string=1.0,...`."""
    return ",".join(f"{kind}={weight}" for kind, weight in tasks.kinds.items())


def key_args(source: KeySource, default_dev_key: str) -> list[str]:
    """The key flags: `--wallet W --hotkey H` for a wallet, else `--dev-key NAME` (the
    spec's dev key, or `default_dev_key`, which a runner derives from the neuron's name).

    Whoever registers the hotkey must derive it from the same source (`subnetlab up`:
    `local.testnet.key_of`), or the neuron signs with a key the chain does not know.
    """
    if source.wallet:
        return ["--wallet", source.wallet, "--hotkey", source.hotkey]
    return ["--dev-key", source.dev_key or default_dev_key]


def role_args(spec: NeuronSpec, tasks: TaskMix, backend_url: str | None = None) -> list[str]:
    """The subcommand and the flags that follow from the spec alone.

    `backend_url` is where a `vllm` or `openai` miner reaches its model server (a sidecar
    on a cluster, a local server with `up`); it is required for those backends, and a
    `ValueError` names the field when it is missing.
    """
    if spec.role == "miner":
        assert spec.miner is not None  # NeuronSpec fills it in for miners
        backend = spec.miner.backend
        args = ["miner", "serve", "--behaviour", spec.behaviour,
                "--concurrency", str(spec.miner.concurrency)]
        if backend.type == "sim":
            args += ["--backend", "sim", "--accuracy", str(backend.accuracy),
                     "--ttft", str(backend.ttft_seconds),
                     "--tokens-per-s", str(backend.tokens_per_second)]
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
    args = ["validator", "run", "--behaviour", spec.behaviour,
            "--sample-size", str(v.sample_size), "--timeout", str(v.timeout_seconds),
            "--interval", str(v.interval_seconds), "--strategy", v.gateway.strategy,
            "--fan-out", str(v.gateway.fan_out),
            "--spot-check-rate", str(v.gateway.spot_check_rate),
            "--spot-check-others", str(v.gateway.spot_check_others),
            "--tasks", task_mix_arg(tasks)]
    if v.cabal:
        args += ["--cabal", ",".join(map(str, v.cabal))]
    if v.reference.backend != "sim":  # sim, the validator's default, needs no flags
        assert v.reference.url is not None  # ReferenceSpec requires it for these
        args += ["--reference-backend", v.reference.backend, "--reference-url", v.reference.url]
        if v.reference.model:
            args += ["--reference-model", v.reference.model]
    return args
