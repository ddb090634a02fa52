"""The live view of `subnetlab up`: its columns, its fit at 80 columns, its events."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console

from subnetlab.chain.units import TOKEN
from subnetlab.cli.up_view import LiveView, render
from subnetlab.keys.keypair import Keypair
from subnetlab.local import testnet as local
from tests.unit.test_up_local import network, neuron

LONG = "miner-with-a-name-too-long-for-80-columns"


def a_testnet(tmp_path: Path) -> local.Testnet:
    """A testnet that never starts: two validators, miners (one with a long name, one a
    sybil with two further hotkeys) and a metagraph epoch in its history."""
    net, _ = network(tmp_path, neuron("validator-0", "{subnet: s, role: validator, stake: 9}"),
                     neuron("validator-1", "{subnet: s, role: validator, stake: 3}"),
                     neuron("miner-0", "{subnet: s, role: miner}"),
                     neuron(LONG, "{subnet: s, role: miner, behaviour: lazy}"),
                     neuron("sy", "{subnet: s, role: miner, behaviour: sybil, "
                                  "miner: {sybilHotkeys: 2}}"))
    runs = [local.NeuronRun(spec, Keypair.dev(f"view-{spec.metadata.name}"),
                            sybils=[Keypair.dev(f"view-sy-{i}") for i in (1, 2)]
                            if spec.metadata.name == "sy" else [])
            for spec in net.neurons]
    keys = [key for run in runs for _, key in run.labelled_keys()]
    rows = [{"hotkey": key.ss58_address, "uid": uid, "stake": (12 - uid) * TOKEN * 100,
             "incentive": 0.0 if uid < 2 else 0.1 + uid / 100, "dividends": 0.5 - uid / 10
             if uid < 2 else 0.0, "trust": 0.0 if uid < 2 else 0.9 - uid / 100,
             "validator_trust": 0.95 - uid / 10 if uid < 2 else 0.0,
             "emission": 123_456_789 + uid * TOKEN}
            for uid, key in enumerate(keys)]
    testnet = local.Testnet(net, tmp_path / "run")
    testnet.subnets.append(local.SubnetRun(net.subnets[0], 1, runs, last_epoch=3, history=[
        {"epoch": 3, "block": 60, "neurons": rows}]))
    return testnet


def expected_rows(testnet: local.Testnet) -> list[tuple[str, list[str]]]:
    """(label, the row's numbers as the view must print them) for every hotkey."""
    run = testnet.subnets[0]
    by_hotkey = {r["hotkey"]: r for r in run.history[-1]["neurons"]}
    out = []
    for neuron_run in run.neurons:
        for label, key in neuron_run.labelled_keys():
            r = by_hotkey[key.ss58_address]
            out.append((label, [str(r["uid"]), f"{r['incentive']:.4f}", f"{r['dividends']:.4f}",
                                f"{r['trust']:.4f}", f"{r['validator_trust']:.4f}",
                                f"{r['emission'] / TOKEN:.4f}"]))
    return out


def table_rows(text: str) -> list[list[str]]:
    """The header and body rows of the drawn table, as stripped cells."""
    lines = [line.replace("┃", "│") for line in text.splitlines()]
    return [[cell.strip() for cell in line.split("│")[1:-1]]
            for line in lines if line.count("│") > 3]


def test_trust_and_vtrust_are_shown_as_the_metagraph_shows_them(tmp_path: Path) -> None:
    testnet = a_testnet(tmp_path)
    out = io.StringIO()
    Console(file=out, width=200).print(render(testnet, time.monotonic()))
    header, *rows = table_rows(out.getvalue())
    assert header == ["uid", "neuron", "role", "behaviour", "stake", "incentive", "dividends",
                      "trust", "vtrust", "emission", "restarts"]
    cells = {row[1]: dict(zip(header, row, strict=True)) for row in rows}
    # a miner has trust, a validator validator trust: neither shows 0 for the other's
    assert (cells["miner-0"]["trust"], cells["miner-0"]["vtrust"]) == ("0.8800", "0.0000")
    assert (cells["validator-0"]["trust"], cells["validator-0"]["vtrust"]) == (
        "0.0000", "0.9500")


@pytest.mark.parametrize("width", [80, 100, 200])
def test_every_row_reads_on_one_line_at_any_width(tmp_path: Path, width: int) -> None:
    testnet = a_testnet(tmp_path)
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(render(testnet, time.monotonic()))
    text = console.export_text()
    assert all(cell_len(line) <= width for line in text.splitlines())
    header, *rows = table_rows(text)
    expected = expected_rows(testnet)
    assert len(rows) == len(expected)  # a line per hotkey: nothing wrapped onto a second
    for (label, numbers), row in zip(expected, rows, strict=True):
        cells = dict(zip(header, row, strict=True))
        # the numbers whole; the name whole, or its start and an ellipsis
        assert [cells[c] for c in ("uid", "incentive", "dividends", "trust", "vtrust",
                                   "emission")] == numbers, (width, row)
        name = cells["neuron"]
        assert name == label or (name.endswith("…") and len(name) >= 8
                                 and label.startswith(name[:-1])), (width, name)
    if width == 200:  # room for everything: nothing dropped or cut
        assert "behaviour" in header and all(not row[1].endswith("…") for row in rows)
    if width == 80:  # the least useful columns went first, whole
        assert "behaviour" not in header and "role" not in header


@pytest.mark.parametrize("terminal", [True, False])
def test_each_event_is_printed_once(tmp_path: Path, terminal: bool) -> None:
    testnet = a_testnet(tmp_path)
    testnet.note("seen before the view started")
    console = Console(width=120, record=True, file=io.StringIO(), force_terminal=terminal)
    with LiveView(console, testnet, time.monotonic()) as view:
        testnet.note("miner-0 crashed; restarted (#1)")
        view.refresh()
        view.refresh()
        testnet.note("ledger answering again")
        view.refresh()
    text = console.export_text()
    assert text.count("miner-0 crashed; restarted (#1)") == 1, text
    assert text.count("ledger answering again") == 1, text
    assert "subnet s (netuid 1)" in text  # and the view itself was drawn
