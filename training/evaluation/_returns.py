"""Return baselines: forecasts of the forward 5-day log return.

- ``zero``: no predictable return (the random walk).
- ``historical_mean``: the ticker's mean daily log return up to ``t``, times 5.
- ``momentum_12_1``: the 12-1 month momentum signal, the log return from ``t-252`` to
  ``t-21``, spread evenly over its 231 days and projected over 5. Its rank IC is what
  matters; the scale only makes its R² comparable.
- ``linear``: ridge regression of the forward return on the same 12 features at ``t``,
  standardised with the training split's statistics, fitted on the training split.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from training import schema

HORIZON = schema.RETURN_HORIZON_DAYS


def historical_mean(log_returns: pd.Series) -> pd.Series:
    """Expanding mean of daily log returns up to each date, times the horizon."""
    return log_returns.expanding(min_periods=21).mean() * HORIZON


def momentum_12_1(features: pd.DataFrame) -> np.ndarray:
    """The 252-21 momentum feature scaled to a 5-day return."""
    return features["momentum_252d_skip_21d"].to_numpy(dtype=float) * HORIZON / (252 - 21)


def fit_linear(features: pd.DataFrame, target: np.ndarray, alpha: float = 1.0) -> object:
    """A standardised ridge regression on the feature columns at ``t``."""
    model = make_pipeline(StandardScaler(), Ridge(alpha=alpha))
    x = features.loc[:, list(schema.FEATURE_COLUMNS)].to_numpy(dtype=float)
    usable = np.isfinite(x).all(axis=1) & np.isfinite(target)
    model.fit(x[usable], target[usable])
    return model


def predict_linear(model: object, features: pd.DataFrame) -> np.ndarray:
    """Forecasts of the fitted ridge regression."""
    x = features.loc[:, list(schema.FEATURE_COLUMNS)].to_numpy(dtype=float)
    return np.asarray(model.predict(x), dtype=float)  # type: ignore[attr-defined]
