"""No look-ahead: a rebalance's weights depend only on what was known at its close."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pytest

from backtest import (
    STRATEGY_NAMES,
    BacktestSettings,
    LookAheadError,
    Market,
    MarketView,
    MissingForecasts,
    Strategy,
    WalkForwardForecasts,
    named_strategy,
    run_backtest,
)
from tests.backtest.conftest import SLICE_TICKERS, trailing_forecasts

SETTINGS = BacktestSettings(start=date(2016, 6, 1), end=date(2019, 6, 28), rebalance="monthly")
CUT = pd.Timestamp("2017-09-29")  # a month end: a rebalance date


def _strategies(market: Market) -> list[Strategy]:
    names = [*STRATEGY_NAMES, "forecast_min_variance+vol_target", "equal_weight+vol_target"]
    return [named_strategy(n, benchmark=market.benchmark, max_leverage=1.5) for n in names]


def _perturbed(market: Market, after: pd.Timestamp) -> Market:
    """The same market with every price after ``after`` changed at random."""
    rng = np.random.default_rng(0)
    prices = market.prices.copy()
    later = prices.index > after
    shocks = np.exp(np.cumsum(rng.normal(0.0, 0.03, size=(later.sum(), prices.shape[1])), axis=0))
    prices.loc[later] = prices.loc[later].to_numpy() * shocks
    forecasts = trailing_forecasts(prices[SLICE_TICKERS])
    return Market.from_prices(prices, market.benchmark, forecasts, market.source)


def test_weights_up_to_a_date_ignore_prices_after_it(slice_market: Market) -> None:
    original = run_backtest(slice_market, _strategies(slice_market), SETTINGS)
    changed = run_backtest(_perturbed(slice_market, CUT), _strategies(slice_market), SETTINGS)
    assert set(original.runs) == set(changed.runs)
    for name, run in original.runs.items():
        before = run.weights.loc[:CUT]
        assert len(before) >= 15, name
        pd.testing.assert_frame_equal(before, changed.runs[name].weights.loc[:CUT], obj=name)
        # ...and the perturbation is real: the later weights of the optimizers move.
        if name not in ("equal_weight", "index"):
            later = run.weights.loc[CUT + pd.Timedelta(days=1) :]
            assert not np.allclose(later, changed.runs[name].weights.loc[later.index]), name
    for name, run in original.runs.items():
        assert not run.failed_rebalances, (name, run.failed_rebalances[:1])


@dataclass
class _Peeking(Strategy):
    """Reads tomorrow's prices: must fail, not get an empty frame."""

    name: str = "peeking"

    def target_weights(self, view: MarketView, holdings: pd.Series) -> pd.Series:
        tomorrow = view.prices(end=view.as_of + pd.Timedelta(days=1))
        return pd.Series(1.0 / tomorrow.shape[1], index=tomorrow.columns)

    def describe(self) -> str:
        return "peeks"


def test_a_strategy_that_peeks_fails(slice_market: Market) -> None:
    with pytest.raises(LookAheadError, match="a strategy may use only what is known"):
        run_backtest(slice_market, [_Peeking()], SETTINGS)


def test_a_view_ends_at_its_date(slice_market: Market) -> None:
    view = slice_market.view(CUT)
    assert view.prices().index[-1] == CUT
    assert view.returns(20).index[-1] == CUT
    assert len(view.returns(20)) == 20
    assert view.prices(end=CUT - pd.Timedelta(days=7)).index[-1] < CUT
    with pytest.raises(LookAheadError):
        view.returns(end=CUT + pd.Timedelta(days=3))


def test_forecasts_are_read_as_of_the_view(slice_market: Market) -> None:
    assert slice_market.forecasts is not None
    table = slice_market.forecasts.variance_21d
    # Change every forecast after the cut: the view's must not move.
    later = table.copy()
    later.loc[later.index > CUT] *= 10.0
    changed = WalkForwardForecasts(slice_market.forecasts.expected_log_return_5d, later, "changed")
    market = Market.from_prices(slice_market.prices, "SP500", changed)
    _, volatility = slice_market.view(CUT).forecasts()
    _, same = market.view(CUT).forecasts()
    np.testing.assert_array_equal(volatility, same)
    expected = np.sqrt(table.loc[CUT, SLICE_TICKERS].to_numpy() * 252 / 21)
    np.testing.assert_allclose(volatility, expected)


def test_forecast_strategies_need_forecasts(slice_market: Market) -> None:
    bare = Market.from_prices(slice_market.prices, "SP500")
    with pytest.raises(MissingForecasts, match="quantserve evaluate"):
        run_backtest(bare, [named_strategy("forecast_min_variance")], SETTINGS)


def test_stale_forecasts_skip_the_rebalance_and_say_so(slice_market: Market) -> None:
    assert slice_market.forecasts is not None
    cut = slice_market.forecasts.variance_21d.loc[:"2018-12-31"]
    mean = slice_market.forecasts.expected_log_return_5d.loc[:"2018-12-31"]
    market = Market.from_prices(
        slice_market.prices, "SP500", WalkForwardForecasts(mean, cut, "ends 2018")
    )
    result = run_backtest(market, [named_strategy("forecast_min_variance")], SETTINGS)
    run = result.runs["forecast_min_variance"]
    assert run.failed_rebalances
    assert all(f["date"] >= "2019-01-01" for f in run.failed_rebalances)
    assert "no walk-forward forecast" in run.failed_rebalances[0]["reason"]
    # It held its drifted weights: no trade, no cost on those dates.
    failed = pd.DatetimeIndex([f["date"] for f in run.failed_rebalances])
    assert (run.turnover.loc[failed] == 0.0).all()
    assert result.metrics["forecast_min_variance"]["failed_rebalances"] == len(failed)
