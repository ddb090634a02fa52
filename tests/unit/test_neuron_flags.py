"""The spec models are the neurons' settings: the flags of `miner serve` and `validator run`
take their defaults and ranges from `MinerSpec`/`ValidatorSpec`, and a spec turned into
flags (`role_args`, what `subnetlab up` and the operator's pods run) parses back into the
same spec through the real commands' parsers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pytest
import typer

from subnetlab.cli.neuron_cmds import miner_app, validator_app, validator_spec
from subnetlab.keys.keypair import Keypair
from subnetlab.miner.settings import SERVE_FLAGS, MinerSettings, SimSettings, from_serve_flags
from subnetlab.neuron.command import (
    copying_from,
    key_args,
    key_name,
    role_args,
    sybil_count,
    sybil_key_names,
)
from subnetlab.neuron.flags import (
    MINER_FLAGS,
    SIM_FLAGS,
    VALIDATOR_FLAGS,
    bounds_of,
    default_of,
    field_info,
    from_flags,
    range_text,
)
from subnetlab.specs import (
    GatewaySpec,
    MinerSpec,
    NeuronSpec,
    ReferenceSpec,
    SimBackendSpec,
    TaskMix,
    ValidatorSpec,
    load_specs,
)
from subnetlab.validator.config import MIN_INTERVAL_S, ValidatorConfig
from subnetlab.validator.gateway import GatewayConfig

EXAMPLES = sorted((Path(__file__).parents[2] / "manifests" / "examples").glob("*.yaml"))
ENGINE = "http://127.0.0.1:8000/v1"


def _command(app: typer.Typer, name: str) -> Any:
    """The command as Typer builds it (a one-command app is that command itself)."""
    command: Any = typer.main.get_command(app)
    command = command.commands[name] if hasattr(command, "commands") else command
    assert command.name == name
    return command


def _params(app: typer.Typer, name: str, args: list[str]) -> dict[str, Any]:
    """What the real command parses `args` into (by parameter name), without running it."""
    return dict(_command(app, name).make_context(name, list(args)).params)


def _by_name(command: Any) -> dict[str, Any]:
    return {str(p.name): p for p in command.params}


def test_there_are_examples_with_both_roles_and_several_backends() -> None:
    specs = [n.spec for path in EXAMPLES for n in load_specs([path]).neurons]
    assert {s.role for s in specs} == {"miner", "validator"}
    assert len({s.miner.backend.type for s in specs if s.miner}) >= 2


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_spec_round_trips_through_its_flags(path: Path) -> None:
    network = load_specs([path])
    for neuron in network.neurons:
        spec: NeuronSpec = copying_from(neuron.spec, ENGINE)  # as `subnetlab up` runs it
        args = role_args(spec, TaskMix(), ENGINE)
        if spec.role == "validator":
            assert args[:2] == ["validator", "run"]
            params = _params(validator_app, "run", args[2:])
            assert validator_spec(params) == spec.validator, neuron.metadata.name
        else:
            assert spec.miner is not None and args[:2] == ["miner", "serve"]
            name, sybils = neuron.metadata.name, sybil_count(spec)
            params = _params(miner_app, "serve", [*args[2:], *key_args(spec.wallet, name,
                                                                       sybils)])
            remote = None if isinstance(spec.miner.backend, SimBackendSpec) else ENGINE
            names = sybil_key_names(key_name(spec.wallet, name), sybils)
            assert from_serve_flags(params) == MinerSettings.from_spec(spec, remote, names)
            assert from_flags(MinerSpec, MINER_FLAGS, params).concurrency == \
                spec.miner.concurrency
            if isinstance(spec.miner.backend, SimBackendSpec):
                assert from_flags(SimBackendSpec, SIM_FLAGS, params) == spec.miner.backend
            else:
                assert (params["backend"], params["model"]) == (
                    spec.miner.backend.type, spec.miner.backend.model)
            assert params["copy_from"] == spec.miner.copy_from
        assert params["behaviour"] == spec.behaviour


def test_a_spec_with_every_validator_setting_changed_round_trips() -> None:
    changed = ValidatorSpec(sample_size=7, timeout_seconds=0.5, interval_seconds=MIN_INTERVAL_S,
                            cabal=[3, 1, 3], gateway=GatewaySpec(
                                strategy="spot-check", fan_out=5, spot_check_rate=1.0,
                                spot_check_others=8),
                            reference=ReferenceSpec(backend="vllm", url=ENGINE, model="m"))
    spec = NeuronSpec(subnet="s", role="validator", behaviour="cabal", validator=changed)
    params = _params(validator_app, "run", role_args(spec, TaskMix())[2:])
    assert validator_spec(params) == changed


@pytest.mark.parametrize(("app", "name", "model", "flags"), [
    (validator_app, "run", ValidatorSpec, VALIDATOR_FLAGS),
    (miner_app, "serve", MinerSpec, MINER_FLAGS),
])
def test_the_commands_defaults_and_ranges_are_the_models(
    app: typer.Typer, name: str, model: type[Any], flags: Any
) -> None:
    params = _by_name(_command(app, name))
    for flag in flags:
        param = params[flag.param]
        assert flag.flag in param.opts
        assert param.default == default_of(model, flag.path), flag
        # no range of the command's own: the model's bounds are the only ones
        assert (param.min, param.max) == (None, None), flag
        text = range_text(model, flag.path)
        if text:
            assert text in " ".join(str(getattr(param, "help", "")).split()), flag
        else:  # a choice: the command takes exactly the model's values
            choices = get_args(field_info(model, flag.path).annotation)
            assert choices and all(_params(app, name, [flag.flag, c])[flag.param] == c
                                   for c in choices), flag
            with pytest.raises(typer.Exit):  # the one-line usage error
                _params(app, name, [flag.flag, "not-a-choice"])


def test_miner_serve_takes_its_defaults_and_ranges_from_the_settings_model() -> None:
    """Every `miner serve` flag spells a `MinerSettings` field: its default is the model's
    (or None, not given, when giving it matters: the model's default applies), and its
    range the model's, in the help or, for the servers' shared `--max-body-bytes`, the
    same bounds."""
    params = _by_name(_command(miner_app, "serve"))
    for flag in SERVE_FLAGS:
        param = params[flag.param]
        assert flag.flag in param.opts
        assert param.default in (default_of(MinerSettings, flag.path), None), flag
        bounds = bounds_of(MinerSettings, flag.path)
        if param.min is not None or param.max is not None:
            assert (param.min, param.max) == (bounds["ge"], bounds["le"]), flag
        elif bounds:
            help_text = " ".join(str(getattr(param, "help", "")).split())
            assert range_text(MinerSettings, flag.path) in help_text, flag


def test_no_flags_mean_the_models_defaults() -> None:
    assert validator_spec(_params(validator_app, "run", [])) == ValidatorSpec()
    params = _params(miner_app, "serve", [])
    assert from_serve_flags(params) == MinerSettings()
    assert MinerSettings().sim == SimSettings()
    assert from_flags(MinerSpec, MINER_FLAGS, params) == MinerSpec()
    given = [flag for flag in SIM_FLAGS if params[flag.param] is not None]
    assert from_flags(SimBackendSpec, given, params) == SimBackendSpec()


def test_the_sim_flags_show_the_sim_specs_defaults_and_ranges() -> None:
    params = _by_name(_command(miner_app, "serve"))
    for flag in SIM_FLAGS:
        help_text = " ".join(str(getattr(params[flag.param], "help", "")).split())
        assert f"[default: {default_of(SimBackendSpec, flag.path):g}]" in help_text, flag
        assert range_text(SimBackendSpec, flag.path) in help_text, flag
        assert params[flag.param].default is None  # not given: the spec's default applies


@pytest.mark.parametrize(("args", "message"), [
    (["--interval", "0.01"], "--interval 0.01: must be at least 0.05"),
    (["--sample-size", "0"], "--sample-size 0: must be at least 1"),
    (["--sample-size", "4097"], "--sample-size 4097: must be at most 4096"),
    (["--timeout", "0"], "--timeout 0.0: must be above 0"),
    (["--fan-out", "257"], "--fan-out 257: must be at most 256"),
    (["--spot-check-rate", "1.5"], "--spot-check-rate 1.5: must be at most 1"),
    (["--spot-check-others", "9"], "--spot-check-others 9: must be at most 8"),
    (["--cabal", "70000"], "--cabal"),
])
def test_a_value_the_model_refuses_is_named_by_its_flag(args: list[str], message: str) -> None:
    with pytest.raises(ValueError) as refused:
        validator_spec(_params(validator_app, "run", args))
    assert str(refused.value).startswith(message), str(refused.value)


def test_the_minimum_interval_is_the_specs_bound() -> None:
    assert MIN_INTERVAL_S == bounds_of(ValidatorSpec, ("interval_seconds",))["ge"] == 0.05


def test_configs_are_built_from_the_spec_plus_the_runners_endpoints() -> None:
    spec = ValidatorSpec(sample_size=2, timeout_seconds=1.5, interval_seconds=0.25, cabal=[4],
                         gateway=GatewaySpec(strategy="best-of-n", fan_out=6,
                                             spot_check_rate=0.5, spot_check_others=3))
    key = Keypair.dev("flags-validator")
    config = ValidatorConfig.from_spec(spec, key, 3, "http://127.0.0.1:1",
                                       "redis://127.0.0.1:1/0", "cabal")
    assert (config.sample_size, config.timeout_s, config.round_interval_s, config.cabal,
            config.netuid, config.hotkey) == (2, 1.5, 0.25, frozenset({4}), 3, key.ss58_address)
    gateway = GatewayConfig.from_spec(spec.gateway, frozenset({"k"}), max_body_bytes=99)
    assert (gateway.default_strategy, gateway.fan_out, gateway.spot_check_rate,
            gateway.spot_check_others, gateway.max_body_bytes) == ("best-of-n", 6, 0.5, 3, 99)
    # made directly, they keep the spec's defaults and its rules
    default = ValidatorConfig(key, 1, "http://127.0.0.1:1", "redis://127.0.0.1:1/0")
    assert (default.sample_size, default.timeout_s, default.round_interval_s) == (
        ValidatorSpec().sample_size, ValidatorSpec().timeout_seconds,
        ValidatorSpec().interval_seconds)
    assert GatewayConfig(frozenset({"k"})).fan_out == GatewaySpec().fan_out
    with pytest.raises(ValueError, match=r"^spot_check_rate 2.0: must be at most 1$"):
        GatewayConfig(frozenset({"k"}), spot_check_rate=2.0)
    with pytest.raises(ValueError, match=r"^fan_out 0: must be at least 1$"):
        GatewayConfig(frozenset({"k"}), fan_out=0)


def _leaf_paths(model: type[Any], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    paths: set[tuple[str, ...]] = set()
    for name, info in model.model_fields.items():
        inner = info.annotation
        if type(None) in get_args(inner):  # an optional model: its fields
            inner = next(arg for arg in get_args(inner) if arg is not type(None))
        if isinstance(inner, type) and hasattr(inner, "model_fields"):
            paths |= _leaf_paths(inner, (*prefix, name))
        else:
            paths.add((*prefix, name))
    return paths


def test_every_setting_of_the_validator_and_sim_specs_has_its_flag() -> None:
    """A field added to the models without a flag would not reach the pods: refused here."""
    spelled_by_the_command = {("cabal",), ("reference", "backend"), ("reference", "url"),
                              ("reference", "model")}
    assert _leaf_paths(ValidatorSpec) == {f.path for f in VALIDATOR_FLAGS} | \
        spelled_by_the_command
    assert _leaf_paths(SimBackendSpec) == {f.path for f in SIM_FLAGS} | {("type",)}
    assert _leaf_paths(MinerSettings) == {f.path for f in SERVE_FLAGS} | {("sim", "type")}
    # the spec's own miner flags are among `miner serve`'s, spelling the same fields
    assert {f.flag: f.path for f in MINER_FLAGS}.items() <= \
        {f.flag: f.path for f in SERVE_FLAGS}.items()
