"""The plots of `up --report` and `simulate yuma --plot`, checked on the figure objects
(drawn with Agg): one colour per neuron in every plot, names that do not overlap, whole
epochs on the axis, identical lines that stay visible."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from matplotlib.colors import to_hex
from matplotlib.text import Text

from subnetlab.chain.units import TOKEN
from subnetlab.keys.keypair import Keypair
from subnetlab.local import testnet as local
from subnetlab.local.report import subnet_figures, write_report
from subnetlab.sim.plot_style import looks
from subnetlab.sim.plots import case_figure
from subnetlab.sim.yuma_case import parse_case, result_record, run_case
from tests.unit.test_up_local import network, neuron

MINERS = [f"miner-{i}" for i in range(6)]


def a_testnet(tmp_path: Path) -> local.Testnet:
    """A testnet that never starts: a validator listed last in the specs (drawing order
    and name order disagree), six miners that earn about the same with no stake (their
    points sit on one spot), a sybil with a further hotkey; three epochs of history."""
    net, _ = network(tmp_path, *(neuron(m, "{subnet: s, role: miner}") for m in MINERS),
                     neuron("sy", "{subnet: s, role: miner, behaviour: sybil, "
                                  "miner: {sybilHotkeys: 1}}"),
                     neuron("validator-0", "{subnet: s, role: validator, stake: 9}"))
    runs = [local.NeuronRun(spec, Keypair.dev(f"plot-{spec.metadata.name}"),
                            sybils=[Keypair.dev("plot-sy-1")] if spec.metadata.name == "sy"
                            else [])
            for spec in net.neurons]
    keys = [key for run in runs for _, key in run.labelled_keys()]
    history = [{"epoch": epoch, "block": 20 * epoch, "neurons": [
        {"hotkey": key.ss58_address, "uid": uid, "stake": 9 * TOKEN if uid == len(keys) - 1
         else 0, "incentive": 0.1, "dividends": 0.0,
         "emission": (5 * TOKEN if uid == len(keys) - 1 else TOKEN + uid * 1000)}
        for uid, key in enumerate(keys)]} for epoch in (1, 2, 3)]
    testnet = local.Testnet(net, tmp_path / "run")
    testnet.subnets.append(local.SubnetRun(net.subnets[0], 1, runs, history=history,
                                           last_epoch=3))
    return testnet


def figures(tmp_path: Path) -> tuple[Any, Any]:
    testnet = a_testnet(tmp_path)
    return subnet_figures(testnet.subnets[0], testnet.summary()["subnets"][0])


def test_a_neuron_has_one_colour_in_both_report_plots(tmp_path: Path) -> None:
    shares, scatter = figures(tmp_path)
    line_colours = {line.get_label(): to_hex(line.get_color())
                    for line in shares.axes[0].get_lines()}
    ax = scatter.axes[0]
    point_colours = {text.get_text(): to_hex(points.get_facecolor()[0])
                     for text, points in zip(ax.texts, ax.collections, strict=True)}
    label_colours = {text.get_text(): to_hex(text.get_color()) for text in ax.texts}
    names = [*MINERS, "sy", "sy sybil 1", "validator-0"]
    assert sorted(line_colours) == sorted(point_colours) == sorted(names)
    assert line_colours == point_colours == label_colours
    # and each neuron's own: the first ten colours are all different
    assert len(set(line_colours.values())) == len(names)


def test_the_names_in_stake_vs_emission_do_not_overlap(tmp_path: Path) -> None:
    _, scatter = figures(tmp_path)
    scatter.canvas.draw()
    renderer = scatter.canvas.get_renderer()
    boxes = {text.get_text(): Text.get_window_extent(text, renderer)
             for text in scatter.axes[0].texts}
    assert len(boxes) == len(MINERS) + 3
    overlapping = [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes.items(), 2)
                   if box_a.overlaps(box_b)]
    assert not overlapping


def test_the_report_is_written_with_both_plots(tmp_path: Path) -> None:
    report = write_report(a_testnet(tmp_path), tmp_path / "out")
    assert report.read_text().count("![") == 2
    for name in ("s-emission-share.png", "s-stake-vs-emission.png"):
        assert (tmp_path / "out" / name).read_bytes()[:4] == b"\x89PNG"


# ---- simulate yuma --plot -----------------------------------------------------------------

# two validators of equal stake: their dividends are the same line
CASE = {"name": "equal validators", "hyperparameters": {"max_allowed_validators": 2},
        "stakes": [2, 2, 0, 0],
        "epochs": [{"weights": {"0": {"2": 65535, "3": 65535}, "1": {"2": 65535, "3": 65535}}},
                   {}, {}]}


def case_plot() -> Any:
    case = parse_case(CASE, source="test")
    return case_figure(case.name, [result_record(i, r) for i, r in enumerate(run_case(case))])


def test_the_case_plot_has_whole_epochs_on_its_axis() -> None:
    fig = case_plot()
    fig.canvas.draw()
    for ax in fig.axes:
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_identical_lines_in_the_case_plot_stay_visible_and_keep_their_colour() -> None:
    fig = case_plot()
    dividends, incentive = fig.axes
    lines = {ax.get_title(): {line.get_label(): line for line in ax.get_lines()}
             for ax in fig.axes}
    assert sorted(lines["dividends"]) == ["uid 0", "uid 1"]
    assert sorted(lines["incentive"]) == ["uid 2", "uid 3"]
    for ax_lines in lines.values():
        first, second = ax_lines.values()  # identical data: the one drawn later on top
        assert list(first.get_ydata()) == list(second.get_ydata())
        # told apart by colour, dashes and marker, and the one beneath is wider
        assert (first.get_color(), first.get_linestyle(), first.get_marker()) != (
            second.get_color(), second.get_linestyle(), second.get_marker())
        assert first.get_linestyle() != second.get_linestyle()
        assert first.get_marker() != second.get_marker()
        assert first.get_linewidth() > second.get_linewidth()
        assert first.get_markersize() > second.get_markersize()
    # a uid's look is the same whichever panel it is in and whichever uids it leaves out
    style = looks(range(4))
    for ax in (dividends, incentive):
        for line in ax.get_lines():
            uid = int(line.get_label().split()[1])
            assert to_hex(line.get_color()) == style[uid].colour
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [
            line.get_label() for line in ax.get_lines()]
