"""Running locust headless in its own process, and reading its statistics.

Locust monkey-patches the standard library with gevent when imported, so it never runs
inside the `subnetlab` process: `python -m locust` is a child, configured by flags, and
reports through its `--json-file`. Locust is an optional extra (`pip install -e
'.[loadtest]'`); `locust_available` lets the CLI say so instead of failing half-way.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from subnetlab.local.testnet import quantiles

# services/subnetlab/bench/organic_locust.py -> the checkout's loadtest/locustfile.py
DEFAULT_LOCUSTFILE = Path(__file__).resolve().parents[3] / "loadtest" / "locustfile.py"

EXIT_OK, EXIT_FAILURES = 0, 1  # locust exits 1 when any request failed


class LocustError(RuntimeError):
    """Locust did not run (bad flags, crash); the message quotes its output."""


def locust_available() -> bool:
    return importlib.util.find_spec("locust") is not None


@dataclass(frozen=True)
class LocustStats:
    """Locust's own figures for one run, all request names together (and each name's
    request count): latency percentiles over every request, requests/s over the run."""

    requests: int
    failures: int
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    by_name: dict[str, int]

    def as_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "failures": self.failures,
                "requests_per_s": round(self.requests_per_s, 3),
                "latency_ms": {"p50": self.p50_ms, "p90": self.p90_ms, "p99": self.p99_ms},
                "requests_by_name": dict(sorted(self.by_name.items()))}


def parse_stats_json(entries: Any) -> LocustStats:
    """Locust's `--json-file` report: one entry per request name, with its response-time
    counts (ms, rounded as locust rounds them). Written when locust quits, after every user
    finished, so nothing in flight is missing (its periodic CSV can lag by a second)."""
    if not isinstance(entries, list):
        raise LocustError("locust's JSON report is not a list of entries")
    times: list[float] = []
    requests = failures = 0
    by_name: dict[str, int] = {}
    starts, ends = [], []
    for entry in entries:
        try:
            count, failed = int(entry["num_requests"]), int(entry["num_failures"])
            by_name[str(entry["name"])] = by_name.get(str(entry["name"]), 0) + count
            for ms, n in entry["response_times"].items():
                times.extend([float(ms)] * int(n))
            starts.append(float(entry["start_time"]))
            ends.append(float(entry["last_request_timestamp"] or entry["start_time"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise LocustError(f"locust's JSON report has an unreadable entry: {exc!r}") from None
        requests += count
        failures += failed
    span = max(ends, default=0.0) - min(starts, default=0.0)
    latency = quantiles(times)
    return LocustStats(
        requests=requests, failures=failures,
        requests_per_s=requests / span if span > 0 else 0.0,
        p50_ms=latency["p50"] or 0.0, p90_ms=latency["p90"] or 0.0,
        p99_ms=latency["p99"] or 0.0, by_name=by_name)


def locust_command(locustfile: Path, gateways: tuple[str, ...], api_key: str, strategy: str,
                   users: int, duration_s: float, stream_fraction: float, seed: int,
                   report_prefix: Path) -> list[str]:
    """The headless locust run of one strategy. `--stop-timeout` lets every user finish the
    request in flight when time is up, so locust counts exactly what the gateways served."""
    return [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless",
            "--users", str(users), "--spawn-rate", str(users),
            "--run-time", f"{max(1, round(duration_s))}s", "--stop-timeout", "60",
            "--only-summary", "--loglevel", "WARNING", "--json-file", str(report_prefix),
            "--gateways", ",".join(gateways), "--api-key", api_key, "--strategies", strategy,
            "--stream-fraction", str(stream_fraction), "--seed", str(seed)]


def run_locust(command: list[str], report_prefix: Path, timeout_s: float) -> LocustStats:
    """Run it; its statistics, failures included (locust's exit code 1 is not an error)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                              check=False)
    except subprocess.TimeoutExpired:
        raise LocustError(f"locust did not finish within {timeout_s:.0f}s") from None
    report = report_prefix.parent / f"{report_prefix.name}.json"
    if done.returncode not in (EXIT_OK, EXIT_FAILURES) or not report.exists():
        raise LocustError(f"locust exited with {done.returncode}: "
                          f"{(done.stderr or done.stdout)[-2000:]}")
    try:
        return parse_stats_json(json.loads(report.read_text()))
    except json.JSONDecodeError as exc:
        raise LocustError(f"locust's JSON report {report} is unreadable: {exc}") from None
