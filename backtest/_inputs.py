"""The optimizer's inputs at a rebalance date, estimated from a point-in-time view.

Annualised with 252 trading days, as ``POST /v1/portfolios/optimize`` does:

- ``trailing`` risk: the risk model's covariance of the trailing daily simple returns,
  times 252;
- ``forecast`` risk: ``Sigma = D C D``, ``D`` the walk-forward forecast volatilities and
  ``C`` the risk model's correlation of the trailing daily log returns;
- expected returns: none (zeros, for risk-only objectives), the trailing or expanding
  mean daily return times 252, or the forecast (5-day log return times 252/5 plus half
  the forecast variance).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from backtest._market import MarketView
from optimizer import (
    CovarianceEstimator,
    FactorModel,
    LedoitWolfCovariance,
    PCAFactorModel,
    covariance_from_volatility,
    ledoit_wolf_correlation,
)

TRADING_DAYS_PER_YEAR = 252
FloatArray = np.ndarray
ExpectedReturns = Literal["none", "trailing_mean", "expanding_mean", "forecast"]
Volatility = Literal["trailing", "forecast"]


@dataclass(frozen=True)
class StrategyInputs:
    """Where an optimized strategy's expected returns and risk come from.

    Parameters
    ----------
    expected_returns : {"none", "trailing_mean", "expanding_mean", "forecast"}
        ``none`` for objectives that need no returns (min variance, risk parity, HRP).
    volatility : {"trailing", "forecast"}
        Asset volatilities from the trailing returns, or the model's forecasts.
    risk_model : CovarianceEstimator
        Covariance (or, with forecast volatilities, correlation) estimator of the
        trailing returns. Default Ledoit-Wolf.
    lookback_days : int
        Trailing daily returns behind the risk estimate and the trailing mean.
    """

    expected_returns: ExpectedReturns = "none"
    volatility: Volatility = "trailing"
    risk_model: CovarianceEstimator = field(default_factory=LedoitWolfCovariance)
    lookback_days: int = 252

    @property
    def uses_forecasts(self) -> bool:
        """Whether the walk-forward forecasts are needed."""
        return self.expected_returns == "forecast" or self.volatility == "forecast"

    def describe(self) -> str:
        """One line for reports."""
        risk_model = type(self.risk_model).__name__
        risk = (
            f"forecast volatilities with the {risk_model} correlation"
            if self.volatility == "forecast"
            else f"{risk_model} covariance"
        )
        mean = {
            "none": "",
            "trailing_mean": f"; trailing {self.lookback_days}-day mean returns",
            "expanding_mean": "; expanding-window mean returns",
            "forecast": "; forecast returns",
        }[self.expected_returns]
        return f"{risk} of the trailing {self.lookback_days} days{mean}"

    def estimate(self, view: MarketView) -> tuple[FloatArray, FloatArray | FactorModel, FloatArray]:
        """Annual expected returns, annual covariance and the trailing daily returns."""
        returns = view.returns(self.lookback_days).to_numpy(dtype=np.float64)
        forecast_mean: FloatArray | None = None
        if self.volatility == "forecast":
            forecast_mean, forecast_volatility = view.forecasts()
            covariance = _forecast_covariance(self.risk_model, returns, forecast_volatility)
        else:
            covariance = _trailing_covariance(self.risk_model, returns)
        if self.expected_returns == "forecast":
            if forecast_mean is None:
                forecast_mean, _ = view.forecasts()
            expected = forecast_mean
        elif self.expected_returns == "trailing_mean":
            expected = returns.mean(axis=0) * TRADING_DAYS_PER_YEAR
        elif self.expected_returns == "expanding_mean":
            history = view.returns(None).to_numpy(dtype=np.float64)
            expected = history.mean(axis=0) * TRADING_DAYS_PER_YEAR
        else:
            expected = np.zeros(returns.shape[1])
        return expected, covariance, returns


def _trailing_covariance(
    risk_model: CovarianceEstimator, returns: FloatArray
) -> FloatArray | FactorModel:
    estimator = risk_model.fit(returns)
    if isinstance(estimator, PCAFactorModel):
        return estimator.factor_model_.scaled(TRADING_DAYS_PER_YEAR)
    covariance: FloatArray = estimator.covariance_ * TRADING_DAYS_PER_YEAR
    return covariance


def _forecast_covariance(
    risk_model: CovarianceEstimator, returns: FloatArray, volatility: FloatArray
) -> FloatArray | FactorModel:
    log_returns = np.log1p(returns)
    if isinstance(risk_model, LedoitWolfCovariance):
        return covariance_from_volatility(volatility, ledoit_wolf_correlation(log_returns))
    estimator = risk_model.fit(log_returns)
    if isinstance(estimator, PCAFactorModel):
        return estimator.factor_model_.with_volatility(volatility)
    scale = np.sqrt(np.diag(estimator.covariance_))
    correlation = estimator.covariance_ / np.outer(scale, scale)
    np.fill_diagonal(correlation, 1.0)
    return covariance_from_volatility(volatility, correlation)
