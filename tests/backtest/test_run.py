"""Whole runs: reproducibility, outputs on disk, settings errors, and the reference figures."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from backtest import (
    METRICS_FILE,
    REPORT_FILE,
    RETURNS_FILE,
    WEIGHTS_FILE,
    BacktestResult,
    BacktestSettings,
    InvalidBacktest,
    Market,
    named_strategy,
    run_backtest,
    write_outputs,
)

SETTINGS = BacktestSettings(start=date(2017, 1, 3), end=date(2019, 12, 31), rebalance="monthly")
NAMES = ["min_variance", "hrp", "forecast_mean_variance", "equal_weight+vol_target"]


def _run(market: Market, names: list[str] = NAMES, settings: BacktestSettings = SETTINGS) -> Any:
    return run_backtest(market, [named_strategy(n, benchmark="SP500") for n in names], settings)


@pytest.fixture(scope="module")
def result(slice_market: Market) -> BacktestResult:
    return _run(slice_market)  # type: ignore[no-any-return]


def test_same_inputs_same_outputs(slice_market: Market, tmp_path: Path) -> None:
    short = BacktestSettings(start=date(2018, 1, 2), end=date(2019, 6, 28))
    names = ["max_sharpe", "forecast_mean_variance"]
    first, second = _run(slice_market, names, short), _run(slice_market, names, short)
    write_outputs(first, tmp_path / "a")
    write_outputs(second, tmp_path / "b")
    for name in (RETURNS_FILE, WEIGHTS_FILE):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "a" / name), pd.read_parquet(tmp_path / "b" / name)
        )
    a = json.loads((tmp_path / "a" / METRICS_FILE).read_text())
    b = json.loads((tmp_path / "b" / METRICS_FILE).read_text())
    a["settings"].pop("seconds"), b["settings"].pop("seconds")
    assert a == b


def test_outputs_hold_every_strategy_and_the_references(
    result: BacktestResult, tmp_path: Path
) -> None:
    out = write_outputs(result, tmp_path / "run")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [METRICS_FILE, RETURNS_FILE, REPORT_FILE, WEIGHTS_FILE]
    )
    document = json.loads((out / METRICS_FILE).read_text())
    expected = {"equal_weight", "index", *NAMES}
    assert set(document["strategies"]) == expected
    assert document["settings"]["references_added"] == ["equal_weight", "index"]
    assert document["settings"]["rebalance"] == "monthly"
    returns = pd.read_parquet(out / RETURNS_FILE)
    assert set(returns["strategy"]) == expected
    assert returns.groupby("strategy")["date"].count().nunique() == 1  # same days for all
    for name, metrics in document["strategies"].items():
        daily = returns[returns["strategy"] == name]["net_return"]
        total = float((1.0 + daily).prod() - 1.0)
        assert metrics["total_return"] == pytest.approx(total, rel=1e-9), name
    weights = pd.read_parquet(out / WEIGHTS_FILE)
    vol_target = weights[weights["strategy"] == "equal_weight+vol_target"]
    sums = vol_target.groupby("date")["weight"].sum()
    assert (sums <= 1.0 + 1e-9).all()  # leverage cap 1: the rest in cash
    assert (sums < 0.999).any()  # and the overlay did scale down somewhere
    html = (out / REPORT_FILE).read_text()
    assert "forecast_mean_variance" in html


def test_a_second_run_replaces_the_folder_whole(result: BacktestResult, tmp_path: Path) -> None:
    out = tmp_path / "run"
    write_outputs(result, out)
    (out / "stale.txt").write_text("from an older run")
    write_outputs(result, out)
    assert not (out / "stale.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"start": date(2015, 2, 1)}, "start on or after"),
        ({"start": date(2019, 1, 1), "end": date(2018, 1, 1)}, "must be before"),
        ({"cost_bps": -1.0}, "cost_bps"),
        ({"rebalance": "daily"}, "rebalance"),
    ],
)
def test_bad_settings_say_how_to_fix_them(
    slice_market: Market, settings: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidBacktest, match=message):
        run_backtest(
            slice_market,
            [named_strategy("min_variance")],
            BacktestSettings(**settings),  # type: ignore[arg-type]
        )


def test_unknown_strategy_lists_the_choices() -> None:
    with pytest.raises(InvalidBacktest, match="choose among equal_weight, index, min_variance"):
        named_strategy("min_varianse")


def test_reproduces_the_published_one_over_n_and_index_figures(embedded_market: Market) -> None:
    """1/N and the index on the embedded 20 stocks, 2000-2022, monthly, 10 bps.

    The figures measured independently when the back-test was specified: 1/N Sharpe 0.72,
    volatility 19.5%, max drawdown -49%; the S&P 500 price index Sharpe 0.31.
    """
    result = run_backtest(
        embedded_market,
        [named_strategy("equal_weight"), named_strategy("index")],
        BacktestSettings(start=date(2000, 1, 3), end=date(2022, 12, 28), cost_bps=10.0),
    )
    one_over_n, index = result.metrics["equal_weight"], result.metrics["index"]
    assert one_over_n["sharpe"] == pytest.approx(0.72, abs=0.01)
    assert one_over_n["volatility"] == pytest.approx(0.195, abs=0.002)
    assert one_over_n["max_drawdown"] == pytest.approx(-0.49, abs=0.01)
    assert index["sharpe"] == pytest.approx(0.31, abs=0.01)
    assert index["vs_equal_weight"]["p_value"] < 0.01


def test_a_users_price_file_is_validated_and_its_bad_rows_kept(
    embedded_market: Market, tmp_path: Path
) -> None:
    wide = embedded_market.prices.loc["2016-01-01":"2018-12-31", ["AAPL", "KO", "XOM", "SP500"]]
    table = wide.rename_axis("date").reset_index()
    table["date"] = table["date"].dt.strftime("%Y-%m-%d")
    table = table.astype({"KO": "object"})
    table.loc[400, "KO"] = "n/a"  # a bad cell: quarantined, the day's close carried over
    table.loc[:50, "XOM"] = pd.NA  # XOM "lists" later: too late for the look-back
    source = tmp_path / "prices.csv"
    table.to_csv(source, index=False)
    market = Market.load(source, benchmark="SP500")
    assert len(market.quarantine) == 1
    assert "not a number" in market.quarantine["reason"].iloc[0]
    result = run_backtest(
        market,
        [named_strategy("min_variance")],
        BacktestSettings(start=date(2017, 2, 1), rebalance="quarterly"),
    )
    assert market.filled_prices == {"KO": 1}
    ko = market.prices["KO"]
    day = ko.index[400]
    assert ko[day] == ko.iloc[399]  # the previous close carried over
    assert result.settings["filled_prices"] == {"KO": 1}
    # XOM has no price in part of the look-back: it cannot be held, and it says so.
    assert result.settings["excluded_tickers"] == ["XOM"]
    assert result.settings["tickers"] == ["AAPL", "KO"]
    out = write_outputs(result, tmp_path / "out")
    quarantine = pd.read_csv(out / "quarantine.csv", dtype=str, keep_default_na=False)
    assert quarantine["close"].tolist() == ["n/a"]


def test_cost_aware_strategies_learn_the_runs_costs_also_under_the_overlay(
    slice_market: Market,
) -> None:
    plain = named_strategy("forecast_mean_variance")
    overlaid = named_strategy("forecast_mean_variance+vol_target")
    settings = BacktestSettings(start=date(2019, 1, 2), rebalance="quarterly", cost_bps=20.0)
    run_backtest(slice_market, [plain, overlaid], settings)
    for strategy in (plain, overlaid.inner):  # type: ignore[attr-defined]
        assert strategy.cost_rates.to_dict() == dict.fromkeys(slice_market.tickers, 0.002)
        assert strategy.rebalances_per_year == 4.0
