"""The report of a `subnetlab up` run: summary.json, report.md and its plots.

Both plots of a subnet draw each neuron in one colour (`sim.plot_style.looks`, in the
order of the specs), so a neuron is found by its colour in either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from subnetlab.local.testnet import SubnetRun, Testnet, write_json
from subnetlab.protocol.metagraph import occupied
from subnetlab.sim.plot_style import looks, new_figure, spread_labels


def write_report(testnet: Testnet, directory: Path) -> Path:
    """Write summary.json, one PNG pair per subnet and report.md; return report.md."""
    directory.mkdir(parents=True, exist_ok=True)
    summary = testnet.summary()
    write_json(directory / "summary.json", summary)
    lines = ["# subnetlab run", "",
             f"Seed: {summary['seed']} (the same specs with `subnetlab up --seed "
             f"{summary['seed']}` repeat the validators' tasks and choices, the organic "
             "prompts and the sim engines' answers; docs/testnet.md, \"Seeds\").", "",
             "## What was real and what was simulated", "",
             *[f"- real: {item}" for item in summary["real"]],
             *[f"- simulated: {item}" for item in summary["simulated"]], ""]
    for run, sub in zip(testnet.subnets, summary["subnets"], strict=True):
        name = sub["name"]
        shares_png = directory / f"{name}-emission-share.png"
        scatter_png = directory / f"{name}-stake-vs-emission.png"
        shares, scatter = subnet_figures(run, sub)
        save(shares, shares_png)
        save(scatter, scatter_png)
        latency = sub["organic_latency_ms"]
        lines += [
            f"## Subnet {name} (netuid {sub['netuid']})", "",
            f"- epochs completed: {sub['epochs']}",
            f"- N+V overhead ratio (organic, mean): {sub['overhead_ratio']}",
            f"- organic latency ms: p50 {latency['p50']}, p90 {latency['p90']}, "
            f"p99 {latency['p99']} over {sub['organic_requests']} requests "
            f"({sub['organic_failures']} failed)", "",
            "| neuron | uid | role | behaviour | stake | incentive | dividends | emission |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for n in sub["neurons"]:
            lines += [f"| {label} | {r['uid']} | {n['role']} | {n['behaviour']} | "
                      f"{r['stake']:.3f} | {r['incentive']:.4f} | {r['dividends']:.4f} | "
                      f"{r['emission']:.4f} |" for label, r in hotkey_rows(n)]
        lines += ["", f"![emission share by neuron]({shares_png.name})", "",
                  f"![stake share against emission share]({scatter_png.name})", ""]
    if summary["events"]:
        lines += ["## Events", "", *[f"- {e}" for e in summary["events"]], ""]
    report = directory / "report.md"
    report.write_text("\n".join(lines))
    return report


def subnet_figures(run: SubnetRun, sub: dict[str, Any]) -> tuple[Any, Any]:
    """A subnet's two plots (emission shares, stake against emission), from its history
    and its part of the summary, each neuron in the same colour in both."""
    labelled = [(label, key.ss58_address) for n in run.neurons
                for label, key in n.labelled_keys()]
    order = [label for label, _ in labelled]
    names = {key: label for label, key in labelled}
    return (emission_shares_figure(run.history, names, order),
            stake_vs_emission_figure(sub["neurons"], order))


def hotkey_rows(neuron: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """A summary neuron's rows, one per hotkey, labelled as the live view labels them
    (`NeuronRun.labelled_keys`): its own, then "NAME sybil I" for each further one."""
    return [(neuron["name"], neuron), *((f"{neuron['name']} sybil {i}", s)
                                        for i, s in enumerate(neuron["sybils"], 1))]


def save(fig: Any, path: Path) -> None:
    """Write a figure as PNG."""
    fig.savefig(path, dpi=100)


def emission_shares_figure(history: list[dict[str, Any]], names: dict[str, str],
                           order: list[str]) -> Any:
    """Each neuron's share of the subnet's emission, epoch by epoch.

    `names` labels hotkeys; `order` is the run's labels in spec order, which fixes each
    neuron's look. A hotkey not in `names` (deregistered, or someone else's) is shown by
    the start of its address, after the named ones.
    """
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(8, 4)
    ax = fig.subplots()
    series: dict[str, list[tuple[int, float]]] = {}
    for snapshot in history:
        total = sum(n["emission"] for n in snapshot["neurons"]) or 1
        for n in occupied(snapshot["neurons"]):  # a deregistered uid has no name
            label = names.get(n["hotkey"], n["hotkey"][:8])
            series.setdefault(label, []).append((snapshot["epoch"], n["emission"] / total))
    style = looks([*order, *sorted(series)])
    for label in style:
        if points := series.get(label):
            ax.plot([p[0] for p in points], [p[1] for p in points], label=label,
                    **style[label].line_kwargs())
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("share of emission")
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    return fig


def stake_vs_emission_figure(neurons: list[dict[str, Any]], order: list[str]) -> Any:
    """Does emission follow stake or work? Points on the diagonal: it follows stake.

    A point per hotkey (a sybil's further hotkeys too), in the neuron's colour, a square
    for a validator; names that would overlap are moved apart (`spread_labels`).
    """
    rows = [(label, n["role"], r) for n in neurons for label, r in hotkey_rows(n)]
    stake_total = sum(r["stake"] for _, _, r in rows) or 1
    emission_total = sum(r["emission"] for _, _, r in rows) or 1
    style = looks([*order, *(label for label, _, _ in rows)])
    fig = new_figure(5, 5)
    ax = fig.subplots()
    labels = []
    for label, role, r in rows:
        x, y = r["stake"] / stake_total, r["emission"] / emission_total
        colour = style[label].colour
        ax.scatter([x], [y], marker="s" if role == "validator" else "o", color=colour)
        labels.append(ax.annotate(
            label, (x, y), xytext=(4, 4), textcoords="offset points", fontsize="x-small",
            color=colour, arrowprops={"arrowstyle": "-", "color": colour, "linewidth": 0.5,
                                      "shrinkA": 0, "shrinkB": 2,
                                      "relpos": (0, 0.5)}))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    ax.set_xlabel("stake share")
    ax.set_ylabel("emission share (last epoch)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    spread_labels(fig, labels)
    return fig
