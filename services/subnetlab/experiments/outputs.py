"""What a sweep leaves in its directory: results.json (the rows), the figure, report.md.

results.json holds no time stamps or durations: same seed and parameters give the same
file, byte for byte, so a committed result can be checked by running its command again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from subnetlab.experiments.common import Experiment, Row

RESULTS = "results.json"
REPORT = "report.md"


def figure_name(experiment: Experiment) -> str:
    return f"{experiment.name}.png"


def document(experiment: Experiment, command: str, quick: bool, seeds: Sequence[int],
             grid: dict[str, Any], rows: Sequence[Row]) -> dict[str, Any]:
    """The content of results.json."""
    return {"experiment": experiment.name, "claim": experiment.claim,
            "command": command, "quick": quick, "seeds": list(seeds), "grid": grid,
            "simulated": list(experiment.simulated), "real": list(experiment.real),
            "rows": list(rows)}


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1) + "\n"


def report_markdown(experiment: Experiment, doc: dict[str, Any], figure: str) -> str:
    """report.md of one sweep: the claim, the command, what was simulated, the numbers."""
    rows = doc["rows"]
    lines = [f"# Experiment `{experiment.name}` (claim {experiment.claim})", "",
             f"Claim: {experiment.claim_text}.", "",
             f"Measures: {experiment.measures}.", "",
             "Re-made by:", "", "```", doc["command"], "```", "",
             f"Points: {len(rows)} ({len(doc['seeds'])} seed(s) each).", "",
             "## What was real and what was simulated", "",
             *[f"- real: {item}" for item in experiment.real],
             *[f"- simulated: {item}" for item in experiment.simulated], "",
             "## Verdict", "", experiment.verdict(rows), "",
             f"![{experiment.name}]({figure})", "",
             "## Numbers (mean ± 95% interval across seeds)", "",
             *experiment.summary(rows), ""]
    return "\n".join(lines)


def write_sweep(out: Path, experiment: Experiment, doc: dict[str, Any]) -> list[Path]:
    """Write results.json, the figure and report.md into `out`; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    results, figure, report = out / RESULTS, out / figure_name(experiment), out / REPORT
    results.write_text(dumps(doc))
    experiment.figure(doc["rows"], figure)
    report.write_text(report_markdown(experiment, doc, figure.name))
    return [results, figure, report]
