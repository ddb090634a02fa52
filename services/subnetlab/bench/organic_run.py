"""Finding a running testnet's gateways: the run dir's run.json (written by `subnetlab up`).

run.json holds `ledger_url`, `api_keys_file` and `gateways` (one object per validator:
`subnet`, `netuid`, `neuron`, `url`, `fan_out`). Reading it is all a load generator needs;
every missing or malformed field is refused with its name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from subnetlab.local.testnet import RUN_INFO


@dataclass(frozen=True)
class Gateway:
    """One validator's organic gateway."""

    neuron: str
    netuid: int
    url: str
    fan_out: int


@dataclass(frozen=True)
class RunInfo:
    ledger_url: str
    api_key: str
    gateways: tuple[Gateway, ...]
    seed: int | None = None
    """The run's seed; None for a run.json from before `up` wrote one."""
    simulated: tuple[str, ...] = ()
    """The parts of the testnet that were simulated, and those that were `real`
    (`local.provenance.components`), for the bench's output to say."""
    real: tuple[str, ...] = ()

    @property
    def gateway_urls(self) -> tuple[str, ...]:
        return tuple(g.url for g in self.gateways)


def _field(data: dict[str, Any], name: str, kind: type, where: str) -> Any:
    value = data.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{where}.{name}: missing or not a {kind.__name__}")
    return value


def parse_run_info(data: Any, where: str = RUN_INFO) -> tuple[str, str, tuple[Gateway, ...]]:
    """(ledger URL, API key file, gateways) from run.json's content."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: not a JSON object")
    ledger = _field(data, "ledger_url", str, where)
    keys_file = _field(data, "api_keys_file", str, where)
    gateways = []
    for i, raw in enumerate(_field(data, "gateways", list, where)):
        at = f"{where}.gateways[{i}]"
        if not isinstance(raw, dict):
            raise ValueError(f"{at}: not an object")
        gateways.append(Gateway(_field(raw, "neuron", str, at), _field(raw, "netuid", int, at),
                                _field(raw, "url", str, at), _field(raw, "fan_out", int, at)))
    if not gateways:
        raise ValueError(f"{where}.gateways: the testnet has no validator gateway")
    return ledger, keys_file, tuple(gateways)


def read_run_info(run_dir: str | Path) -> RunInfo:
    """The testnet recorded in `run_dir`; ValueError (with the file and field) if unusable."""
    path = Path(run_dir) / RUN_INFO
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"--run-dir {run_dir}: no {RUN_INFO} (is a testnet running there? "
                         "`subnetlab up --run-dir DIR` writes it once the testnet is up)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable: {exc}") from None
    if isinstance(data, dict) and data.get("running") is False:
        raise ValueError(f"--run-dir {run_dir}: the testnet there is still starting (its "
                         f"{RUN_INFO} says running: false); try again once `subnetlab up` "
                         "shows the network running")
    ledger, keys_file, gateways = parse_run_info(data, str(path))
    try:
        keys = [k.strip() for k in Path(keys_file).read_text().splitlines() if k.strip()]
    except OSError as exc:
        raise ValueError(f"{path}.api_keys_file: {keys_file}: {exc.strerror}") from None
    if not keys:
        raise ValueError(f"{path}.api_keys_file: {keys_file} holds no key")
    return RunInfo(ledger, keys[0], gateways, *provenance(data, str(path)))


def provenance(data: dict[str, Any], where: str
               ) -> tuple[int | None, tuple[str, ...], tuple[str, ...]]:
    """(seed, simulated, real) of run.json; absent in a file from before `up` wrote them."""
    seed = data.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise ValueError(f"{where}.seed: not an integer")
    lists = []
    for name in ("simulated", "real"):
        items = data.get(name, [])
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ValueError(f"{where}.{name}: not a list of strings")
        lists.append(tuple(items))
    return seed, lists[0], lists[1]
