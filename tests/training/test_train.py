"""Training and export: a tiny real Keras model, exported and reloaded as a SavedModel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.training.synthetic import synthetic_features
from training import schema
from training.config import TrainingConfig
from training.dataset import build_windows
from training.errors import ArtifactNotFound, TrainingError
from training.model_store import latest_version, list_versions, read_metadata
from training.train import split_by_time, split_by_time_with_holdout, train_and_export

TINY = TrainingConfig(lookback_days=5, hidden_units=4, epochs=2, batch_size=256, patience=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    models = tmp_path_factory.mktemp("models")
    features = synthetic_features()
    result = train_and_export(
        features,
        models,
        "tiny",
        TINY,
        data_manifest={"prices_sha256": "abc", "date_range": ["x", "y"]},
    )
    return features, models, result


def test_export_is_a_tf_serving_version_with_metadata(trained) -> None:
    _, models, result = trained
    assert result.version == 1
    assert result.path == models / "tiny" / "1"
    assert (result.path / "saved_model.pb").is_file()
    events = list((result.path / "tensorboard").rglob("events.out.tfevents.*"))
    assert {p.parent.name for p in events} == {"train", "validation"}
    assert list_versions(models / "tiny") == [1]
    metadata = json.loads((result.path / "metadata.json").read_text())
    assert metadata["features"] == list(schema.FEATURE_COLUMNS)
    assert metadata["lookback_days"] == 5
    assert metadata["horizons"] == {"expected_return_days": 5, "volatility_days": 21}
    assert metadata["data"]["prices_sha256"] == "abc"
    assert metadata["signature"]["input"]["name"] == "features"
    assert set(metadata["validation_metrics"]) == {"returns", "volatility"}
    assert set(metadata["validation_metrics"]["volatility"]) == {"model", "trailing_21d"}
    # The holdout's scores, apart from the validation ones the epoch was selected on.
    holdout_metrics = metadata["holdout_metrics"]
    assert holdout_metrics.keys() == metadata["validation_metrics"].keys()
    for target, rows in holdout_metrics.items():
        assert rows.keys() == metadata["validation_metrics"][target].keys()
    assert np.isfinite(holdout_metrics["volatility"]["model"]["qlike"])
    assert holdout_metrics != metadata["validation_metrics"]
    assert set(metadata["split"]) == {"train", "validation", "holdout", "gap_trading_days"}
    assert metadata["samples"]["holdout"] > 0
    assert metadata["training"]["holdout_fraction"] == TINY.holdout_fraction
    assert not [p for p in (models / "tiny").iterdir() if p.name.startswith(".")]


def test_split_leaves_a_gap_of_the_horizon_before_validation_and_holdout(trained) -> None:
    features, _, result = trained
    split = result.metadata["split"]
    dates = pd.bdate_range("2010-01-01", periods=500)
    position = {
        part: [dates.get_loc(pd.Timestamp(day)) for day in split[part]]
        for part in ("train", "validation", "holdout")
    }
    gap = schema.VOLATILITY_HORIZON_DAYS
    assert split["gap_trading_days"] == gap
    assert position["validation"][0] - position["train"][1] - 1 == gap
    assert position["holdout"][0] - position["validation"][1] - 1 == gap
    # no training target reaches the first validation date, no validation target
    # the first holdout date
    assert position["train"][1] + gap < position["validation"][0]
    assert position["validation"][1] + gap < position["holdout"][0]
    # the holdout is the last dates with known targets, about holdout_fraction of them
    known = features.dropna(subset=list(schema.TARGET_COLUMNS))[schema.DATE]
    assert pd.Timestamp(split["holdout"][1]) == known.max()
    n_dated = position["holdout"][1] - position["train"][0] + 1
    n_holdout = position["holdout"][1] - position["holdout"][0] + 1
    assert n_holdout == round(n_dated * TINY.holdout_fraction)


def test_training_never_sees_the_holdout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import training.train
    from training.fit import fit_forecaster

    seen: dict[str, np.ndarray] = {}

    def recording_fit(train, validation, config, **kwargs):
        seen["fitted"], seen["early_stopping"] = train.dates, validation.dates
        return fit_forecaster(train, validation, config, **kwargs)

    monkeypatch.setattr(training.train, "fit_forecaster", recording_fit)
    features = synthetic_features(n_days=300)
    result = train_and_export(features, tmp_path, "m", TINY.model_copy(update={"epochs": 1}))
    holdout_start = np.datetime64(result.metadata["split"]["holdout"][0])
    validation_end = np.datetime64(result.metadata["split"]["validation"][1])
    assert seen["fitted"].max() < seen["early_stopping"].min()
    assert seen["early_stopping"].max() == validation_end
    # neither the fitted samples nor early stopping's reach a holdout date, or the purge
    known = np.unique(features.dropna(subset=list(schema.TARGET_COLUMNS))[schema.DATE])
    purge = known[(known > validation_end) & (known < holdout_start)]
    assert len(purge) == schema.VOLATILITY_HORIZON_DAYS
    for part in ("fitted", "early_stopping"):
        assert seen[part].max() < purge.min()
    windows = build_windows(features, TINY.lookback_days)
    holdout = windows.select(windows.has_targets & (windows.dates >= holdout_start))
    assert result.metadata["samples"]["holdout"] == len(holdout) > 0


def test_split_by_time_with_holdout_orders_disjoint_parts() -> None:
    windows = build_windows(synthetic_features(n_days=300), 5)
    windows = windows.select(windows.has_targets)
    parts = split_by_time_with_holdout(windows, 0.2, 0.1)
    dates = np.unique(windows.dates)
    gap = schema.VOLATILITY_HORIZON_DAYS
    assert parts.train.dates.max() < parts.validation.dates.min()
    assert parts.validation.dates.max() < parts.holdout.dates.min()
    between = [
        dates[(dates > earlier.dates.max()) & (dates < later.dates.min())]
        for earlier, later in ((parts.train, parts.validation), (parts.validation, parts.holdout))
    ]
    assert [len(b) for b in between] == [gap, gap]
    # every sample is in one part or dated in a gap
    in_gaps = np.isin(windows.dates, np.concatenate(between))
    assert len(parts.train) + len(parts.validation) + len(parts.holdout) == (~in_gaps).sum()
    assert len(np.unique(parts.holdout.dates)) == round(len(dates) * 0.1)
    # No holdout: two parts and one gap, validation to the last date (the walk-forward's).
    train, validation, split = split_by_time(windows, 0.2)
    assert split["holdout"] is None
    assert validation.dates.max() == dates[-1]
    assert train.dates.max() < validation.dates.min()


def test_holdout_settings_are_validated() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="must be below 1 to leave dates to train on"):
        TrainingConfig(validation_fraction=0.6, holdout_fraction=0.4)
    with pytest.raises(ValidationError):
        TrainingConfig(holdout_fraction=-0.1)
    assert TrainingConfig().holdout_fraction == 0.1


def test_saved_model_signature_serves_finite_forecasts(trained) -> None:
    import tensorflow as tf

    features, _, result = trained
    windows = build_windows(features, 5, latest_only=True)
    loaded = tf.saved_model.load(str(result.path))
    out = loaded.signatures["serving_default"](features=tf.constant(windows.features))
    assert set(out) == {
        "expected_log_return_5d",
        "log_return_quantiles_5d",
        "variance_21d",
        "volatility_21d",
    }
    quantiles = out["log_return_quantiles_5d"].numpy()
    assert quantiles.shape == (len(windows), 3)
    assert (np.diff(quantiles, axis=1) >= 0).all()  # 5% <= 50% <= 95%, by construction
    volatility = out["volatility_21d"].numpy()[:, 0]
    variance = out["variance_21d"].numpy()[:, 0]
    assert np.isfinite(out["expected_log_return_5d"].numpy()).all()
    assert (volatility > 0).all()
    np.testing.assert_allclose(volatility**2, variance, rtol=1e-5)


def test_normalisation_is_adapted_on_the_training_split_only(trained) -> None:
    import tensorflow as tf

    features, _, result = trained
    # The exported normaliser's mean must equal the mean over training windows alone;
    # the synthetic features drift in time, so one that saw validation rows would differ.
    loaded = tf.saved_model.load(str(result.path))
    variables = {v.name: v.numpy() for v in loaded.variables}
    mean = variables["normalize/mean:0"]
    train_end = pd.Timestamp(result.metadata["split"]["train"][1])
    windows = build_windows(features, 5)
    windows = windows.select(windows.has_targets & (windows.dates <= np.datetime64(train_end)))
    expected = windows.features.reshape(-1, windows.features.shape[-1]).mean(axis=0)
    np.testing.assert_allclose(mean.reshape(-1), expected, rtol=1e-4, atol=1e-4)
    everything = build_windows(features, 5).features
    leaked = everything.reshape(-1, everything.shape[-1]).mean(axis=0)
    assert np.abs(mean.reshape(-1) - leaked).max() > 0.1


def test_a_second_export_is_a_new_version_and_training_is_seeded(tmp_path: Path, trained) -> None:
    features, models, first = trained
    again = train_and_export(features, models, "tiny", TINY)
    assert again.version == 2
    assert latest_version(models / "tiny") == 2
    assert read_metadata(first.path)["version"] == 1  # the first version is untouched
    # Same seed, same data: the same validation and holdout metrics.
    assert again.metadata["validation_metrics"] == first.metadata["validation_metrics"]
    assert again.metadata["holdout_metrics"] == first.metadata["holdout_metrics"]


def test_too_little_data_is_a_training_error() -> None:
    windows = build_windows(synthetic_features(n_days=40), 5)
    with pytest.raises(TrainingError, match="too few to split"):
        split_by_time(windows.select(windows.has_targets), 0.2)
    # Enough for train | gap | validation, not for a second gap and a holdout.
    windows = build_windows(synthetic_features(n_days=100), 5)
    windows = windows.select(windows.has_targets)
    split_by_time(windows, 0.2)
    with pytest.raises(TrainingError, match=r"holdout_fraction=0.1 \(\d+ dates\) and a 21-day"):
        split_by_time_with_holdout(windows, 0.2, 0.1)
    # A holdout fraction that rounds to no date at all is an error, not a silent no-holdout.
    with pytest.raises(TrainingError, match=r"holdout_fraction=0.001 \(0 dates\)"):
        split_by_time_with_holdout(windows, 0.2, 0.001)


def test_missing_model_store_says_how_to_build_one(tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFound, match="quantserve pipeline"):
        latest_version(tmp_path / "nothing")


def test_losses_match_their_definitions() -> None:
    from keras import ops

    from training.model import QUANTILES, pinball_loss, qlike_log_loss

    y, h = np.array([[0.02], [0.01]]), np.array([[0.01], [0.02]])
    expected = np.mean(y / h - np.log(y / h) - 1, axis=-1)
    got = ops.convert_to_numpy(qlike_log_loss(np.log(y), np.log(h)))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    target = np.array([[0.0]])
    predicted = np.array([[-1.0, 0.5, 2.0]])
    # below the 5% quantile costs 0.05 a unit, above the median/95% costs 0.5/0.95 a unit
    manual = np.mean([QUANTILES[0] * 1.0, (1 - QUANTILES[1]) * 0.5, (1 - QUANTILES[2]) * 2.0])
    np.testing.assert_allclose(ops.convert_to_numpy(pinball_loss(target, predicted)), [manual])


def test_a_version_rebuilds_to_the_same_metrics_from_the_same_inputs(tmp_path: Path) -> None:
    from training.errors import DataError
    from training.rebuild import rebuild_version

    features = synthetic_features(n_days=300)
    data = {"prices_sha256": "p1"}
    feature_manifest = {"feature_code_version": "f1"}
    first = train_and_export(
        features,
        tmp_path,
        "m",
        TINY.model_copy(update={"seed": 3}),
        data_manifest=data,
        features_manifest=feature_manifest,
    )
    again = rebuild_version(
        features,
        tmp_path,
        "m",
        first.version,
        data_manifest=data,
        features_manifest=feature_manifest,
        quality_report=None,
    )
    assert again.version == 2
    assert again.metadata["training"]["seed"] == 3
    assert again.metadata["validation_metrics"] == first.metadata["validation_metrics"]
    with pytest.raises(DataError, match="prices SHA-256 p1, the current data has p2"):
        rebuild_version(
            features,
            tmp_path,
            "m",
            1,
            data_manifest={"prices_sha256": "p2"},
            features_manifest=feature_manifest,
            quality_report=None,
        )
