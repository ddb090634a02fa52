"""Verdicts follow the numbers, and `experiment report` gathers results into findings.md."""

from __future__ import annotations

import json
from pathlib import Path

from subnetlab.experiments import cabal, copier, stake_quality
from tests.conftest import CliRun


def _cabal_rows(capture_from: float) -> list[dict[str, object]]:
    return [{"stake_share": s, "kappa": 0.5, "subnet_stake": size, "epochs": 4, "seed": 0,
             "cabal_incentive_share": 1.0 if s >= capture_from else 0.05,
             "cabal_dividend_share": 0.5, "cabal_emission_share": 0.5,
             "cabal_stake_tokens": size * s / (1 - s), "captured": s >= capture_from}
            for s in (0.3, 0.5, 0.7) for size in (1000.0, 100000.0)]


def test_cabal_verdict_reads_the_threshold_and_cost_off_the_rows() -> None:
    supported = cabal.verdict(_cabal_rows(0.7))
    assert supported.startswith("Supported: at kappa 0.5")
    assert "from a 0.7 stake share" in supported
    assert "2,333 tokens for a 1,000-token subnet" in supported
    assert cabal.verdict(_cabal_rows(0.3)).startswith("Not supported")
    assert cabal.verdict(_cabal_rows(0.9)).startswith("Not supported in the swept range")


def _copier_rows(yields: dict[int, list[float]]) -> list[dict[str, object]]:
    return [{"copier_stake_share": 0.2, "copiers": 1, "reveal_period": p, "churn": 0.0,
             "epochs": 4, "seed": i, "relative_yield": y, "work_saved_evaluations": 16}
            for p, ys in yields.items() for i, y in enumerate(ys)]


def test_copier_verdict_calls_a_remedy_only_when_the_cut_is_outside_the_intervals() -> None:
    assert copier.verdict(_copier_rows({0: [0.8, 0.82, 0.81], 2: [0.2, 0.21, 0.2]})
                          ).endswith("commit-reveal is a remedy.")
    assert copier.verdict(_copier_rows({0: [0.8, 0.82, 0.81], 2: [0.6, 0.61, 0.6]})
                          ).endswith("commit-reveal is a partial remedy.")
    assert copier.verdict(_copier_rows({0: [0.5, 0.9, 0.1], 2: [0.45, 0.8, 0.2]})
                          ).endswith("commit-reveal is no measurable remedy.")


def test_stake_vs_quality_verdict_compares_the_two_ranges() -> None:
    def rows(by_stake: float, by_quality: float) -> list[dict[str, object]]:
        return [{"stake_share": s, "cabal_accuracy": a, "entrants": 0, "epochs": 4, "seed": 0,
                 "cabal_incentive_share": by_stake * s + by_quality * a}
                for s in (0.2, 0.8) for a in (0.2, 0.8)]

    assert stake_quality.verdict(rows(1.0, 0.1)).startswith("Supported")
    assert stake_quality.verdict(rows(0.1, 1.0)).startswith("Not supported")


def test_report_gathers_results_into_findings(cli: CliRun, tmp_path: Path) -> None:
    findings = tmp_path / "findings"
    proc = cli("experiment", "run", "cabal", "--stake-shares", "0.3,0.7", "--kappa", "0.5",
               "--subnet-stakes", "1000", "--epochs", "4", "--seeds", "1",
               "--out", str(findings / "cabal"))
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "findings.md"
    proc = cli("experiment", "report", "--findings", str(findings), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((findings / "cabal" / "results.json").read_text())
    text = out.read_text()
    assert f"`{doc['command']}`" in text
    assert cabal.verdict(doc["rows"]) in text
    assert "](findings/cabal.png)" in text
    assert (findings / "cabal.png").read_bytes()[:4] == b"\x89PNG"


def test_report_names_the_file_it_cannot_read(cli: CliRun, tmp_path: Path) -> None:
    (tmp_path / "cabal").mkdir()
    (tmp_path / "cabal" / "results.json").write_text("{not json")
    out = tmp_path / "findings.md"
    proc = cli("experiment", "report", "--findings", str(tmp_path), "--out", str(out))
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(f"error: {tmp_path}/cabal/results.json: not JSON")
    assert not out.exists()
    (tmp_path / "cabal" / "results.json").write_text(json.dumps(
        {"experiment": "copier", "command": "x", "rows": [{}]}))
    proc = cli("experiment", "report", "--findings", str(tmp_path), "--out", str(out))
    assert "holds experiment 'copier', not 'cabal'" in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = cli("experiment", "report", "--findings", str(empty), "--out", str(out))
    assert proc.returncode == 2 and "no <experiment>/results.json in it" in proc.stderr
