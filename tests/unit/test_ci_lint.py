"""The shell scripts and the GitHub workflows, linted the way CI lints them.

Why: the test node (tests/k8s/*.sh), the CI entry point (.ci/run) and the kind workflow
(.github/workflows/) are code that this project's CI mostly cannot run end to end (the
workflow needs a GitHub runner with Docker): shellcheck (Debian's package) and actionlint
(built from its Go module by `tests/k8s/controlplane.sh build`; it also runs shellcheck on
every `run:` block) are what catches their mistakes here. A missing linter fails the test,
naming how to get it: a skipped lint is a lint that never runs.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]
CONTROLPLANE = ROOT / "tests" / "k8s" / "controlplane.sh"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def shell_scripts() -> list[Path]:
    """Every *.sh under tests/, and .ci/run."""
    return [*sorted((ROOT / "tests").rglob("*.sh")), ROOT / ".ci" / "run"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=300,
                          check=False, cwd=ROOT)


@pytest.fixture(scope="module")
def shellcheck() -> str:
    found = shutil.which("shellcheck")
    if found is None:
        pytest.fail("shellcheck is missing: `apt-get install shellcheck` (Debian's package; "
                    ".ci/run installs it)")
    return found


@pytest.fixture(scope="module")
def actionlint() -> str:
    done = run("bash", str(CONTROLPLANE), "bin-dir")
    assert done.returncode == 0, done.stderr
    binary = Path(done.stdout.strip()) / "actionlint"
    if not binary.is_file():
        pytest.fail(f"{binary} is missing: `bash tests/k8s/controlplane.sh build` builds it "
                    "from tests/k8s/actionlinttool/go.mod (or, with Go on PATH: `cd "
                    f"tests/k8s/actionlinttool && GOBIN={binary.parent} go install "
                    "github.com/rhysd/actionlint/cmd/actionlint`)")
    return str(binary)


def test_the_scripts_are_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in shell_scripts()}
    assert {"tests/k8s/controlplane.sh", ".ci/run"} <= names


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_shellcheck_is_clean(shellcheck: str, script: Path) -> None:
    done = run(shellcheck, "--external-sources", str(script.relative_to(ROOT)))
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_is_clean(actionlint: str, shellcheck: str) -> None:
    """actionlint on every workflow, with shellcheck on PATH so that each `run:` block is
    checked too."""
    assert WORKFLOWS, "no .github/workflows/*.yml"
    done = run(actionlint, "-shellcheck", shellcheck,
               *(str(p.relative_to(ROOT)) for p in WORKFLOWS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_kind_workflow_runs_the_e2e_suite_against_its_cluster() -> None:
    """What tests/e2e reads from the environment, the image built and loaded into kind, the
    chart installed, and the suite run; and the lint job runs the unit tests."""
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / "e2e-kind.yml").read_text())
    e2e = doc["jobs"]["e2e"]
    scripts = "\n".join(step.get("run", "") for step in e2e["steps"])
    uses = [step.get("uses", "") for step in e2e["steps"]]
    assert any(u.startswith("helm/kind-action@") for u in uses)
    assert 'docker build -t "$IMAGE" .' in scripts
    assert 'kind load docker-image "$IMAGE"' in scripts
    assert "helm install" in scripts and "ledger.blockTime=" in scripts
    assert "KUBECONFIG=" in scripts and "SUBNETLAB_LEDGER=http://127.0.0.1:9944" in scripts
    (tests,) = [s for s in e2e["steps"] if "pytest tests/e2e" in s.get("run", "")]
    assert tests["env"]["SUBNETLAB_E2E_IMAGE"] == "${{ env.IMAGE }}"
    assert doc["env"]["IMAGE"] == "subnetlab:0.1.0"
    lint = "\n".join(step.get("run", "") for step in doc["jobs"]["lint"]["steps"])
    for command in ("ruff check .", "mypy", "python3 -m pytest tests/unit"):
        assert command in lint
