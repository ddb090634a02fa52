"""Subnet/Neuron specs: the bundled examples load, bad specs name file, field and reason."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from subnetlab.neuron.command import role_args
from subnetlab.specs import NeuronSpec, SpecError, TaskMix, load_specs, quantity_value

EXAMPLES = Path(__file__).parents[2] / "manifests" / "examples"

SUBNET = """
apiVersion: subnetlab.io/v1alpha1
kind: Subnet
metadata: {name: s}
spec: {hyperparameters: {tempo: 20}}
"""


def test_bundled_examples_load() -> None:
    default = load_specs([EXAMPLES / "default.yaml"])
    roles = [n.spec.role for n in default.neurons]
    assert roles.count("miner") == 6 and roles.count("validator") == 2
    assert [n.spec.behaviour for n in default.neurons].count("lazy") == 1
    gpu = load_specs([EXAMPLES / "gpu.yaml"])
    backends = {n.spec.miner.backend.type for n in gpu.neurons if n.spec.miner}
    assert backends == {"vllm"}
    adversarial = load_specs([EXAMPLES / "adversarial.yaml"])
    behaviours = {n.spec.behaviour for n in adversarial.neurons}
    assert {"lazy", "passthrough", "copycat", "sybil", "weight-copier"} <= behaviours
    sybil = next(n for n in adversarial.neurons if n.spec.behaviour == "sybil")
    assert sybil.spec.miner is not None and sybil.spec.miner.sybil_hotkeys == 2
    assert len(load_specs([EXAMPLES]).subnets) == 3  # a directory loads every file


def test_camel_case_hyperparameters_reach_the_chain_model() -> None:
    network = load_specs([EXAMPLES / "default.yaml"])
    hp = network.subnets[0].spec.hyperparameters
    assert hp.tempo == 20 and hp.weights_rate_limit == 5


def _neuron_file(tmp_path: Path, neuron: str) -> Path:
    path = tmp_path / "net.yaml"
    path.write_text(SUBNET + "---\napiVersion: subnetlab.io/v1alpha1\nkind: Neuron\n"
                    "metadata: {name: n}\n" + neuron + "\n")
    return path


@pytest.mark.parametrize(
    ("neuron", "expected"),
    [
        ("spec: {subnet: s, role: boss}", "spec.role: Input should be 'miner' or 'validator'"),
        ("spec: {subnet: s, role: miner, behaviour: weight-copier}",
         "spec.behaviour: 'weight-copier' is not a miner behaviour"),
        ("spec: {subnet: s, role: validator, behaviour: passthrough}",
         "spec.behaviour: 'passthrough' is not a validator behaviour"),
        ("spec: {subnet: s, role: miner, stake: -1}", "spec.stake: Input should be greater"),
        ("spec: {subnet: s, role: miner, stake: '5'}",
         "spec.stake: Input should be a valid number"),
        ("spec: {subnet: s, role: miner, stake: true}", "spec.stake: Input should be a valid"),
        ("spec: {subnet: other, role: miner}", "spec.subnet: no Subnet named 'other' (known: s)"),
        ("spec: {subnet: s, role: miner, miner: {backend: {type: tpu}}}", "spec.miner.backend"),
        ("spec: {subnet: s, role: miner, miner: {concurrency: 2.0}}",
         "spec.miner.concurrency: Input should be a valid integer"),
        ("spec: {subnet: s, role: validator, validator: {sampleSize: 0}}",
         "spec.validator.sampleSize"),
        ("spec: {subnet: s, role: validator, validator: {sampleSize: true}}",
         "spec.validator.sampleSize: Input should be a valid integer"),
        ("spec: {subnet: s, role: validator, validator: {scoring: verifiable}}",
         "spec.validator.scoring: Extra inputs are not permitted"),
        ("spec: {subnet: s, role: miner, validator: {}}",
         "spec.validator: a miner takes `miner` settings"),
        ("spec: {subnet: s, role: validator, miner: {}}",
         "spec.miner: a validator takes `validator` settings"),
        ("spec: {subnet: s, role: miner, behaviour: copycat}", "spec.miner.copyFrom: behaviour "
         "copycat needs it"),
        ("spec: {subnet: s, role: miner, behaviour: copycat, miner: {copyFrom: engine}}",
         "spec.miner.copyFrom: 'engine' must start with http:// or https://"),
        ("spec: {subnet: s, role: miner, miner: {copyFrom: 'http://engine:8000'}}",
         "spec.miner.copyFrom: only applies to behaviour copycat"),
        ("spec: {subnet: s, role: miner, behaviour: sybil, miner: {sybilHotkeys: 1, "
         "copyFrom: 'http://engine:8000'}}",
         "spec.miner.copyFrom: only applies to behaviour copycat"),
        ("spec: {subnet: s, role: miner, behaviour: sybil}",
         "spec.miner.sybilHotkeys: behaviour sybil needs it (how many further hotkeys"),
        ("spec: {subnet: s, role: miner, behaviour: sybil, miner: {concurrency: 2}}",
         "spec.miner.sybilHotkeys: behaviour sybil needs it"),
        ("spec: {subnet: s, role: miner, behaviour: sybil, miner: {sybilHotkeys: 0}}",
         "spec.miner.sybilHotkeys: Input should be greater than or equal to 1"),
        ("spec: {subnet: s, role: miner, behaviour: sybil, miner: {sybilHotkeys: 65}}",
         "spec.miner.sybilHotkeys: Input should be less than or equal to 64"),
        ("spec: {subnet: s, role: miner, behaviour: sybil, miner: {sybilHotkeys: '2'}}",
         "spec.miner.sybilHotkeys: Input should be a valid integer"),
        ("spec: {subnet: s, role: miner, miner: {sybilHotkeys: 2}}",
         "spec.miner.sybilHotkeys: only applies to behaviour sybil"),
        ("spec: {subnet: s, role: miner, behaviour: copycat, miner: {sybilHotkeys: 2, "
         "copyFrom: 'http://e:1'}}", "spec.miner.sybilHotkeys: only applies to behaviour sybil"),
        ("spec: {subnet: s, role: validator, miner: {sybilHotkeys: 2}}",
         "spec.miner: a validator takes `validator` settings"),
        ("spec: {subnet: s, role: miner, behaviour: passthrough}",
         "spec.miner.backend.type: behaviour passthrough forwards to an upstream API: it needs "
         "backend type openai (with its url and model), not sim"),
        ("spec: {subnet: s, role: miner, behaviour: passthrough, miner: {backend: "
         "{type: vllm, model: m}}}", "spec.miner.backend.type: behaviour passthrough forwards "
         "to an upstream API: it needs backend type openai (with its url and model), not vllm"),
        ("spec: {subnet: s, role: miner, miner: {backend: {type: vllm, model: m, "
         "args: [--max-model-len, '4096', --disable-log-stats]}}}",
         "spec.miner.backend.args: '--disable-log-stats' conflicts with the "
         "--enable-per-request-metrics that subnetlab passes"),
        ("spec: {subnet: s, role: miner, miner: {backend: {type: vllm, model: m, "
         "args: ['--disable-log-stats=true']}}}",
         "spec.miner.backend.args: '--disable-log-stats=true' conflicts"),
        ("spec: {subnet: s, role: miner, miner: {backend: {type: openai, url: '', model: m}}}",
         "spec.miner.backend.url: '' must start with http:// or https://"),
        ("spec: {subnet: s, role: miner, miner: {backend: {type: openai, url: 'ftp://e', "
         "model: m}}}", "spec.miner.backend.url: 'ftp://e' must start with http:// or https://"),
        ("spec: {subnet: s, role: miner, miner: {backend: {type: openai, url: 'http://e:x', "
         "model: m}}}", "spec.miner.backend.url: 'http://e:x' is not a URL"),
        ("spec: {subnet: s, role: miner, miner: {backend: {type: vllm, model: m, "
         "url: 'http:///v1'}}}", "spec.miner.backend.url: 'http:///v1' names no host"),
        ("spec: {subnet: s, role: miner, miner: {backend: {type: vllm, model: m, "
         "url: 'http://a b'}}}", "spec.miner.backend.url: 'http://a b' has spaces"),
        ("spec: {subnet: s, role: miner, miner: {backend: {type: sim, accuracy: 2}}}",
         "spec.miner.backend.accuracy: Input should be less than or equal to 1"),
        ("spec: {subnet: s, role: validator, behaviour: cabal}",
         "spec.validator.cabal: behaviour cabal needs the miner uids"),
        ("spec: {subnet: s, role: validator, behaviour: cabal, validator: {cabal: []}}",
         "spec.validator.cabal: behaviour cabal needs the miner uids"),
        ("spec: {subnet: s, role: validator, behaviour: cabal, validator: {cabal: [65535]}}",
         "spec.validator.cabal.0: Input should be less than 65535"),
        ("spec: {subnet: s, role: validator, behaviour: cabal, validator: {cabal: [-1]}}",
         "spec.validator.cabal.0: Input should be greater than or equal to 0"),
        ("spec: {subnet: s, role: validator, behaviour: cabal, validator: {cabal: ['1']}}",
         "spec.validator.cabal.0: Input should be a valid integer"),
        ("spec: {subnet: s, role: validator, validator: {cabal: [1]}}",
         "spec.validator.cabal: only applies to behaviour cabal"),
        ("spec: {subnet: s, role: miner, wallet: {devKey: a, wallet: b}}",
         "spec.wallet: give devKey or wallet, not both"),
        ("spec: {subnet: s, role: validator, validator: {reference: {url: 'http://r:1'}}}",
         "spec.validator.reference.url: only applies to backend openai or vllm"),
        ("spec: {subnet: s, role: validator, validator: {reference: {backend: vllm}}}",
         "spec.validator.reference.url: backend vllm needs it"),
        ("spec: {subnet: s, role: validator, validator: {reference: {backend: openai, "
         "url: 'r:1'}}}", "spec.validator.reference.url: "),
        ("spec: {subnet: s, role: validator, validator: {reference: {backend: tgi}}}",
         "spec.validator.reference.backend: Input should be 'sim', 'openai' or 'vllm'"),
        ("spec: {subnet: s, role: miner, resources: {requests: {cpu: abc}}}",
         "spec.resources.requests.cpu: String should match pattern"),
        ("spec: {subnet: s, role: miner, resources: {requests: {cpu: 100Mi}}}",
         "spec.resources.requests.cpu: String should match pattern"),  # a memory suffix
        ("spec: {subnet: s, role: miner, resources: {requests: {cpu: 1}}}",
         "spec.resources.requests.cpu: Input should be a valid string"),  # strict: quote it
        ("spec: {subnet: s, role: miner, resources: {limits: {memory: 1.5GB}}}",
         "spec.resources.limits.memory: String should match pattern"),
        ("spec: {subnet: s, role: miner, resources: {limits: {memory: '-1Gi'}}}",
         "spec.resources.limits.memory: String should match pattern"),
        ("spec: {subnet: s, role: miner, resources: {requests: {gpu: '1'}}}",
         "spec.resources.requests.gpu: Extra inputs are not permitted"),
        ("spec: {subnet: s, role: miner, resources: {requests: {memory: 2Gi}}}",
         "spec.resources.requests.memory: 2Gi exceeds limits.memory 1Gi (the default); a "
         "request must not exceed its limit"),
        ("spec: {subnet: s, role: miner, resources: {requests: {memory: 1100M}}}",
         "spec.resources.requests.memory: 1100M exceeds limits.memory 1Gi"),  # 1.1e9 > 2**30
        ("spec: {subnet: s, role: validator, resources: {limits: {memory: 64Mi}}}",
         "spec.resources.requests.memory: 128Mi (the default) exceeds limits.memory 64Mi"),
        ("spec: {subnet: s, role: miner, resources: {requests: {cpu: '2'}, "
         "limits: {cpu: 500m}}}", "spec.resources.requests.cpu: 2 exceeds limits.cpu 500m"),
        ("spec: {subnet: s, role: miner, resources: {limits: {cpu: 50m}}}",
         "spec.resources.requests.cpu: 100m (the default) exceeds limits.cpu 50m"),
    ],
)
def test_bad_neuron_specs_are_refused_with_file_and_field(
    tmp_path: Path, neuron: str, expected: str
) -> None:
    path = _neuron_file(tmp_path, neuron)
    with pytest.raises(SpecError) as info:
        load_specs([path])
    assert str(info.value).startswith(f"{path} (Neuron n): "), info.value
    assert expected in str(info.value)
    assert "Value error" not in str(info.value)


@pytest.mark.parametrize(
    "neuron",
    [
        "spec: {subnet: s, role: miner, miner: {backend: {type: openai, url: local-sim-engine, "
        "model: m}}}",
        "spec: {subnet: s, role: miner, miner: {backend: {type: openai, "
        "url: 'https://engine.example:8443/v1', model: m}}}",
        "spec: {subnet: s, role: miner, miner: {backend: {type: vllm, model: m, "
        "url: 'http://127.0.0.1:8000'}}}",
        "spec: {subnet: s, role: miner, behaviour: copycat, miner: {copyFrom: 'http://e:1'}}",
        "spec: {subnet: s, role: miner, behaviour: sybil, miner: {sybilHotkeys: 64}}",
        "spec: {subnet: s, role: miner, behaviour: passthrough, miner: {backend: {type: openai, "
        "url: 'http://engine:8000', model: m}}}",
        "spec: {subnet: s, role: miner, miner: {backend: {type: vllm, model: m, "
        "args: [--disable-log-requests, --max-num-seqs, '8']}}}",
        "spec: {subnet: s, role: validator, behaviour: cabal, validator: {cabal: [0, 65534]}}",
        "spec: {subnet: s, role: miner, stake: 5}",  # an int is a number
        "spec: {subnet: s, role: miner, resources: {requests: {cpu: 10m, memory: 64Mi}}}",
        "spec: {subnet: s, role: miner, resources: {requests: {cpu: '0.5', memory: 1Gi}, "
        "limits: {cpu: '1', memory: 1Gi}}}",
        "spec: {subnet: s, role: validator, resources: {requests: {memory: 1G}}}",  # < 1Gi
        "spec: {subnet: s, role: miner, resources: {limits: {cpu: 100m}}}",  # = the request
    ],
)
def test_good_neuron_specs_load(tmp_path: Path, neuron: str) -> None:
    assert len(load_specs([_neuron_file(tmp_path, neuron)]).neurons) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kind: Pod\nmetadata: {name: x}\n", "kind: must be Subnet or Neuron"),
        ("kind: Subnet\nmetadata: {name: Bad_Name}\n", "metadata.name"),
        ("kind: Subnet\nmetadata: {name: s}\nspec: {hyperparameters: {kappa: 2}}\n",
         "(Subnet s): spec.hyperparameters.kappa: Input should be less than or equal to 1"),
        ("kind: Subnet\nmetadata: {name: s}\nspec: {hyperparameters: {tempoo: 2}}\n",
         "spec.hyperparameters.tempoo: Extra inputs are not permitted"),
        ("kind: Subnet\nmetadata: {name: s}\nspec: {hyperparameters: {tempo: true}}\n",
         "spec.hyperparameters.tempo: Input should be a valid integer"),
        ("kind: Subnet\nmetadata: {name: s}\nspec: {hyperparameters: {tempo: '20'}}\n",
         "spec.hyperparameters.tempo: Input should be a valid integer"),
        ("kind: Subnet\nmetadata: {name: s}\nspec: {hyperparameters: {yuma3: 1}}\n",
         "spec.hyperparameters.yuma3: Input should be a valid boolean"),
        ("kind: Subnet\nmetadata: {name: s}\nspec: {hyperparameters: "
         "{alphaLow: 0.95, alphaHigh: 0.9}}\n",
         "spec.hyperparameters.alphaLow: must not exceed alphaHigh (0.9), got 0.95"),
        ("kind: Subnet\nmetadata: {name: s}\nspec: {hyperparameters: "
         "{minBurn: 10, burn: 5}}\n", "spec.hyperparameters.minBurn: must not exceed burn"),
        ("kind: Subnet\nmetadata: {name: s}\nspec: {hyperparameters: "
         "{burn: 200000000000}}\n", "spec.hyperparameters.burn: must not exceed maxBurn"),
        ("kind: Subnet\nmetadata: {name: s}\nspec: {tasks: {kinds: {arithmetic: 0}}}\n",
         "spec.tasks.kinds: needs at least one kind with a positive weight"),
        ("kind: Subnet\nmetadata: {name: s}\nspec: {tasks: {kinds: {sorting: -1}}}\n",
         "spec.tasks.kinds.sorting: Input should be greater than or equal to 0"),
        ("kind: Subnet\nmetadata: {name: s}\nspec: {emission: {blockEmissionTokens: '1'}}\n",
         "spec.emission.blockEmissionTokens: Input should be a valid number"),
        ("kind: Subnet\n  bad: [yaml\n", "not valid YAML"),
    ],
)
def test_bad_subnet_files(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_specs([path])
    assert str(info.value).startswith(str(path)), info.value
    assert expected in str(info.value)


def _file(path: Path, *documents: str) -> Path:
    path.write_text("---\n".join(documents))
    return path


NEURON_N = "apiVersion: subnetlab.io/v1alpha1\nkind: Neuron\nmetadata: {name: n}\n" \
    "spec: {subnet: s, role: miner}\n"


def test_network_errors_name_the_file(tmp_path: Path) -> None:
    a = _file(tmp_path / "a.yaml", SUBNET, NEURON_N)
    b = _file(tmp_path / "b.yaml", NEURON_N)
    with pytest.raises(SpecError) as info:
        load_specs([a, b])
    assert str(info.value) == (f"{b} (Neuron n): metadata.name: Neuron 'n' is defined twice "
                               f"(first in {a})")
    with pytest.raises(SpecError) as info:
        load_specs([_file(tmp_path / "c.yaml", SUBNET + "---\n" + SUBNET)])
    assert "c.yaml (Subnet s): metadata.name: Subnet 's' is defined twice" in str(info.value)
    with pytest.raises(SpecError) as info:
        load_specs([b])
    assert str(info.value).startswith(f"{b}: no Subnet")


def test_subnets_must_agree_on_the_chain_emission(tmp_path: Path) -> None:
    other = SUBNET.replace("{name: s}", "{name: t}").replace(
        "spec: {hyperparameters: {tempo: 20}}", "spec: {emission: {blockEmissionTokens: 2.0}}")
    path = _file(tmp_path / "two.yaml", SUBNET, other)
    with pytest.raises(SpecError) as info:
        load_specs([path])
    assert str(info.value).startswith(f"{path} (Subnet t): spec.emission.blockEmissionTokens: "
                                      f"2.0 differs from 1.0 of {path} (Subnet s)")
    same = _file(tmp_path / "same.yaml", SUBNET, other.replace("2.0", "1.0"))
    assert len(load_specs([same]).subnets) == 2


def test_the_network_keeps_each_resources_file(tmp_path: Path) -> None:
    a = _file(tmp_path / "a.yaml", SUBNET)
    b = _file(tmp_path / "b.yaml", NEURON_N)
    network = load_specs([a, b])
    assert network.sources == {"Subnet/s": str(a), "Neuron/n": str(b)}
    assert network.where(network.neurons[0]) == f"{b} (Neuron n)"


def test_empty_directory(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SpecError, match=r"no \.yaml files"):
        load_specs([empty])


def test_resources_default_to_the_operators_and_each_quantity_on_its_own() -> None:
    spec = NeuronSpec.model_validate({"subnet": "s", "role": "miner"})
    assert spec.resources.as_kubernetes() == {"requests": {"cpu": "100m", "memory": "128Mi"},
                                              "limits": {"memory": "1Gi"}}
    small = NeuronSpec.model_validate({"subnet": "s", "role": "miner",
                                       "resources": {"requests": {"cpu": "10m"}}})
    # a request left out keeps its default (not the limit, as Kubernetes would make it)
    assert small.resources.as_kubernetes() == {"requests": {"cpu": "10m", "memory": "128Mi"},
                                               "limits": {"memory": "1Gi"}}


@pytest.mark.parametrize(("text", "value"), [
    ("100m", Decimal("0.1")), ("2", Decimal(2)), ("0.5", Decimal("0.5")),
    ("128Mi", Decimal(128 * 2**20)), ("1G", Decimal(10**9)), ("1.5Gi", Decimal(3 * 2**29)),
    ("1k", Decimal(1000)), ("1Ki", Decimal(1024))])
def test_quantity_values(text: str, value: Decimal) -> None:
    assert quantity_value(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1mi", "1.5.2", "-1", "1 Gi", "Gi"])
def test_bad_quantities_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a quantity"):
        quantity_value(text)


def test_subnetlab_up_runs_the_same_processes_whatever_the_resources() -> None:
    """Local processes have no requests or limits: `up` ignores spec.resources."""
    plain = NeuronSpec.model_validate({"subnet": "s", "role": "miner"})
    sized = NeuronSpec.model_validate({"subnet": "s", "role": "miner", "resources": {
        "requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "2Gi"}}})
    assert role_args(plain, TaskMix()) == role_args(sized, TaskMix())


def test_every_problem_of_every_document_is_reported_at_once(tmp_path: Path) -> None:
    """Three mistakes in two documents of one file and one in another: one error names all
    four, each with its file, resource and field, instead of one per run."""
    bad_subnet = SUBNET.replace("{tempo: 20}", "{tempo: true, kappa: 2}")
    bad_neuron = NEURON_N.replace("role: miner}", "role: miner, stake: -1, mystery: 1}")
    a = _file(tmp_path / "a.yaml", bad_subnet, bad_neuron)
    b = _file(tmp_path / "b.yaml", "kind: Pod\nmetadata: {name: x}\n")
    with pytest.raises(SpecError) as info:
        load_specs([a, b])
    lines = str(info.value).splitlines()
    assert lines[0] == f"{len(lines) - 1} problems in the specs:"
    assert all(line.startswith("  ") for line in lines[1:])
    shown = "\n".join(lines[1:])
    for expected in (f"{a} (Subnet s): spec.hyperparameters.tempo: Input should be a valid "
                     "integer",
                     f"{a} (Subnet s): spec.hyperparameters.kappa: Input should be less than",
                     f"{a} (Neuron n): spec.stake: ",
                     f"{a} (Neuron n): spec.mystery: Extra inputs are not permitted",
                     f"{b}: kind: must be Subnet or Neuron, got 'Pod'"):
        assert expected in shown, shown
    assert info.value.problems == [line.strip() for line in lines[1:]]


def test_rules_between_resources_are_all_reported(tmp_path: Path) -> None:
    stray = NEURON_N.replace("{name: n}", "{name: m}").replace("subnet: s", "subnet: t")
    other = stray.replace("{name: m}", "{name: o}").replace("subnet: t", "subnet: u")
    path = _file(tmp_path / "net.yaml", SUBNET, stray, other)
    with pytest.raises(SpecError) as info:
        load_specs([path, tmp_path / "missing.yaml"])
    assert info.value.problems[0].startswith(f"{tmp_path / 'missing.yaml'}: ")
    # The rules between resources are checked once every document is valid by itself:
    assert len(info.value.problems) == 1
    with pytest.raises(SpecError) as info:
        load_specs([path])
    assert info.value.problems == [
        f"{path} (Neuron m): spec.subnet: no Subnet named 't' (known: s)",
        f"{path} (Neuron o): spec.subnet: no Subnet named 'u' (known: s)",
    ]
