"""Data-quality report: faults that are kept but flagged so later stages can exclude them.

Real price histories contain stretches where the close does not change for days (a
stale feed, or rounding of a low-priced stock to three decimals) and one-day jumps too
large to be plausible moves (a missed split adjustment, a bad print). Both are listed
with ticker and dates; neither is removed, since a large move may be real (Apple fell
52% on 2000-09-29).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from training import schema
from training.config import IngestConfig

SIGMA_WINDOW_DAYS = 63


def data_quality_report(clean: pd.DataFrame, config: IngestConfig) -> dict[str, Any]:
    """Stale stretches and implausible jumps of validated prices, per ticker.

    Parameters
    ----------
    clean
        Validated long prices (``date``, ``ticker``, ``close``) sorted by ticker and date.
    config
        ``stale_min_days``: the shortest run of identical closes reported.
        ``jump_min_abs_log_return`` and ``jump_min_sigma``: a one-day log return is
        reported when it is at least this large in absolute value *and* at least this
        many trailing 63-day standard deviations (from the days before it).
    """
    stale: list[dict[str, Any]] = []
    jumps: list[dict[str, Any]] = []
    for ticker, group in clean.groupby(schema.TICKER, sort=True):
        dates = pd.DatetimeIndex(group[schema.DATE])
        closes = group[schema.CLOSE].to_numpy(dtype=float)
        stale.extend(_stale_runs(str(ticker), dates, closes, config.stale_min_days))
        jumps.extend(_jumps(str(ticker), dates, closes, config))
    return {
        "thresholds": config.model_dump(),
        "stale_stretches": stale,
        "jumps": jumps,
        "summary": {
            "stale_stretches": len(stale),
            "stale_days": int(sum(item["days"] for item in stale)),
            "jumps": len(jumps),
        },
    }


def _stale_runs(
    ticker: str, dates: pd.DatetimeIndex, closes: np.ndarray, min_days: int
) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    if closes.size == 0:
        return runs
    change = np.concatenate(([True], closes[1:] != closes[:-1]))
    starts = np.flatnonzero(change)
    ends = np.concatenate((starts[1:], [closes.size])) - 1
    for start, end in zip(starts, ends, strict=True):
        days = int(end - start + 1)
        if days >= min_days:
            runs.append(
                {
                    "ticker": ticker,
                    "start": dates[int(start)].date().isoformat(),
                    "end": dates[int(end)].date().isoformat(),
                    "days": days,
                    "close": float(closes[start]),
                }
            )
    return runs


def _jumps(
    ticker: str, dates: pd.DatetimeIndex, closes: np.ndarray, config: IngestConfig
) -> list[dict[str, Any]]:
    if closes.size < 2:
        return []
    log_returns = pd.Series(np.diff(np.log(closes)))
    # Sigma from the days *before* each return, so a jump does not hide itself.
    sigma = log_returns.rolling(SIGMA_WINDOW_DAYS, min_periods=20).std().shift(1)
    found: list[dict[str, Any]] = []
    for i in np.flatnonzero(np.abs(log_returns.to_numpy()) >= config.jump_min_abs_log_return):
        move = float(log_returns.iloc[i])
        trailing = float(sigma.iloc[i]) if np.isfinite(sigma.iloc[i]) else float("nan")
        multiple = abs(move) / trailing if trailing > 0 else float("inf")
        if multiple < config.jump_min_sigma:
            continue
        next_move = float(log_returns.iloc[i + 1]) if i + 1 < len(log_returns) else 0.0
        found.append(
            {
                "ticker": ticker,
                "date": dates[int(i) + 1].date().isoformat(),
                "previous_date": dates[int(i)].date().isoformat(),
                "log_return": round(move, 6),
                "sigma_multiple": round(multiple, 2) if np.isfinite(multiple) else None,
                # A move undone the next day is more likely a bad print than news.
                "reversed_next_day": bool(
                    next_move * move < 0 and abs(next_move) >= 0.5 * abs(move)
                ),
            }
        )
    return found
