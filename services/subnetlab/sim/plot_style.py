"""One look per neuron, shared by every plot (the `up --report` plots, `simulate yuma --plot`).

Why a mapping and not matplotlib's colour cycle: the cycle hands out colours in drawing
order, per axes, so a neuron that is drawn third in one plot and first in another (or is
left out of one panel) gets two colours and the reader matches the wrong lines. Here the
look is a function of the neuron's position in one list that every plot of a run shares.

Why line styles and markers too: neurons with equal numbers (two honest validators of
equal stake) draw identical lines, and the last one drawn hides the others. Each neuron
also gets its own dash pattern and marker, and earlier lines are drawn wider, so a line
drawn on top of an identical one leaves the one beneath visible at its edges.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

# matplotlib's "tab10" colours (written out: picking them needs no matplotlib import)
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
WIDEST, NARROWEST = 3.2, 1.0  # line widths, points: the first neuron's and the floor
BIGGEST_MARKER, SMALLEST_MARKER = 8.0, 3.5


@dataclass(frozen=True)
class Look:
    """How one neuron is drawn: in a line plot (`line_kwargs`) or a scatter plot."""

    colour: str
    line_style: str
    marker: str
    line_width: float
    marker_size: float

    def line_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `Axes.plot`."""
        return {"color": self.colour, "linestyle": self.line_style, "marker": self.marker,
                "linewidth": self.line_width, "markersize": self.marker_size}


def looks(neurons: Iterable[Hashable]) -> dict[Any, Look]:
    """A look per neuron, by position in `neurons` (duplicates keep their first look).

    Colours repeat after ten neurons; the dash pattern and the marker move on with each
    round of ten, so no two of the first 80 neurons look the same.
    """
    out: dict[Any, Look] = {}
    for neuron in neurons:
        if neuron in out:
            continue
        i = len(out)
        out[neuron] = Look(
            colour=COLOURS[i % len(COLOURS)],
            line_style=LINE_STYLES[(i + i // len(COLOURS)) % len(LINE_STYLES)],
            marker=MARKERS[(i + i // len(COLOURS)) % len(MARKERS)],
            line_width=max(NARROWEST, WIDEST - 0.4 * i),
            marker_size=max(SMALLEST_MARKER, BIGGEST_MARKER - 0.8 * i))
    return out


def new_figure(width: float, height: float) -> Any:
    """A matplotlib figure drawn by Agg, without pyplot: no global backend switch, no
    figure registry to close, and a renderer for `spread_labels` to measure text with."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def spread_labels(fig: Any, labels: list[Any], gap_px: float = 2.0) -> None:
    """Move the annotations `labels` of `fig` apart until no two overlap.

    Why: neurons with about the same numbers (a row of miners with no stake) sit on one
    spot, and their names printed there are unreadable on top of each other. The labels
    are taken from the lowest point up; one that overlaps a label already placed moves
    by its own height, alternately up and down, further each time, until it is clear
    (the annotation's leader line still ties it to its point). Call it after the layout
    is final (`tight_layout`): it works in the figure's pixels, and the offsets are kept
    in points, so the picture keeps its spacing at any dpi it is saved with.
    """
    if not labels:
        return
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    placed: list[Any] = []
    points_per_px = 72.0 / fig.dpi
    for label in sorted(labels, key=lambda a: (text_box(a, renderer).y0,
                                               text_box(a, renderer).x0)):
        box = text_box(label, renderer).padded(gap_px / 2)
        shift, tries = 0.0, 0
        while any(box.translated(0, shift).overlaps(other) for other in placed):
            tries += 1
            shift = box.height * ((tries + 1) // 2) * (1 if tries % 2 else -1)
        if shift:
            x, y = label.xyann
            label.xyann = (x, y + shift * points_per_px)
        placed.append(box.translated(0, shift))


def text_box(label: Any, renderer: Any) -> Any:
    """The pixels an annotation's text covers, without its leader line (an annotation's
    own extent includes the line, which may cross other labels without hiding them)."""
    from matplotlib.text import Text

    label.update_positions(renderer)
    return Text.get_window_extent(label, renderer)
