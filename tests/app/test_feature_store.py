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


def _distinct_table() -> pd.DataFrame:
    """Every feature of row ``d`` of ticker ``k`` is ``100 * k + d``: a window names its dates."""
    dates = pd.bdate_range("2024-01-01", periods=8)
    frames = []
    for k, ticker in enumerate(["AAA", "BBB", "CCC"]):
        frame = pd.DataFrame({schema.DATE: dates, schema.TICKER: ticker})
        for column in schema.FEATURE_COLUMNS:
            frame[column] = 100.0 * k + np.arange(8)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def test_latest_windows_and_as_of() -> None:
    store = _store(_distinct_table())
    assert store.tickers == ["AAA", "BBB", "CCC"]
    assert store.as_of == pd.Timestamp("2024-01-10").date()
    windows = store.latest_windows(3, schema.FEATURE_COLUMNS)
    assert windows.tickers.tolist() == ["AAA", "BBB", "CCC"]
    assert windows.features.shape == (3, 3, len(schema.FEATURE_COLUMNS))
    # the last three rows (5, 6, 7), oldest first, of each ticker: not another window
    for k in range(3):
        expected = np.repeat((100.0 * k + np.arange(5, 8))[:, None], len(schema.FEATURE_COLUMNS), 1)
        np.testing.assert_array_equal(windows.features[k], expected)
    assert set(windows.dates) == {np.datetime64("2024-01-10")}


def test_a_missing_value_makes_the_latest_complete_window_an_earlier_one() -> None:
    table = _distinct_table()
    column = schema.FEATURE_COLUMNS[-1]
    bbb = table.index[table[schema.TICKER] == "BBB"]
    ccc = table.index[table[schema.TICKER] == "CCC"]
    table.loc[bbb[-1], column] = np.nan  # BBB's last row lacks one feature
    table.loc[ccc[[2, 5]], column] = np.nan  # CCC never has 3 complete rows in a row
    store = _store(table)

    windows = store.latest_windows(3, schema.FEATURE_COLUMNS)

    assert windows.tickers.tolist() == ["AAA", "BBB"]
    bbb_window = windows.features[1]
    np.testing.assert_array_equal(bbb_window[:, 0], 100.0 + np.arange(4, 7))
    assert windows.dates[1] == np.datetime64("2024-01-09")  # its own date, a day older
    assert windows.dates[0] == np.datetime64("2024-01-10")
    assert np.isfinite(windows.features).all()
