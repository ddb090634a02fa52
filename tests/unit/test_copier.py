"""Weight copying against commit-reveal, on the chain's own state machine."""

from __future__ import annotations

import json

from subnetlab.sim.copier import run_copier_experiment
from tests.conftest import CliRun


def test_commit_reveal_lowers_what_the_copier_earns() -> None:
    off = run_copier_experiment(commit_reveal=False, epochs=30)
    on = run_copier_experiment(commit_reveal=True, epochs=30)
    print("commit-reveal off:", off.as_json())
    print("commit-reveal on: ", on.as_json())
    # copying already trails honest work when quality drifts ...
    assert off.relative_yield < 1.0
    # ... and commit-reveal makes what it copies staler, so it earns less still
    assert on.relative_yield < off.relative_yield
    assert off.honest_dividends > 0 and on.honest_dividends > 0


def test_cli_prints_both_runs(cli: CliRun) -> None:
    proc = cli("simulate", "copier", "--epochs", "8", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["commit_reveal"] for r in rows] == [False, True]
    assert all(r["relative_yield"] >= 0 for r in rows)
