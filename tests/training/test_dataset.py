"""Look-back windows: right rows, right order, nothing incomplete, nothing from the future."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training import schema
from training.dataset import build_windows


def _table(n_days: int = 30) -> pd.DataFrame:
    dates = pd.bdate_range("2024-01-01", periods=n_days)
    frames = []
    for k, ticker in enumerate(["AAA", "BBB"]):
        frame = pd.DataFrame({schema.DATE: dates, schema.TICKER: ticker})
        for j, column in enumerate(schema.FEATURE_COLUMNS):
            # value encodes (ticker, day, feature) so a window can be checked cell by cell
            frame[column] = 1000.0 * k + np.arange(n_days) + j / 100.0
        frame[schema.TARGET_RETURN] = np.arange(n_days) * 0.001
        frame[schema.TARGET_VARIANCE] = 0.01
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    table.loc[(table[schema.TICKER] == "BBB") & (table.index % 30 < 3), "beta_252d"] = np.nan
    return table


def test_windows_hold_the_lookback_rows_ending_at_their_date() -> None:
    table = _table()
    windows = build_windows(table, lookback=5)
    # AAA: 30 - 5 + 1 windows; BBB loses the windows touching its 3 missing betas.
    assert len(windows) == 26 + (30 - 3 - 5 + 1)
    first_bbb = np.flatnonzero(windows.tickers == "BBB")[0]
    window = windows.features[first_bbb]
    end_day = round(window[-1, 0] - 1000)
    assert windows.dates[first_bbb] == np.datetime64(
        pd.bdate_range("2024-01-01", periods=30)[end_day]
    )
    # Rows are consecutive days, oldest first, and none is after the window's date.
    np.testing.assert_allclose(window[:, 0] - 1000, np.arange(end_day - 4, end_day + 1))
    assert windows.target_log_return[first_bbb] == np.float64(end_day * 0.001)


def test_latest_only_gives_one_window_per_ticker_at_its_last_date() -> None:
    windows = build_windows(_table(), lookback=5, latest_only=True)
    assert sorted(windows.tickers.tolist()) == ["AAA", "BBB"]
    assert (windows.dates == np.datetime64(pd.bdate_range("2024-01-01", periods=30)[-1])).all()


def test_trailing_variance_is_in_target_units() -> None:
    table = _table()
    table["realized_vol_21d"] = 0.2  # annualised
    windows = build_windows(table, lookback=3)
    np.testing.assert_allclose(windows.trailing_variance, 0.2**2 * 21 / 252)
