"""Column names and units shared by every stage: raw prices, features, targets.

Raw prices (``data/raw/prices.parquet``), one row per (date, ticker):

- ``date``: trading date (Arrow ``date32``)
- ``ticker``: string
- ``close``: adjusted close, > 0
- ``volume``: shares traded, nullable (the embedded data set has none)

Features (``data/features/``, Parquet partitioned by ``year``), one row per
(date, ticker), each computed from data dated on or before ``date`` only:

=============================  ==========================================================
column                         definition (``r_t = ln(P_t / P_{t-1})``, daily log return)
=============================  ==========================================================
``log_return_1d``              ``ln(P_t / P_{t-1})``
``log_return_5d``              ``ln(P_t / P_{t-5})``
``log_return_21d``             ``ln(P_t / P_{t-21})``
``realized_vol_21d``           ``sqrt(252 / 21 * sum_{i=0..20} r_{t-i}^2)``, annualised
``realized_vol_63d``           ``sqrt(252 / 63 * sum_{i=0..62} r_{t-i}^2)``, annualised
``momentum_63d_skip_21d``      ``ln(P_{t-21} / P_{t-63})``
``momentum_252d_skip_21d``     ``ln(P_{t-21} / P_{t-252})``
``price_to_sma_50d``           ``P_t / mean(P_{t-49..t}) - 1``
``price_to_sma_200d``          ``P_t / mean(P_{t-199..t}) - 1``
``rsi_14d``                    RSI over 14 days with simple averages of gains and losses
                               (Cutler's variant), 0..100
``drawdown_252d``              ``P_t / max(P_{t-251..t}) - 1``, <= 0
``beta_252d``                  ``cov(r, r_m) / var(r_m)`` over the last 252 days, ``r_m``
                               the benchmark's daily log return
=============================  ==========================================================

Every rolling feature is null until its window is full. Targets, dated at the close of
``t`` and null where the future is not known yet:

- ``target_log_return_5d``: ``sum_{i=1..5} r_{t+i} = ln(P_{t+5} / P_t)``
- ``target_realized_variance_21d``: ``sum_{i=1..21} r_{t+i}^2`` (not annualised; its
  square root is the forward 21-day volatility)
"""

from __future__ import annotations

from typing import Final, TypeVar

import numpy as np
import numpy.typing as npt

DATE: Final = "date"
TICKER: Final = "ticker"
CLOSE: Final = "close"
VOLUME: Final = "volume"
YEAR: Final = "year"

FEATURE_COLUMNS: Final[tuple[str, ...]] = (
    "log_return_1d",
    "log_return_5d",
    "log_return_21d",
    "realized_vol_21d",
    "realized_vol_63d",
    "momentum_63d_skip_21d",
    "momentum_252d_skip_21d",
    "price_to_sma_50d",
    "price_to_sma_200d",
    "rsi_14d",
    "drawdown_252d",
    "beta_252d",
)

TARGET_RETURN: Final = "target_log_return_5d"
TARGET_VARIANCE: Final = "target_realized_variance_21d"
TARGET_COLUMNS: Final[tuple[str, ...]] = (TARGET_RETURN, TARGET_VARIANCE)

RETURN_HORIZON_DAYS: Final = 5
VOLATILITY_HORIZON_DAYS: Final = 21
TRADING_DAYS_PER_YEAR: Final = 252

_Number = TypeVar("_Number", float, npt.NDArray[np.float64])

ANNUALISE_RETURN: Final = TRADING_DAYS_PER_YEAR / RETURN_HORIZON_DAYS
"""Scales the 5-day log-return forecast to a year."""
ANNUALISE_VARIANCE: Final = TRADING_DAYS_PER_YEAR / VOLATILITY_HORIZON_DAYS
"""Scales the 21-day variance forecast to a year."""


def annualized_expected_return(
    expected_log_return_5d: _Number, annual_variance: _Number
) -> _Number:
    """Arithmetic annual return implied by the model's log forecasts.

    The 5-day log return scaled to a year, plus half the annual variance: for lognormal
    prices the arithmetic mean is ``exp(m + s^2/2) - 1 ≈ m + s^2/2``. Mean-variance
    optimisation works on arithmetic returns. Works element-wise on arrays too.
    """
    return expected_log_return_5d * ANNUALISE_RETURN + 0.5 * annual_variance


# The longest look-back any feature needs (momentum and beta over 252 days).
LONGEST_FEATURE_WINDOW: Final = 252
