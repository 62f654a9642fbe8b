"""The latest features, read once from the Parquet feature table (no Spark in the server)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from app.services.errors import FeaturesUnavailable
from training import schema
from training.dataset import WindowedSamples, build_windows
from training.features import load_features


@dataclass(frozen=True)
class FeatureStore:
    """The feature table the server forecasts from."""

    table: pd.DataFrame
    path: Path

    @classmethod
    def load(cls, path: Path) -> FeatureStore:
        """Read the feature table at ``path``; raise FeaturesUnavailable if it cannot be."""
        try:
            return cls(table=load_features(path), path=path)
        except Exception as exc:  # missing, cut short, not Parquet: the reason is logged
            raise FeaturesUnavailable(f"cannot read the features at {path}: {exc}") from exc

    @property
    def tickers(self) -> list[str]:
        """Tickers with features, sorted."""
        return sorted(self.table[schema.TICKER].unique().tolist())

    @property
    def as_of(self) -> date:
        """The latest date in the table."""
        return pd.Timestamp(self.table[schema.DATE].max()).date()

    def latest_windows(self, lookback: int, feature_columns: tuple[str, ...]) -> WindowedSamples:
        """Each ticker's most recent complete window of ``lookback`` rows, with its date.

        A missing value in a ticker's last rows does not drop the ticker: its window is
        the latest one with every feature known, dated by that window's last row (so
        older than ``as_of``). Tickers with no complete window at all are left out;
        ``tickers`` minus the windows' tickers names them.
        """
        frame = self.table.sort_values([schema.TICKER, schema.DATE], ignore_index=True)
        values = frame.loc[:, list(feature_columns)].to_numpy(dtype=np.float32)
        complete = pd.Series(np.isfinite(values).all(axis=1))
        # Complete rows in a row, per ticker: a missing value starts a new run at 0.
        runs = (~complete).cumsum()
        run_length = complete.astype(int).groupby([frame[schema.TICKER], runs]).cumsum()
        ends = run_length.index[run_length.to_numpy() >= lookback]
        last_ends = frame.loc[ends, schema.TICKER].drop_duplicates(keep="last").index
        rows = (last_ends.to_numpy()[:, None] + np.arange(1 - lookback, 1)).ravel()
        # Only those rows go in, so each ticker's one window is its latest complete one.
        return build_windows(frame.iloc[rows], lookback, feature_columns, latest_only=True)

    def trailing_log_returns(self, tickers: list[str], days: int) -> np.ndarray:
        """The last ``days`` daily log returns of ``tickers`` on their common dates.

        Returns a ``(n_dates, n_tickers)`` array, columns in the order of ``tickers``;
        dates where any ticker lacks a return are left out.
        """
        subset = self.table[self.table[schema.TICKER].isin(tickers)]
        wide = subset.pivot(index=schema.DATE, columns=schema.TICKER, values="log_return_1d")
        wide = wide.reindex(columns=tickers).dropna(how="any")
        return wide.tail(days).to_numpy(dtype=float)
