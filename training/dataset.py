"""Turning the per-(date, ticker) feature table into model inputs: look-back windows.

A sample dated ``t`` for a ticker is the ``lookback`` rows of features ending at ``t``
(rows ``t-lookback+1 .. t`` of that ticker, oldest first) and, for training, the targets
dated ``t``. A window is usable only when every feature in it is known.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from training import schema

FloatArray = np.ndarray


@dataclass(frozen=True)
class WindowedSamples:
    """Windows of features with the date, ticker and targets of their last row."""

    features: FloatArray
    """``(n_samples, lookback, n_features)`` float32, oldest row first."""
    dates: np.ndarray
    """``datetime64[ns]`` date of each window's last row."""
    tickers: np.ndarray
    """Ticker of each window (object array of str)."""
    target_log_return: FloatArray
    """Forward 5-day log return at each date, NaN where unknown."""
    target_variance: FloatArray
    """Forward 21-day realized variance at each date, NaN where unknown."""
    trailing_variance: FloatArray
    """``realized_vol_21d**2 * 21/252``: the trailing 21-day variance, same units as the target."""

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def select(self, mask: np.ndarray) -> WindowedSamples:
        """The samples where ``mask`` is true."""
        return WindowedSamples(
            features=self.features[mask],
            dates=self.dates[mask],
            tickers=self.tickers[mask],
            target_log_return=self.target_log_return[mask],
            target_variance=self.target_variance[mask],
            trailing_variance=self.trailing_variance[mask],
        )

    @property
    def has_targets(self) -> np.ndarray:
        """Mask of samples whose two targets are both known."""
        known = np.isfinite(self.target_log_return) & np.isfinite(self.target_variance)
        return np.asarray(known, dtype=bool)


def build_windows(
    features: pd.DataFrame,
    lookback: int,
    feature_columns: tuple[str, ...] = schema.FEATURE_COLUMNS,
    *,
    latest_only: bool = False,
) -> WindowedSamples:
    """Every complete look-back window in ``features`` (sorted by ticker, date).

    Parameters
    ----------
    features
        The feature table (see :mod:`training.schema`).
    lookback
        Rows per window.
    feature_columns
        Columns, in the model's input order.
    latest_only
        Keep only each ticker's last window (what serving forecasts from).
    """
    parts: list[WindowedSamples] = []
    frame = features.sort_values([schema.TICKER, schema.DATE])
    for ticker, group in frame.groupby(schema.TICKER, sort=True):
        values = group.loc[:, list(feature_columns)].to_numpy(dtype=np.float32)
        if len(values) < lookback:
            continue
        windows = sliding_window_view(values, (lookback, values.shape[1]))[:, 0]
        complete = np.isfinite(windows).all(axis=(1, 2))
        end_rows = np.arange(lookback - 1, len(values))
        if latest_only:
            complete &= end_rows == len(values) - 1
        rows = end_rows[complete]
        trailing_vol = group["realized_vol_21d"].to_numpy(dtype=np.float64)[rows]
        parts.append(
            WindowedSamples(
                features=np.ascontiguousarray(windows[complete]),
                dates=group[schema.DATE].to_numpy(dtype="datetime64[ns]")[rows],
                tickers=np.full(rows.size, str(ticker), dtype=object),
                target_log_return=_column(group, schema.TARGET_RETURN)[rows],
                target_variance=_column(group, schema.TARGET_VARIANCE)[rows],
                trailing_variance=trailing_vol**2
                * schema.VOLATILITY_HORIZON_DAYS
                / schema.TRADING_DAYS_PER_YEAR,
            )
        )
    if not parts:
        empty = np.empty((0, lookback, len(feature_columns)), dtype=np.float32)
        nothing = np.empty(0)
        return WindowedSamples(
            empty,
            nothing.astype("datetime64[ns]"),
            nothing.astype(object),
            nothing,
            nothing,
            nothing,
        )
    return WindowedSamples(
        features=np.concatenate([p.features for p in parts]),
        dates=np.concatenate([p.dates for p in parts]),
        tickers=np.concatenate([p.tickers for p in parts]),
        target_log_return=np.concatenate([p.target_log_return for p in parts]),
        target_variance=np.concatenate([p.target_variance for p in parts]),
        trailing_variance=np.concatenate([p.trailing_variance for p in parts]),
    )


# Calendar days before a stale stretch whose forward 21-day targets it contaminates.
STALE_PADDING = pd.Timedelta(days=31)


def exclude_stale(
    samples: WindowedSamples, stale_stretches: Iterable[Mapping[str, Any]]
) -> tuple[WindowedSamples, int]:
    """Drop samples dated in a flagged stale stretch or within its forward-target reach.

    ``stale_stretches`` are ingest's quality report entries (``ticker``, ``start``,
    ``end``). Training and the walk-forward evaluation both call this, so the model is
    evaluated on the same kind of sample it is trained on. Returns the kept samples and
    how many were dropped.
    """
    dates = pd.DatetimeIndex(samples.dates)
    flagged = np.zeros(len(samples), dtype=bool)
    for stretch in stale_stretches:
        start = pd.Timestamp(stretch["start"]) - STALE_PADDING
        end = pd.Timestamp(stretch["end"])
        flagged |= (samples.tickers == stretch["ticker"]) & (dates >= start) & (dates <= end)
    if not flagged.any():
        return samples, 0
    return samples.select(~flagged), int(flagged.sum())


def _column(group: pd.DataFrame, name: str) -> FloatArray:
    if name not in group.columns:
        return np.full(len(group), np.nan)
    return group[name].to_numpy(dtype=np.float64, na_value=np.nan)
