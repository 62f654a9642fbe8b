"""Walk-forward evaluation: expanding window, periodic refits, purged, out of sample.

For each test year ``Y`` (one refit per year by default) every forecaster is fitted
on samples dated up to ``train_end``, the trading day ``purge_days`` rows before the
first test date, so that no training target (which looks up to 21 trading days ahead)
overlaps the test period. All forecasters then forecast the same test samples: the
(date, ticker) pairs of year ``Y`` whose look-back window is complete and whose
targets are known. The refits are independent, so they run as parallel Spark tasks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from training import schema
from training.config import TrainingConfig
from training.dataset import build_windows, exclude_stale
from training.evaluation import _returns, _volatility
from training.train import split_by_time

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

RETURN_TARGET = "log_return_5d"
VARIANCE_TARGET = "variance_21d"
QUANTILE_TARGET = "log_return_5d_q{level:02d}"  # the model's quantile forecasts
PREDICTION_COLUMNS = ("date", "ticker", "forecaster", "target", "forecast", "realized")


@dataclass(frozen=True)
class WalkForwardConfig:
    """The evaluation schedule and the model's training settings within each refit."""

    first_test_year: int = 2000
    last_test_year: int | None = None
    refit_every_years: int = 1
    purge_days: int = schema.VOLATILITY_HORIZON_DAYS
    training: TrainingConfig = field(
        default_factory=lambda: TrainingConfig(epochs=8, window_stride=2)
    )
    garch: bool = True
    challenger: bool = True
    """Also walk the Spark ML GBT challenger forward (needs a Spark session)."""
    stale_stretches: tuple[Mapping[str, Any], ...] = ()
    """Ingest's stale-price stretches (quality.json): their samples are left out of each
    refit's training and test sets, as production training leaves them out."""

    def __post_init__(self) -> None:
        if self.purge_days < schema.VOLATILITY_HORIZON_DAYS:
            raise ValueError(
                f"purge_days={self.purge_days} is shorter than the 21-day target horizon: "
                "training targets would overlap the test period"
            )


@dataclass(frozen=True)
class Refit:
    """One refit: fit on data up to ``train_end``, forecast ``test_start..test_end``."""

    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp


def refit_schedule(dates: pd.DatetimeIndex, config: WalkForwardConfig) -> list[Refit]:
    """The refits for the trading ``dates`` of the feature table."""
    dates = pd.DatetimeIndex(sorted(set(dates)))
    last_year = config.last_test_year or int(dates.max().year)
    refits = []
    for year in range(config.first_test_year, last_year + 1, config.refit_every_years):
        end_year = min(year + config.refit_every_years - 1, last_year)
        in_test = (dates.year >= year) & (dates.year <= end_year)
        if not in_test.any():
            continue
        first = int(np.flatnonzero(in_test)[0])
        if first - config.purge_days - 1 < 0:
            continue
        refits.append(
            Refit(
                train_end=dates[first - config.purge_days - 1],
                test_start=dates[first],
                test_end=dates[np.flatnonzero(in_test)[-1]],
            )
        )
    return refits


def evaluate_refit(
    features: pd.DataFrame, refit: Refit, config: WalkForwardConfig, log_dir: Path | None = None
) -> pd.DataFrame:
    """Every forecaster's forecasts for one refit's test period (long format)."""
    from training.fit import fit_forecaster
    from training.model import QUANTILES, QUANTILES_OUTPUT, RETURN_OUTPUT, VARIANCE_OUTPUT

    lookback = config.training.lookback_days
    windows, _ = exclude_stale(build_windows(features, lookback), config.stale_stretches)
    known = windows.has_targets
    dates = pd.DatetimeIndex(windows.dates)
    train = windows.select(known & (dates <= refit.train_end))
    test = windows.select(known & (dates >= refit.test_start) & (dates <= refit.test_end))
    if len(test) == 0:
        return pd.DataFrame(columns=list(PREDICTION_COLUMNS))

    inner_train, inner_validation, _ = split_by_time(train, config.training.validation_fraction)
    inner_train = inner_train.select(
        np.arange(len(inner_train)) % config.training.window_stride == 0
    )
    model = fit_forecaster(inner_train, inner_validation, config.training, log_dir=log_dir)
    predicted = model.predict(test.features)

    keys = pd.DataFrame({"date": pd.DatetimeIndex(test.dates), "ticker": test.tickers})
    rows = features.set_index([schema.DATE, schema.TICKER])
    at_t = rows.reindex(pd.MultiIndex.from_frame(keys))
    train_rows = features[features[schema.DATE] <= refit.train_end]

    returns: dict[str, np.ndarray] = {
        "model": predicted[RETURN_OUTPUT],
        "zero": np.zeros(len(test)),
        "historical_mean": _per_ticker(features, keys, _returns.historical_mean),
        "momentum_12_1": _returns.momentum_12_1(at_t),
        "linear": _returns.predict_linear(
            _returns.fit_linear(train_rows, train_rows[schema.TARGET_RETURN].to_numpy(float)),
            at_t,
        ),
    }
    variances: dict[str, np.ndarray] = {
        "model": predicted[VARIANCE_OUTPUT],
        "trailing_21d": test.trailing_variance,
        "ewma_0.94": _per_ticker(features, keys, _volatility.ewma_variance),
    }
    variances.update(_har_forecasts(features, keys, refit))
    if config.garch:
        for name, asymmetric in (("garch_1_1", False), ("gjr_garch_1_1", True)):
            variances[name] = _garch_forecasts(
                features, keys, refit, asymmetric, fallback=variances["ewma_0.94"]
            )

    frames = (
        [
            _long(keys, name, RETURN_TARGET, forecast, test.target_log_return)
            for name, forecast in returns.items()
        ]
        + [
            _long(keys, name, VARIANCE_TARGET, forecast, test.target_variance)
            for name, forecast in variances.items()
        ]
        + [
            _long(
                keys,
                "model",
                QUANTILE_TARGET.format(level=round(level * 100)),
                predicted[QUANTILES_OUTPUT][:, i],
                test.target_log_return,
            )
            for i, level in enumerate(QUANTILES)
        ]
    )
    result = pd.concat(frames, ignore_index=True)
    result["refit_train_end"] = refit.train_end
    return result


