"""Fixtures for tests against a real Kubernetes control plane on loopback.

Why: the operator and the chart must be tested against the real API server (validation,
RBAC, owner-reference garbage collection), not a fake. `controlplane.sh` builds etcd's
partners from source once (cached under ~/.cache/subnetlab/k8s/) and starts them.

Stable interface (operator and chart tests rely on it):

``kube_controlplane`` (session scope) -> :class:`ControlPlane`
    ``.kubeconfig``  Path of the admin kubeconfig (user in group system:masters)
    ``.server``      ``https://127.0.0.1:PORT`` of the kube-apiserver
    ``.bin_dir``     Path holding kube-apiserver, kube-controller-manager and kubectl (and
                     what else `controlplane.sh build` puts there: helm, the test node's
                     kubelet, kube-scheduler, kube-proxy, coredns, local-path-provisioner,
                     and actionlint)
    ``.workdir``     Path with pki/ (ca.crt, sa.key, ...) and one log per component
    ``.env``         os.environ plus KUBECONFIG and bin_dir first on PATH, for child
                     processes (an operator under test, helm, ...)
    ``.kubectl(*args, check=True, input=None, timeout=60.0)``
                     run the built kubectl with that kubeconfig; returns the
                     CompletedProcess[str]; with check=True a non-zero exit raises
                     :class:`KubectlError` quoting the command and its stderr
``kube_namespace`` (function scope) -> str
    a fresh namespace, deleted (without waiting) after the test
``eventually(probe, timeout, what)``
    poll ``probe`` until it returns something truthy and return that; TimeoutError
    naming ``what`` otherwise (never a timed assertion: the deadline only bounds a hang)

Control plane: etcd, kube-apiserver (RBAC, service-account tokens) and
kube-controller-manager (all controllers: Deployments get ReplicaSets, the garbage
collector follows owner references, namespaces are finalized). No kubelet and no
scheduler: Pods stay Pending. A failed build or start fails the tests loudly; nothing is
skipped. Tests in this directory get a per-test timeout on the test function only, so
the one-time cold build in the session fixture is not cut short by pytest-timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from rich.console import Console

SCRIPT = Path(__file__).with_name("controlplane.sh")
BUILD_TIMEOUT_S = 3 * 3600  # bounds a hung cold build; a warm cache returns in a second
START_TIMEOUT_S = 300  # the script has its own, shorter per-component limits
TEST_TIMEOUT_S = 300

T = TypeVar("T")


class KubectlError(RuntimeError):
    """kubectl exited non-zero; the message names the command and quotes its stderr."""


def eventually(probe: Callable[[], T], timeout: float, what: str) -> T:
    """Poll `probe` until it returns a truthy value, and return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.25)


@dataclass(frozen=True)
class ControlPlane:
    """A running control plane: where it listens and how to talk to it."""

    kubeconfig: Path
    server: str
    bin_dir: Path
    workdir: Path

    @property
    def env(self) -> dict[str, str]:
        """Environment for child processes that should talk to this control plane."""
        path = f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PATH": path}

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this control plane."""
        command = [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args]
        done = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise KubectlError(
                f"kubectl {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}"
            )
        return done


def build_binaries(config: pytest.Config) -> None:
    """Build the control plane and every other binary `controlplane.sh build` makes, or reuse
    the cache.

    The progress lines go straight to the terminal (a cold build takes many minutes);
    the compiler's output is kept for the failure message.
    """
    tail: deque[str] = deque(maxlen=40)
    process = subprocess.Popen(
        ["bash", str(SCRIPT), "build"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # a hung build is killed with its go processes
    )
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else nullcontext():
        console = Console(stderr=True)
        with console.status("kubernetes control plane: build or reuse") as status:

            def follow() -> None:
                assert process.stdout is not None
                for raw in process.stdout:
                    line = raw.rstrip()
                    tail.append(line)
                    if line.startswith("controlplane.sh: "):
                        status.update(line.removeprefix("controlplane.sh: "))
                        console.log(line)

            reader = threading.Thread(target=follow, daemon=True)
            reader.start()
            try:
                code = process.wait(BUILD_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                code = process.wait()
                tail.append(f"killed after {BUILD_TIMEOUT_S} s")
            reader.join(10)
    if code != 0:
        log = "\n".join(tail)
        pytest.fail(f"building the control plane failed (exit {code}):\n{log}", pytrace=False)


def read_ready_file(path: Path) -> dict[str, str]:
    """Parse the `key=value` lines that controlplane.sh writes once everything is ready."""
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs}


def stop_group(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM the script (it stops its children), then SIGKILL its group if anything lingers.

    The script leads its own process group (start_new_session), so the group id is its pid.
    """
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout)


def start_controlplane(
    workdir: Path, watch_pid: int
) -> tuple[ControlPlane, subprocess.Popen[bytes]]:
    """Start `controlplane.sh run` in its own process group and wait until it is ready."""
    log_path = workdir.parent / f"{workdir.name}.controlplane.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["bash", str(SCRIPT), "run", str(workdir), "--watch-pid", str(watch_pid)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    ready = workdir / "ready"

    def started() -> bool:
        if process.poll() is not None:
            pytest.fail(
                f"the control plane exited {process.returncode} while starting:\n"
                f"{log_path.read_text(errors='replace')[-3000:]}",
                pytrace=False,
            )
        return ready.exists()

    try:
        eventually(started, START_TIMEOUT_S, "the control plane to start")
    except TimeoutError as error:
        stop_group(process)
        pytest.fail(f"{error}:\n{log_path.read_text(errors='replace')[-3000:]}", pytrace=False)
    info = read_ready_file(ready)
    plane = ControlPlane(
        kubeconfig=Path(info["kubeconfig"]),
        server=info["server"],
        bin_dir=Path(info["bin_dir"]),
        workdir=workdir,
    )
    return plane, process


@pytest.fixture(scope="session")
def kube_controlplane(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """A real control plane for the whole session; every process stops at teardown."""
    build_binaries(request.config)
    workdir = tmp_path_factory.mktemp("k8s") / "controlplane"
    plane, process = start_controlplane(workdir, watch_pid=os.getpid())
    yield plane
    stop_group(process)


@pytest.fixture
def kube_namespace(kube_controlplane: ControlPlane) -> Iterator[str]:
    """A namespace of the test's own, so tests never see each other's objects."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    kube_controlplane.kubectl("create", "namespace", name)
    yield name
    kube_controlplane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Time only the test body here: the session fixture may have to build for minutes."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT_S, func_only=True))
