"""The CRDs: generated from the spec models, structural, committed up to date."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
import yaml
from pydantic import BaseModel, Field

from subnetlab.chain.hyperparameters import Hyperparameters
from subnetlab.k8s.crds import KINDS, NEURON, SUBNET, crd, file_name, rendered
from subnetlab.k8s.schema import SchemaError, model_schema
from subnetlab.specs import TASK_KINDS, MinerSpec, NeuronSpec, SubnetSpec

CRD_DIR = Path(__file__).parents[2] / "manifests" / "crds"
FORBIDDEN = {"$ref", "$defs", "anyOf", "oneOf", "allOf", "const", "title", "propertyNames",
             "discriminator"}


def walk(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path."""
    if not isinstance(node, dict):
        return
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}.*")


def test_committed_crds_are_what_the_models_generate() -> None:
    for name, text in rendered().items():
        committed = CRD_DIR / name
        assert committed.is_file(), f"{committed} is missing: run `subnetlab crds generate`"
        assert committed.read_text() == text, f"{committed} is stale: run `subnetlab crds generate`"
    assert sorted(p.name for p in CRD_DIR.glob("*.yaml")) == sorted(rendered())


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_schemas_are_structural(kind: Any) -> None:
    root = crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    nodes = list(walk(root))
    assert len(nodes) > 30
    for path, node in nodes:
        assert "type" in node, f"{path}: no type"
        assert not FORBIDDEN & set(node), f"{path}: {FORBIDDEN & set(node)}"
        assert node.get("additionalProperties") is not False, path
        assert not ("properties" in node and "additionalProperties" in node), path
        if "default" in node and node["type"] == "string" and "enum" in node:
            assert node["default"] in node["enum"], path


@pytest.mark.parametrize(("kind", "model"), [(SUBNET, SubnetSpec), (NEURON, NeuronSpec)],
                         ids=["Subnet", "Neuron"])
def test_every_spec_field_is_in_the_schema_in_camel_case(kind: Any, model: type[BaseModel]) -> None:
    spec = crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    wanted = {f.alias or name for name, f in model.model_fields.items()}
    assert set(spec["properties"]) == wanted


def test_hyperparameters_keep_bounds_and_defaults_in_camel_case() -> None:
    hp = model_schema(SubnetSpec)["properties"]["hyperparameters"]["properties"]
    assert hp["weightsRateLimit"]["default"] == Hyperparameters().weights_rate_limit
    assert hp["kappa"]["minimum"] == 0 and hp["kappa"]["maximum"] == 1
    assert hp["tempo"]["type"] == "integer" and hp["yuma3"]["type"] == "boolean"
    assert "weights_rate_limit" not in hp


def test_backend_union_becomes_one_object_with_rules() -> None:
    backend = model_schema(NeuronSpec)["properties"]["miner"]["properties"]["backend"]
    assert backend["required"] == ["type"]
    assert backend["properties"]["type"]["enum"] == ["sim", "vllm", "openai"]
    rules = {r["rule"] for r in backend["x-kubernetes-validations"]}
    assert "self.type != 'vllm' || has(self.model)" in rules
    assert "!has(self.accuracy) || self.type in ['sim']" in rules
    assert "!has(self.gpus) || self.type in ['vllm']" in rules
    # variant defaults stay with the model: none may leak into another backend type
    assert all("default" not in p for p in backend["properties"].values())


def test_cross_field_rules_of_the_models_reach_the_schema() -> None:
    neuron = model_schema(NeuronSpec)
    messages = " ".join(r["message"] for r in neuron["x-kubernetes-validations"])
    assert "behaviour" in messages and "copyFrom" in messages
    assert neuron["properties"]["role"]["x-kubernetes-validations"][0]["rule"] == "self == oldSelf"
    owner = model_schema(SubnetSpec)["properties"]["owner"]["x-kubernetes-validations"]
    assert {r["rule"] for r in owner} == {"!has(self.devKey) || !has(self.wallet)",
                                          "self == oldSelf"}  # model's rule kept, field's added


