"""The latest features, read once from the Parquet feature table (no Spark in the server)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

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
        """Read the feature table at ``path``."""
        return cls(table=load_features(path), path=path)

    @property
    def tickers(self) -> list[str]:
        """Tickers with features, sorted."""
        return sorted(self.table[schema.TICKER].unique().tolist())

    @property
    def as_of(self) -> date:
        """The latest date in the table."""
        return pd.Timestamp(self.table[schema.DATE].max()).date()

    def latest_windows(self, lookback: int, feature_columns: tuple[str, ...]) -> WindowedSamples:
        """Each ticker's most recent complete window of ``lookback`` rows."""
        return build_windows(self.table, lookback, feature_columns, latest_only=True)

    def trailing_log_returns(self, tickers: list[str], days: int) -> np.ndarray:
        """The last ``days`` daily log returns of ``tickers`` on their common dates.

        Returns a ``(n_dates, n_tickers)`` array, columns in the order of ``tickers``;
        dates where any ticker lacks a return are left out.
        """
        subset = self.table[self.table[schema.TICKER].isin(tickers)]
        wide = subset.pivot(index=schema.DATE, columns=schema.TICKER, values="log_return_1d")
        wide = wide.reindex(columns=tickers).dropna(how="any")
        return wide.tail(days).to_numpy(dtype=float)
