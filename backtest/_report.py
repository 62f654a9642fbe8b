"""The back-test's HTML report, written for a business reader.

One self-contained document, in reading order: title, period and settings; the KPI table
of every strategy; the verdict against 1/N and the index; the figures (base64 PNG data
URIs, see ``backtest._plots``); the caveats. Every string that comes from the data
(strategy names, tickers, paths) goes through ``html.escape``; nothing is loaded from
outside the document.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from html import escape
from typing import Any

import pandas as pd

from backtest._canvas import Plot
from backtest._plots import render_plots
from backtest._report_format import (
    _costs,
    _fmt,
    _interval,
    _number,
    _pct,
    _plain,
    _sharpe,
    _summary,
)
from backtest._verdict import _verdict_section

REQUIRED_COLUMNS = {
    "returns": ("date", "strategy", "gross_return", "cost", "net_return"),
    "weights": ("date", "strategy", "ticker", "weight"),
    "turnover": ("date", "strategy", "turnover"),
}


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;
margin:2rem auto;max-width:1100px;padding:0 1rem;color:#1b1b1b;line-height:1.45}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
.meta{color:#555;margin:.2rem 0}.headline{font-size:1.1rem;font-weight:600;
background:#f4f6fa;border-left:4px solid #3a5a98;padding:.6rem .9rem}
table{border-collapse:collapse;font-size:.9rem;margin:.6rem 0}
th,td{border-bottom:1px solid #e3e3e3;padding:.3rem .55rem;text-align:right;vertical-align:top}
th{background:#fafafa}td.name,th.name,td.text{text-align:left}
tr.best{background:#fff6d6;font-weight:600}.desc{display:block;font-weight:400;color:#666;
font-size:.8rem}.badge{font-size:.75rem;color:#8a6d00}.small{font-size:.8rem;color:#666}
.good{color:#1d6b2f}.bad{color:#a12a2a}figure{margin:1.5rem 0}
figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#444;font-size:.9rem}details{margin:.4rem 0}.scroll{overflow-x:auto}
"""