def test_every_cross_field_rule_of_the_models_is_a_cel_rule_naming_the_field() -> None:
    subnet = model_schema(SubnetSpec)
    hp = subnet["properties"]["hyperparameters"]["x-kubernetes-validations"]
    assert {(r["rule"], r["fieldPath"]) for r in hp} == {
        ("!has(self.alphaLow) || !has(self.alphaHigh) || self.alphaLow <= self.alphaHigh",
         ".alphaLow"),
        ("!has(self.minBurn) || !has(self.maxBurn) || self.minBurn <= self.maxBurn", ".minBurn"),
        ("!has(self.minBurn) || !has(self.burn) || self.minBurn <= self.burn", ".minBurn"),
        ("!has(self.burn) || !has(self.maxBurn) || self.burn <= self.maxBurn", ".burn")}
    tasks = subnet["properties"]["tasks"]["x-kubernetes-validations"]
    assert [r["fieldPath"] for r in tasks] == [".kinds"]
    assert all(f"self.kinds.{kind} > 0.0" in tasks[0]["rule"] for kind in TASK_KINDS)
    neuron = model_schema(NeuronSpec)
    paths = {r["message"]: r["fieldPath"] for r in neuron["x-kubernetes-validations"]}
    assert paths["behaviour cabal needs validator.cabal (the miner uids to boost)"] == ".validator"
    assert paths["miner.copyFrom only applies to behaviour copycat"] == ".miner"
    cabal = neuron["properties"]["validator"]["properties"]["cabal"]
    assert cabal["maxItems"] == 256
    assert cabal["items"] == {"type": "integer", "minimum": 0, "maximum": 65535,
                              "exclusiveMaximum": True}
    copy_from = neuron["properties"]["miner"]["properties"]["copyFrom"]
    assert copy_from["minLength"] == 1 and copy_from["maxLength"] == 2048
    assert "isURL(self)" in copy_from["x-kubernetes-validations"][0]["rule"]


def test_the_miner_cli_rules_are_cel_rules_naming_the_field() -> None:
    """sybil needs sybilHotkeys (and only sybil takes it), passthrough needs an openai
    backend, and vLLM args must not turn off the per-request metrics."""
    neuron = model_schema(NeuronSpec)
    rules = {r["message"]: r for r in neuron["x-kubernetes-validations"]}
    needs = rules["behaviour sybil needs miner.sybilHotkeys (how many further hotkeys its "
                  "engine serves, at least 1)"]
    assert needs["fieldPath"] == ".miner.sybilHotkeys"
    assert needs["rule"] == ("self.behaviour != 'sybil' || (has(self.miner) && "
                             "has(self.miner.sybilHotkeys))")
    assert rules["miner.sybilHotkeys only applies to behaviour sybil"]["fieldPath"] == \
        ".miner.sybilHotkeys"
    passthrough = rules["behaviour passthrough forwards to an upstream API: it needs "
                        "miner.backend type openai"]
    assert passthrough["fieldPath"] == ".miner.backend.type"
    assert "self.miner.backend.type == 'openai'" in passthrough["rule"]
    miner = neuron["properties"]["miner"]["properties"]
    assert miner["sybilHotkeys"] == {
        "type": "integer", "minimum": 1, "maximum": 64, "nullable": True,
        "description": MinerSpec.model_fields["sybil_hotkeys"].description}
    args = miner["backend"]["properties"]["args"]
    assert args["maxItems"] == 256 and args["items"] == {"type": "string", "maxLength": 4096}
    (rule,) = args["x-kubernetes-validations"]  # on the list itself: the error names args
    assert rule["rule"] == ("!self.exists(a, a == '--disable-log-stats' || "
                            "a.startsWith('--disable-log-stats='))")
    assert "--enable-per-request-metrics" in rule["message"]


def test_a_field_several_backends_share_keeps_every_constraint() -> None:
    backend = model_schema(NeuronSpec)["properties"]["miner"]["properties"]["backend"]
    url = backend["properties"]["url"]
    assert url["minLength"] == 1 and url["maxLength"] == 2048  # `url: ""` is refused
    assert url["nullable"] is True  # vllm's is optional; openai's is required by a rule
    lifted = {r["rule"].split(" || ")[0]: r for r in backend["x-kubernetes-validations"]
              if "isURL" in r["rule"]}
    assert set(lifted) == {"self.type != 'vllm'", "self.type != 'openai'"}
    assert "self.url == 'local-sim-engine'" in lifted["self.type != 'openai'"]["rule"]
    assert "local-sim-engine" not in lifted["self.type != 'vllm'"]["rule"]
    assert all(r["fieldPath"] == ".url" and "isURL(self.url)" in r["rule"]
               for r in lifted.values())


class _Short(BaseModel):
    type: Literal["short"] = "short"
    name: str = Field(max_length=4)


class _Long(BaseModel):
    type: Literal["long"] = "long"
    name: str = Field(max_length=40)


class _Disagreeing(BaseModel):
    value: Annotated[_Short | _Long, Field(discriminator="type")]


