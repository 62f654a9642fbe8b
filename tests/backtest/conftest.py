"""Markets for the back-test tests: a slice of the real embedded data, and synthetic ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest import Market, WalkForwardForecasts

SLICE_TICKERS = ["AAPL", "JNJ", "JPM", "XOM", "WMT", "KO"]


@pytest.fixture(scope="session")
def embedded_market() -> Market:
    """The whole embedded S&P 500 set, read and validated as ``ingest`` does."""
    return Market.load()


@pytest.fixture(scope="session")
def slice_market(embedded_market: Market) -> Market:
    """Six real stocks and the index, 2015-2019, with synthetic walk-forward forecasts.

    The forecasts are built from each day's *trailing* returns only (a 21-day realized
    variance and a 63-day mean), so they are point in time like the real refits'.
    """
    prices = embedded_market.prices.loc["2015-01-01":"2019-12-31", [*SLICE_TICKERS, "SP500"]]
    return Market.from_prices(
        prices,
        benchmark="SP500",
        forecasts=trailing_forecasts(prices[SLICE_TICKERS]),
        source="embedded",
    )


def trailing_forecasts(prices: pd.DataFrame) -> WalkForwardForecasts:
    """Forecast-shaped predictions from trailing data only (no look-ahead)."""
    log_returns = np.log(prices / prices.shift(1))
    variance = (log_returns**2).rolling(21).sum()
    mean = log_returns.rolling(63).mean() * 5
    rows = []
    for target, table in (("log_return_5d", mean), ("variance_21d", variance)):
        long = table.stack().rename("forecast").reset_index()
        long.columns = ["date", "ticker", "forecast"]
        rows.append(long.assign(forecaster="model", target=target, realized=np.nan))
    return WalkForwardForecasts.from_predictions(pd.concat(rows, ignore_index=True), "synthetic")


def write_trailing_predictions(path: Path) -> Path:
    """2016-2019 predictions of the embedded stocks from trailing data, written to ``path``
    in the shape ``quantserve evaluate`` writes ``predictions.parquet``."""
    prices = Market.load().prices.loc["2016-01-01":"2019-12-31"].drop(columns="SP500")
    forecasts = trailing_forecasts(prices)
    rows = []
    for target, table in (
        ("log_return_5d", forecasts.expected_log_return_5d),
        ("variance_21d", forecasts.variance_21d),
    ):
        long = table.rename_axis(index="date", columns="ticker").stack().rename("forecast")
        rows.append(long.reset_index().assign(forecaster="model", target=target, realized=0.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.concat(rows, ignore_index=True).to_parquet(path)
    return path
