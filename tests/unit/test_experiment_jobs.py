"""`experiment run --kubernetes`: the Job each point becomes, reading its row back, and
`experiment point`, the command those Jobs run (the cluster run itself is in tests/e2e)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from subnetlab.experiments.cabal import PARAMS as CABAL_PARAMS
from subnetlab.experiments.runner import InOrder, run_points
from subnetlab.experiments.sweep import point_problem
from subnetlab.k8s.point_jobs import (
    JobSettings,
    exit_reason,
    job_name,
    job_outcome,
    namespace_problem,
    point_job,
    row_from_log,
    stuck_reason,
)
from tests.conftest import CliRun

POINT = {"stake_share": 0.6, "kappa": 0.5, "subnet_stake": 1000.0, "epochs": 8, "seed": 3}
"""A point of the cabal experiment, as `experiment run --json` prints its fields."""


def test_a_point_job_runs_the_point_command_once_under_the_restricted_profile() -> None:
    settings = JobSettings(namespace="lab", image="subnetlab:9", deadline_s=600)
    job = point_job("stake-vs-quality", "ab12cd", 7, POINT, settings)
    assert job["metadata"]["name"] == "exp-stake-vs-quality-ab12cd-7"
    assert job["metadata"]["namespace"] == "lab"
    assert job["metadata"]["labels"]["subnetlab.io/sweep"] == "ab12cd"
    spec = job["spec"]
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] == 600
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["securityContext"]["runAsNonRoot"]
    (container,) = pod["containers"]
    assert container["image"] == "subnetlab:9"
    assert container["command"] == ["subnetlab"]
    args = container["args"]
    assert args[:4] == ["experiment", "point", "stake-vs-quality", "--point"]
    assert json.loads(args[4]) == POINT
    env = {e["name"]: e["value"] for e in container["env"]}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {env["SUBNETLAB_HOME"], env["HOME"]} <= mounts  # a real-process point writes there
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] and security["capabilities"] == {"drop": ["ALL"]}


def test_job_names_are_dns_labels_even_for_long_names() -> None:
    name = job_name("x" * 70, "ab12cd", 12)
    assert len(name) <= 63 and not name.endswith("-")


def test_the_row_is_the_last_json_object_the_pod_printed() -> None:
    log = 'warming up\n{"not": "this"}\n[1, 2]\n{"seed": 3, "value": 0.25}\ntrailing words\n'
    assert row_from_log(log) == {"seed": 3, "value": 0.25}
    with pytest.raises(ValueError, match="no JSON row"):
        row_from_log("Traceback (most recent call last):\n  boom\n")


def test_job_outcomes_and_pods_that_will_never_start() -> None:
    assert job_outcome({"status": {"active": 1}}) is None
    assert job_outcome({"status": {"succeeded": 1}}) == "succeeded"
    deadline = {"status": {"failed": 1, "conditions": [
        {"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
         "message": "Job was active longer than specified deadline"}]}}
    assert job_outcome(deadline) == ("failed: DeadlineExceeded: Job was active longer than "
                                     "specified deadline")
    assert job_outcome({"status": {"failed": 1}}) == "failed: its pod exited non-zero"
    pulling = {"status": {"containerStatuses": [{"state": {"waiting": {
        "reason": "ErrImageNeverPull", "message": "image subnetlab:9 is not present"}}}]}}
    assert stuck_reason(pulling) == "ErrImageNeverPull: image subnetlab:9 is not present"
    creating = {"status": {"containerStatuses": [{"state": {"waiting": {
        "reason": "ContainerCreating"}}}]}}
    assert stuck_reason(creating) is None
    not_found = {"status": {"containerStatuses": [{"state": {"terminated": {
        "exitCode": 128, "reason": "StartError", "message": "exec: subnetlab: not found"}}}]}}
    assert exit_reason(not_found) == ("the container ended with StartError (exit code 128): "
                                      "exec: subnetlab: not found")
    assert exit_reason({"status": {"containerStatuses": [{"state": {"terminated": {
        "exitCode": 0, "reason": "Completed"}}}]}}) is None


@pytest.mark.parametrize(("namespace", "problem"), [
    ("lab", None), ("a-1", None), ("", "1 to 63 characters"), ("x" * 64, "1 to 63"),
    ("Lab", "lower-case"), ("-lab", "starting and ending"), ("lab_1", "lower-case")])
def test_namespace_names_are_checked(namespace: str, problem: str | None) -> None:
    found = namespace_problem(namespace)
    assert found is None if problem is None else problem in (found or "")


def test_rows_are_handed_on_in_point_order_whatever_order_they_finish_in() -> None:
    emitted: list[dict[str, int]] = []
    done: list[int] = []
    rows = InOrder(3, emitted.append, lambda: done.append(1))
    rows.finish(2, {"i": 2})
    rows.finish(0, {"i": 0})
    assert emitted == [{"i": 0}]
    rows.finish(1, {"i": 1})
    assert emitted == [{"i": 0}, {"i": 1}, {"i": 2}] == rows.ordered() and len(done) == 3


@pytest.mark.parametrize(("point", "problem"), [
    ([1, 2], "must be a JSON object"),
    ({"seed": 1}, "missing "),
    ({**POINT, "extra": 1}, "unknown field(s) extra"),
    ({**POINT, "seed": -1}, "seed: -1 is not a non-negative integer"),
    ({**POINT, "seed": True}, "seed: True"),
    ({**POINT, "kappa": 2}, "kappa: 2 is outside [0, 1]"),
    ({**POINT, "kappa": "high"}, "kappa: 'high' is not a number"),
    ({**POINT, "epochs": 2.5}, "epochs: '2.5' is not an integer"),
])
def test_a_point_given_whole_is_checked_field_by_field(point: object, problem: str) -> None:
    assert point_problem(CABAL_PARAMS, POINT) is None
    found = point_problem(CABAL_PARAMS, point)
    assert found is not None and problem in found, found


def test_the_point_command_prints_the_row_a_local_run_gives(cli: CliRun) -> None:
    point = {**POINT, "epochs": 4}
    proc = cli("experiment", "point", "cabal", "--point", json.dumps(point))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == json.loads(
        json.dumps(run_points("cabal", [point], 1)[0]))


@pytest.mark.parametrize(("args", "message"), [
    (["cabal", "--point", "{"], "error: --point: not JSON"),
    (["cabal", "--point", '{"seed": 0}'], "error: --point: missing "),
    (["nope", "--point", "{}"], "error: NAME: no experiment 'nope'"),
])
def test_bad_points_fail_in_one_line(cli: CliRun, args: list[str], message: str) -> None:
    proc = cli("experiment", "point", *args)
    assert proc.returncode == 2
    assert proc.stderr.startswith(message) and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--kubernetes", "Bad_NS"], "error: --kubernetes 'Bad_NS': a namespace name is"),
    (["--image", "subnetlab:1"], "error: --image applies only with --kubernetes"),
])
def test_bad_kubernetes_flags_fail_before_anything_runs(
        cli: CliRun, tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "out"
    proc = cli("experiment", "run", "cabal", "--quick", *args, "--out", str(out))
    assert proc.returncode == 2
    assert proc.stderr.startswith(message) and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_no_cluster_configured_is_one_line(cli: CliRun, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    proc = cli("experiment", "run", "cabal", "--quick", "--kubernetes", "lab",
               "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    assert "error: --kubernetes: no cluster configured" in proc.stderr
