"""Prices for a back-test and the point-in-time view strategies see them through.

A :class:`Market` holds the whole price history. A strategy never gets it: at each
rebalance date it gets a :class:`MarketView` that ends at that date's close, and any
request for a later date raises :class:`~backtest.LookAheadError` instead of returning
an empty frame, so a strategy that peeks fails loudly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest._errors import InvalidBacktest, LookAheadError, MissingForecasts
from backtest._forecasts import HOW_TO_PRODUCE, WalkForwardForecasts
from training import schema
from training.sources import read_embedded, read_price_file
from training.validation import validate_prices

FloatArray = np.ndarray


@dataclass(frozen=True, eq=False)
class Market:
    """Daily closes of the tradable universe, the benchmark index and model forecasts.

    Attributes
    ----------
    prices : pd.DataFrame
        Dates (trading days, ascending) by tickers: daily closes, dividend-adjusted for
        the embedded stocks. Empty cells are dates before a listing or after a delisting.
    tickers : list of str
        The universe strategies allocate over (every column but the benchmark).
    benchmark : str or None
        The column of the index (``SP500`` in the embedded set), bought and held by the
        ``index`` strategy; ``None`` when the data has none.
    forecasts : WalkForwardForecasts or None
        The walk-forward refits' out-of-sample forecasts, for forecast-driven strategies.
    source : str
        ``embedded`` or the path of the user's price file.
    quarantine : pd.DataFrame
        Rows of the input refused by validation, each with its reason.
    filled_prices : dict of str to int
        Days without a close between a ticker's first and last price (a quarantined
        row, a holiday of one exchange), filled with the previous close: the holding is
        still there, its price unknown that day, so it earns 0 and catches up the next.
    """

    prices: pd.DataFrame
    tickers: list[str]
    benchmark: str | None = None
    forecasts: WalkForwardForecasts | None = None
    source: str = "embedded"
    quarantine: pd.DataFrame = field(default_factory=pd.DataFrame)
    filled_prices: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_prices(
        cls,
        prices: pd.DataFrame,
        benchmark: str | None = None,
        forecasts: WalkForwardForecasts | None = None,
        source: str = "in memory",
    ) -> Market:
        """A market from a wide price table (dates by tickers)."""
        frame = prices.sort_index().astype("float64")
        frame.index = pd.DatetimeIndex(frame.index).normalize()
        if frame.index.has_duplicates:
            raise InvalidBacktest("the price table has duplicate dates; keep one row per date")
        if benchmark is not None and benchmark not in frame.columns:
            raise InvalidBacktest(
                f"benchmark {benchmark!r} is not a column of the prices "
                f"({', '.join(map(str, frame.columns))})"
            )
        values = frame.to_numpy()
        if np.any(values[np.isfinite(values)] <= 0.0) or np.any(np.isinf(values)):
            raise InvalidBacktest("prices must be positive and finite (empty cells may be NaN)")
        tickers = [str(c) for c in frame.columns if c != benchmark]
        if not tickers:
            raise InvalidBacktest("the prices hold no ticker besides the benchmark")
        interior = frame.ffill().notna() & frame.bfill().notna()
        gaps = (frame.isna() & interior).sum()
        filled = frame.ffill().where(interior)
        return cls(
            filled,
            tickers,
            benchmark,
            forecasts,
            source,
            filled_prices={str(t): int(n) for t, n in gaps.items() if n},
        )

    @classmethod
    def load(
        cls,
        prices_file: Path | None = None,
        benchmark: str | None = None,
        forecasts: WalkForwardForecasts | None = None,
        min_history_days: int = 300,
    ) -> Market:
        """The embedded S&P 500 set (``prices_file=None``) or a user's file, validated.

        The file is read and validated as ``quantserve ingest`` does (CSV or Parquet,
        long or wide); refused rows are kept in :attr:`quarantine` with their reason.
        """
        raw = read_embedded() if prices_file is None else read_price_file(prices_file, benchmark)
        result = validate_prices(raw.rows, min_history_days)
        clean = result.clean
        if clean.empty:
            raise InvalidBacktest(
                f"no valid price rows in {raw.source} ({len(result.quarantine)} quarantined "
                f"by reason {result.reasons()}); fix the input"
            )
        wide = clean.pivot(index=schema.DATE, columns=schema.TICKER, values=schema.CLOSE)
        wide.columns = wide.columns.astype(str)
        market = cls.from_prices(wide, benchmark or raw.benchmark, forecasts, raw.source)
        return cls(
            market.prices,
            market.tickers,
            market.benchmark,
            forecasts,
            raw.source,
            result.quarantine,
            market.filled_prices,
        )

    @property
    def dates(self) -> pd.DatetimeIndex:
        """The trading days."""
        return pd.DatetimeIndex(self.prices.index)

    @cached_property
    def returns(self) -> pd.DataFrame:
        """Daily simple returns close to close (NaN where either close is missing)."""
        return self.prices / self.prices.shift(1) - 1.0

    def view(self, as_of: pd.Timestamp | int, tickers: list[str] | None = None) -> MarketView:
        """What a strategy may see at ``as_of``'s close (a date, or a row position)."""
        position = as_of if isinstance(as_of, int) else self.position(as_of)
        return MarketView(self, position, tickers or self.tickers)

    def position(self, date: pd.Timestamp) -> int:
        """The row of the last trading day at or before ``date``."""
        position = int(self.dates.searchsorted(pd.Timestamp(date), side="right")) - 1
        if position < 0:
            raise InvalidBacktest(f"{date} is before the first price, {self.dates[0].date()}")
        return position

    def describe(self) -> dict[str, Any]:
        """Source, tickers, benchmark and date range, for the run's settings."""
        return {
            "source": self.source,
            "tickers": list(self.tickers),
            "benchmark": self.benchmark,
            "first_date": self.dates[0].date().isoformat(),
            "last_date": self.dates[-1].date().isoformat(),
            "quarantined_rows": len(self.quarantine),
            "filled_prices": dict(self.filled_prices),
        }


