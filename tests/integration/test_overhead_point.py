"""`subnetlab experiment run overhead` on real processes: two quick points, each its own
testnet (ledger on an embedded Redis, sim miners, a validator with its gateway), measured
and stopped, then results.json, the figure and report.md written.

With sim miners the answers to a prompt have (nearly) the same length, so the organic
ratio lands on docs/overhead.md's expectation: broadcast N + 1, spot-check with every
answer re-checked 1 + (others + 1). The total ratio adds the validator's synthetic queries
made during the window, so it is never below the organic one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from subnetlab.experiments.overhead_ratio import expected_organic_ratio
from subnetlab.experiments.overhead_run import SPOT_CHECK_OTHERS
from tests.conftest import CliRun


def test_quick_points_measure_both_ratios_and_latency_on_real_processes(
        cli: CliRun, tmp_path: Path) -> None:
    out = tmp_path / "overhead"
    proc = cli("experiment", "run", "overhead", "--fan-out", "2",
               "--strategies", "broadcast,spot-check", "--spot-check-rates", "1",
               "--validators", "1", "--organic-rates", "4", "--durations", "3",
               "--seeds", "1", "--out", str(out), "--json", timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(r["strategy"], r["spot_check_rate"]) for r in rows] == [
        ("broadcast", 0.0), ("spot-check", 1.0)]
    for row in rows:
        assert row["requests"] == 12 and row["requests_ok"] == 12, row
        assert row["requests_failed"] == 0 and row["miners"] == SPOT_CHECK_OTHERS + 1
        expected = expected_organic_ratio(row["strategy"], 2, row["spot_check_rate"],
                                          SPOT_CHECK_OTHERS)
        assert row["expected_organic_ratio"] == pytest.approx(expected)
        # answers to one prompt differ only by a sim engine's near miss (a few characters)
        assert row["organic_ratio"] == pytest.approx(expected, rel=0.15), row
        # the counters hold the organic path and the synthetic queries made meanwhile
        assert row["total_ratio"] >= row["organic_ratio"] - 1e-9, row
        assert 0.0 <= row["synthetic_share"] < 1.0
        # sim engines report their modelled seconds: the seconds ratio is there too
        assert row["organic_seconds_ratio"] is not None
        for key in ("latency_p50_ms", "latency_p99_ms", "direct_p50_ms", "direct_p99_ms"):
            assert row[key] > 0, (key, row)
        assert row["latency_p99_ms"] >= row["latency_p50_ms"]
    doc = json.loads((out / "results.json").read_text())
    assert doc["rows"] == rows
    assert doc["command"].startswith("subnetlab experiment run overhead --fan-out 2 "
                                     "--strategies broadcast,spot-check")
    assert (out / "overhead.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "real: ledger (FastAPI on an embedded Redis)" in report
    assert "simulated: validators' reference model: the simulated oracle" in report
