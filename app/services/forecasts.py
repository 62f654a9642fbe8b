"""Forecasts for the latest date, computed once per (model version, feature table)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from app.services.errors import UnknownTicker
from app.services.feature_store import FeatureStore
from app.services.model_registry import LoadedModel
from training import schema
from training.model import QUANTILES_OUTPUT, RETURN_OUTPUT, VOLATILITY_OUTPUT

ANNUALISE_RETURN = schema.TRADING_DAYS_PER_YEAR / schema.RETURN_HORIZON_DAYS
ANNUALISE_VARIANCE = schema.TRADING_DAYS_PER_YEAR / schema.VOLATILITY_HORIZON_DAYS


@dataclass(frozen=True)
class Forecast:
    """One ticker's forecast at its latest feature date."""

    ticker: str
    as_of: date
    expected_log_return: float
    """Forward 5-day log return."""
    volatility: float
    """Forward 21-day volatility (square root of the summed squared daily log returns)."""
    log_return_quantiles: tuple[float, float, float]
    """5%, 50% and 95% quantiles of the forward 5-day log return."""

    @property
    def annualized_volatility(self) -> float:
        """``volatility * sqrt(252 / 21)``."""
        return self.volatility * math.sqrt(ANNUALISE_VARIANCE)

    @property
    def annualized_expected_return(self) -> float:
        """Arithmetic annual return implied by the log forecasts.

        The 5-day log return scaled to a year, plus half the annual variance: for
        lognormal prices the arithmetic mean is ``exp(m + s^2/2) - 1 ≈ m + s^2/2``.
        Mean-variance optimisation works on arithmetic returns.
        """
        return self.expected_log_return * ANNUALISE_RETURN + 0.5 * self.annualized_volatility**2


class ForecastService:
    """Every ticker's forecast from one model over one feature table, kept in memory."""

    def __init__(self, model: LoadedModel, store: FeatureStore) -> None:
        self.model = model
        self.store = store
        windows = store.latest_windows(model.lookback_days, model.feature_columns)
        outputs = model.predict(windows.features) if len(windows) else {}
        self._forecasts: dict[str, Forecast] = {}
        for i, ticker in enumerate(windows.tickers):
            expected = float(outputs[RETURN_OUTPUT][i])
            volatility = float(outputs[VOLATILITY_OUTPUT][i])
            low, median, high = (float(q) for q in outputs[QUANTILES_OUTPUT][i])
            if not all(math.isfinite(v) for v in (expected, volatility, low, median, high)):
                continue
            self._forecasts[str(ticker)] = Forecast(
                ticker=str(ticker),
                as_of=pd.Timestamp(windows.dates[i]).date(),
                expected_log_return=expected,
                volatility=volatility,
                log_return_quantiles=(low, median, high),
            )

    @property
    def tickers(self) -> list[str]:
        """Tickers that have a forecast."""
        return sorted(self._forecasts)

    @property
    def as_of(self) -> date | None:
        """The latest forecast date."""
        return max((f.as_of for f in self._forecasts.values()), default=None)

    def get(self, tickers: Sequence[str] | None = None) -> list[Forecast]:
        """Forecasts for ``tickers`` in the order given (all when None)."""
        if tickers is None:
            return [self._forecasts[t] for t in self.tickers]
        unknown = [t for t in tickers if t not in self._forecasts]
        if unknown:
            raise UnknownTicker(unknown, self.tickers)
        return [self._forecasts[t] for t in tickers]

    def annualized(self, tickers: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Annual arithmetic expected returns and volatilities of ``tickers``."""
        forecasts = self.get(tickers)
        return (
            np.array([f.annualized_expected_return for f in forecasts]),
            np.array([f.annualized_volatility for f in forecasts]),
        )
