"""The report figures' canvas: fixed-margin figures, panel grids, PNG encoding.

Built on ``matplotlib.figure.Figure`` with the Agg canvas directly, not through
``pyplot``: no global backend switch, no figure registry to close, and safe to call from
a worker thread of the API process. :mod:`backtest._plots` draws the charts on these.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import DateFormatter, DateLocator, MonthLocator, YearLocator
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

DPI = 90


@dataclass(frozen=True)
class Plot:
    """One rendered figure: what it shows, how to read it, and the PNG bytes."""

    title: str
    caption: str
    png_base64: str


def panel_grid(count: int, row_height: float) -> tuple[Figure, list[Axes]]:
    """Small multiples, two columns, with a fixed layout and room for a legend on top.

    The axes are not ``sharex``/``sharey``: shared axes re-propagate every autoscale to
    all panels, quadratic in the panel count; ``align_panels`` sets common limits once.
    """
    columns = 2 if count > 1 else 1
    rows = max(1, -(-count // columns))
    height = 1.0 + row_height * rows
    figure = Figure(figsize=(11, height), dpi=DPI)
    FigureCanvasAgg(figure)
    grid = figure.subplots(rows, columns, squeeze=False)
    figure.subplots_adjust(
        left=0.06, right=0.99, bottom=0.45 / height, top=1 - 0.6 / height, hspace=0.4, wspace=0.06
    )
    for axis in list(grid.flat)[count:]:
        axis.set_visible(False)
    return figure, list(grid.flat)[:count]


def align_panels(
    axes: list[Axes], dates: tuple[pd.Timestamp, pd.Timestamp], limits: tuple[float, float]
) -> None:
    """Same limits and cheap fixed date ticks on every panel; outer labels only."""
    first, last = dates
    years = max((last - first).days / 365.25, 0.0)
    # matplotlib.dates has no type annotations, hence the ignores; the unit converter
    # takes datetime64 limits, which the Axes stubs do not express.
    locator: DateLocator
    if years >= 3:
        locator = YearLocator(base=max(1, int(np.ceil(years / 6))))  # type: ignore[no-untyped-call]
        formatter = DateFormatter("%Y")  # type: ignore[no-untyped-call]
    else:
        locator = MonthLocator(interval=max(1, int(np.ceil(years * 2))))  # type: ignore[no-untyped-call]
        formatter = DateFormatter("%Y-%m")  # type: ignore[no-untyped-call]
    columns = 2 if len(axes) > 1 else 1
    for position, axis in enumerate(axes):
        axis.set_xlim(first.to_datetime64(), last.to_datetime64())  # type: ignore[arg-type]
        axis.set_ylim(*limits)
        axis.xaxis.set_major_locator(locator)
        axis.xaxis.set_major_formatter(formatter)
        axis.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        axis.tick_params(
            labelsize=8,
            labelbottom=position + columns >= len(axes),
            labelleft=position % columns == 0,
        )


def new_figure(size: tuple[float, float], bottom: float = 0.45) -> tuple[Figure, Axes]:
    """A figure with fixed margins, in inches (``bottom`` leaves room for a legend).

    Fixed margins rather than constrained layout, which would cost an extra layout pass:
    about half of each figure's render time.
    """
    width, height = size
    figure = Figure(figsize=size, dpi=DPI)
    FigureCanvasAgg(figure)
    figure.subplots_adjust(
        left=0.95 / width, right=1 - 0.15 / width, bottom=bottom / height, top=1 - 0.35 / height
    )
    return figure, figure.subplots()


def legend_patch(colour: str, label: str) -> Patch:
    """A legend entry for a filled area."""
    return Patch(facecolor=colour, edgecolor="none", label=label)


def encode_png(figure: Figure, title: str, caption: str) -> Plot:
    """The figure as a base64 PNG, with what it shows and how to read it."""
    buffer = io.BytesIO()
    # No "Software" text chunk: the PNG carries no URL or version string.
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return Plot(title, caption, base64.b64encode(buffer.getvalue()).decode("ascii"))
