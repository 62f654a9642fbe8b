"""``quantserve train``: fit the pooled forecaster, validate it honestly, export a version.

The split is by time, in three parts with a purge gap before each of the later two::

    train | gap | validation | gap | holdout

- **train** (the earliest dates): the weights are fitted here;
- **validation** (``validation_fraction`` of the dated sample): early stopping picks
  the epoch here, and ``validation_metrics`` are measured here, so they flatter the
  model a little: it was selected on them;
- **holdout** (the last ``holdout_fraction``): neither fitting nor early stopping sees
  it. ``holdout_metrics`` are measured here, and promotion compares versions here
  (:mod:`training.promotion`).

Each gap is ``VOLATILITY_HORIZON_DAYS`` trading days, the longest target horizon, so no
target of one part (which looks up to 21 days ahead) overlaps a target of the next.
Samples inside stale-price stretches flagged by ingest are left out of all three.
Normalisation statistics, target scales and the drift reference (each feature's
decile bins, written to ``drift_reference.json`` beside the model) come from the
training split only.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training import schema
from training.config import TrainingConfig
from training.dataset import WindowedSamples, build_windows, exclude_stale
from training.drift import DRIFT_REFERENCE_FILE, drift_reference, write_drift_reference
from training.errors import ArtifactNotFound, TrainingError
from training.fit import fit_forecaster
from training.metrics import return_metrics, volatility_metrics
from training.model_store import METADATA_FILE, new_version
from training.tracking import TrackedRun, Tracker


@dataclass(frozen=True)
class TrainResult:
    """The exported version and its metadata."""

    version: int
    path: Path
    metadata: dict[str, Any]


def train_and_export(
    features: pd.DataFrame,
    models_dir: Path,
    model_name: str,
    config: TrainingConfig,
    *,
    data_manifest: dict[str, Any] | None = None,
    features_manifest: dict[str, Any] | None = None,
    quality_report: dict[str, Any] | None = None,
    verbose: int = 0,
    tracker: Tracker | None = None,
) -> TrainResult:
    """Train on ``features`` and export ``models_dir/model_name/<next version>/``.

    With a ``tracker``, the training is one MLflow run: its parameters (``config``) and
    data tags first, the loss of each epoch, then, once ``metadata.json`` names the run,
    the validation and holdout metrics and ``metrics.json``. Without one (None), nothing
    is tracked and ``metadata.json`` says so.
    """
    tracker = tracker or Tracker.off("not tracked: train_and_export was given no tracker")
    data_tags = {
        "model_name": model_name,
        "prices_sha256": (data_manifest or {}).get("prices_sha256"),
        "feature_code_version": (features_manifest or {}).get("feature_code_version"),
    }
    with tracker.run(
        "train",
        name=f"train {model_name}",
        params=config.model_dump(),
        tags=data_tags,
        fallback=f"{models_dir / model_name}/<the new version>/{METADATA_FILE}",
    ) as run:
        result = _fit_and_export(
            features,
            models_dir,
            model_name,
            config,
            run,
            data_manifest=data_manifest,
            features_manifest=features_manifest,
            quality_report=quality_report,
            verbose=verbose,
        )
        log_training_run(run, result)
    return result


def _fit_and_export(
    features: pd.DataFrame,
    models_dir: Path,
    model_name: str,
    config: TrainingConfig,
    run: TrackedRun,
    *,
    data_manifest: dict[str, Any] | None,
    features_manifest: dict[str, Any] | None,
    quality_report: dict[str, Any] | None,
    verbose: int,
) -> TrainResult:
    import keras
    import tensorflow as tf

    from training.model import INPUT_NAME, RETURN_OUTPUT, SERVING_OUTPUTS, VARIANCE_OUTPUT

    started = time.perf_counter()
    samples = build_windows(features, config.lookback_days)
    samples = samples.select(samples.has_targets)
    samples, excluded = exclude_stale(samples, (quality_report or {}).get("stale_stretches", ()))
    parts = split_by_time_with_holdout(samples, config.validation_fraction, config.holdout_fraction)
    validation, holdout, split = parts.validation, parts.holdout, parts.windows
    train = parts.train.select(np.arange(len(parts.train)) % config.window_stride == 0)

    # TensorBoard logs go to a scratch folder first: the version folder exists only
    # once the export succeeds.
    tensorboard_logs = Path(tempfile.mkdtemp(prefix="quantserve-tensorboard-"))
    # The holdout is never passed to the fit: early stopping selects on `validation`.
    fitted = fit_forecaster(train, validation, config, verbose=verbose, log_dir=tensorboard_logs)
    history = zip(fitted.history["loss"], fitted.history["val_loss"], strict=True)
    for epoch, (loss, val_loss) in enumerate(history):
        run.log_metrics({"loss": loss, "val_loss": val_loss}, step=epoch)
    serving = fitted.serving
    predicted = fitted.predict(validation.features)
    metrics = validation_metrics(validation, predicted[RETURN_OUTPUT], predicted[VARIANCE_OUTPUT])
    holdout_metrics = None
    if len(holdout):
        on_holdout = fitted.predict(holdout.features)
        holdout_metrics = validation_metrics(
            holdout, on_holdout[RETURN_OUTPUT], on_holdout[VARIANCE_OUTPUT]
        )

    # The distribution live features are compared with: each training sample's own
    # row (the last of its window), from the training split only.
    reference = drift_reference(train.features[:, -1, :], schema.FEATURE_COLUMNS)
    drift_description = {
        "fitted_on": "training split: the feature row at each training sample's date",
        "rows": len(train),
        "date_range": split["train"],
    }

    with new_version(models_dir / model_name) as (version, export_dir):
        serving.export(str(export_dir), format="tf_saved_model", verbose=False)
        shutil.move(str(tensorboard_logs), export_dir / "tensorboard")
        _check_export(export_dir, validation.features[:64], predicted, tf)
        write_drift_reference(export_dir, reference, drift_description)
        metadata = {
            "name": model_name,
            "version": version,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "signature": {
                "name": "serving_default",
                "input": {
                    "name": INPUT_NAME,
                    "dtype": "float32",
                    "shape": [None, config.lookback_days, len(schema.FEATURE_COLUMNS)],
                },
                "outputs": list(SERVING_OUTPUTS),
            },
            "features": list(schema.FEATURE_COLUMNS),
            "lookback_days": config.lookback_days,
            "horizons": {
                "expected_return_days": schema.RETURN_HORIZON_DAYS,
                "volatility_days": schema.VOLATILITY_HORIZON_DAYS,
            },
            "targets": {
                RETURN_OUTPUT: "forward 5-day log return: ln(P[t+5] / P[t])",
                VARIANCE_OUTPUT: "forward 21-day realized variance: sum of the next 21 squared"
                " daily log returns (not annualised)",
                "volatility_21d": "square root of variance_21d (not annualised)",
            },
            "units": {
                RETURN_OUTPUT: "log return over 5 trading days",
                VARIANCE_OUTPUT: "squared daily log returns summed over 21 trading days",
                "volatility_21d": "standard deviation over 21 trading days",
            },
            "split": split,
            "samples": {
                "train": len(train),
                "validation": len(validation),
                "holdout": len(holdout),
                "excluded_stale": excluded,
                "tickers": sorted(set(samples.tickers.tolist())),
            },
            "validation_metrics": metrics,
            # Same structure, on dates neither fitting nor early stopping saw (None
            # when holdout_fraction is 0).
            "holdout_metrics": holdout_metrics,
            "drift_reference": {"file": DRIFT_REFERENCE_FILE, **drift_description},
            "training": {
                **config.model_dump(),
                "epochs_run": len(fitted.history["loss"]),
                "loss": [round(v, 6) for v in fitted.history["loss"]],
                "val_loss": [round(v, 6) for v in fitted.history["val_loss"]],
                "log_variance_bias": fitted.log_variance_bias,
                "seconds": round(time.perf_counter() - started, 1),
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
            },
            "data": {
                "prices_sha256": (data_manifest or {}).get("prices_sha256"),
                "data_date_range": (data_manifest or {}).get("date_range"),
                "benchmark": (features_manifest or {}).get("benchmark"),
                "feature_code_version": (features_manifest or {}).get("feature_code_version"),
            },
            # The MLflow run of this training (or why there is none): the run is an
            # index into the store, this file stays the record.
            **run.metadata_fields(),
        }
        (export_dir / METADATA_FILE).write_text(
            json.dumps(metadata, indent=2, default=str, allow_nan=False)
        )
    return TrainResult(
        version=version, path=models_dir / model_name / str(version), metadata=metadata
    )


def log_training_run(run: TrackedRun, result: TrainResult) -> None:
    """The exported version's tag, final metrics and ``metrics.json`` into ``run``."""
    metadata = result.metadata
    run.fallback = str(result.path / METADATA_FILE)
    run.set_tags({"model_version": result.version})
    run.log_metrics(
        {
            "validation": metadata["validation_metrics"],
            "holdout": metadata["holdout_metrics"] or {},
            "epochs_run": metadata["training"]["epochs_run"],
        }
    )
    document = {
        key: metadata[key] for key in ("name", "version", "validation_metrics", "holdout_metrics")
    }
    document["history"] = {key: metadata["training"][key] for key in ("loss", "val_loss")}
    with tempfile.TemporaryDirectory(prefix="quantserve-mlflow-") as scratch:
        metrics_file = Path(scratch) / "metrics.json"
        metrics_file.write_text(json.dumps(document, indent=2, default=str, allow_nan=False))
        run.log_artifacts(metrics_file)
    run.log_artifacts(result.path / METADATA_FILE)