class MarketView:
    """The market as known at one date's close: nothing after it can be read.

    Parameters
    ----------
    market : Market
    position : int
        Row of the view's date in ``market.prices``.
    tickers : list of str
        The universe of the strategy (its columns, in this order).
    """

    def __init__(self, market: Market, position: int, tickers: list[str]) -> None:
        self._market = market
        self._position = position
        self.tickers = list(tickers)
        self.as_of = pd.Timestamp(market.dates[position])

    def _check(self, date: pd.Timestamp | None) -> int:
        """The last row a request ending at ``date`` may read (default: the view's)."""
        if date is None:
            return self._position
        date = pd.Timestamp(date)
        if date > self.as_of:
            raise LookAheadError(
                f"asked for data of {date.date()} in a view that ends at {self.as_of.date()}: "
                "a strategy may use only what is known at the rebalance date's close"
            )
        return self._market.position(date)

    def prices(self, lookback: int | None = None, end: pd.Timestamp | None = None) -> pd.DataFrame:
        """Closes up to ``end`` (default: the view's date); the last ``lookback`` rows."""
        last = self._check(end)
        first = 0 if lookback is None else max(0, last + 1 - lookback)
        return self._market.prices[self.tickers].iloc[first : last + 1]

    def returns(self, lookback: int | None = None, end: pd.Timestamp | None = None) -> pd.DataFrame:
        """Daily simple returns of the universe ending at ``end``; ``lookback`` rows at most."""
        last = self._check(end)
        first = 1 if lookback is None else max(1, last + 1 - lookback)
        return self._market.returns[self.tickers].iloc[first : last + 1]

    def log_returns(self, lookback: int | None = None) -> pd.DataFrame:
        """Daily log returns of the universe, last ``lookback`` rows."""
        returns = self.returns(lookback)
        return pd.DataFrame(np.log1p(returns.to_numpy()), returns.index, returns.columns)

    def forecasts(self) -> tuple[FloatArray, FloatArray]:
        """Annual expected returns and volatilities of the universe, as forecast at ``as_of``.

        Raises :class:`~backtest.MissingForecasts` when no walk-forward forecast is recent
        enough (see :mod:`backtest._forecasts`).
        """
        if self._market.forecasts is None:
            raise MissingForecasts(
                f"this strategy needs the model's walk-forward forecasts: {HOW_TO_PRODUCE}."
            )
        return self._market.forecasts.annualized(self.as_of, self.tickers, self._market.dates)
