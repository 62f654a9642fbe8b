"""Synthetic feature tables for training tests: fast, and with a known signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from training import schema


def synthetic_features(n_days: int = 500, tickers: int = 3, seed: int = 0) -> pd.DataFrame:
    """Returns with persistent volatility, so trailing volatility carries signal."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2010-01-01", periods=n_days)
    frames = []
    for k in range(tickers):
        log_vol = np.zeros(n_days)
        for t in range(1, n_days):
            log_vol[t] = 0.98 * log_vol[t - 1] + 0.15 * rng.normal()
        returns = 0.01 * np.exp(log_vol) * rng.standard_t(5, n_days) / np.sqrt(5 / 3)
        r = pd.Series(returns)
        frame = pd.DataFrame({schema.DATE: dates, schema.TICKER: f"T{k}"})
        for column in schema.FEATURE_COLUMNS:
            # drifting in time, so statistics over different splits differ
            frame[column] = rng.normal(size=n_days) + np.linspace(0.0, 3.0, n_days)
        frame["log_return_1d"] = returns
        frame["realized_vol_21d"] = np.sqrt((r**2).rolling(21).sum() * 252 / 21)
        frame[schema.TARGET_RETURN] = r[::-1].rolling(5).sum()[::-1].shift(-1)
        frame[schema.TARGET_VARIANCE] = (r**2)[::-1].rolling(21).sum()[::-1].shift(-1)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def write_feature_table(features: pd.DataFrame, path: Path) -> None:
    """Write ``features`` as the Spark job does: Parquet partitioned by year, dates as date32.

    Spark cannot read nanosecond timestamps, so dates are written as Arrow dates;
    ``training.features.load_features`` reads them back as datetime64.
    """
    table = features.assign(
        **{
            schema.CLOSE: features.get(schema.CLOSE, 100.0),
            schema.YEAR: features[schema.DATE].dt.year,
            schema.DATE: features[schema.DATE].dt.date,
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(path, partition_cols=[schema.YEAR])


def build_model_store(root: Path, versions: int, n_days: int = 300) -> Path:
    """``root/data/features`` and ``versions`` tiny exported versions in ``root/models``."""
    from training.config import TrainingConfig
    from training.train import train_and_export

    tiny = TrainingConfig(lookback_days=5, hidden_units=4, epochs=1, batch_size=256)
    features = synthetic_features(n_days=n_days)
    write_feature_table(features, root / "data" / "features")
    for _ in range(versions):
        train_and_export(features, root / "models", "forecaster", tiny)
    return root