def run_walk_forward(
    spark: SparkSession | None, features_path: Path, config: WalkForwardConfig
) -> pd.DataFrame:
    """All refits' forecasts; one Spark task per refit (in-process when ``spark`` is None)."""
    from training.features import load_features

    features = load_features(features_path)
    refits = refit_schedule(pd.DatetimeIndex(features[schema.DATE]), config)
    if spark is None:
        parts = [evaluate_refit(features, refit, config) for refit in refits]
    else:
        path = str(features_path.resolve())
        parts = (
            spark.sparkContext.parallelize(refits, max(1, len(refits)))
            .map(lambda refit: _refit_task(path, refit, config))
            .collect()
        )
    predictions = pd.concat(parts, ignore_index=True)
    if spark is not None and config.challenger:
        from training.challenger import challenger_forecasts

        model_rows = predictions[
            (predictions["forecaster"] == "model")
            & predictions["target"].isin([RETURN_TARGET, VARIANCE_TARGET])
        ]
        samples = model_rows.loc[:, ["date", "ticker", "target", "realized", "refit_train_end"]]
        challenger = challenger_forecasts(spark, features_path, refits, samples)
        predictions = pd.concat([predictions, challenger], ignore_index=True)
    return predictions


def _refit_task(features_path: str, refit: Refit, config: WalkForwardConfig) -> pd.DataFrame:
    """Runs on an executor: one thread per op, as tasks share the cores."""
    import tensorflow as tf

    from training.features import load_features

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # a reused worker has already initialised TensorFlow
    return evaluate_refit(load_features(Path(features_path)), refit, config)


def _per_ticker(features: pd.DataFrame, keys: pd.DataFrame, forecaster: Any) -> np.ndarray:
    """Apply a causal per-ticker series forecaster and read it at the test samples."""
    pieces = []
    for ticker, group in features.groupby(schema.TICKER, sort=False):
        if ticker not in set(keys["ticker"]):
            continue
        series = group.set_index(schema.DATE)["log_return_1d"]
        values = forecaster(series)
        pieces.append(
            pd.DataFrame({"date": values.index, "ticker": ticker, "value": values.to_numpy()})
        )
    table = pd.concat(pieces).set_index(["date", "ticker"])["value"]
    return table.reindex(pd.MultiIndex.from_frame(keys)).to_numpy(dtype=float)


def _har_forecasts(
    features: pd.DataFrame, keys: pd.DataFrame, refit: Refit
) -> dict[str, np.ndarray]:
    regressors = []
    for ticker, group in features.groupby(schema.TICKER, sort=False):
        frame = _volatility.har_regressors(group.set_index(schema.DATE)["log_return_1d"])
        frame["ticker"] = ticker
        frame["target"] = group[schema.TARGET_VARIANCE].to_numpy()
        regressors.append(frame.reset_index())
    table = pd.concat(regressors, ignore_index=True)
    train = table[table[schema.DATE] <= refit.train_end]
    at_test = table.set_index([schema.DATE, "ticker"]).reindex(pd.MultiIndex.from_frame(keys))
    forecasts = {}
    for name, log in (("har", False), ("log_har", True)):
        coefficients, residual_variance = _volatility.fit_har(train, train["target"], log)
        forecasts[name] = _volatility.predict_har(at_test, coefficients, residual_variance, log)
    return forecasts


def _garch_forecasts(
    features: pd.DataFrame,
    keys: pd.DataFrame,
    refit: Refit,
    asymmetric: bool,
    fallback: np.ndarray,
) -> np.ndarray:
    """GARCH forecasts per ticker; EWMA where a fit fails (logged and counted)."""
    pieces = []
    for ticker, group in features.groupby(schema.TICKER, sort=False):
        if ticker not in set(keys["ticker"]):
            continue
        forecast = _volatility.garch_variance(
            group.set_index(schema.DATE)["log_return_1d"],
            fit_until=refit.train_end + pd.Timedelta(days=1),
            forecast_from=refit.test_start,
            forecast_until=refit.test_end,
            asymmetric=asymmetric,
        )
        if forecast is None:
            logger.warning(
                "GARCH fit failed for %s up to %s: EWMA used", ticker, refit.train_end.date()
            )
            continue
        pieces.append(
            pd.DataFrame({"date": forecast.index, "ticker": ticker, "value": forecast.to_numpy()})
        )
    values = np.full(len(keys), np.nan)
    if pieces:
        table = pd.concat(pieces).set_index(["date", "ticker"])["value"]
        values = table.reindex(pd.MultiIndex.from_frame(keys)).to_numpy(dtype=float)
    missing = ~np.isfinite(values)
    values[missing] = fallback[missing]
    return values


def _long(
    keys: pd.DataFrame, forecaster: str, target: str, forecast: np.ndarray, realized: np.ndarray
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "date": keys["date"].to_numpy(),
            "ticker": keys["ticker"].to_numpy(),
            "forecaster": forecaster,
            "target": target,
            "forecast": np.asarray(forecast, dtype=float),
            "realized": np.asarray(realized, dtype=float),
        }
    )
