"""Allocations from the model's forecasts: builds the optimizer's inputs and calls it.

Inputs, annualised (252 trading days):

- expected returns: the model's 5-day log-return forecast scaled to a year, plus half
  the forecast annual variance (arithmetic mean of a lognormal return);
- covariance ``Sigma = D C D``: ``D`` the model's forward volatility forecasts, ``C`` the
  Ledoit-Wolf shrunk correlation of the trailing daily log returns
  (``correlation_lookback_days``, 252 by default). Volatilities move fast and the model
  forecasts them; correlations are slower and noisier to estimate per asset pair, so a
  shrunk trailing estimate is the robust choice, and shrinkage keeps ``C`` well
  conditioned when tickers outnumber useful observations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import numpy as np

from app.services.forecasts import ForecastService
from optimizer import (
    Constraint,
    LongOnly,
    MaxSharpe,
    MeanVariance,
    MinVariance,
    Objective,
    PortfolioOptimizer,
    PortfolioResult,
    WeightBounds,
    covariance_from_volatility,
    ledoit_wolf_correlation,
)

COVARIANCE_METHOD = (
    "model volatility forecasts (21-day, annualised) with a Ledoit-Wolf correlation of "
    "the trailing {days} daily log returns"
)


@dataclass(frozen=True)
class AllocationSpec:
    """What a caller asks for, in library terms."""

    tickers: tuple[str, ...]
    objective: str
    risk_aversion: float
    risk_free_rate: float
    long_only: bool
    min_weight: float | None
    max_weight: float | None


@dataclass(frozen=True)
class Allocation:
    """An optimizer result with the forecasts it came from."""

    spec: AllocationSpec
    result: PortfolioResult
    as_of: date
    covariance_method: str


class PortfolioService:
    """Turns forecasts into allocations with one shared optimizer (compiled-problem cache)."""

    def __init__(
        self,
        forecasts: ForecastService,
        optimizer: PortfolioOptimizer,
        correlation_lookback_days: int,
    ) -> None:
        self.forecasts = forecasts
        self.optimizer = optimizer
        self.correlation_lookback_days = correlation_lookback_days
        self._correlation = lru_cache(maxsize=256)(self._compute_correlation)

    def optimize(self, spec: AllocationSpec) -> Allocation:
        """Solve ``spec`` on the current forecasts."""
        expected_returns, volatilities = self.forecasts.annualized(spec.tickers)
        covariance = covariance_from_volatility(volatilities, self._correlation(spec.tickers))
        result = self.optimizer.optimize(
            objective=_objective(spec),
            constraints=_constraints(spec),
            expected_returns=expected_returns,
            covariance=covariance,
        )
        as_of = max(f.as_of for f in self.forecasts.get(spec.tickers))
        return Allocation(
            spec=spec,
            result=result,
            as_of=as_of,
            covariance_method=COVARIANCE_METHOD.format(days=self.correlation_lookback_days),
        )

    def _compute_correlation(self, tickers: tuple[str, ...]) -> np.ndarray:
        returns = self.forecasts.store.trailing_log_returns(
            list(tickers), self.correlation_lookback_days
        )
        return ledoit_wolf_correlation(returns)


def _objective(spec: AllocationSpec) -> Objective:
    if spec.objective == "max_sharpe":
        return MaxSharpe(risk_free_rate=spec.risk_free_rate)
    if spec.objective == "mean_variance":
        return MeanVariance(risk_aversion=spec.risk_aversion)
    return MinVariance()


def _constraints(spec: AllocationSpec) -> Sequence[Constraint]:
    constraints: list[Constraint] = []
    if spec.long_only:
        constraints.append(LongOnly())
    if spec.min_weight is not None or spec.max_weight is not None:
        constraints.append(WeightBounds(min_weight=spec.min_weight, max_weight=spec.max_weight))
    return constraints