@dataclass(frozen=True)
class TimeSplit:
    """Training, validation and holdout samples, in date order with purge gaps between."""

    train: WindowedSamples
    """Fitted on."""
    validation: WindowedSamples
    """Early stopping selects the epoch on it."""
    holdout: WindowedSamples
    """Seen by neither; empty when ``holdout_fraction`` is 0."""
    windows: dict[str, Any]
    """First and last date of each part and the gap: ``metadata.json``'s ``split``."""


def split_by_time_with_holdout(
    samples: WindowedSamples, validation_fraction: float, holdout_fraction: float
) -> TimeSplit:
    """Split by date into train | gap | validation | gap | holdout.

    Parameters
    ----------
    samples
        Windows with known targets.
    validation_fraction, holdout_fraction
        Shares of the distinct sample dates for validation and for the holdout (the
        last dates). A holdout fraction of 0 leaves no holdout and no second gap.

    Each gap is ``VOLATILITY_HORIZON_DAYS`` sample dates (trading days; a date missing
    from every ticker only widens it), so the last target of one part, which reaches
    21 trading days ahead, ends before the first date of the next.

    Raises
    ------
    TrainingError
        When the dates are too few to leave at least one date in each part.
    """
    dates = np.unique(samples.dates)
    gap = schema.VOLATILITY_HORIZON_DAYS
    n_holdout = round(len(dates) * holdout_fraction)
    n_validation = round(len(dates) * validation_fraction)
    gaps = gap * (2 if n_holdout else 1)
    n_train = len(dates) - n_validation - n_holdout - gaps
    if n_validation < 1 or n_train < 1 or (holdout_fraction > 0 and n_holdout < 1):
        raise TrainingError(
            f"{len(dates)} dated samples are too few to split with validation_fraction="
            f"{validation_fraction} ({n_validation} dates), holdout_fraction="
            f"{holdout_fraction} ({n_holdout} dates) and a {gap}-day gap before each: "
            f"{n_train} would be left to train on; give more history or lower the fractions"
        )
    last_train = dates[n_train - 1]
    first_validation = dates[n_train + gap]
    last_validation = dates[n_train + gap + n_validation - 1]
    train = samples.select(samples.dates <= last_train)
    validation = samples.select(
        (samples.dates >= first_validation) & (samples.dates <= last_validation)
    )
    holdout_range = None
    holdout = samples.select(np.zeros(len(samples), dtype=bool))
    if n_holdout:
        first_holdout = dates[len(dates) - n_holdout]
        holdout = samples.select(samples.dates >= first_holdout)
        holdout_range = [_day(first_holdout), _day(dates[-1])]
    windows = {
        "train": [_day(dates[0]), _day(last_train)],
        "validation": [_day(first_validation), _day(last_validation)],
        "holdout": holdout_range,
        "gap_trading_days": gap,
    }
    return TimeSplit(train, validation, holdout, windows)


