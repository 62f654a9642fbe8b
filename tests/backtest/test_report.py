"""The back-test HTML report: real matplotlib rendering, parsed back with html.parser."""

from __future__ import annotations

import base64
import copy
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pandas as pd
import pytest

from backtest._report import render_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TICKERS = ["AAPL", "JNJ", "JPM", "XOM", "WMT", "MSFT", "KO", "PG", "CVX", "HD", "PFE", "INTC"]
STRATEGIES = ["equal_weight", "index", "min_variance"]
EVIL = "<script>alert(1)</script>"


def synthetic_backtest(
    strategies: list[str] = STRATEGIES, n_days: int = 600, seed: int = 7
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Daily returns, monthly target weights (with cash and leverage) and turnover."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2015-01-02", periods=n_days)
    rebalances = dates[dates.to_series().dt.month.diff().fillna(1).ne(0).to_numpy()]
    returns, weights, turnover = [], [], []
    for i, name in enumerate(strategies):
        gross = rng.normal(0.0003 * (i + 1), 0.01, n_days)
        cost = np.where(dates.isin(rebalances), 0.0002, 0.0)
        returns.append(
            pd.DataFrame(
                {
                    "date": dates,
                    "strategy": name,
                    "gross_return": gross,
                    "cost": cost,
                    "net_return": gross - cost,
                }
            )
        )
        if name == "index":
            continue
        for date in rebalances:
            raw = rng.uniform(0.0, 1.0, len(TICKERS))
            # 1/N is fully invested; the other holds cash or is levered to 110%.
            budget = 1.0 if name == "equal_weight" else rng.choice([0.8, 1.1])
            target = np.full(len(TICKERS), 1 / len(TICKERS)) if budget == 1.0 else raw
            target = target / target.sum() * budget
            weights.append(
                pd.DataFrame({"date": date, "strategy": name, "ticker": TICKERS, "weight": target})
            )
            turnover.append(
                pd.DataFrame(
                    {"date": [date], "strategy": [name], "turnover": [rng.uniform(0, 0.6)]}
                )
            )
    return (
        pd.concat(returns, ignore_index=True),
        pd.concat(weights, ignore_index=True),
        pd.concat(turnover, ignore_index=True),
    )


