"""The Dockerfile's facts that the chart and the operator rely on.

There is no container engine on the CI machine, so the image is never built here: these
tests read the Dockerfile and check what the pods assume of it (the uid they run as, the
`subnetlab` entrypoint, the package installed from this checkout into a virtual
environment that the runtime stage copies, the writable paths), not that it builds.
"""

from __future__ import annotations

import json
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
    assert "build-essential" not in " ".join(RUNTIME.all("RUN"))  # no compiler at runtime


def test_the_package_of_this_checkout_is_installed_with_its_command() -> None:
    copied = " ".join(BUILD.all("COPY")).split()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = ["pyproject.toml", project["project"]["readme"],
              *project["tool"]["setuptools"]["packages"]["find"]["where"]]
    assert set(needed) <= set(copied), (needed, copied)
    assert any(args.startswith("pip install . ") or args == "pip install ."
               for args in BUILD.all("RUN"))
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
