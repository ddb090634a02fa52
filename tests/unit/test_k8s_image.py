"""The Dockerfile's facts that the chart and the operator rely on.

These tests read the Dockerfile and check what the pods assume of it (the uid they run as,
the `subnetlab` entrypoint, the package installed from this checkout into a virtual
environment that the runtime stage copies, the writable paths) and that it builds on both
bases its BASE_IMAGE argument takes: the users' python:3.11-slim-bookworm and the Debian root
file system of tests/k8s/image.sh, which builds and runs the image without Docker.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from subnetlab import __version__
from subnetlab.k8s.config import OperatorConfig
from subnetlab.k8s.resources import HOME, NON_ROOT, TMP

ROOT = Path(__file__).parents[2]


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"stage {self.name}: no {keyword}"
        return found[-1]


def global_args(text: str) -> dict[str, str]:
    """The ARGs declared before the first FROM (the ones a FROM line may use), with their
    defaults."""
    found: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line.upper().startswith("FROM "):
            break
        if line.upper().startswith("ARG "):
            name, _, default = line[4:].strip().partition("=")
            found[name] = default
    return found


def stages(text: str) -> list[Stage]:
    """The Dockerfile's build stages: (keyword, arguments) per instruction, with line
    continuations joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    found: list[Stage] = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(found))
            found.append(Stage(words[0], name))
        elif found:
            found[-1].instructions.append((keyword, args.strip()))
    return found


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in stage.all("ENV"):
        for pair in shlex.split(args):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


DOCKERFILE = (ROOT / "Dockerfile").read_text()
STAGES = stages(DOCKERFILE)
BUILD, RUNTIME = STAGES[0], STAGES[-1]


def test_two_stages_and_the_runtime_is_built_from_the_build_stage() -> None:
    assert len(STAGES) == 2
    assert BUILD.base == RUNTIME.base  # the copied venv needs the same Python at that path
    assert f"--from={BUILD.name} /opt/venv /opt/venv" in RUNTIME.all("COPY")
    runtime_runs = " ".join(RUNTIME.all("RUN"))
    assert "build-essential" not in runtime_runs  # no compiler at runtime
    assert "apt-get" not in runtime_runs  # nothing installed: the base's python3 runs it


def test_one_build_argument_selects_the_base_of_both_stages() -> None:
    """The users' default stays the official python image; tests/k8s/image.sh passes its
    Debian root file system through the same argument."""
    assert global_args(DOCKERFILE) == {"BASE_IMAGE": "python:3.11-slim-bookworm"}
    assert BUILD.base == RUNTIME.base == "${BASE_IMAGE}"
    script = (ROOT / "tests/k8s/image.sh").read_text()
    assert '--build-arg "BASE_IMAGE=$(ref_of base)"' in script


def test_it_builds_on_a_plain_debian_python3_too() -> None:
    """Debian's python3 is /usr/bin/python3 without `python`, its venv module or its
    headers: every command says python3, and the build stage installs python3-venv and
    python3-dev where the base lacks them (the python image has both)."""
    for stage in STAGES:
        for args in stage.all("RUN"):
            assert not re.search(r"(?<![\w/.-])python(?![\w.-])", args), args
    build_runs = " ".join(BUILD.all("RUN"))
    assert "import ensurepip" in build_runs and "python3-venv" in build_runs
    assert "Python.h" in build_runs and "python3-dev" in build_runs
    assert "build-essential" in build_runs
    assert "python3 -m venv /opt/venv" in BUILD.all("RUN")


def test_dependencies_are_installed_before_the_sources_are_copied() -> None:
    """A change under services/ keeps the dependency layer (Docker's layer cache): the
    dependencies come from pyproject.toml alone, then the package without them, then a
    check that nothing is missing."""
    order = [(kw, args) for kw, args in BUILD.instructions if kw in ("COPY", "RUN")]
    deps = next(i for i, (kw, args) in enumerate(order)
                if kw == "RUN" and "pip install -r" in args)
    assert 'tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]' in order[deps][1]
    assert order[deps - 1] == ("COPY", "pyproject.toml ./")
    sources = order.index(("COPY", "services ./services"))
    assert deps < sources
    last = order[-1]
    assert last[0] == "RUN" and last[1].startswith("pip install --no-deps . ")
    assert "pip check" in last[1] and "subnetlab --help" in last[1]


def test_the_package_of_this_checkout_is_installed_with_its_command() -> None:
    copied = " ".join(BUILD.all("COPY")).split()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = ["pyproject.toml", project["project"]["readme"],
              *project["tool"]["setuptools"]["packages"]["find"]["where"]]
    assert set(needed) <= set(copied), (needed, copied)
    assert any(args.startswith("pip install --no-deps . ") for args in BUILD.all("RUN"))
    assert project["project"]["scripts"]["subnetlab"] == "subnetlab.cli.main:run"
    assert env_of(RUNTIME)["PATH"].startswith("/opt/venv/bin:")
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert not ignored & set(needed)


def test_entrypoint_is_subnetlab_as_the_pods_assume() -> None:
    assert json.loads(RUNTIME.last("ENTRYPOINT")) == ["subnetlab"]
    operator = (ROOT / "helm/subnetlab/templates/operator-deployment.yaml").read_text()
    assert "command: [subnetlab, operator, run]" in operator
    ledger = (ROOT / "helm/subnetlab/templates/ledger.yaml").read_text()
    assert "command: [subnetlab, ledger, serve]" in ledger


def test_it_runs_as_the_uid_the_pods_run_as() -> None:
    user = RUNTIME.last("USER")
    assert user == f"{NON_ROOT}:{NON_ROOT}"
    created = " ".join(RUNTIME.all("RUN"))
    assert f"--uid {NON_ROOT}" in created and f"--gid {NON_ROOT}" in created
    values = yaml.safe_load((ROOT / "helm/subnetlab/values.yaml").read_text())
    pod = values["podSecurityContext"]
    assert (pod["runAsUser"], pod["runAsGroup"], pod["fsGroup"]) == (NON_ROOT,) * 3


def test_the_paths_the_pods_mount_are_the_images_homes() -> None:
    env = env_of(RUNTIME)
    assert env["SUBNETLAB_HOME"] == HOME and env["HOME"] == TMP
    assert f"install -d -o {NON_ROOT} -g {NON_ROOT} -m 0750 {HOME}" in " ".join(
        RUNTIME.all("RUN"))


def test_the_default_tag_is_the_version_the_docs_build() -> None:
    assert OperatorConfig().image == f"subnetlab:{__version__}"
    chart = yaml.safe_load((ROOT / "helm/subnetlab/Chart.yaml").read_text())
    assert chart["appVersion"] == __version__
    docs = (ROOT / "docs/kubernetes.md").read_text()
    assert f"docker build -t subnetlab:{__version__} ." in docs
    assert f"kind load docker-image subnetlab:{__version__}" in docs