def no_frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Empty inputs: the tables and texts still render, without figures (and fast)."""
    return (
        pd.DataFrame(columns=["date", "strategy", "gross_return", "cost", "net_return"]),
        pd.DataFrame(columns=["date", "strategy", "ticker", "weight"]),
        pd.DataFrame(columns=["date", "strategy", "turnover"]),
    )


def strategy_metrics(sharpe: float, vs_equal_weight: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "cagr": 0.081,
        "volatility": 0.163,
        "sharpe": sharpe,
        "sharpe_ci": [sharpe - 0.61, sharpe + 0.6],
        "sortino": 0.71,
        "max_drawdown": -0.234,
        "calmar": 0.35,
        "turnover": 2.4,
        "costs": 0.0024,
        "hit_rate": 0.532,
        "tracking_error": 0.051,
        "information_ratio": 0.12,
        "alpha": 0.004,
        "beta": 0.93,
        "vs_equal_weight": vs_equal_weight,
    }


def sharpe_test(difference: float, p_value: float) -> dict[str, Any]:
    return {
        "sharpe_difference": difference,
        "p_value": p_value,
        "statistic": 1.1,
        "method": "Ledoit-Wolf studentized bootstrap",
        "jobson_korkie_memmel_p_value": p_value + 0.01,
    }


def synthetic_metrics(source: str = "embedded") -> dict[str, Any]:
    equal_weight = strategy_metrics(0.53, None)
    equal_weight.update(tracking_error=None, alpha=None)
    return {
        "strategies": {
            "equal_weight": equal_weight,
            "index": strategy_metrics(0.41, sharpe_test(-0.12, 0.402)),
            "min_variance": {
                **strategy_metrics(0.6649, sharpe_test(0.1349, 0.287)),
                "description": "Long-only minimum variance, Ledoit-Wolf covariance",
                "failed_rebalances": 2,
            },
        },
        "settings": {
            "start": "2015-01-02",
            "end": "2017-04-21",
            "rebalance": "monthly",
            "cost_bps": 10.0,
            "source": source,
            "tickers": [*TICKERS, "A&B<"],
            "benchmark": "SP500",
            "forecasts": None,
            "risk_aversion": 2.5,
        },
    }


class _Document(HTMLParser):
    """Images, every src/href, and each table's rows of cell texts, by table id."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.tags: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.row_classes: dict[str, list[str | None]] = {}
        self.sections: dict[str, str] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._section: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append(tag)
        self.links += [v or "" for k, v in attrs if k in {"src", "href", "action", "srcset"}]
        if tag == "img":
            self.images.append(attributes.get("src") or "")
        elif tag == "h2":
            self._section = attributes.get("id")
            self.sections[self._section or ""] = ""
        elif tag == "table":
            self._table = attributes.get("id") or ""
            self.tables[self._table] = []
            self.row_classes[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
            self.row_classes[self._table].append(attributes.get("class"))
        elif tag in {"td", "th"} and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in {"td", "th"} and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._section is not None:
            self.sections[self._section] += data


def parse(document: str) -> _Document:
    parser = _Document()
    parser.feed(document)
    parser.close()
    return parser


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return synthetic_backtest()


@pytest.fixture(scope="module")
def report(frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> str:
    return render_report(*frames, synthetic_metrics())


@pytest.fixture(scope="module")
def document(report: str) -> _Document:
    return parse(report)


def test_every_image_is_an_embedded_png(document: _Document) -> None:
    # equity, drawdowns, rolling Sharpe (600 days > 1 year), weights, turnover
    assert len(document.images) == 5
    for source in document.images:
        prefix, _, payload = source.partition(",")
        assert prefix == "data:image/png;base64"
        png = base64.b64decode(payload, validate=True)
        assert png.startswith(PNG_SIGNATURE)
        assert len(png) > 5_000  # a real figure, not an empty canvas


def test_nothing_is_loaded_from_outside(report: str, document: _Document) -> None:
    assert "http://" not in report
    assert "https://" not in report
    assert "script" not in document.tags
    assert "link" not in document.tags
    for reference in document.links:
        assert reference.startswith(("data:image/png;base64,", "#")), reference[:80]


def test_kpi_table_lists_every_strategy_with_its_sharpe(document: _Document) -> None:
    metrics = synthetic_metrics()["strategies"]
    header, *rows = document.tables["kpi-table"]
    sharpe_column = header.index("Sharpe")
    ci_column = header.index("Sharpe CI")
    by_name = {row[0].split(" ")[0].split("★")[0].strip(): row for row in rows}
    assert set(by_name) >= set(metrics)
    for name, values in metrics.items():
        row = by_name[name]
        assert row[sharpe_column] == f"{values['sharpe']:.2f}"
        low, high = values["sharpe_ci"]
        assert row[ci_column] == f"[{low:.2f}, {high:.2f}]"
    assert by_name["min_variance"][header.index("CAGR")] == "8.1%"
    assert by_name["min_variance"][header.index("Max drawdown")] == "-23.4%"
    # Ranked by Sharpe, the best highlighted.
    assert [row[0].startswith("min_variance") for row in rows] == [True, False, False]
    assert document.row_classes["kpi-table"][1] == "best"
    assert document.row_classes["kpi-table"][2:] == [None, None]


def test_missing_values_render_as_a_dash(document: _Document) -> None:
    header, *rows = document.tables["kpi-table"]
    equal_weight = next(row for row in rows if row[0].startswith("equal_weight"))
    assert equal_weight[header.index("Tracking error")] == "\N{EN DASH}"
    assert equal_weight[header.index("Alpha / yr")] == "\N{EN DASH}"
    assert "None" not in "".join(cell for row in rows for cell in row)


def test_verdict_names_the_p_value_and_is_honest(document: _Document) -> None:
    verdict = document.sections["verdict"]
    assert "No strategy beats 1/N significantly" in verdict
    assert "p = 0.287" in verdict
    assert "not the probability that the strategy is better" in verdict
    header, *rows = document.tables["verdict-table"]
    min_variance = next(row for row in rows if row[0] == "min_variance")
    assert min_variance[header.index("p-value (test)")].startswith("0.287")
    assert "+0.13" in min_variance[header.index("Sharpe vs 1/N (difference)")]
    assert "cannot tell it apart from 1/N" in min_variance[header.index("What it means")]
    assert min_variance[header.index("Beat the index?")].startswith("Yes: Sharpe 0.66 vs 0.41")


@pytest.mark.parametrize(
    ("p_value", "difference", "expected"),
    [
        (0.003, 0.3, "1 of 2 tested strategies beat 1/N's Sharpe ratio significantly"),
        (0.03, 0.3, "at the stricter Bonferroni threshold (p < 0.0250) 0 still pass"),
        (0.0004, 0.3, "momentum (p < 0.001). With 2 strategies tested"),
        (0.003, -0.3, "No strategy beats 1/N significantly"),
        (0.2, 0.3, "No strategy beats 1/N significantly"),
    ],
)
def test_headline_follows_the_tests(p_value: float, difference: float, expected: str) -> None:
    metrics = synthetic_metrics()
    metrics["strategies"]["momentum"] = strategy_metrics(0.9, sharpe_test(difference, p_value))
    report = render_report(*no_frames(), metrics)
    assert "< 0.001" not in report  # "<" is escaped where the p-value is tiny
    document = parse(report)
    headline = document.sections["verdict"].split("How to read")[0]
    assert expected in headline
    if p_value < 0.05 and difference > 0:
        assert (
            f"momentum (p {'<' if p_value < 0.001 else '='} {max(p_value, 0.001):.3f})" in headline
        )
        assert "No strategy beats" not in headline
        header, *rows = document.tables["verdict-table"]
        momentum = next(row for row in rows if row[0] == "momentum")
        assert "Significant at 5%" in momentum[header.index("What it means")]


def test_strings_from_the_data_are_escaped(
    frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    returns, weights, turnover = (
        frame.replace({"strategy": {"min_variance": EVIL}}) for frame in frames
    )
    metrics = synthetic_metrics(source="/data/<prices>.csv")
    metrics["strategies"][EVIL] = metrics["strategies"].pop("min_variance")
    report = render_report(returns, weights, turnover, metrics)
    document = parse(report)
    assert EVIL not in report
    assert "<script" not in report
    assert "script" not in document.tags
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report
    assert "/data/&lt;prices&gt;.csv" in report
    assert "A&amp;B&lt;" in report
    names = [row[0] for row in document.tables["kpi-table"][1:]]
    assert any(name.startswith(EVIL) for name in names)  # the parser unescapes it back


def test_caveats_depend_on_the_data_source(report: str, document: _Document) -> None:
    embedded = document.sections["caveats"]
    assert 'id="caveat-survivorship"' in report
    assert "13 stocks are today's S&P 500 members, chosen after the fact" in embedded
    assert 'id="caveat-dividends"' in report
    assert "price index, without dividends" in embedded
    assert "Leverage is financed at 0%" in embedded  # min_variance is levered to 110%
    assert 'id="caveat-forecasts"' not in report
    assert 'id="caveat-data"' not in report

    metrics = synthetic_metrics(source="/home/me/prices.csv")
    metrics["settings"]["forecasts"] = {"model": "forecaster", "version": "3"}
    own_file = render_report(*no_frames(), metrics)
    caveats = parse(own_file).sections["caveats"]
    assert 'id="caveat-survivorship"' not in own_file
    assert "chosen after the fact" not in caveats
    assert 'id="caveat-dividends"' not in own_file
    assert 'id="caveat-data"' in own_file
    assert "Prices come from /home/me/prices.csv" in caveats
    assert 'id="caveat-forecasts"' in own_file
    assert "walk-forward predictions (model: forecaster; version: 3)" in caveats
    for always in ("costs", "cash", "history"):
        assert f'id="caveat-{always}"' in own_file


def test_settings_are_rendered_generically(document: _Document) -> None:
    settings = dict(row for row in document.tables["settings"] if len(row) == 2)
    assert settings["risk_aversion"] == "2.5"
    assert settings["forecasts"] == "\N{EN DASH}"
    assert settings["tickers"].endswith("INTC, A&B<")


def test_missing_columns_are_refused(
    frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    returns, weights, turnover = frames
    with pytest.raises(ValueError, match=r"returns lacks column\(s\) \['net_return'\]"):
        render_report(returns.drop(columns="net_return"), weights, turnover, synthetic_metrics())


def test_input_metrics_are_not_modified() -> None:
    metrics = synthetic_metrics()
    before = copy.deepcopy(metrics)
    render_report(*no_frames(), metrics)
    assert metrics == before


def test_empty_frames_render_without_figures() -> None:
    document = parse(render_report(*no_frames(), synthetic_metrics()))
    assert document.images == []
    assert "No returns, weights or turnover to plot." in document.sections["plots"]
    assert len(document.tables["kpi-table"]) == 1 + 3
