"""An experiment's sweep points as Kubernetes Jobs: `experiment run NAME --kubernetes NS`.

Why Jobs: a sweep is a list of independent points, so where one machine is not enough
each point can run as a pod of its own, from the subnetlab image, and the cluster's nodes
share the work. Each Job runs `subnetlab experiment point NAME --point JSON`, which prints
the point's row as its last log line; the row is read back from the pod's log, so the
results, figure and report are made here exactly as for a local run (the same rows, byte
for byte, where the experiment is deterministic).

At most `parallel` Jobs exist at once (the cluster's own quota may allow fewer pods);
each is deleted, with its pod, once its row is read. A point whose pod fails, cannot pull
its image or runs past `deadline_s` ends the sweep with the pod's own last log lines, and
every Job of the sweep is deleted on the way out (Ctrl-C included).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from subnetlab.k8s.kube import Body, Kube, KubeError
from subnetlab.k8s.resources import (
    COMMON_LABELS,
    HOME,
    TMP,
    container_security,
    pod_security,
)

LABEL_EXPERIMENT = "subnetlab.io/experiment"
LABEL_SWEEP = "subnetlab.io/sweep"
POLL_S = 1.0
LOG_TAIL_LINES = 20
STUCK_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull",
                           "InvalidImageName", "CreateContainerConfigError",
                           "CreateContainerError"})
"""Waiting reasons of a point's container that do not pass by themselves."""

Row = dict[str, Any]


class PointJobError(RuntimeError):
    """A point's Job failed, or the cluster refused the sweep; the message says which."""


@dataclass(frozen=True)
class JobSettings:
    """Where and how the points run."""

    namespace: str
    image: str
    pull_policy: str = "IfNotPresent"
    deadline_s: int = 3600
    parallel: int = 4


def job_name(experiment: str, sweep: str, index: int) -> str:
    """`exp-cabal-1a2b3c-7`: a DNS label (at most 63 characters) naming the point."""
    return f"exp-{experiment}-{sweep}-{index}"[:63].rstrip("-")


def point_job(experiment: str, sweep: str, index: int, point: Row,
              settings: JobSettings) -> Body:
    """The Job that runs one point: no retries (a point is deterministic, a failure is
    reported, not repeated), a deadline, the restricted security profile of every pod the
    operator makes, writable emptyDirs for $SUBNETLAB_HOME and /tmp only."""
    labels = {**COMMON_LABELS, LABEL_EXPERIMENT: experiment, LABEL_SWEEP: sweep}
    container = {
        "name": "point",
        "image": settings.image,
        "imagePullPolicy": settings.pull_policy,
        "command": ["subnetlab"],
        "args": ["experiment", "point", experiment, "--point",
                 json.dumps(point, sort_keys=True)],
        # As in the neuron pods: a writable $SUBNETLAB_HOME (the ledger and Redis that a
        # real-process point starts keep their data there) and $HOME, both emptyDirs.
        "env": [{"name": "SUBNETLAB_HOME", "value": HOME}, {"name": "HOME", "value": TMP},
                {"name": "MPLCONFIGDIR", "value": TMP}],
        "resources": {"requests": {"cpu": "500m", "memory": "256Mi"},
                      "limits": {"memory": "2Gi"}},
        "securityContext": container_security(read_only_root=True),
        "volumeMounts": [{"name": "home", "mountPath": HOME},
                         {"name": "tmp", "mountPath": TMP}],
    }
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": job_name(experiment, sweep, index),
                     "namespace": settings.namespace, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": settings.deadline_s,
            "template": {
                "metadata": {"labels": labels},
                "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                         "enableServiceLinks": False, "securityContext": pod_security(),
                         "containers": [container],
                         "volumes": [{"name": "home", "emptyDir": {}},
                                     {"name": "tmp", "emptyDir": {}}]},
            },
        },
    }


def row_from_log(log: str) -> Row:
    """The row a point's pod printed: its last line that is a JSON object."""
    for line in reversed(log.strip().splitlines()):
        try:
            found = json.loads(line)
        except ValueError:
            continue
        if isinstance(found, dict):
            return found
    raise ValueError("the pod printed no JSON row")


def job_outcome(job: Body) -> str | None:
    """"succeeded", "failed: REASON" or None while it runs."""
    status = job.get("status") or {}
    if status.get("succeeded"):
        return "succeeded"
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return f"failed: {condition.get('reason')}: {condition.get('message', '')}".strip()
    if status.get("failed"):
        return "failed: its pod exited non-zero"
    return None


