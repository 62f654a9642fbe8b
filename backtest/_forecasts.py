"""Point-in-time model forecasts: the walk-forward refits' out-of-sample predictions.

``quantserve evaluate`` refits the model once per test year on data before that year
(purged by the 21-day target horizon) and writes every out-of-sample prediction to
``models/<name>/<version>/evaluation/predictions.parquet``. A forecast dated ``t`` was
made from features up to ``t``'s close by a model that never saw ``t`` or later, so a
strategy may use it at ``t``. The served model saw everything and is never used here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest._errors import MissingForecasts
from training import schema

PREDICTIONS_FILE = "predictions.parquet"
MODEL_FORECASTER = "model"
RETURN_TARGET = "log_return_5d"
VARIANCE_TARGET = "variance_21d"
MAX_STALENESS_DAYS = 5
"""A forecast older than this many trading days is not used (the rebalance is skipped)."""

HOW_TO_PRODUCE = (
    "run `quantserve evaluate` (walk-forward refits of the model; add --no-garch to skip "
    "the slow GARCH baselines), which writes models/<name>/<version>/evaluation/"
    "predictions.parquet, or pass --predictions FILE"
)


@dataclass(frozen=True)
class WalkForwardForecasts:
    """The model's out-of-sample forecasts, one row per (date, ticker).

    Attributes
    ----------
    expected_log_return_5d : pd.DataFrame
        Dates by tickers: the forecast 5-day log return made at each date's close.
    variance_21d : pd.DataFrame
        Dates by tickers: the forecast variance of the next 21 daily log returns
        (a sum of squares, not annualised).
    source : str
        Where the predictions came from.
    """

    expected_log_return_5d: pd.DataFrame
    variance_21d: pd.DataFrame
    source: str

    @classmethod
    def from_predictions(cls, predictions: pd.DataFrame, source: str) -> WalkForwardForecasts:
        """Build from the long ``predictions.parquet`` table of ``quantserve evaluate``."""
        required = {"date", "ticker", "forecaster", "target", "forecast"}
        missing = required - set(predictions.columns)
        if missing:
            raise MissingForecasts(
                f"{source} lacks columns {sorted(missing)}; it is not a walk-forward "
                f"predictions file. To produce one, {HOW_TO_PRODUCE}."
            )
        rows = predictions[predictions["forecaster"] == MODEL_FORECASTER]
        tables = {}
        for target in (RETURN_TARGET, VARIANCE_TARGET):
            part = rows[rows["target"] == target]
            if part.empty:
                raise MissingForecasts(
                    f"{source} holds no '{target}' forecasts of the model. To produce "
                    f"them, {HOW_TO_PRODUCE}."
                )
            table = part.pivot_table(
                index="date", columns="ticker", values="forecast", aggfunc="last"
            )
            table.index = pd.DatetimeIndex(pd.to_datetime(table.index)).normalize()
            tables[target] = table.sort_index().astype("float64")
        return cls(tables[RETURN_TARGET], tables[VARIANCE_TARGET], source)

    @classmethod
    def read(cls, path: Path) -> WalkForwardForecasts:
        """Read ``predictions.parquet`` (or a folder holding it)."""
        file = path / PREDICTIONS_FILE if path.is_dir() else path
        if not file.is_file():
            raise MissingForecasts(
                f"no walk-forward predictions at {file}. The forecast-driven strategies "
                f"need forecasts made without look-ahead: {HOW_TO_PRODUCE}."
            )
        return cls.from_predictions(pd.read_parquet(file), str(file))

    @property
    def first_date(self) -> pd.Timestamp:
        """The first date with a forecast."""
        return pd.Timestamp(self.expected_log_return_5d.index.min())

    @property
    def last_date(self) -> pd.Timestamp:
        """The last date with a forecast."""
        return pd.Timestamp(self.expected_log_return_5d.index.max())

    def describe(self) -> dict[str, Any]:
        """Where the forecasts come from and what they cover."""
        return {
            "source": self.source,
            "first_date": self.first_date.date().isoformat(),
            "last_date": self.last_date.date().isoformat(),
            "tickers": sorted(map(str, self.expected_log_return_5d.columns)),
        }

    def annualized(
        self, as_of: pd.Timestamp, tickers: list[str], trading_dates: pd.DatetimeIndex
    ) -> tuple[np.ndarray, np.ndarray]:
        """Annual arithmetic expected returns and volatilities as forecast at ``as_of``.

        Uses each ticker's latest forecast dated at or before ``as_of``, no older than
        :data:`MAX_STALENESS_DAYS` trading days (``trading_dates`` counts them).

        Raises
        ------
        MissingForecasts
            When a ticker has no recent enough forecast.
        """
        returns = _latest(self.expected_log_return_5d, as_of, tickers, trading_dates)
        variance = _latest(self.variance_21d, as_of, tickers, trading_dates)
        annual_variance = np.clip(variance, 0.0, None) * schema.ANNUALISE_VARIANCE
        expected = schema.annualized_expected_return(returns, annual_variance)
        return np.asarray(expected, dtype=np.float64), np.sqrt(annual_variance)


def _latest(
    table: pd.DataFrame, as_of: pd.Timestamp, tickers: list[str], trading_dates: pd.DatetimeIndex
) -> np.ndarray:
    absent = [t for t in tickers if t not in table.columns]
    if absent:
        raise MissingForecasts(
            f"the walk-forward predictions have no forecasts for {absent}; they cover "
            f"{sorted(map(str, table.columns))}. Back-test those tickers only, or {HOW_TO_PRODUCE}."
        )
    position = int(table.index.searchsorted(as_of, side="right"))
    window = table[tickers].iloc[max(0, position - 3 * MAX_STALENESS_DAYS) : position]
    now = int(trading_dates.searchsorted(as_of))
    values = np.empty(len(tickers))
    for i, ticker in enumerate(tickers):
        known = window[ticker].dropna()
        if known.empty:
            raise MissingForecasts(_stale_message(table, as_of, ticker))
        age = now - int(trading_dates.searchsorted(known.index[-1]))
        if age > MAX_STALENESS_DAYS:
            raise MissingForecasts(_stale_message(table, as_of, ticker))
        values[i] = float(known.iloc[-1])
    return values


def _stale_message(table: pd.DataFrame, as_of: pd.Timestamp, ticker: str) -> str:
    first, last = table.index.min().date(), table.index.max().date()
    return (
        f"no walk-forward forecast of {ticker} within {MAX_STALENESS_DAYS} trading days before "
        f"{as_of.date()}: the predictions cover {first} to {last} (the last 21 trading "
        "days of the data have no realised target, so no prediction). Back-test inside "
        f"that range, or {HOW_TO_PRODUCE}."
    )
