"""Organic load on a real testnet: `subnetlab up` (real ledger, sim miners, validators with
their gateways, all real processes on loopback), then `subnetlab bench organic --run-dir`
(locust headless, in its own process) against it.

Checked: no failures; each strategy's N+V ratio matches its definition in docs/overhead.md
(compared as ratios, never as times); every number in the JSON equals what the gateways'
/metrics endpoints say, read here independently; bad inputs are refused with the field named
and nothing sent.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from subnetlab.bench.organic_load import LoadConfig, answer_problem, streamed_completion
from subnetlab.local.processes import die_with_parent

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "loadtest" / "locustfile.py"
STRATEGIES = ("broadcast", "best-of-n", "spot-check")
SAMPLE = re.compile(r'^(subnetlab_organic_\w+)\{([^}]*)\} (\S+)$')


def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "SUBNETLAB_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}


def subnetlab(tmp_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "subnetlab", *args], capture_output=True,
                          text=True, timeout=timeout, env=env(tmp_path), check=False)


def organic_samples(urls: list[str]) -> dict[tuple[str, str, str], float]:
    """(metric, strategy, outcome-or-le) -> value, summed over gateways; a plain reading of
    the exposition text, independent of the package's parser."""
    out: dict[tuple[str, str, str], float] = {}
    for url in urls:
        for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
            if (m := SAMPLE.match(line)) is None or m[1].endswith("_created"):
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m[2]))
            key = (m[1], labels.get("strategy", ""), labels.get("outcome", labels.get("le", "")))
            out[key] = out.get(key, 0.0) + float(m[3])
    return out


