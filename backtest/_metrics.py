"""Performance metrics of a back-tested strategy, from its daily net simple returns.

Conventions: returns are daily *simple* returns net of costs, on a ``DatetimeIndex`` of
trading days; a year has ``periods_per_year`` (252) of them; ``years = days / 252``.
The annual risk-free rate ``rf`` becomes the daily ``(1 + rf)^(1 / 252) - 1``, and the
Sharpe, Sortino, alpha and beta use daily *excess* returns ``r - rf_daily``. Means are
annualised by ``* 252``, standard deviations by ``* sqrt(252)`` (ratios of the two by
``* sqrt(252)``). Anything undefined (a ratio over a zero dispersion, too few days) is
``None``, never NaN or inf, so the result is valid strict JSON.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from backtest._hac import long_run_covariance
from backtest._sharpe import (
    MIN_TEST_OBSERVATIONS,
    FloatArray,
    jobson_korkie_memmel_test,
    ledoit_wolf_sharpe_test,
    sharpe_confidence_interval,
)

PERIODS_PER_YEAR = 252
"""Trading days in a year."""


def strategy_metrics(
    net_returns: pd.Series,
    *,
    costs: pd.Series,
    turnover: pd.Series,
    benchmark_returns: pd.Series | None = None,
    reference_returns: pd.Series | None = None,
    risk_free_rate: float = 0.0,
    periods_per_year: int = PERIODS_PER_YEAR,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """The performance summary of one strategy, as a JSON-ready dict.

    Parameters
    ----------
    net_returns : Series
        Daily simple returns net of costs, on a sorted, unique ``DatetimeIndex``.
    costs : Series
        Daily trading cost as a fraction of value (0 on most days), same index.
    turnover : Series
        ``sum |target - drifted|`` at each rebalance (index: rebalance dates, not
        checked against ``net_returns``: the first may precede the first return).
    benchmark_returns : Series, optional
        Daily simple returns of the index, same index; ``None`` leaves the benchmark
        metrics ``None``.
    reference_returns : Series, optional
        Daily net returns of the equal-weight (1/N) strategy, same index, for the
        Sharpe-difference tests; ``None`` for 1/N itself.
    risk_free_rate : float, optional
        Annual, compounded (see the module docstring).
    periods_per_year : int, optional
    confidence : float, optional
        Level of ``sharpe_ci``.

    Returns
    -------
    dict
        - ``start``, ``end``: ISO dates of the first and last return; ``days``: their
          count; ``years``: ``days / periods_per_year``.
        - ``total_return``: ``prod(1 + r) - 1``; ``cagr``: ``(1 + total_return)^(1 /
          years) - 1`` (``-1`` if the value reached 0, ``None`` if it went negative).
        - ``volatility``: ``std(r, ddof=1) * sqrt(P)``; exactly 0 for constant returns.
        - ``sharpe``: ``mean(e) / std(e, ddof=1) * sqrt(P)`` of the excess returns
          ``e``; ``None`` when ``e`` is constant. ``sharpe_ci``: ``[low, high]`` at
          ``confidence`` from :func:`~backtest._sharpe.sharpe_confidence_interval` (HAC
          delta method), ``None`` under 30 days.
        - ``sortino``: ``mean(e) / sqrt(mean(min(e, 0)^2)) * sqrt(P)``: the downside
          deviation is the root mean square of the negative excess returns over *all*
          days (target 0 excess); ``None`` without a negative day.
        - ``max_drawdown``: ``min(drawdown)`` (<= 0, see :func:`drawdown`);
          ``max_drawdown_start``: ISO date of the peak before the deepest trough (the
          first date when the peak is the initial capital), ``max_drawdown_end``: date
          of the trough (first if tied); both ``None`` without a drawdown.
        - ``calmar``: ``cagr / |max_drawdown|``.
        - ``turnover``: ``sum(turnover) / years``; ``costs``: ``sum(costs) / years``.
        - ``hit_rate``: share of days with ``r > 0`` among days with ``r != 0``.
        - ``tracking_error``: ``std(r - b, ddof=1) * sqrt(P)``; ``information_ratio``:
          ``mean(r - b) / std(r - b, ddof=1) * sqrt(P)``.
        - ``alpha`` (``* P``), ``beta``: OLS of ``e`` on ``[1, b - rf_daily]``;
          ``alpha_t_stat``: alpha over its Newey-West (Bartlett, ``floor(4 (T / 100)^(2 /
          9))`` lags, ``T / (T - 2)`` correction) standard error, ``None`` under 30 days
          or for a perfect fit (residuals of rounding size).
          These five are ``None`` without a benchmark.
        - ``vs_equal_weight``: ``None`` without ``reference_returns``, else
          ``sharpe_difference`` (annualised, strategy minus 1/N), the Ledoit-Wolf HAC
          test's ``statistic`` and ``p_value``, ``method``, and
          ``jobson_korkie_memmel_p_value``; values ``None`` when the tests are
          undefined (under 30 days, a constant series, identical series).

    Raises
    ------
    ValueError
        Empty, unsorted or non-finite inputs, a series not on ``net_returns``' dates,
        negative turnover, or a bad rate, frequency or confidence.
    """
    returns = _validated(net_returns, "net_returns")
    dates = returns.index
    cost = _validated(costs, "costs", dates)
    turnover_values = _validated(turnover, "turnover", sort=False)
    if (turnover_values < 0).any():
        raise ValueError("turnover must be non-negative (it is sum |target - drifted|)")
    if periods_per_year <= 0:
        raise ValueError(f"periods_per_year must be positive, got {periods_per_year}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rf_daily = _daily_rate(risk_free_rate, periods_per_year)
    values = returns.to_numpy(dtype=np.float64)
    excess = values - rf_daily
    n_days = values.size
    years = n_days / periods_per_year
    root_p = math.sqrt(periods_per_year)

    final_value = float(np.prod(1.0 + values))
    underwater = drawdown(returns)
    trough = int(np.argmin(underwater.to_numpy()))
    max_drawdown = float(underwater.iloc[trough])
    at_peak = np.flatnonzero(underwater.to_numpy()[: trough + 1] == 0.0)
    peak = int(at_peak[-1]) if at_peak.size else 0
    cagr = _cagr(final_value, years)
    sharpe = _ratio(excess.mean(), _std(excess), root_p)
    downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)))
    nonzero_days = int(np.count_nonzero(values))

    metrics: dict[str, Any] = {
        "start": dates[0].date().isoformat(),
        "end": dates[-1].date().isoformat(),
        "days": n_days,
        "years": years,
        "total_return": _finite(final_value - 1.0),
        "cagr": cagr,
        "volatility": _scaled(_std(values), root_p),
        "sharpe": sharpe,
        "sharpe_ci": _confidence_interval(excess, confidence, periods_per_year, sharpe),
        "sortino": _ratio(excess.mean(), downside, root_p),
        "max_drawdown": max_drawdown,
        "max_drawdown_start": dates[peak].date().isoformat() if max_drawdown < 0 else None,
        "max_drawdown_end": dates[trough].date().isoformat() if max_drawdown < 0 else None,
        "calmar": _ratio(cagr, -max_drawdown, 1.0) if cagr is not None else None,
        "turnover": _finite(float(turnover_values.sum()) / years),
        "costs": _finite(float(cost.sum()) / years),
        "hit_rate": (int(np.count_nonzero(values > 0)) / nonzero_days if nonzero_days else None),
    }
    if benchmark_returns is None:
        metrics.update(dict.fromkeys(_BENCHMARK_KEYS))
    else:
        benchmark = _validated(benchmark_returns, "benchmark_returns", dates).to_numpy()
        metrics.update(_benchmark_metrics(values, benchmark, rf_daily, periods_per_year))
    if reference_returns is None:
        metrics["vs_equal_weight"] = None
    else:
        reference = _validated(reference_returns, "reference_returns", dates).to_numpy()
        metrics["vs_equal_weight"] = _versus_reference(
            excess, reference - rf_daily, periods_per_year
        )
    return metrics


def drawdown(net_returns: pd.Series) -> pd.Series:
    """Daily drawdown: value / running peak - 1 (<= 0), on ``net_returns``' index.

    The value is ``cumprod(1 + r)`` from an initial capital of 1, and the initial
    capital counts as a peak, so a loss on the first day is a drawdown (as in
    empyrical). ``min(drawdown)`` is the maximum drawdown.
    """
    returns = _validated(net_returns, "net_returns")
    value = (1.0 + returns).cumprod()
    peak = value.cummax().clip(lower=1.0)
    return (value / peak - 1.0).rename("drawdown")


def rolling_sharpe(
    net_returns: pd.Series,
    window: int = PERIODS_PER_YEAR,
    *,
    risk_free_rate: float = 0.0,
    periods_per_year: int = PERIODS_PER_YEAR,
) -> pd.Series:
    """Annualised Sharpe ratio over the trailing ``window`` days ending at each date.

    ``mean(e) / std(e, ddof=1) * sqrt(periods_per_year)`` of the excess returns in the
    window; NaN for the first ``window - 1`` dates and for windows of constant returns
    (a missing point of a plot, not a number).
    """
    if window < 2:
        raise ValueError(f"window must be at least 2 days, got {window}")
    returns = _validated(net_returns, "net_returns")
    excess = returns - _daily_rate(risk_free_rate, periods_per_year)
    rolling = excess.rolling(window, min_periods=window)
    deviation = rolling.std(ddof=1)
    sharpe = rolling.mean() / deviation.where(deviation > 0.0) * math.sqrt(periods_per_year)
    return sharpe.rename("rolling_sharpe")


_BENCHMARK_KEYS = ("tracking_error", "information_ratio", "alpha", "beta", "alpha_t_stat")


def _benchmark_metrics(
    values: FloatArray, benchmark: FloatArray, rf_daily: float, periods_per_year: int
) -> dict[str, float | None]:
    root_p = math.sqrt(periods_per_year)
    active = values - benchmark
    tracking = _std(active)
    result: dict[str, float | None] = {
        "tracking_error": _scaled(tracking, root_p),
        "information_ratio": _ratio(active.mean(), tracking, root_p),
        "alpha": None,
        "beta": None,
        "alpha_t_stat": None,
    }
    n_days = values.size
    benchmark_excess = benchmark - rf_daily
    if n_days < 3 or np.ptp(benchmark_excess) == 0.0:
        return result  # beta is not identified
    regressors = np.column_stack([np.ones(n_days), benchmark_excess])
    target = values - rf_daily
    coefficients = np.linalg.lstsq(regressors, target, rcond=None)[0]
    result["alpha"] = _finite(float(coefficients[0]) * periods_per_year)
    result["beta"] = _finite(float(coefficients[1]))
    residuals = target - regressors @ coefficients
    # A perfect fit (the strategy is a leveraged benchmark) leaves residuals of rounding
    # size only, whose standard error and t statistic are noise: leave them undefined.
    perfect_fit = float(np.sqrt(np.mean(residuals**2))) <= 1e-10 * float(np.std(target))
    if n_days >= MIN_TEST_OBSERVATIONS and not perfect_fit:
        # Newey-West (1994) rule-of-thumb lag count; Bartlett with bandwidth lags + 1.
        lags = math.floor(4.0 * (n_days / 100.0) ** (2.0 / 9.0))
        meat = long_run_covariance(
            regressors * residuals[:, None], kernel="bartlett", bandwidth=lags + 1.0
        )
        bread = np.linalg.inv(regressors.T @ regressors / n_days)
        covariance = bread @ meat @ bread / n_days * n_days / (n_days - 2)
        result["alpha_t_stat"] = _ratio(
            float(coefficients[0]), math.sqrt(max(float(covariance[0, 0]), 0.0)), 1.0
        )
    return result


def _versus_reference(
    excess: FloatArray, reference_excess: FloatArray, periods_per_year: int
) -> dict[str, Any]:
    outcome: dict[str, Any] = {
        "sharpe_difference": None,
        "p_value": None,
        "statistic": None,
        "method": "ledoit_wolf_2008_hac",
        "jobson_korkie_memmel_p_value": None,
    }
    if (
        excess.size < MIN_TEST_OBSERVATIONS
        or np.ptp(excess) == 0.0
        or np.ptp(reference_excess) == 0.0
        or np.array_equal(excess, reference_excess)
    ):
        return outcome
    try:  # inputs are validated: a ValueError here means a degenerate (zero) variance
        robust = ledoit_wolf_sharpe_test(excess, reference_excess, periods_per_year)
        classic = jobson_korkie_memmel_test(excess, reference_excess, periods_per_year)
    except ValueError:
        return outcome
    outcome.update(
        sharpe_difference=_finite(robust.difference),
        p_value=_finite(robust.p_value),
        statistic=_finite(robust.statistic),
        jobson_korkie_memmel_p_value=_finite(classic.p_value),
    )
    return outcome


def _confidence_interval(
    excess: FloatArray, confidence: float, periods_per_year: int, sharpe: float | None
) -> list[float] | None:
    if sharpe is None or excess.size < MIN_TEST_OBSERVATIONS:
        return None
    low, high = sharpe_confidence_interval(excess, confidence, periods_per_year)
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    return [low, high]


def _validated(
    series: pd.Series, name: str, dates: pd.Index | None = None, *, sort: bool = True
) -> pd.Series:
    """``series`` as float, after checking its type, index and values."""
    if not isinstance(series, pd.Series):
        raise ValueError(f"{name} must be a pandas Series, got {type(series).__name__}")
    if sort and series.empty:
        raise ValueError(f"{name} is empty: a back-test needs at least one day of returns")
    if not (series.empty or isinstance(series.index, pd.DatetimeIndex)):
        raise ValueError(f"{name} must have a DatetimeIndex of trading days")
    if dates is not None and not series.index.equals(dates):
        raise ValueError(
            f"{name} is not aligned with net_returns ({len(series)} dates from "
            f"{_span(series.index)}, expected {len(dates)} from {_span(dates)}): "
            "reindex it to net_returns' dates"
        )
    if sort and not (series.index.is_monotonic_increasing and series.index.is_unique):
        raise ValueError(f"{name}'s dates must be sorted and unique")
    values = series.astype(np.float64)
    if not np.isfinite(values.to_numpy()).all():
        raise ValueError(f"{name} holds non-finite values (NaN or inf); drop or fill them")
    return values


def _span(index: pd.Index) -> str:
    return f"{index[0]} to {index[-1]}" if len(index) else "nowhere"


def _daily_rate(annual_rate: float, periods_per_year: int) -> float:
    if periods_per_year <= 0:
        raise ValueError(f"periods_per_year must be positive, got {periods_per_year}")
    if not (math.isfinite(annual_rate) and annual_rate > -1.0):
        raise ValueError(f"risk_free_rate must be a finite annual rate > -1, got {annual_rate}")
    return float((1.0 + annual_rate) ** (1.0 / periods_per_year) - 1.0)


def _cagr(final_value: float, years: float) -> float | None:
    if final_value < 0.0 or not math.isfinite(final_value):
        return None
    if final_value == 0.0:
        return -1.0
    # In logs: final_value ** (1 / years) overflows for short, extreme back-tests.
    exponent = math.log(final_value) / years
    return math.expm1(exponent) if exponent < 700.0 else None


def _std(values: FloatArray) -> float | None:
    """Sample standard deviation (``ddof=1``): exactly 0 for constant values."""
    if values.size < 2:
        return None
    if np.ptp(values) == 0.0:
        return 0.0  # np.std may leave rounding noise of ~1e-19 on constant values
    return _finite(float(np.std(values, ddof=1)))


def _ratio(numerator: float | None, denominator: float | None, scale: float) -> float | None:
    if numerator is None or denominator is None or denominator <= 0.0:
        return None
    return _finite(float(numerator) / denominator * scale)


def _scaled(value: float | None, scale: float) -> float | None:
    return None if value is None else _finite(value * scale)


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