def exit_reason(pod: Body | None) -> str | None:
    """How the pod's container ended, when it ended badly (a start error's message says
    more than the Job's condition does)."""
    for container in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        ended = (container.get("state") or {}).get("terminated") or {}
        if ended and ended.get("exitCode") != 0:
            return (f"the container ended with {ended.get('reason') or 'an error'} (exit "
                    f"code {ended.get('exitCode')}): {ended.get('message', '')}").strip(" :")
    return None


def stuck_reason(pod: Body) -> str | None:
    """Why the pod's container cannot start, when that will not pass by itself."""
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_REASONS:
            return f"{waiting['reason']}: {waiting.get('message', '')}".strip()
    return None


class _Sweep:
    """One sweep's Jobs on the cluster: create, watch, read back, delete."""

    def __init__(self, kube: Kube, experiment: str, settings: JobSettings) -> None:
        self.kube, self.experiment, self.settings = kube, experiment, settings
        self.sweep = uuid.uuid4().hex[:6]
        self.created: list[str] = []

    async def run_point(self, index: int, point: Row) -> Row:
        body = point_job(self.experiment, self.sweep, index, point, self.settings)
        name = body["metadata"]["name"]
        if await self.kube.create(body) is None:
            raise PointJobError(f"Job {name} already exists in namespace "
                                f"{self.settings.namespace}")
        self.created.append(name)
        while True:
            job = await self.kube.get("Job", self.settings.namespace, name)
            if job is None:
                raise PointJobError(f"Job {name} was deleted while its point ran")
            outcome = job_outcome(job)
            pod = await self._pod(name)
            if outcome == "succeeded" and pod is not None:
                log = await self.kube.log(self.settings.namespace, pod["metadata"]["name"])
                try:
                    row = row_from_log(log)
                except ValueError as exc:
                    raise PointJobError(f"Job {name}: {exc}; its log ends: "
                                        f"{_tail(log)}") from None
                await self._delete(name)
                return row
            reason = outcome if outcome and outcome != "succeeded" else (
                stuck_reason(pod) if pod is not None else None)
            if reason is not None:
                tail = await self._log_tail(pod)
                ended = exit_reason(pod)
                raise PointJobError(f"Job {name} {reason.removeprefix('failed: ')}"
                                    + (f"; {ended}" if ended else "")
                                    + (f"; its log ends: {tail}" if tail else ""))
            await asyncio.sleep(POLL_S)

    async def _pod(self, job: str) -> Body | None:
        pods = await self.kube.list("Pod", self.settings.namespace,
                                    label_selector=f"job-name={job}")
        return pods[0] if pods else None

    async def _log_tail(self, pod: Body | None) -> str:
        if pod is None:
            return ""
        try:
            log = await self.kube.log(self.settings.namespace, pod["metadata"]["name"],
                                      LOG_TAIL_LINES)
        except KubeError:
            return ""
        return _tail(log)

    async def _delete(self, name: str) -> None:
        await self.kube.delete("Job", self.settings.namespace, name, "Background")
        self.created.remove(name)

    async def delete_all(self) -> None:
        for name in list(self.created):
            # The namespace may be going; what is left carries the sweep's label.
            with contextlib.suppress(KubeError):
                await self._delete(name)


def _tail(log: str) -> str:
    return " | ".join(log.strip().splitlines()[-LOG_TAIL_LINES:])[-2000:]


async def run_point_jobs(kube: Kube, experiment: str, points: Sequence[Row],
                         settings: JobSettings,
                         finished: Callable[[int, Row], None]) -> list[Row]:
    """Run every point as a Job, at most `settings.parallel` at once; `finished(index,
    row)` as each row comes back. Returns the rows in point order."""
    sweep = _Sweep(kube, experiment, settings)
    slots = asyncio.Semaphore(settings.parallel)
    rows: list[Row | None] = [None] * len(points)

    async def one(index: int, point: Row) -> None:
        async with slots:
            row = await sweep.run_point(index, point)
        rows[index] = row
        finished(index, row)

    tasks = [asyncio.create_task(one(i, p)) for i, p in enumerate(points)]
    try:
        await asyncio.gather(*tasks)
    except KubeError as exc:
        raise PointJobError(f"namespace {settings.namespace}: {exc}") from None
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await sweep.delete_all()
    return [r for r in rows if r is not None]


def namespace_problem(namespace: str) -> str | None:
    """Why `namespace` cannot name a Kubernetes namespace (an RFC 1123 label), or None."""
    if not 1 <= len(namespace) <= 63:
        return "a namespace name has 1 to 63 characters"
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", namespace):
        return ("a namespace name is lower-case letters, digits and '-', starting and "
                "ending with a letter or digit")
    return None
