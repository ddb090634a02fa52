"""Plots of case results (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_case(name: str, records: list[dict[str, Any]], path: Path) -> None:
    """Dividends and incentive of every uid that ever received any, over epochs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in records]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    for ax, key in zip(axes, ("dividends", "incentive"), strict=True):
        series = list(zip(*(r[key] for r in records), strict=True))
        for uid, values in enumerate(series):
            if any(v > 0 for v in values):
                ax.plot(epochs, values, marker="o", label=f"uid {uid}")
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(name)
    fig.tight_layout()
    # the suffix names the format (`simulate yuma` accepts .png, .svg and .pdf), and the
    # file is written under exactly this name
    fig.savefig(path, dpi=110, format=path.suffix.lstrip(".").lower() or "png")
    plt.close(fig)
