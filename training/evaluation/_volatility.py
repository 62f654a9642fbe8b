"""Volatility baselines: forecasts of the forward 21-day realized variance.

Every forecaster returns, for each (date, ticker) sample, the forecast of
``sum_{i=1..21} r_{t+i}^2`` made with data up to the close of ``t``, in the target's
units (squared daily log returns summed over 21 days). Parameters are estimated on the
refit's training data only; filters then run forward day by day with those parameters.

- ``trailing_21d``: the last 21 days' sum of squared returns.
- ``ewma_0.94``: RiskMetrics, ``s2_t = 0.94 s2_{t-1} + 0.06 r_t^2``, times 21.
- ``garch_1_1``, ``gjr_garch_1_1``: fitted with ``arch`` (normal errors), analytic
  21-step variance path summed.
- ``har``, ``log_har``: Corsi's (2009) heterogeneous autoregression of the forward
  variance on the last day's, week's and month's mean squared return, pooled across
  tickers by OLS; ``log_har`` in logs, with the lognormal mean correction.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pandas as pd

from training import schema
from training.metrics import VARIANCE_FLOOR

logger = logging.getLogger(__name__)

HORIZON = schema.VOLATILITY_HORIZON_DAYS
EWMA_LAMBDA = 0.94
_PERCENT = 100.0  # arch fits percent returns far more reliably than raw ones
# An unchanged close gives a zero squared return, whose log is -inf; in logs, squared
# returns and variances are floored at (0.1%)^2. Flooring at 1e-8 instead let stale
# days dominate the log regression (out-of-sample QLIKE 0.37 instead of 0.29 in 2005).
LOG_FLOOR = 1e-6


def har_regressors(log_returns: pd.Series) -> pd.DataFrame:
    """Daily, weekly (5-day) and monthly (22-day) mean squared returns, up to ``t``."""
    squared = log_returns**2
    return pd.DataFrame(
        {
            "rv_day": squared,
            "rv_week": squared.rolling(5, min_periods=5).mean(),
            "rv_month": squared.rolling(22, min_periods=22).mean(),
        },
        index=log_returns.index,
    )


def ewma_variance(log_returns: pd.Series, decay: float = EWMA_LAMBDA) -> pd.Series:
    """Forward 21-day variance from RiskMetrics' exponentially weighted daily variance.

    Seeded with the mean squared return of the first 21 days; each value uses returns
    up to its own date only.
    """
    values = log_returns.to_numpy(dtype=float)
    daily = np.empty_like(values)
    level = float(np.nanmean(values[:HORIZON] ** 2)) if values.size else np.nan
    for i, value in enumerate(values):
        if np.isfinite(value):
            level = decay * level + (1.0 - decay) * value * value
        daily[i] = level
    return pd.Series(daily * HORIZON, index=log_returns.index)


def garch_variance(
    log_returns: pd.Series,
    fit_until: pd.Timestamp,
    forecast_from: pd.Timestamp,
    forecast_until: pd.Timestamp,
    *,
    asymmetric: bool,
) -> pd.Series | None:
    """GARCH(1,1) (or GJR-GARCH(1,1)) forward 21-day variance, ``forecast_from..until``.

    Parameters are fitted on returns dated before ``fit_until``; the variance filter
    then runs over every return up to each forecast date with those parameters fixed.
    Returns None when the fit fails (stale stretches can make it degenerate).
    """
    from arch import arch_model

    series = (log_returns.dropna() * _PERCENT).astype(float)
    series = series[series.index <= forecast_until]
    train = series[series.index < fit_until]
    if len(train) < 500:
        return None

    def model(returns: pd.Series) -> Any:
        return arch_model(
            returns,
            mean="Constant",
            vol="GARCH",
            p=1,
            o=1 if asymmetric else 0,
            q=1,
            dist="normal",
            rescale=False,
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter; the result is checked below
        try:
            fitted = model(train).fit(disp="off", show_warning=False)
        except (ValueError, np.linalg.LinAlgError) as exc:
            logger.warning("GARCH fit failed: %s", exc)
            return None
        if fitted.convergence_flag != 0 or not np.all(np.isfinite(fitted.params)):
            return None
        fixed = model(series).fix(fitted.params)
        forecast = fixed.forecast(
            horizon=HORIZON, start=forecast_from, reindex=False, method="analytic"
        )
    total: pd.Series = forecast.variance.sum(axis=1) / _PERCENT**2
    return total.astype(float)


def fit_har(regressors: pd.DataFrame, target: pd.Series, log: bool) -> tuple[np.ndarray, float]:
    """OLS coefficients (intercept first) and the residual variance (used by ``log``)."""
    x, y = _har_design(regressors, log), target.to_numpy(dtype=float)
    if log:
        y = np.log(np.maximum(y, LOG_FLOOR))
    usable = np.isfinite(x).all(axis=1) & np.isfinite(y)
    coefficients, *_ = np.linalg.lstsq(x[usable], y[usable], rcond=None)
    residuals = y[usable] - x[usable] @ coefficients
    return coefficients, float(np.var(residuals))


def predict_har(
    regressors: pd.DataFrame, coefficients: np.ndarray, residual_variance: float, log: bool
) -> np.ndarray:
    """HAR forecasts of the forward 21-day variance, floored above zero."""
    fitted = _har_design(regressors, log) @ coefficients
    if log:
        return np.asarray(np.exp(fitted + 0.5 * residual_variance), dtype=float)
    return np.asarray(np.maximum(fitted, VARIANCE_FLOOR), dtype=float)


def _har_design(regressors: pd.DataFrame, log: bool) -> np.ndarray:
    values = regressors[["rv_day", "rv_week", "rv_month"]].to_numpy(dtype=float)
    if log:
        values = np.log(np.maximum(values, LOG_FLOOR))
    return np.column_stack([np.ones(len(values)), values])