@pytest.fixture(scope="module")
def testnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A small testnet (4 sim miners, 2 validators) with no organic traffic of its own."""
    if importlib.util.find_spec("locust") is None:
        pytest.fail("locust is not installed: pip install -e '.[dev]' (it pulls the loadtest "
                    "extra)")
    tmp = tmp_path_factory.mktemp("loadtest")
    run_dir = tmp / "run"
    log = (tmp / "up.log").open("wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "subnetlab", "up", "--miners", "4", "--validators", "2",
         "--organic-rate", "0", "--run-dir", str(run_dir)],
        stdout=log, stderr=subprocess.STDOUT, env=env(tmp), start_new_session=True,
        preexec_fn=die_with_parent())  # `up` stops its children when pytest dies
    try:
        deadline = time.monotonic() + 180
        while not _running(run_dir):
            assert up.poll() is None, (tmp / "up.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the testnet did not come up"
            time.sleep(0.5)
        yield tmp, run_dir
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(120)
        log.close()


def _running(run_dir: Path) -> bool:
    """Whether `up` says every neuron has started (run.json's `running`)."""
    try:
        return bool(json.loads((run_dir / "run.json").read_text()).get("running"))
    except FileNotFoundError:
        return False


def test_organic_load_figures_match_the_gateways(testnet: tuple[Path, Path]) -> None:
    tmp, run_dir = testnet
    urls = [g["url"] for g in json.loads((run_dir / "run.json").read_text())["gateways"]]
    assert len(urls) == 2
    before = organic_samples(urls)

    done = subnetlab(tmp, "bench", "organic", "--run-dir", str(run_dir), "--duration", "8",
                     "--users", "3", "--stream-fraction", "0.25", "--json", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    after = organic_samples(urls)
    assert isinstance(result["testnet"]["seed"], int)
    assert any("sim engines" in item for item in result["testnet"]["simulated"])
    print(json.dumps({s: {k: v for k, v in r.items() if k != "metrics"}
                      for s, r in result["strategies"].items()}))

    def delta(metric: str, strategy: str, what: str = "") -> float:
        key = (metric, strategy, what)
        return after.get(key, 0.0) - before.get(key, 0.0)

    warmup = result["warmup"]
    assert warmup["ok"] == len(urls)
    assert set(result["strategies"]) == set(STRATEGIES)
    ratio = "subnetlab_organic_overhead_ratio"
    for strategy, figures in result["strategies"].items():
        extra_count = warmup["ok"] if strategy == warmup["strategy"] else 0
        extra_sum = sum(warmup["overhead_ratios"]) if strategy == warmup["strategy"] else 0.0
        metrics = figures["metrics"]
        # customers' view: every request answered, each one counted once by a gateway
        assert figures["failures"] == 0 and metrics["requests_failed"] == 0, figures
        assert figures["requests"] > 0
        assert figures["requests"] == metrics["requests_ok"] == metrics["overhead_count"]
        assert figures["requests_by_name"].get(f"{strategy} stream", 0) > 0
        # the JSON's numbers are the endpoints' numbers
        assert metrics["requests_ok"] == delta("subnetlab_organic_requests_total", strategy,
                                               "ok") - extra_count
        assert metrics["overhead_count"] == delta(f"{ratio}_count", strategy) - extra_count
        assert metrics["overhead_sum"] == pytest.approx(
            delta(f"{ratio}_sum", strategy) - extra_sum, rel=1e-6)
        assert metrics["latency_count"] == delta("subnetlab_organic_latency_seconds_count",
                                                 strategy) - extra_count
        assert figures["overhead_ratio"]["mean"] == pytest.approx(
            metrics["overhead_sum"] / metrics["overhead_count"], abs=1e-4)
        # p50 lies in the bucket where the cumulative count first reaches half
        warm = warmup["overhead_ratios"] if strategy == warmup["strategy"] else []
        bounds = sorted((float(le), le) for (m, s, le) in after
                        if m == f"{ratio}_bucket" and s == strategy and le != "+Inf")
        cumulative = [(bound, delta(f"{ratio}_bucket", strategy, label)
                       - sum(r <= bound for r in warm)) for bound, label in bounds]
        upper = next(bound for bound, count in cumulative
                     if count >= metrics["overhead_count"] / 2)
        lower = max([1.0, *(bound for bound, _ in cumulative if bound < upper)])
        assert lower <= figures["overhead_ratio"]["p50"] <= upper, (figures, cumulative)

    # N+V by definition (docs/overhead.md): broadcast = N miners + the reference answer,
    # best-of-n = N miners, spot-check = 1 miner + a sampled re-check (rate 0.1)
    fan_out = {g["fan_out"] for g in result["testnet"]["gateways"]}
    assert fan_out == {3}
    n = 3
    mean = {s: f["overhead_ratio"]["mean"] for s, f in result["strategies"].items()}
    assert mean["broadcast"] >= mean["best-of-n"] >= mean["spot-check"] >= 1.0
    assert 0.8 <= mean["broadcast"] / (n + 1) <= 1.25, mean
    assert 0.8 <= mean["best-of-n"] / n <= 1.25, mean
    assert 0.9 <= (mean["broadcast"] / mean["best-of-n"]) / ((n + 1) / n) <= 1.1, mean
    assert mean["spot-check"] / mean["broadcast"] <= 0.5, mean


def test_table_output_and_bad_inputs_send_nothing(testnet: tuple[Path, Path]) -> None:
    tmp, run_dir = testnet
    urls = [g["url"] for g in json.loads((run_dir / "run.json").read_text())["gateways"]]
    before = organic_samples(urls)
    for args, field in [
        (["--strategy", "fastest"], "--strategy 'fastest'"),
        (["--strategy", "broadcast", "--strategy", "broadcast"], "--strategy"),
        (["--users", "0"], "--users 0"),
        (["--duration", "0"], "--duration 0"),
        (["--stream-fraction", "1.5"], "--stream-fraction 1.5"),
        (["--locustfile", str(tmp / "nope.py")], "--locustfile"),
    ]:
        bad = subnetlab(tmp, "bench", "organic", "--run-dir", str(run_dir), *args)
        assert bad.returncode == 2, (args, bad.stderr)
        assert field in bad.stderr and "Traceback" not in bad.stderr, (args, bad.stderr)
    empty = tmp / "empty-run"
    empty.mkdir(exist_ok=True)
    bad = subnetlab(tmp, "bench", "organic", "--run-dir", str(empty))
    assert bad.returncode == 2 and "run.json" in bad.stderr, bad.stderr
    (empty / "run.json").write_text(json.dumps({"ledger_url": "http://x", "gateways": []}))
    bad = subnetlab(tmp, "bench", "organic", "--run-dir", str(empty))
    assert bad.returncode == 2 and "api_keys_file" in bad.stderr, bad.stderr
    # the locustfile itself refuses a bad configuration before any user starts
    refused = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "1",
         "-t", "2s", "--gateways", "ftp://127.0.0.1:1", "--api-key", "k"],
        capture_output=True, text=True, timeout=120, env=env(tmp), check=False)
    assert refused.returncode != 0 and "gateways: 'ftp://127.0.0.1:1'" in refused.stderr
    assert organic_samples(urls) == before  # nothing reached a gateway

    table = subnetlab(tmp, "bench", "organic", "--run-dir", str(run_dir), "--strategy",
                      "spot-check", "--duration", "2", "--users", "1", timeout=300)
    assert table.returncode == 0, table.stderr[-3000:]
    assert "spot-check" in table.stdout and "N+V mean" in table.stdout
    # what the testnet was: its seed (run.json's) and its simulated and real parts
    seed = json.loads((run_dir / "run.json").read_text())["seed"]
    assert f"testnet seed: {seed}" in table.stdout
    assert "simulated: inference: sim engines" in table.stdout
    assert "real: chain: the ledger process" in table.stdout


def test_request_rules() -> None:
    """The locust user's rules (pure): config checks, stream reassembly, answer checks."""
    with pytest.raises(ValueError, match="strategies: 'fast'"):
        LoadConfig(("http://g",), "k", ("fast",))
    with pytest.raises(ValueError, match="stream_fraction"):
        LoadConfig(("http://g",), "k", ("broadcast",), 2.0)
    with pytest.raises(ValueError, match="api_key"):
        LoadConfig(("http://g",), "", ("broadcast",))
    chunks = [
        'data: {"choices": [{"delta": {"content": "4"}}]}',
        'data: {"choices": [{"delta": {"content": "2"}}], "subnetlab": '
        '{"strategy": "spot-check", "overhead_ratio": 1.0}}',
        "data: [DONE]",
    ]
    payload = streamed_completion(chunks)
    assert payload["choices"][0]["message"]["content"] == "42"
    assert answer_problem(payload, "spot-check") is None
    assert answer_problem(payload, "broadcast") == ("asked for strategy 'broadcast', "
                                                    "got 'spot-check'")
    assert answer_problem({"choices": []}, "broadcast") is not None
    assert answer_problem([], "broadcast") == "the answer is not a JSON object"
