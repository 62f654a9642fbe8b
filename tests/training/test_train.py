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
from training.train import split_by_time, train_and_export

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
    assert not [p for p in (models / "tiny").iterdir() if p.name.startswith(".")]


def test_split_leaves_a_gap_of_the_horizon(trained) -> None:
    _features, _, result = trained
    split = result.metadata["split"]
    dates = pd.bdate_range("2010-01-01", periods=500)
    last_train = dates.get_loc(pd.Timestamp(split["train"][1]))
    first_validation = dates.get_loc(pd.Timestamp(split["validation"][0]))
    assert first_validation - last_train - 1 == schema.VOLATILITY_HORIZON_DAYS
    # no training target window reaches the first validation date
    assert last_train + schema.VOLATILITY_HORIZON_DAYS < first_validation


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
    # Same seed, same data: the same validation metrics.
    assert again.metadata["validation_metrics"] == first.metadata["validation_metrics"]


def test_too_little_data_is_a_training_error() -> None:
    windows = build_windows(synthetic_features(n_days=40), 5)
    with pytest.raises(TrainingError, match="too few to split"):
        split_by_time(windows.select(windows.has_targets), 0.2)


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
