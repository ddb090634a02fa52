"""The report of a `subnetlab up` run: summary.json, report.md and its plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from subnetlab.local.testnet import Testnet, write_json
from subnetlab.protocol.metagraph import occupied


def write_report(testnet: Testnet, directory: Path) -> Path:
    """Write summary.json, one PNG pair per subnet and report.md; return report.md."""
    directory.mkdir(parents=True, exist_ok=True)
    summary = testnet.summary()
    write_json(directory / "summary.json", summary)
    lines = ["# subnetlab run", ""]
    for run, sub in zip(testnet.subnets, summary["subnets"], strict=True):
        name = sub["name"]
        shares_png = directory / f"{name}-emission-share.png"
        scatter_png = directory / f"{name}-stake-vs-emission.png"
        names = {key.ss58_address: label for n in run.neurons
                 for label, key in n.labelled_keys()}
        plot_emission_shares(run.history, names, shares_png)
        plot_stake_vs_emission(sub["neurons"], scatter_png)
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
            rows = [(n["name"], n), *((f"{n['name']} sybil {i}", s)
                                      for i, s in enumerate(n["sybils"], 1))]
            lines += [f"| {label} | {r['uid']} | {n['role']} | {n['behaviour']} | "
                      f"{r['stake']:.3f} | {r['incentive']:.4f} | {r['dividends']:.4f} | "
                      f"{r['emission']:.4f} |" for label, r in rows]
        lines += ["", f"![emission share by neuron]({shares_png.name})", "",
                  f"![stake share against emission share]({scatter_png.name})", ""]
    if summary["events"]:
        lines += ["## Events", "", *[f"- {e}" for e in summary["events"]], ""]
    report = directory / "report.md"
    report.write_text("\n".join(lines))
    return report


def plot_emission_shares(history: list[dict[str, Any]], names: dict[str, str],
                         path: Path) -> None:
    """Each neuron's share of the subnet's emission, epoch by epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(8, 4))
    series: dict[str, list[tuple[int, float]]] = {}
    for snapshot in history:
        total = sum(n["emission"] for n in snapshot["neurons"]) or 1
        for n in occupied(snapshot["neurons"]):  # a deregistered uid has no name
            label = names.get(n["hotkey"], n["hotkey"][:8])
            series.setdefault(label, []).append((snapshot["epoch"], n["emission"] / total))
    for label, points in sorted(series.items()):
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=label)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("share of emission")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_stake_vs_emission(neurons: list[dict[str, Any]], path: Path) -> None:
    """Does emission follow stake or work? Points on the diagonal: it follows stake."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stake_total = sum(n["stake"] for n in neurons) or 1
    emission_total = sum(n["emission"] for n in neurons) or 1
    fig, ax = plt.subplots(figsize=(5, 5))
    for n in neurons:
        x, y = n["stake"] / stake_total, n["emission"] / emission_total
        ax.scatter([x], [y], marker="s" if n["role"] == "validator" else "o")
        ax.annotate(n["name"], (x, y), fontsize="x-small")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    ax.set_xlabel("stake share")
    ax.set_ylabel("emission share (last epoch)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
