"""What each feature and target is: Spark column expressions over one ticker's rows.

:func:`training.features.compute_features` selects these over a window partitioned by
ticker and ordered by date, after adding the intermediate columns named here. Every
feature reads rows up to the current one (``lag`` or a trailing frame); only the
targets look forward. :func:`training.features.feature_code_version` hashes this file
with ``features.py``, so a change here is a new feature code version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from training import schema

if TYPE_CHECKING:
    from pyspark.sql import Column, WindowSpec

# Intermediate columns, dropped from the output.
LOG_RETURN: Final = "_log_return_1d"
PRICE_CHANGE: Final = "_price_change_1d"
MARKET_LOG_RETURN: Final = "_market_log_return_1d"

_RSI_DAYS: Final = 14
_DRAWDOWN_DAYS: Final = 252
_BETA_DAYS: Final = 252
_MOMENTUM_SKIP_DAYS: Final = 21


def _trailing(by_ticker: WindowSpec, rows: int) -> WindowSpec:
    """The last ``rows`` rows up to and including the current one."""
    return by_ticker.rowsBetween(-(rows - 1), 0)


def _when_full(value: Column, counted: Column, frame: WindowSpec, rows: int) -> Column:
    """``value`` where ``frame`` holds ``rows`` non-null ``counted`` values, else null."""
    from pyspark.sql import functions as sf

    return sf.when(sf.count(counted).over(frame) == rows, value)


def feature_columns(by_ticker: WindowSpec) -> list[Column]:
    """The columns of :data:`training.schema.FEATURE_COLUMNS`, in order."""
    from pyspark.sql import functions as sf

    close = sf.col(schema.CLOSE)
    log_return = sf.col(LOG_RETURN)

    def close_rows_ago(rows: int) -> Column:
        return sf.lag(schema.CLOSE, rows).over(by_ticker)

    def realized_vol(days: int) -> Column:
        frame = _trailing(by_ticker, days)
        annualised_variance = sf.sum(log_return * log_return).over(frame) * (
            schema.TRADING_DAYS_PER_YEAR / days
        )
        return _when_full(sf.sqrt(annualised_variance), log_return, frame, days)

    def momentum(lookback_days: int) -> Column:
        return sf.ln(close_rows_ago(_MOMENTUM_SKIP_DAYS) / close_rows_ago(lookback_days))

    def price_to_sma(days: int) -> Column:
        frame = _trailing(by_ticker, days)
        return _when_full(close / sf.avg(close).over(frame) - 1.0, close, frame, days)

    columns = {
        "log_return_1d": log_return,
        "log_return_5d": sf.ln(close / close_rows_ago(5)),
        "log_return_21d": sf.ln(close / close_rows_ago(21)),
        "realized_vol_21d": realized_vol(21),
        "realized_vol_63d": realized_vol(63),
        "momentum_63d_skip_21d": momentum(63),
        "momentum_252d_skip_21d": momentum(252),
        "price_to_sma_50d": price_to_sma(50),
        "price_to_sma_200d": price_to_sma(200),
        "rsi_14d": _rsi(by_ticker),
        "drawdown_252d": _drawdown(by_ticker),
        "beta_252d": _beta(by_ticker),
    }
    return [columns[name].alias(name) for name in schema.FEATURE_COLUMNS]


def _rsi(by_ticker: WindowSpec) -> Column:
    """Cutler's RSI over 14 price changes, 0..100; 100 when the window has no loss."""
    from pyspark.sql import functions as sf

    change = sf.col(PRICE_CHANGE)
    frame = _trailing(by_ticker, _RSI_DAYS)
    # ``when`` without ``otherwise`` keeps the first row's missing change null.
    mean_gain = sf.avg(sf.when(change > 0, change).when(change <= 0, 0.0)).over(frame)
    mean_loss = sf.avg(sf.when(change < 0, -change).when(change >= 0, 0.0)).over(frame)
    # The ELSE branch is only evaluated where mean_loss > 0: no division by zero, which
    # ANSI mode (Spark 4's default) would turn into an error.
    rsi = sf.when(mean_loss == 0, 100.0).otherwise(100.0 - 100.0 / (1.0 + mean_gain / mean_loss))
    return _when_full(rsi, change, frame, _RSI_DAYS)


def _drawdown(by_ticker: WindowSpec) -> Column:
    """Close over its 252-row maximum, minus one: <= 0."""
    from pyspark.sql import functions as sf

    close = sf.col(schema.CLOSE)
    frame = _trailing(by_ticker, _DRAWDOWN_DAYS)
    return _when_full(close / sf.max(close).over(frame) - 1.0, close, frame, _DRAWDOWN_DAYS)


def _beta(by_ticker: WindowSpec) -> Column:
    """Sample covariance with the market over the market's sample variance, 252 pairs."""
    from pyspark.sql import functions as sf

    log_return = sf.col(LOG_RETURN)
    # The market return only where the stock has one too: both moments use the same
    # pairs (covar_samp already skips a pair with a null side).
    paired_market = sf.when(log_return.isNotNull(), sf.col(MARKET_LOG_RETURN))
    frame = _trailing(by_ticker, _BETA_DAYS)
    market_variance = sf.var_samp(paired_market).over(frame)
    beta = sf.when(
        market_variance > 0,
        sf.covar_samp(log_return, paired_market).over(frame) / market_variance,
    )
    return _when_full(beta, paired_market, frame, _BETA_DAYS)


def target_columns(by_ticker: WindowSpec) -> list[Column]:
    """The columns of :data:`training.schema.TARGET_COLUMNS`: the only forward-looking ones."""
    from pyspark.sql import functions as sf

    close = sf.col(schema.CLOSE)
    log_return = sf.col(LOG_RETURN)
    horizon = schema.VOLATILITY_HORIZON_DAYS
    next_days = by_ticker.rowsBetween(1, horizon)
    forward_return = sf.ln(
        sf.lead(schema.CLOSE, schema.RETURN_HORIZON_DAYS).over(by_ticker) / close
    )
    forward_variance = _when_full(
        sf.sum(log_return * log_return).over(next_days), log_return, next_days, horizon
    )
    return [
        forward_return.alias(schema.TARGET_RETURN),
        forward_variance.alias(schema.TARGET_VARIANCE),
    ]
