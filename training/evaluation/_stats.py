"""Out-of-sample statistics: R² against the historical mean, Diebold-Mariano."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats


def r2_out_of_sample(realized: np.ndarray, forecast: np.ndarray, benchmark: np.ndarray) -> float:
    """``1 - SSE(forecast) / SSE(benchmark)`` (Campbell-Thompson); > 0 beats the benchmark."""
    sse = float(np.sum((realized - forecast) ** 2))
    sse_benchmark = float(np.sum((realized - benchmark) ** 2))
    return 1.0 - sse / sse_benchmark if sse_benchmark > 0 else float("nan")


def diebold_mariano(
    dates: np.ndarray, loss_a: np.ndarray, loss_b: np.ndarray, lags: int
) -> tuple[float, float]:
    """DM statistic and two-sided p-value for equal accuracy of forecasters a and b.

    The loss differential is averaged across tickers on each date (forecasts made the
    same day are strongly correlated), and its mean's variance uses a Newey-West
    estimator with ``lags`` lags, since forecasts over an ``h``-day horizon overlap and
    their errors are autocorrelated up to ``h - 1`` lags. A negative statistic means
    ``a`` has the lower loss.
    """
    differential = (
        pd.Series(np.asarray(loss_a) - np.asarray(loss_b), index=pd.DatetimeIndex(dates))
        .groupby(level=0)
        .mean()
        .to_numpy()
    )
    n = differential.size
    if n < 2 * lags + 2:
        return float("nan"), float("nan")
    centred = differential - differential.mean()
    long_run = float(centred @ centred) / n
    for lag in range(1, lags + 1):
        weight = 1.0 - lag / (lags + 1)
        long_run += 2.0 * weight * float(centred[lag:] @ centred[:-lag]) / n
    if long_run <= 0:
        return float("nan"), float("nan")
    statistic = float(differential.mean() / math.sqrt(long_run / n))
    return statistic, float(2.0 * stats.norm.sf(abs(statistic)))
