"""The sweep machinery of `subnetlab experiment`: grids, flags, parallel runs, outputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from subnetlab.experiments.cabal import PARAMS as CABAL_PARAMS
from subnetlab.experiments.catalog import EXPERIMENTS
from subnetlab.experiments.copier import PARAMS as COPIER_PARAMS
from subnetlab.experiments.runner import run_points
from subnetlab.experiments.stats import mean_ci
from subnetlab.experiments.sweep import Param, SweepError, expand, parse_flags
from tests.conftest import CliRun

SMALL_COPIER = ["--copier-stake-shares", "0.2,0.4", "--copiers", "1", "--reveal-periods",
                "0,2", "--churn", "0.2", "--epochs", "6"]


def test_grid_expands_every_combination_then_each_seed_in_declared_order() -> None:
    points = expand({"a": (1, 2), "b": (0.5, 0.7)}, [0, 1])
    assert [(p["a"], p["b"], p["seed"]) for p in points] == [
        (1, 0.5, 0), (1, 0.5, 1), (1, 0.7, 0), (1, 0.7, 1),
        (2, 0.5, 0), (2, 0.5, 1), (2, 0.7, 0), (2, 0.7, 1)]


def test_flags_take_lists_both_spellings_and_unset_flags_their_defaults() -> None:
    grid = parse_flags(CABAL_PARAMS, ["--stake-shares", "0.2,0.4", "--kappa=0.3,0.5"],
                       quick=False, experiment="cabal")
    assert grid["stake_share"] == (0.2, 0.4) and grid["kappa"] == (0.3, 0.5)
    assert grid["subnet_stake"] == CABAL_PARAMS[2].default
    quick = parse_flags(CABAL_PARAMS, [], quick=True, experiment="cabal")
    assert quick["epochs"] == CABAL_PARAMS[3].quick


@pytest.mark.parametrize(("args", "message"), [
    (["--kappa", "x"], "--kappa: 'x' is not a number"),
    (["--kappa", "1.5"], "--kappa: 1.5 is outside [0, 1]"),
    (["--kappa", "nan"], "--kappa: 'nan' is not a finite number"),
    (["--stake-shares", "0"], "--stake-shares: 0 is outside (0, 1)"),
    (["--stake-shares", "0.2,,0.4"], "--stake-shares: '0.2,,0.4' is not a comma-separated"),
    (["--stake-shares", "0.2,0.2"], "--stake-shares: '0.2,0.2' lists a value twice"),
    (["--epochs", "2.5"], "--epochs: '2.5' is not an integer"),
    (["--epochs", "1"], "--epochs: 1 is outside [2, 100000]"),
    (["--kappa"], "--kappa: needs a comma-separated list of values"),
    (["--kappa", "--epochs", "3"], "--kappa: needs a comma-separated list of values"),
    (["--kappa", "0.3", "--kappa", "0.5"], "--kappa: given twice"),
    (["--copiers", "2"], "--copiers: unknown flag for experiment cabal (its sweep flags: "
                         "--stake-shares, --kappa, --subnet-stakes, --epochs)"),
    (["stray"], "stray: unexpected argument for experiment cabal"),
])
def test_bad_sweep_flags_name_the_flag_and_the_reason(args: list[str], message: str) -> None:
    with pytest.raises(SweepError) as raised:
        parse_flags(CABAL_PARAMS, args, quick=False, experiment="cabal")
    assert str(raised.value).startswith(message)


def test_int_param_parses_ints() -> None:
    param = Param("n", "--n", int, 1, 3, (1,), (1,), "n")
    assert param.parse("1,3") == (1, 3)


def test_mean_ci_uses_students_t() -> None:
    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and math.isclose(half, 4.303 / math.sqrt(3))
    assert mean_ci([5.0]) == (5.0, 0.0)


def test_parallel_jobs_give_the_same_rows_in_the_same_order_as_serial() -> None:
    grid = parse_flags(COPIER_PARAMS, SMALL_COPIER, quick=True, experiment="copier")
    points = expand(grid, [0, 1])
    emitted: list[dict[str, object]] = []
    serial = run_points("copier", points, jobs=1)
    parallel = run_points("copier", points, jobs=2, emit=emitted.append)
    assert json.dumps(serial) == json.dumps(parallel) == json.dumps(emitted)
    assert [(r["copier_stake_share"], r["reveal_period"], r["seed"]) for r in parallel] == [
        (p["copier_stake_share"], p["reveal_period"], p["seed"]) for p in points]


def _run(cli: CliRun, out: Path, *extra: str) -> list[dict[str, object]]:
    proc = cli("experiment", "run", "copier", *SMALL_COPIER, "--seeds", "2", "--out", str(out),
               "--json", *extra)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_run_writes_results_report_and_figure_and_is_reproducible(
        cli: CliRun, tmp_path: Path) -> None:
    printed = _run(cli, tmp_path / "a")
    doc = json.loads((tmp_path / "a" / "results.json").read_text())
    assert doc["rows"] == printed and len(printed) == 2 * 2 * 2
    assert doc["command"].startswith("subnetlab experiment run copier --copier-stake-shares "
                                     "0.2,0.4 --copiers 1 --reveal-periods 0,2")
    report = (tmp_path / "a" / "report.md").read_text()
    assert "simulated: validators and miners: scripted" in report
    assert "real: chain state machine" in report
    assert (tmp_path / "a" / "copier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _run(cli, tmp_path / "b")  # same seed and parameters: the same bytes
    first = (tmp_path / "a" / "results.json").read_text()
    assert (first.replace(str(tmp_path / "a"), str(tmp_path / "b"))
            == (tmp_path / "b" / "results.json").read_text())
    other = _run(cli, tmp_path / "c", "--seed", "7")
    assert [r["seed"] for r in other][:2] == [7, 8]
    assert [r["relative_yield"] for r in other] != [r["relative_yield"] for r in printed]


@pytest.mark.parametrize(("args", "message"), [
    (["nope"], f"error: NAME: no experiment 'nope'; known: {', '.join(EXPERIMENTS)}"),
    (["cabal", "--kappa", "2"], "error: --kappa: 2 is outside [0, 1]"),
    (["cabal", "--copiers", "2"], "error: --copiers: unknown flag for experiment cabal"),
    (["cabal", "--jobs", "0"], "error: Invalid value for '--jobs'"),
    (["cabal", "--seeds", "0"], "error: Invalid value for '--seeds'"),
])
def test_bad_run_flags_fail_in_one_line_before_writing(
        cli: CliRun, tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "out"
    proc = cli("experiment", "run", *args, "--out", str(out))
    assert proc.returncode == 2
    assert proc.stderr.startswith(message) and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_out_that_is_a_file_is_refused(cli: CliRun, tmp_path: Path) -> None:
    out = tmp_path / "file"
    out.write_text("keep")
    proc = cli("experiment", "run", "cabal", "--quick", "--out", str(out))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: --out {out}: exists and is not a directory"
    assert out.read_text() == "keep"


def test_list_names_the_claims_and_flags(cli: CliRun) -> None:
    proc = cli("experiment", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    listed = {e["name"]: e for e in map(json.loads, proc.stdout.splitlines())}
    assert list(listed) == list(EXPERIMENTS)
    assert [e["claim"] for e in listed.values()] == sorted(e.claim for e in EXPERIMENTS.values())
    assert "--kappa" in listed["cabal"]["flags"]