def test_variants_that_disagree_on_a_constraint_are_refused() -> None:
    with pytest.raises(SchemaError, match=r"_Disagreeing\.value\.name: the variants disagree "
                                          r"on \['maxLength'\]"):
        model_schema(_Disagreeing)


def test_names_columns_and_subresources() -> None:
    for kind in KINDS:
        spec = crd(kind)["spec"]
        version = spec["versions"][0]
        assert version["subresources"] == {"status": {}}
        assert spec["names"]["shortNames"] and spec["names"]["categories"] == ["subnetlab"]
        columns = {c["name"] for c in version["additionalPrinterColumns"]}
        assert {"Netuid", "Phase", "Stake", "Age"} <= columns
    neuron_columns = {c["name"] for c in crd(NEURON)["spec"]["versions"][0][
        "additionalPrinterColumns"]}
    assert {"Uid", "Incentive"} <= neuron_columns
    assert file_name(NEURON) == "subnetlab.io_neurons.yaml"
    subnet = yaml.safe_load(rendered()[file_name(SUBNET)])
    assert subnet["metadata"]["name"] == "subnets.subnetlab.io"


class _Mixed(BaseModel):
    value: int | str


class _Tagless(BaseModel):
    kind: Literal["a"] | Literal["b"] = "a"
    size: int = Field(1, gt=0)


def test_unsupported_shapes_are_refused_naming_the_field() -> None:
    with pytest.raises(SchemaError, match=r"_Mixed\.value: only Optional\[X\] unions"):
        model_schema(_Mixed)
    schema = model_schema(_Tagless)  # a Literal union is a plain enum: supported
    assert schema["properties"]["kind"]["enum"] == ["a", "b"]
    assert schema["properties"]["size"] == {"default": 1, "exclusiveMinimum": True,
                                            "minimum": 0, "type": "integer"}


def test_generate_and_check_commands(tmp_path: Path, cli: Any) -> None:
    out = tmp_path / "crds"
    done = cli("crds", "generate", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(rendered())
    assert cli("crds", "generate", "--check", "--out", str(out)).returncode == 0
    (out / file_name(NEURON)).write_text("stale\n")
    stale = cli("crds", "generate", "--check", "--out", str(out))
    assert stale.returncode == 1 and "subnetlab.io_neurons.yaml" in stale.stderr
    assert (out / file_name(NEURON)).read_text() == "stale\n"  # --check writes nothing
    blocker = tmp_path / "file"
    blocker.write_text("")
    refused = cli("crds", "generate", "--out", str(blocker))
    assert refused.returncode == 2 and "--out" in refused.stderr


def test_resources_are_quantities_with_a_request_within_its_limit_rule() -> None:
    resources = model_schema(NeuronSpec)["properties"]["resources"]
    requests, limits = (resources["properties"][k]["properties"] for k in ("requests", "limits"))
    assert requests["cpu"]["default"] == "100m" and requests["memory"]["default"] == "128Mi"
    assert limits["memory"]["default"] == "1Gi" and "default" not in limits["cpu"]
    for quantity in (*requests.values(), *limits.values()):
        assert quantity["type"] == "string" and quantity["pattern"] and quantity["maxLength"]
    rules = {r["fieldPath"]: r["rule"] for r in resources["x-kubernetes-validations"]}
    assert set(rules) == {".requests.cpu", ".requests.memory"}
    # what is not written is compared as its default, as the model does
    assert "'128Mi'" in rules[".requests.memory"] and "'1Gi'" in rules[".requests.memory"]
    assert rules[".requests.cpu"].startswith("!has(self.limits) || !has(self.limits.cpu)")
    assert all("quantity(" in rule and "compareTo" in rule for rule in rules.values())


def test_outside_a_checkout_the_default_folders_are_named_not_their_files(
        tmp_path: Path) -> None:
    for args in (["--check"], []):
        proc = subprocess.run([sys.executable, "-m", "subnetlab", "crds", "generate", *args],
                              capture_output=True, text=True, timeout=120, check=False,
                              cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip() == (
            f"error: --out: manifests and helm/subnetlab are not in {tmp_path}: run in the "
            "repository's root, or give --out DIR"), proc.stderr
        assert list(tmp_path.iterdir()) == []  # no repository layout made up here
    missing = subprocess.run([sys.executable, "-m", "subnetlab", "crds", "generate", "--check",
                              "--out", "crds"], capture_output=True, text=True, timeout=120,
                             check=False, cwd=tmp_path)
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: missing CRDs: crds/"), missing.stderr
    assert "stale" not in missing.stderr and "generate --out crds`" in missing.stderr
