"""The experiments' figures, drawn from rows alone (so `experiment report` can redraw them
from committed results). matplotlib is imported only when a figure is drawn, through
`sim.plot_style.new_figure` (Agg, no pyplot); lines take their looks from `plot_style.looks`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from subnetlab.experiments import cabal, miners, overhead, stake_quality
from subnetlab.experiments.common import Row, mean
from subnetlab.experiments.stats import summarise
from subnetlab.sim.plot_style import looks, new_figure

DPI = 110


def _errorbar_lines(ax: Any, rows: Sequence[Row], line_key: str, x: str, metric: str,
                    label: str) -> None:
    """A line per value of `line_key`: mean of `metric` against `x`, 95% bars over seeds."""
    values = sorted({r[line_key] for r in rows})
    style = looks(values)
    for value in values:
        points = summarise(rows, (x,), metric, _equals(line_key, value))
        points.sort()
        kwargs = style[value].line_kwargs()
        ax.errorbar([p[0][0] for p in points], [p[1] for p in points],
                    yerr=[p[2] for p in points], label=f"{label} {value}", capsize=3, **kwargs)


def _equals(key: str, value: object) -> Callable[[Row], bool]:
    return lambda row: bool(row[key] == value)


def cabal_figure(rows: Sequence[Row], path: Path) -> None:
    """Capture against stake share (a line per kappa); cost of capture against subnet stake."""
    fig = new_figure(11, 4.2)
    left, right = fig.subplots(1, 2)
    _errorbar_lines(left, rows, "kappa", "stake_share", "cabal_incentive_share", "kappa")
    left.axhline(cabal.CAPTURE, color="grey", linewidth=0.8, linestyle=":")
    left.axvline(0.5, color="grey", linewidth=0.8, linestyle=":")
    left.set(xlabel="cabal's share of validator stake", ylabel="cabal miners' incentive share",
             title="capture (mean over seeds and subnet sizes, 95% CI)", ylim=(-0.05, 1.05))
    left.legend(fontsize=8)
    thresholds = cabal.capture_thresholds(rows)
    kappas = sorted({k for k, _ in thresholds})
    style = looks(kappas)
    for kappa in kappas:
        points = sorted((size, cabal.capture_cost(t, size))
                        for (k, size), t in thresholds.items() if k == kappa and t is not None)
        if points:
            right.plot([p[0] for p in points], [p[1] for p in points], label=f"kappa {kappa}",
                       **style[kappa].line_kwargs())
    sizes = sorted({s for _, s in thresholds})
    right.plot(sizes, sizes, color="grey", linewidth=0.8, linestyle=":", label="= subnet stake")
    right.set(xscale="log", yscale="log", xlabel="subnet's honest stake (tokens)",
              ylabel="cabal stake needed to capture (tokens)", title="cost of capture")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)


def copier_figure(rows: Sequence[Row], path: Path) -> None:
    """Relative yield against reveal period, a line per copier stake share."""
    fig = new_figure(7, 4.2)
    ax = fig.subplots()
    _errorbar_lines(ax, rows, "copier_stake_share", "reveal_period", "relative_yield",
                    "copier stake")
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    ax.set(xlabel="commit-reveal period (epochs; 0 = off)",
           ylabel="copier dividends per stake / honest",
           title="what copying weights earns (mean over seeds, copiers, churn; 95% CI)")
    ax.set_xticks(sorted({r["reveal_period"] for r in rows}))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)


def stake_quality_figure(rows: Sequence[Row], path: Path) -> None:
    """Heatmap of the cabal miners' incentive over (stake share, accuracy); the cabal
    side's share over time once entrants choose sides (a line per stake share)."""
    stakes, accs, grid = stake_quality.heatmap(rows)
    fig = new_figure(11, 4.2)
    left, right = fig.subplots(1, 2)
    image = left.imshow(grid, origin="lower", aspect="auto", vmin=0, vmax=1, cmap="viridis")
    left.set_xticks(range(len(stakes)), [f"{s:g}" for s in stakes])
    left.set_yticks(range(len(accs)), [f"{a:g}" for a in accs])
    left.set(xlabel="cabal's share of validator stake", ylabel="cabal miners' accuracy",
             title="cabal miners' incentive share")
    fig.colorbar(image, ax=left)
    for i, line in enumerate(grid):
        for j, value in enumerate(line):
            left.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8,
                      color="black" if value > 0.6 else "white")
    low = min(accs)
    style = looks(stakes)
    for s in stakes:
        series = [r["cabal_side_share_series"] for r in rows
                  if r["stake_share"] == s and r["cabal_accuracy"] == low]
        if series and series[0]:
            averaged = [mean(col) for col in zip(*series, strict=True)]
            right.plot(range(1, len(averaged) + 1), averaged, label=f"stake {s:g}",
                       **style[s].line_kwargs())
    right.set(xlabel="epochs since the entrants arrived", ylabel="cabal side's incentive share",
              title=f"entrants choose sides (cabal accuracy {low:g})", ylim=(-0.05, 1.05))
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)



def miners_figure(rows: Sequence[Row], path: Path) -> None:
    """Net profit per operator and detection rate against the spot-check rate, a line per
    miner type (mean over seeds and every other swept quantity, 95% CI)."""
    long = miners.long_rows(rows)
    fig = new_figure(11, 4.2)
    left, right = fig.subplots(1, 2)
    _errorbar_lines(left, long, "miner", "spot_check_rate", "profit", "miner")
    left.axhline(0.0, color="grey", linewidth=0.8, linestyle=":")
    left.set(xlabel="spot-check rate", ylabel="net profit per operator (USD/day)",
             title="emission earned minus cost (cost model defaults)")
    left.legend(fontsize=8)
    _errorbar_lines(right, long, "miner", "spot_check_rate", "detection", "miner")
    right.set(xlabel="spot-check rate", ylabel="share of epochs caught",
              title="how often spot-checks catch each type", ylim=(-0.05, 1.05))
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)


def overhead_figure(rows: Sequence[Row], path: Path) -> None:
    """Organic and total ratio against fan-out N (a line per strategy and V, the 1x
    baseline drawn), and the gateway's latency over one miner called directly."""
    fig = new_figure(15, 4.4)
    panels = fig.subplots(1, 3)
    top_rate = max(r["organic_rate"] for r in rows)
    lined = [{**r, "line": overhead.line_of(r)} for r in rows]
    for ax, metric, pick, ylabel, title in (
        (panels[0], "organic_ratio", lambda r: True, "tokens per delivered organic token",
         "organic ratio (organic path only)"),
        (panels[1], "total_ratio", lambda r: r["organic_rate"] == top_rate,
         "tokens per delivered organic token", f"total ratio (synthetic included), "
         f"{top_rate:g} requests/s"),
        (panels[2], "latency_p50_x", lambda r: True, "gateway p50 / one miner's p50",
         "latency against calling one miner"),
    ):
        chosen = [r for r in lined if pick(r) and r.get(metric) is not None]
        lines = sorted({r["line"] for r in chosen})
        style = looks(lines)
        for line in lines:
            points = sorted(summarise(chosen, ("fan_out",), metric, _equals("line", line)))
            ax.errorbar([p[0][0] for p in points], [p[1] for p in points],
                        yerr=[p[2] for p in points], label=line, capsize=3,
                        **style[line].line_kwargs())
        ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":", label="1x")
        ax.set(xlabel="fan-out N", ylabel=ylabel, title=title)
        ax.set_xticks(sorted({r["fan_out"] for r in rows}))
        ax.legend(fontsize=7)
    fig.suptitle("N+V overhead (mean over seeds and organic rates, 95% CI)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
