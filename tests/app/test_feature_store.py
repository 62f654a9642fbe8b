"""The server's view of the feature table: latest windows and aligned trailing returns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from app.services.feature_store import FeatureStore
from training import schema


def _store(rows: pd.DataFrame) -> FeatureStore:
    return FeatureStore(table=rows, path=Path("unused"))


def _table() -> pd.DataFrame:
    dates = pd.bdate_range("2024-01-01", periods=8)
    frames = []
    for k, ticker in enumerate(["AAA", "BBB"]):
        frame = pd.DataFrame({schema.DATE: dates, schema.TICKER: ticker})
        for column in schema.FEATURE_COLUMNS:
            frame[column] = 1.0
        frame["log_return_1d"] = np.arange(8) / 100 + k
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    # BBB has no row on the 4th date: that date cannot enter a joint return matrix.
    return table.drop(index=table.index[(table[schema.TICKER] == "BBB")][3])


def test_trailing_returns_keep_only_common_dates_in_ticker_order() -> None:
    store = _store(_table())
    returns = store.trailing_log_returns(["BBB", "AAA"], days=5)
    assert returns.shape == (5, 2)
    np.testing.assert_allclose(returns[:, 1], np.array([2, 4, 5, 6, 7]) / 100)
    np.testing.assert_allclose(returns[:, 0], 1 + np.array([2, 4, 5, 6, 7]) / 100)


def test_latest_windows_and_as_of() -> None:
    store = _store(_table())
    assert store.tickers == ["AAA", "BBB"]
    assert store.as_of == pd.Timestamp("2024-01-10").date()
    windows = store.latest_windows(3, schema.FEATURE_COLUMNS)
    assert sorted(windows.tickers.tolist()) == ["AAA", "BBB"]
    assert windows.features.shape == (2, 3, len(schema.FEATURE_COLUMNS))