def render_report(
    returns: pd.DataFrame,
    weights: pd.DataFrame,
    turnover: pd.DataFrame,
    metrics: dict[str, Any],
) -> str:
    """The back-test report as one self-contained HTML document.

    Parameters
    ----------
    returns
        Columns ``date, strategy, gross_return, cost, net_return``: daily simple
        returns, ``cost`` a fraction of portfolio value.
    weights
        Columns ``date, strategy, ticker, weight``: target weights at each rebalance;
        the rest of the portfolio (1 - sum) is cash, negative when leveraged.
    turnover
        Columns ``date, strategy, turnover``: sum of |target - drifted| per rebalance.
    metrics
        ``{"strategies": {name: {...}}, "settings": {...}}`` from the back-test.

    Returns
    -------
    str
        HTML with inline CSS and images as ``data:image/png;base64`` URIs.
    """
    for name, frame in (("returns", returns), ("weights", weights), ("turnover", turnover)):
        missing = [c for c in REQUIRED_COLUMNS[name] if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} lacks column(s) {missing}; expected {REQUIRED_COLUMNS[name]}")
    strategies: dict[str, dict[str, Any]] = {
        str(k): dict(v or {}) for k, v in metrics.get("strategies", {}).items()
    }
    settings: dict[str, Any] = dict(metrics.get("settings", {}))
    order = _display_order(strategies, returns, weights, turnover)
    risk_free_rate = _number(settings.get("risk_free_rate")) or 0.0
    plots = render_plots(returns, weights, turnover, order, risk_free_rate)
    body = [
        _header(settings, returns),
        _kpi_section(strategies, order),
        _verdict_section(strategies, order, settings),
        _plots_section(plots),
        _caveats_section(settings, weights),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Back-test report</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _display_order(strategies: Mapping[str, Mapping[str, Any]], *frames: pd.DataFrame) -> list[str]:
    """Best Sharpe first (missing last); strategies only in the frames come after."""
    ranked = sorted(strategies, key=lambda n: -_sharpe(strategies[n]))
    extra = sorted({str(s) for f in frames for s in f["strategy"].unique()} - set(ranked))
    return ranked + extra


# --- Formatting ---------------------------------------------------------------------


def _header(settings: Mapping[str, Any], returns: pd.DataFrame) -> str:
    start, end = settings.get("start"), settings.get("end")
    if (start is None or end is None) and not returns.empty:
        dates = pd.DatetimeIndex(returns["date"])
        start, end = start or dates.min().date(), end or dates.max().date()
    tickers = settings.get("tickers") or []
    facts = [
        f"{_plain(settings.get('rebalance'))} rebalancing",
        f"trading costs {_costs(settings)}",
        f"{len(tickers)} stocks",
        f"data: {_plain(settings.get('source'))}",
        f"benchmark: {_plain(settings.get('benchmark'))}",
    ]
    forecasts = settings.get("forecasts")
    if forecasts is not None:
        facts.append(f"forecasts: {_summary(forecasts)}")
    rows = "".join(
        f'<tr><th class="name">{escape(str(k))}</th><td class="text">{escape(_plain(v))}</td></tr>'
        for k, v in settings.items()
    )
    return (
        "<h1>Walk-forward portfolio back-test</h1>\n"
        f'<p class="meta">Period: {escape(_plain(start))} to {escape(_plain(end))}</p>\n'
        f'<p class="meta">{escape(" · ".join(facts))}</p>\n'
        f'<details><summary>All settings</summary><table id="settings">{rows}</table></details>'
    )


# (key, header, formatter, explanation for the glossary)
_KPIS: list[tuple[str, str, Callable[[Any], str], str]] = [
    ("cagr", "CAGR", _pct, "compound annual growth rate, after costs"),
    ("volatility", "Volatility", _pct, "annualised standard deviation of daily returns"),
    ("sharpe", "Sharpe", _fmt, "annualised return per unit of volatility, cash at 0%"),
    ("sharpe_ci", "Sharpe CI", _interval, "confidence interval of the Sharpe ratio"),
    ("sortino", "Sortino", _fmt, "like Sharpe, counting only downside volatility"),
    ("max_drawdown", "Max drawdown", _pct, "worst fall from a previous peak"),
    ("calmar", "Calmar", _fmt, "CAGR divided by the size of the max drawdown"),
    ("turnover", "Turnover / yr", _pct, "share of the portfolio traded per year"),
    ("costs", "Costs / yr", lambda v: _fmt(v, ".2%"), "trading costs per year, share of value"),
    ("hit_rate", "Hit rate", _pct, "share of trading days with a gain (flat days left out)"),
    ("tracking_error", "Tracking error", _pct, "annualised volatility of returns minus index"),
    ("information_ratio", "Info ratio", _fmt, "annual excess return over index per unit TE"),
    ("beta", "Beta", _fmt, "sensitivity to the index's moves"),
    ("alpha", "Alpha / yr", lambda v: _fmt(v, ".2%"), "annual return not explained by beta"),
]


def _kpi_section(strategies: Mapping[str, Mapping[str, Any]], order: list[str]) -> str:
    scored = [n for n in strategies if _number(strategies[n].get("sharpe")) is not None]
    best = max(scored, key=lambda n: _sharpe(strategies[n])) if scored else None
    header = "".join(f"<th>{escape(title)}</th>" for _, title, _, _ in _KPIS)
    rows = []
    for name in [n for n in order if n in strategies]:
        row = strategies[name]
        badge = ' <span class="badge">★ best Sharpe</span>' if name == best else ""
        description = row.get("description")
        note = f'<span class="desc">{escape(str(description))}</span>' if description else ""
        cells = "".join(f'<td class="{key}">{fmt(row.get(key))}</td>' for key, _, fmt, _ in _KPIS)
        highlight = ' class="best"' if name == best else ""
        rows.append(f'<tr{highlight}><td class="name">{escape(name)}{badge}{note}</td>{cells}</tr>')
    warning = _failures(strategies, order)
    glossary = "; ".join(f"<b>{escape(t)}</b>: {escape(d)}" for _, t, _, d in _KPIS)
    return (
        '<h2 id="kpis">Key figures</h2>\n'
        '<div class="scroll"><table id="kpi-table"><thead><tr><th class="name">Strategy</th>'
        f"{header}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>\n{warning}\n"
        f'<p class="small">{glossary}. Percentages are annual except max drawdown and hit '
        "rate; 1/N is <code>equal_weight</code>, the S&amp;P 500 price index bought and held "
        "is <code>index</code>.</p>"
    )


def _failures(strategies: Mapping[str, Mapping[str, Any]], order: list[str]) -> str:
    """Rebalances where a strategy could not decide and kept its drifted weights."""
    counts = [
        f"{escape(n)}: {int(count)}"
        for n in order
        if n in strategies and (count := _number(strategies[n].get("failed_rebalances")))
    ]
    if not counts:
        return ""
    return (
        '<p class="bad">Rebalances where a strategy could not decide and kept its drifted '
        f"weights (reasons in the metrics file): {', '.join(counts)}.</p>"
    )


def _plots_section(plots: list[Plot]) -> str:
    figures = [
        f'<figure><h3>{escape(p.title)}</h3><img alt="{escape(p.title)}" '
        f'src="data:image/png;base64,{p.png_base64}"><figcaption>{escape(p.caption)}'
        "</figcaption></figure>"
        for p in plots
    ]
    if not figures:
        figures = ["<p>No returns, weights or turnover to plot.</p>"]
    return '<h2 id="plots">Charts</h2>\n' + "\n".join(figures)


def _caveats_section(settings: Mapping[str, Any], weights: pd.DataFrame) -> str:
    """Always present; which caveats apply depends on the data source and forecasts."""
    caveats: dict[str, str] = {}  # id -> HTML, data already escaped
    if settings.get("source") == "embedded":
        caveats["survivorship"] = _SURVIVORSHIP.format(len(settings.get("tickers") or []))
        caveats["dividends"] = _DIVIDENDS
    else:
        caveats["data"] = _OWN_DATA.format(escape(_plain(settings.get("source"))))
    caveats["costs"] = _LINEAR_COSTS.format(escape(_costs(settings)))
    invested = weights.groupby(["strategy", "date"])["weight"].sum()
    caveats["cash"] = _CASH + (_LEVERAGE if (invested > 1.0 + 1e-9).any() else "")
    if settings.get("forecasts") is not None:
        caveats["forecasts"] = _FORECASTS.format(escape(_summary(settings["forecasts"])))
    caveats["history"] = _ONE_HISTORY
    listed = "".join(f'<li id="caveat-{key}">{text}</li>' for key, text in caveats.items())
    return f'<h2 id="caveats">Caveats</h2>\n<ul id="caveat-list">{listed}</ul>'


_SURVIVORSHIP = (
    "<b>Survivorship bias.</b> The {} stocks are today's S&amp;P 500 members, chosen after "
    "the fact: companies that shrank, were taken over or went bankrupt along the way are "
    "missing. This flatters every stock strategy, 1/N included, relative to the index."
)
_DIVIDENDS = (
    "<b>Dividends.</b> The index is the S&amp;P 500 price index, without dividends, while "
    "the stocks' closing prices include them. This flatters the stock strategies against the "
    "index by roughly the dividend yield, about 1.5-2.5% a year."
)
_OWN_DATA = (
    "<b>Your data.</b> Prices come from {}. The report cannot check how the stocks were "
    "chosen, whether dividends are treated the same way for the stocks and the benchmark, "
    "or the data's quality."
)
_LINEAR_COSTS = (
    "<b>Linear costs.</b> Trading costs {}, whatever the trade's size: no market impact, "
    "no wider spreads in stressed markets, no borrowing fees."
)
_CASH = (
    "<b>Cash earns 0%.</b> Weight left uninvested earns nothing, which penalises strategies "
    "that hold cash when interest rates were positive."
)
_LEVERAGE = " Leverage is financed at 0% too, which flatters the leveraged strategies."
_FORECASTS = (
    "<b>Forecasts.</b> The forecast-driven strategies use walk-forward predictions ({}): "
    "each refit was trained only on data before its test year, so no forecast saw the "
    "returns it is scored on. Design choices made with the whole history in view (features, "
    "model size) can still carry hindsight."
)
_ONE_HISTORY = (
    "<b>One history.</b> A back-test is a single path through the past; the Sharpe "
    "confidence intervals show how imprecise its figures are, and past results do not "
    "promise future ones."
)
