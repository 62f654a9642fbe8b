"""The back-test report's figures, each rendered to a base64 PNG for a data URI.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas directly, not
through ``pyplot``: no global backend switch, no figure registry to close, and safe to
call from a worker thread of the API process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import TABLEAU_COLORS
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from backtest._canvas import (
    Plot,
    align_panels,
    encode_png,
    legend_patch,
    new_figure,
    panel_grid,
)
from backtest._metrics import drawdown, rolling_sharpe

EQUAL_WEIGHT = "equal_weight"
INDEX = "index"
TRADING_DAYS = 252
# Lines are thinned to about this many points: ~2 per pixel column at the figure width,
# so the picture is unchanged while 10 strategies x 5,800 days stay fast to draw.
MAX_LINE_POINTS = 1_500
# Tickers drawn in their own colour in the weights panels; the rest share "other".
MAX_TICKERS_SHOWN = 8

# Tableau's ten colours without grey (1/N is drawn in grey), then three darker tones.
_DARKER = ["#393b79", "#ad494a", "#637939"]
_PALETTE = [str(c) for n, c in TABLEAU_COLORS.items() if n != "tab:gray"] + _DARKER
_OTHER_COLOUR = "#a0a0a0"
_CASH_COLOUR = "#efe3bf"


def render_plots(
    returns: pd.DataFrame,
    weights: pd.DataFrame,
    turnover: pd.DataFrame,
    strategies: Sequence[str],
    risk_free_rate: float = 0.0,
) -> list[Plot]:
    """Every figure of the report, in reading order; figures without data are skipped.

    Parameters
    ----------
    returns, weights, turnover
        The back-test's long frames (see ``render_report``).
    strategies
        Display order; it also fixes each strategy's colour across figures.
    risk_free_rate
        Annual rate of the rolling Sharpe ratio, as in the metrics.
    """
    styles = _strategy_styles(strategies)
    net = _net_returns(returns, strategies)
    plots: list[Plot] = []
    if not net.empty:
        plots.append(_equity_plot(net, styles))
        plots.append(_drawdown_plot(net, styles))
        if len(net) > TRADING_DAYS:
            plots.append(_rolling_sharpe_plot(net, styles, risk_free_rate))
    if not weights[weights["strategy"].astype(str) != INDEX].empty:
        end = net.index.max() if not net.empty else None
        plots.append(_weights_plot(weights, strategies, end))
    if not turnover[turnover["strategy"].astype(str) != INDEX].empty:
        plots.append(_turnover_plot(turnover, strategies, styles))
    return plots


@dataclass(frozen=True)
class _Style:
    colour: str
    linestyle: str
    linewidth: float


def _strategy_styles(strategies: Sequence[str]) -> dict[str, _Style]:
    """1/N in dashed grey and the index in black, so the references stand out."""
    styles: dict[str, _Style] = {}
    colours = iter(_PALETTE * (len(strategies) // len(_PALETTE) + 1))
    for name in strategies:
        if name == EQUAL_WEIGHT:
            styles[name] = _Style("#555555", "--", 1.4)
        elif name == INDEX:
            styles[name] = _Style("#000000", ":", 1.6)
        else:
            styles[name] = _Style(next(colours), "-", 1.1)
    return styles


def _net_returns(returns: pd.DataFrame, strategies: Sequence[str]) -> pd.DataFrame:
    """Daily net returns, one column per strategy in display order, dates ascending."""
    if returns.empty:
        return pd.DataFrame()
    wide = returns.pivot_table(
        index="date", columns="strategy", values="net_return", aggfunc="sum", sort=True
    )
    wide.index = pd.DatetimeIndex(wide.index)
    return wide.loc[:, [s for s in strategies if s in wide.columns]].astype(float)


def _thin(frame: pd.DataFrame, keep: str) -> pd.DataFrame:
    """At most ~MAX_LINE_POINTS rows: each bucket of rows keeps its last or lowest value.

    ``keep="min"`` preserves the depth of every drawdown, which a plain stride would cut.
    """
    if len(frame) <= MAX_LINE_POINTS:
        return frame
    size = int(np.ceil(len(frame) / MAX_LINE_POINTS))
    buckets = np.arange(len(frame)) // size
    grouped = frame.groupby(buckets)
    thinned = grouped.min() if keep == "min" else grouped.last()
    thinned.index = pd.DatetimeIndex(frame.index.to_series().groupby(buckets).last())
    return thinned


def _label(text: str) -> str:
    """Text shown literally by matplotlib: no mathtext, no hidden ``_``-prefixed labels."""
    escaped = text.replace("$", r"\$")
    return f" {escaped}" if escaped.startswith("_") else escaped


LEGEND_COLUMNS = 5


def _per_strategy(net: pd.DataFrame, series_of: Callable[[pd.Series], pd.Series]) -> pd.DataFrame:
    """``series_of`` applied to each strategy's returns over its own dates (no NaN)."""
    return pd.DataFrame({name: series_of(net[name].dropna()) for name in net.columns})


