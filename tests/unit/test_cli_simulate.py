"""`subnetlab simulate yuma` and `subnetlab bench epoch`, run as real processes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CliRun

CASE = {
    "name": "two validators, one miner",
    "hyperparameters": {"max_allowed_validators": 2},
    "stakes": [3, 1, 0],
    "epochs": [{"weights": {}}, {"weights": {"0": {"2": 65535}, "1": {"2": 65535}}}, {}],
}


def write(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "case.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_default_case_prints_one_json_object_per_epoch(cli: CliRun) -> None:
    proc = cli("simulate", "yuma")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["epoch"] for r in records] == list(range(7))
    assert set(records[0]) == {
        "epoch", "incentive", "dividends", "consensus", "validator_trust", "validator_permit",
        "bonds", "emission",
    }
    assert records[1]["dividends"][:3] == pytest.approx([0.8, 0.1, 0.1], abs=1e-3)
    assert len(records[1]["bonds"]) == 5 and len(records[1]["bonds"][0]) == 5


def test_case_file_table_and_plot(cli: CliRun, tmp_path: Path) -> None:
    case = write(tmp_path, CASE)
    table = cli("simulate", "yuma", str(case), "--table")
    assert table.returncode == 0, table.stderr
    assert "two validators, one miner" in table.stdout and "dividends" in table.stdout
    png = tmp_path / "plot.png"
    plot = cli("simulate", "yuma", str(case), "--plot", str(png))
    assert plot.returncode == 0, plot.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not valid JSON"),
        ({"epochs": [{}]}, "stakes: Field required"),
        ({**CASE, "stakes": [1, -2, 0]}, "stake of uid 1 is -2"),
        ({**CASE, "hyperparameters": {"kappa": 1.5}}, "hyperparameters.kappa"),
        ({**CASE, "hyperparameters": {"kapa": 0.5}}, "hyperparameters.kapa"),
        ({**CASE, "epochs": [{"weights": {"0": {"7": 1}}}]}, "uid 7 does not exist"),
        ({**CASE, "epochs": [{"weights": {"0": {"2": 70000}}}]}, "must be in [0, 65535]"),
        ({**CASE, "epochs": []}, "epochs"),
    ],
)
def test_invalid_case_files_name_the_field_without_traceback(
    cli: CliRun, tmp_path: Path, content: object, expected: str
) -> None:
    proc = cli("simulate", "yuma", str(write(tmp_path, content)))
    assert proc.returncode == 2
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") <= 2


def test_every_problem_of_a_case_is_reported_at_once(cli: CliRun, tmp_path: Path) -> None:
    case = {**CASE, "stakes": [1, -2, 0], "hyperparameters": {"kapa": 0.5},
            "epochs": [{"weights": {"0": {"2": 70000}}}]}
    proc = cli("simulate", "yuma", str(write(tmp_path, case)))
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines[0] == "error: 3 problems in the case:", proc.stderr
    for expected in ("stakes: stake of uid 1 is -2", "hyperparameters.kapa: ",
                     "epochs.0.weights: weight to uid 2 is 70000"):
        assert any(line.startswith(f"  {write(tmp_path, case)}: {expected}")
                   for line in lines[1:]), (expected, proc.stderr)
    unknown = {**CASE, "epochs": [{"weights": {"0": {"7": 1}}}, {"weights": {"9": {"1": 1}}}]}
    proc = cli("simulate", "yuma", str(write(tmp_path, unknown)))
    assert proc.stderr.splitlines()[1:] == [
        f"  {tmp_path / 'case.json'}: epochs.0.weights: uid 7 does not exist (the case has 3 "
        "uids, 0..2)",
        f"  {tmp_path / 'case.json'}: epochs.1.weights: uid 9 does not exist (the case has 3 "
        "uids, 0..2)",
    ]


def test_missing_case_file(cli: CliRun, tmp_path: Path) -> None:
    proc = cli("simulate", "yuma", str(tmp_path / "nope.json"))
    assert proc.returncode == 2 and "no such file" in proc.stderr


def test_bench_epoch_prints_json_figures(cli: CliRun) -> None:
    proc = cli("bench", "epoch", "--uids", "64", "--validators", "8", "--repeats", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert figures["uids"] == 64 and figures["validators"] == 8
    assert figures["median_ms"] > 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--uids", "1"], "--uids 1"),
        (["--uids", "8", "--validators", "9"], "--validators 9"),
        (["--repeats", "0"], "--repeats 0"),
        (["--no-yuma3"], "--liquid-alpha needs --yuma3"),
    ],
)
def test_bench_epoch_rejects_bad_flags(cli: CliRun, args: list[str], expected: str) -> None:
    proc = cli("bench", "epoch", *args)
    assert proc.returncode == 2
    assert expected in proc.stderr


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """Exit code 2, one `error: ...` line on stderr, no traceback."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.mark.parametrize(("path", "expected"), [
    ("/tmp", "is a directory, not a case file"),
    ("/bin/ls", "not a text file"),
])
def test_a_case_file_that_is_a_directory_or_binary_is_one_line(
    cli: CliRun, path: str, expected: str
) -> None:
    line = one_error_line(cli("simulate", "yuma", path))
    assert line.startswith(f"error: {path}: ") and expected in line, line


def test_a_plot_name_that_cannot_be_written_is_refused_before_the_run(
    cli: CliRun, tmp_path: Path
) -> None:
    case = write(tmp_path, CASE)
    line = one_error_line(cli("simulate", "yuma", str(case), "--plot", str(tmp_path / "x.txt")))
    assert "--plot" in line and "unsupported plot format '.txt'" in line and ".png" in line
    line = one_error_line(cli("simulate", "yuma", str(case), "--plot", str(tmp_path)))
    assert f"--plot {tmp_path}: is a directory" in line
    assert not tmp_path.with_suffix(".png").exists()  # matplotlib's old guess
    line = one_error_line(cli("simulate", "yuma", str(case), "--plot",
                              str(tmp_path / "nowhere" / "p.png")))
    assert "is not a directory" in line


def test_the_plot_is_written_under_the_name_it_is_reported_as(
    cli: CliRun, tmp_path: Path
) -> None:
    case = write(tmp_path, CASE)
    svg = tmp_path / "plot.svg"
    proc = cli("simulate", "yuma", str(case), "--plot", str(svg))
    assert proc.returncode == 0, proc.stderr
    assert f"plot written to {svg}" in proc.stderr
    assert b"<svg" in svg.read_bytes()[:400]
