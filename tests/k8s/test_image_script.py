"""tests/k8s/image.sh, the cheap parts: the refs it names, and calls it refuses at once with
one line and exit status 2 (bad arguments, a missing tool, no root), before it builds or
touches anything. The builds themselves run in cluster.sh (and docs/BENCHMARKS.md times
them); they need root, buildah and minutes."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "tests/k8s/image.sh"
APP_VERSION = yaml.safe_load((ROOT / "helm/subnetlab/Chart.yaml").read_text())["appVersion"]
IMAGES = [
    "localhost/subnetlab-base:bookworm",
    f"docker.io/library/subnetlab:{APP_VERSION}",
    "localhost/subnetlab-pause:3.9",
    "localhost/subnetlab-redis:7",
    "localhost/subnetlab-busybox:1",
]


def image_sh(*args: str, script: Path = SCRIPT, cache: Path | None = None,
             env: dict[str, str] | None = None,
             prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    environ = dict(env if env is not None else os.environ)
    environ["SUBNETLAB_IMAGE_CACHE"] = str(cache or "/nonexistent/subnetlab-image-cache")
    return subprocess.run([*prefix, "bash", str(script), *args], capture_output=True,
                          text=True, env=environ, timeout=60, check=False)


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a refused call (exit 2, nothing on stdout)."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("image.sh: error: "), result.stderr
    return lines[0]


def test_list_names_the_images_the_node_needs() -> None:
    result = image_sh("list")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == IMAGES
    # Kubernetes names the chart's `subnetlab:<appVersion>` docker.io/library/subnetlab.
    assert f"subnetlab:{APP_VERSION}" == IMAGES[1].removeprefix("docker.io/library/")


def test_list_adds_the_binary_images() -> None:
    result = image_sh("list", "--binary", "coredns:1.11=/bin/true",
                      "--binary=local-path-provisioner:v0.0.33=/bin/true")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        *IMAGES, "localhost/coredns:1.11", "localhost/local-path-provisioner:v0.0.33"]


@pytest.fixture
def not_executable(tmp_path: Path) -> Path:
    path = tmp_path / "plain"
    path.write_text("not a program\n")
    return path


@pytest.mark.parametrize(("args", "says"), [
    ((), "a command is required"),
    (("frobnicate",), "unknown command 'frobnicate'"),
    (("build", "nosuch"), "unknown image 'nosuch'"),
    (("build", "--bogus"), "unknown option '--bogus'"),
    (("build", "--binary"), "--binary needs NAME:TAG=PATH"),
    (("build", "--binary", "coredns"), "expected NAME:TAG=PATH"),
    (("build", "--binary", "Core:1=/bin/true"), "not a valid image name"),
    (("build", "--binary", "coredns:bad tag=/bin/true"), "not a valid tag"),
    (("build", "--binary", "redis:1=/bin/true"), "one of the built-in images"),
    (("build", "--binary", "vllm:1=/bin/true"), "one of the built-in images"),
    (("build", "--binary", "x:1=/bin/true", "--binary", "x:2=/bin/true"), "given twice"),
    (("build", "--binary", "x:1=/nonexistent/x"), "no such file: /nonexistent/x"),
    (("import",), "SOCKET"),
    (("import", "/nonexistent/containerd.sock"), "is not a socket"),
    (("list", "base"), "unexpected argument 'base'"),
])
def test_bad_calls_are_refused_in_one_line(args: tuple[str, ...], says: str) -> None:
    assert says in refused(image_sh(*args))


def test_a_binary_that_is_not_executable_is_refused(not_executable: Path) -> None:
    line = refused(image_sh("build", "--binary", f"x:1={not_executable}"))
    assert f"not executable: {not_executable}" in line


@pytest.fixture
def checkout() -> Iterator[Path]:
    """The files image.sh reads, in a world-readable copy of the checkout's layout (another
    user must be able to run it), with an empty, world-writable cache beside them."""
    top = Path(tempfile.mkdtemp(prefix="subnetlab-image-sh-"))
    try:
        for rel in ("tests/k8s/image.sh", "tests/k8s/pause/pause.c",
                    "helm/subnetlab/Chart.yaml", "Dockerfile", ".dockerignore",
                    "pyproject.toml", "README.md"):
            (top / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / rel, top / rel)
        (top / "services/subnetlab").mkdir(parents=True)
        (top / "services/subnetlab/__init__.py").write_text("")
        (top / "cache").mkdir()
        for path in [top, *top.rglob("*")]:
            path.chmod(0o777 if path.name == "cache" else 0o755 if path.is_dir() else 0o644)
        yield top
    finally:
        shutil.rmtree(top)


def path_without(tmp_path: Path, *missing: str) -> str:
    """A PATH holding every command of this one but `missing`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            target = bin_dir / entry.name
            if entry.name in missing or target.exists():
                continue
            if entry.is_file() and os.access(entry.path, os.X_OK):
                target.symlink_to(entry.path)
    return str(bin_dir)


def test_without_buildah_the_build_names_it(checkout: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PATH": path_without(tmp_path, "buildah")}
    line = refused(image_sh("build", script=checkout / "tests/k8s/image.sh",
                            cache=checkout / "cache", env=env))
    if os.geteuid() == 0:
        assert "buildah is not installed" in line
    else:
        assert "needs root" in line
    assert not list((checkout / "cache").glob("*.tar"))


def test_without_root_the_build_says_so(checkout: Path) -> None:
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (Debian's util-linux) runs the script as another user"
        prefix = (setpriv, "--reuid=65534", "--regid=65534", "--clear-groups")
    line = refused(image_sh("build", "pause", script=checkout / "tests/k8s/image.sh",
                            cache=checkout / "cache", prefix=prefix))
    assert "needs root" in line
    assert [p.name for p in (checkout / "cache").iterdir()] == [".lock"]



def test_the_vllm_image_is_built_only_when_named() -> None:
    """Not in `list` (the node's images) nor in the default build: 6 GB for one test."""
    assert "vllm" not in image_sh("list").stdout
    text = SCRIPT.read_text()
    assert "NAMES=(base subnetlab pause redis busybox)" in text
    assert "OPTIONAL=(vllm)" in text


def test_the_vllm_build_needs_root_and_subnetlab(checkout: Path, tmp_path: Path) -> None:
    """Refused in one line before anything is built: without root, and (as root) when the
    python3 on PATH cannot import subnetlab, which finds the vLLM environment."""
    script = checkout / "tests/k8s/image.sh"
    if os.geteuid() != 0:
        assert "needs root" in refused(image_sh("build", "vllm", script=script,
                                                cache=checkout / "cache"))
        return
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "python3").write_text("#!/bin/sh\nexit 1\n")
    (stub / "python3").chmod(0o755)
    env = {**os.environ, "PATH": f"{stub}{os.pathsep}{os.environ.get('PATH', '')}"}
    line = refused(image_sh("build", "vllm", script=script, cache=checkout / "cache", env=env))
    assert "python3 cannot import subnetlab" in line
    assert not list((checkout / "cache").glob("*.tar"))