def _line_chart(
    frame: pd.DataFrame, styles: dict[str, _Style], height: float, title: str, ylabel: str
) -> tuple[Figure, Axes]:
    """One line per strategy, legend below the axes (it would hide lines inside them)."""
    legend_rows = -(-len(frame.columns) // LEGEND_COLUMNS)
    figure, axis = new_figure((9, height + 0.22 * legend_rows), bottom=0.5 + 0.22 * legend_rows)
    for name in frame.columns:
        style = styles[str(name)]
        axis.plot(
            frame.index,
            frame[name].to_numpy(float),
            label=_label(str(name)),
            color=style.colour,
            linestyle=style.linestyle,
            linewidth=style.linewidth,
        )
    axis.set(title=title, ylabel=ylabel)
    axis.grid(True, alpha=0.3)
    figure.legend(
        loc="lower center", ncol=LEGEND_COLUMNS, fontsize=8, frameon=False, borderaxespad=0.2
    )
    return figure, axis


def _equity_plot(net: pd.DataFrame, styles: dict[str, _Style]) -> Plot:
    # Each strategy starts at 1 on its own first day (NaN before it starts).
    growth = _thin((1.0 + net).cumprod(), "last")
    title, ylabel = "Growth of 1, after costs", "value of 1 invested (log scale)"
    figure, axis = _line_chart(growth, styles, 4.2, title, ylabel)
    axis.set_yscale("log")
    # Plain numbers (0.6, 2, 3) on the major and minor ticks, not 6x10^-1.
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    axis.yaxis.set_major_formatter(plain)
    axis.yaxis.set_minor_formatter(plain)
    return encode_png(
        figure,
        "Equity curves",
        "What 1 invested at the start would be worth, after trading costs. The scale is "
        "logarithmic: equal vertical distances are equal percentage moves, so a steeper "
        "slope anywhere means a faster growth rate. Compare each line with 1/N (dashed grey) "
        "and the index (dotted black).",
    )


def _drawdown_plot(net: pd.DataFrame, styles: dict[str, _Style]) -> Plot:
    drawdowns = _per_strategy(net, drawdown)
    figure, axis = _line_chart(
        _thin(drawdowns, "min"), styles, 3.6, "Drawdowns, after costs", "loss from previous peak"
    )
    axis.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    return encode_png(
        figure,
        "Drawdowns",
        "How far each strategy stood below its own previous high at each date. The deepest "
        "point is the maximum drawdown in the table; long stretches below zero are the "
        "periods an investor would have waited to get back to even.",
    )


def _rolling_sharpe_plot(
    net: pd.DataFrame, styles: dict[str, _Style], risk_free_rate: float
) -> Plot:
    sharpe = _per_strategy(net, lambda r: rolling_sharpe(r, risk_free_rate=risk_free_rate))
    figure, axis = _line_chart(
        _thin(sharpe.dropna(how="all"), "last"),
        styles,
        3.6,
        "Rolling 1-year Sharpe ratio",
        "Sharpe ratio, trailing 252 days",
    )
    axis.axhline(0.0, color="grey", linewidth=0.6)
    return encode_png(
        figure,
        "Rolling 1-year Sharpe ratio",
        "Each point is the annualised Sharpe ratio over the year ending that "
        "day. It shows whether an edge over 1/N was steady or came from a few good years; "
        "one-year Sharpe ratios swing widely even for identical strategies.",
    )


def _weights_plot(
    weights: pd.DataFrame, strategies: Sequence[str], end: pd.Timestamp | None
) -> Plot:
    # The index, bought and held, is one ticker at 100%: no panel, and no colour taken.
    weights = weights[weights["strategy"].astype(str) != INDEX]
    present = set(weights["strategy"].astype(str))
    panels = [s for s in strategies if s in present]
    shown = _top_tickers(weights)
    colours = {ticker: _PALETTE[i % len(_PALETTE)] for i, ticker in enumerate(shown)}
    colours.update(other=_OTHER_COLOUR, cash=_CASH_COLOUR)
    figure, axes = panel_grid(len(panels), row_height=2.0)
    low, high = 0.0, 1.0
    first, last = pd.Timestamp(weights["date"].min()), end or pd.Timestamp(weights["date"].max())
    for axis, name in zip(axes, panels, strict=True):
        bands = _weight_bands(weights[weights["strategy"].astype(str) == name], shown, end)
        # Longs and cash stack up from 0, shorts and borrowing stack down from 0.
        for part in (bands.clip(lower=0.0), bands.clip(upper=0.0)):
            used = [c for c in part.columns if part[c].any()]
            if used:
                axis.stackplot(
                    part.index.to_numpy(),
                    *(part[c].to_numpy(float) for c in used),
                    colors=[colours[c] for c in used],
                    step="post",
                    linewidth=0,
                )
        low = min(low, float(bands.clip(upper=0.0).sum(axis=1).min()))
        high = max(high, float(bands.clip(lower=0.0).sum(axis=1).max()))
        axis.axhline(1.0, color="black", linewidth=0.5, linestyle=":")
        axis.set_title(_label(name), fontsize=9)
    align_panels(axes, (first, last), (low - 0.02, high + 0.02))
    handles = [legend_patch(colours[key], _label(key)) for key in [*shown, "other", "cash"]]
    figure.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8)
    return encode_png(
        figure,
        "Weights over time",
        f"One panel per strategy: the target weights set at each rebalance, stacked. The "
        f"{len(shown)} largest holdings (by average weight across all strategies) have their "
        "own colour; the rest are summed as 'other'. The pale band is cash (weights summing "
        "to less than 100%); anything below 0% is a short position or borrowing. Weights "
        "drift with prices between rebalances; the panels show the targets. The index, "
        "bought and held, has no panel.",
    )