def split_by_time(
    samples: WindowedSamples, validation_fraction: float
) -> tuple[WindowedSamples, WindowedSamples, dict[str, Any]]:
    """Train | gap | validation, no holdout (the walk-forward's inner split).

    The walk-forward tests on its own later period, so it holds nothing out here;
    ``train_and_export`` uses :func:`split_by_time_with_holdout`.
    """
    parts = split_by_time_with_holdout(samples, validation_fraction, 0.0)
    return parts.train, parts.validation, parts.windows


def validation_metrics(
    validation: WindowedSamples, predicted_return: np.ndarray, predicted_variance: np.ndarray
) -> dict[str, Any]:
    """The model beside the naive baselines on one split (validation or holdout), same samples."""
    realized_return = validation.target_log_return
    realized_variance = validation.target_variance
    dates = validation.dates
    return {
        "returns": {
            "model": return_metrics(dates, realized_return, predicted_return),
            "zero": return_metrics(dates, realized_return, np.zeros_like(realized_return)),
        },
        "volatility": {
            "model": volatility_metrics(realized_variance, predicted_variance),
            "trailing_21d": volatility_metrics(realized_variance, validation.trailing_variance),
        },
    }


def load_training_inputs(data_dir: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The data manifest, features manifest and quality report the pipeline wrote."""
    paths = {
        "data manifest": data_dir / "raw" / "manifest.json",
        "features manifest": data_dir / "features" / "_manifest.json",
        "quality report": data_dir / "raw" / "quality.json",
    }
    loaded = []
    for label, path in paths.items():
        if not path.is_file():
            raise ArtifactNotFound(
                f"the {label} {path} is missing; run `quantserve ingest` and "
                "`quantserve features` first (or `quantserve pipeline`)"
            )
        loaded.append(json.loads(path.read_text()))
    return loaded[0], loaded[1], loaded[2]


def _day(value: np.datetime64) -> str:
    return str(np.datetime_as_string(value, unit="D"))


def _check_export(
    export_dir: Path, sample: np.ndarray, expected: dict[str, np.ndarray], tf: Any
) -> None:
    """Reload the SavedModel and check its signature reproduces the Keras outputs."""
    loaded = tf.saved_model.load(str(export_dir))
    signature = loaded.signatures["serving_default"]
    result = signature(features=tf.constant(sample))
    for key, value in result.items():
        got = value.numpy()
        got = got[:, 0] if got.shape[-1] == 1 else got
        want = expected[key][: len(sample)]
        if not np.allclose(got, want, rtol=1e-4, atol=1e-6):
            raise TrainingError(f"the exported signature's {key!r} differs from the trained model")
