"""Forecast metrics, shared by validation at training time and walk-forward evaluation.

Volatility forecasts are scored on the variance scale with QLIKE (Patton 2011), which
ranks forecasts consistently even when the realized variance is a noisy proxy:
``QLIKE = mean(y/h - ln(y/h) - 1)`` with ``y`` the realized and ``h`` the forecast
variance (0 for a perfect forecast). Return forecasts are scored by their
cross-sectional rank information coefficient (Spearman correlation of forecast and
realized across tickers on each date), RMSE and hit rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Variances below this are treated as this (a stale price gives a zero realized variance).
VARIANCE_FLOOR = 1e-8


def qlike(realized_variance: np.ndarray, forecast_variance: np.ndarray) -> float:
    """Mean QLIKE loss; lower is better, 0 is perfect."""
    y = np.maximum(np.asarray(realized_variance, dtype=float), VARIANCE_FLOOR)
    h = np.maximum(np.asarray(forecast_variance, dtype=float), VARIANCE_FLOOR)
    ratio = y / h
    return float(np.mean(ratio - np.log(ratio) - 1.0))


def rmse(realized: np.ndarray, forecast: np.ndarray) -> float:
    """Root mean squared error."""
    diff = np.asarray(realized, dtype=float) - np.asarray(forecast, dtype=float)
    return float(np.sqrt(np.mean(diff**2)))


def hit_rate(realized: np.ndarray, forecast: np.ndarray) -> float:
    """Share of samples where forecast and realized have the same sign (zeros excluded)."""
    realized = np.asarray(realized, dtype=float)
    forecast = np.asarray(forecast, dtype=float)
    mask = (realized != 0) & (forecast != 0)
    if not mask.any():
        return float("nan")
    return float(np.mean(np.sign(realized[mask]) == np.sign(forecast[mask])))


def rank_ic(
    dates: np.ndarray, realized: np.ndarray, forecast: np.ndarray, min_names: int = 3
) -> tuple[float, float, int]:
    """Cross-sectional Spearman IC: mean over dates, its t-statistic, and the date count.

    Dates with fewer than ``min_names`` tickers, or a constant forecast, are skipped.
    The t-statistic assumes independent dates; overlapping forward returns make it
    optimistic, so read it as a rough guide.
    """
    frame = pd.DataFrame({"date": dates, "realized": realized, "forecast": forecast})
    # Ranks and counts of every date in grouped passes, then one correlation a date on
    # plain arrays: the same numbers as ranking each date's own frame (a date's rows
    # keep their order), without building a pandas frame per date, which cost ~1.7 s a
    # call on the embedded data's validation split.
    by_date = frame.groupby("date", sort=True)
    ranks = by_date[["realized", "forecast"]].rank()
    usable = (by_date["forecast"].transform("size") >= min_names) & (
        by_date["forecast"].transform("nunique") >= 2
    )
    kept = np.flatnonzero(usable.to_numpy())
    kept = kept[np.argsort(frame["date"].to_numpy()[kept], kind="stable")]
    kept_dates = frame["date"].to_numpy()[kept]
    starts = np.flatnonzero(kept_dates[1:] != kept_dates[:-1]) + 1
    ics: list[float] = []
    if kept.size:
        realized_ranks = np.split(ranks["realized"].to_numpy()[kept], starts)
        forecast_ranks = np.split(ranks["forecast"].to_numpy()[kept], starts)
        for realized_rank, forecast_rank in zip(realized_ranks, forecast_ranks, strict=True):
            ic = float(np.corrcoef(realized_rank, forecast_rank)[0, 1])
            if np.isfinite(ic):
                ics.append(ic)
    if not ics:
        return float("nan"), float("nan"), 0
    values = np.asarray(ics)
    std = values.std(ddof=1) if values.size > 1 else float("nan")
    t_stat = (
        float(values.mean() / (std / np.sqrt(values.size))) if std and std > 0 else float("nan")
    )
    return float(values.mean()), t_stat, int(values.size)


def return_metrics(
    dates: np.ndarray, realized: np.ndarray, forecast: np.ndarray
) -> dict[str, float | None]:
    """RMSE, hit rate and rank IC of a return forecast; None where undefined.

    A constant forecast (the zero baseline) has no rank IC and no hit rate.
    """
    ic_mean, ic_t, ic_dates = rank_ic(dates, realized, forecast)
    return {
        "rmse": _defined(rmse(realized, forecast)),
        "hit_rate": _defined(hit_rate(realized, forecast)),
        "ic_mean": _defined(ic_mean),
        "ic_t": _defined(ic_t),
        "ic_dates": float(ic_dates),
    }


def volatility_metrics(
    realized_variance: np.ndarray, forecast_variance: np.ndarray
) -> dict[str, float | None]:
    """QLIKE on variances, RMSE on volatilities (square roots)."""
    return {
        "qlike": _defined(qlike(realized_variance, forecast_variance)),
        "rmse_volatility": _defined(
            rmse(
                np.sqrt(np.maximum(realized_variance, 0.0)),
                np.sqrt(np.maximum(forecast_variance, 0.0)),
            )
        ),
    }


def _defined(value: float) -> float | None:
    """NaN becomes None, so reports stay valid JSON."""
    return value if np.isfinite(value) else None