def _top_tickers(weights: pd.DataFrame) -> list[str]:
    size = weights.assign(size=weights["weight"].abs()).groupby("ticker")["size"].mean()
    ranked = size.sort_values(ascending=False, kind="stable")
    return [str(t) for t in ranked.index[:MAX_TICKERS_SHOWN]]


def _weight_bands(rows: pd.DataFrame, shown: list[str], end: pd.Timestamp | None) -> pd.DataFrame:
    """Shown tickers, 'other' and 'cash' (1 - sum of weights) by rebalance date.

    The last rebalance's weights are repeated at ``end`` so its step is drawn to the end.
    """
    wide = rows.pivot_table(
        index="date", columns="ticker", values="weight", aggfunc="sum", fill_value=0.0
    )
    wide.index = pd.DatetimeIndex(wide.index)
    wide.columns = [str(c) for c in wide.columns]
    bands = pd.DataFrame(index=wide.index)
    for ticker in shown:
        bands[ticker] = wide[ticker] if ticker in wide.columns else 0.0
    rest = [c for c in wide.columns if c not in shown]
    bands["other"] = wide[rest].sum(axis=1) if rest else 0.0
    bands["cash"] = 1.0 - wide.sum(axis=1)
    if end is not None and end > bands.index.max():
        bands.loc[end] = bands.iloc[-1]
    return bands.astype(float)


def _turnover_plot(
    turnover: pd.DataFrame, strategies: Sequence[str], styles: dict[str, _Style]
) -> Plot:
    wide = turnover.pivot_table(
        index="date", columns="strategy", values="turnover", aggfunc="sum", sort=True
    )
    wide.index = pd.DatetimeIndex(wide.index)
    series = {}
    for name in [s for s in strategies if s in wide.columns and s != INDEX]:
        values = wide[name].dropna()
        # The first rebalance invests the starting cash: 100%, the same for everyone.
        series[name] = values.iloc[1:] if len(values) and values.iloc[0] >= 0.99 else values
    figure, axes = panel_grid(len(series), row_height=1.5)
    for axis, (name, values) in zip(axes, series.items(), strict=True):
        # One vertical bar per rebalance, drawn as a single collection (fast).
        axis.vlines(
            values.index.to_numpy(), 0.0, values.to_numpy(float), colors=styles[name].colour
        )
        if len(values):
            axis.axhline(values.mean(), color="black", linewidth=0.7, linestyle="--")
        mean = f"mean {values.mean():.0%} per rebalance" if len(values) else "no later rebalance"
        axis.set_title(_label(f"{name}: {mean}"), fontsize=9)
    top = max((float(v.max()) for v in series.values() if len(v)), default=1.0)
    align_panels(axes, (wide.index.min(), wide.index.max()), (0.0, max(top, 0.01) * 1.05))
    return encode_png(
        figure,
        "Turnover per rebalance",
        "One panel per strategy, one bar per rebalance: the share of the portfolio traded, "
        "the sum of absolute weight changes from the drifted holdings to the new targets "
        "(100% is, for example, selling half the portfolio to buy something else). The "
        "dashed line is the average. The first rebalance, which invests the starting cash "
        "(100%), is left out, as is the index (bought once and held). Costs are proportional "
        "to turnover.",
    )
