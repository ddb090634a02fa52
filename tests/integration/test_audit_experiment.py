"""`subnetlab experiment run audit --quick`: one real point, end to end, through the CLI.

A real testnet (ledger, embedded Redis, miner and validator processes) runs; the block
log is replayed and Yuma recomputed from on-chain weights and stake; every evidence
document is audited. What must come out: every recomputed value equals the one the ledger
served; honest evidence passes; the real weight-copier's and lazy validator's evidence is
flagged; each signed-format fabrication is flagged only because of the miners' signatures
(nothing else in it gives it away); the old-format fabrication passes, noted unprovable.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from subnetlab.experiments.audit import field


def test_a_quick_audit_point_recomputes_yuma_and_flags_each_fabrication(tmp_path: Path
                                                                       ) -> None:
    out = tmp_path / "audit"
    proc = subprocess.run(
        [sys.executable, "-m", "subnetlab", "experiment", "run", "audit", "--quick",
         "--out", str(out), "--json"], capture_output=True, text=True, timeout=300,
        check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 1
    row = rows[0]
    print(json.dumps(row, indent=1))
    assert row["chain_replayed"] is True
    assert row["yuma_epochs"] >= 5 and row["yuma_values"] > 0
    assert row["yuma_match_rate"] == 1.0 and row["yuma_worst_difference"] <= 1e-9

    def counts(kind: str) -> tuple[int, int, int, int]:
        stem = field(kind)
        return (row[f"{stem}_documents"], row[f"{stem}_flagged"],
                row[f"{stem}_flagged_without_signatures"], row[f"{stem}_unprovable"])

    honest = counts("honest")
    assert honest[0] >= 2 and honest[1:] == (0, 0, 0)
    for kind in ("weight-copier", "lazy"):
        documents, flagged, unsigned, _ = counts(kind)
        assert documents >= 1 and flagged == unsigned == documents, (kind, counts(kind))
    for kind in ("invented", "self-signed", "replayed"):
        assert counts(f"fabricated: {kind}") == (1, 1, 0, 0), kind
    assert counts("fabricated: downgraded") == (1, 0, 0, 1)

    saved = json.loads((out / "results.json").read_text())
    assert saved["rows"] == rows and saved["quick"] is True
    assert any("fabricating copier: scripted" in s for s in saved["simulated"])
    report = (out / "report.md").read_text()
    assert "Yuma recomputed" in report and "fabricated: replayed" in report
    assert (out / "audit.png").stat().st_size > 0
