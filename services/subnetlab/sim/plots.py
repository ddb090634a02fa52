"""Plots of case results (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from subnetlab.sim.plot_style import looks, new_figure


def case_figure(name: str, records: list[dict[str, Any]]) -> Any:
    """Dividends and incentive of every uid that ever received any, over epochs.

    A uid has one look (colour, dashes, marker) in both panels, whichever uids each panel
    leaves out; epochs are whole numbers on the axis (a case has no epoch 2.5).
    """
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in records]
    uids = len(records[0]["dividends"]) if records else 0
    style = looks(range(uids))
    fig = new_figure(11, 4)
    axes = fig.subplots(1, 2, sharex=True)
    for ax, key in zip(axes, ("dividends", "incentive"), strict=True):
        series = list(zip(*(r[key] for r in records), strict=True))
        for uid, values in enumerate(series):
            if any(v > 0 for v in values):
                ax.plot(epochs, values, label=f"uid {uid}", **style[uid].line_kwargs())
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize="small")
    fig.suptitle(name)
    fig.tight_layout()
    return fig


def plot_case(name: str, records: list[dict[str, Any]], path: Path) -> None:
    """Draw `case_figure` to `path`."""
    # the suffix names the format (`simulate yuma` accepts .png, .svg and .pdf), and the
    # file is written under exactly this name
    case_figure(name, records).savefig(path, dpi=110,
                                       format=path.suffix.lstrip(".").lower() or "png")
