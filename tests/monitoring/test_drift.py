"""Feature drift: the PSI formula, a reference fitted on the training split only, and the
live rows the server compares with it: the newly arrived ones once there are enough."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from app.services.feature_store import FeatureStore
from app.services.model_registry import LoadedModel
from app.services.monitoring import serving_drift
from tests.conftest import PIPELINE_TICKERS
from training import schema
from training.drift import (
    MIN_NEW_DAYS,
    SHARE_FLOOR,
    BinnedDistribution,
    feature_drift,
    latest_rows,
    population_stability_index,
    read_drift_reference,
    rows_after,
)
from training.errors import DataError
from training.features import load_features

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def _psi_by_hand(expected: np.ndarray, actual: np.ndarray) -> float:
    expected = np.maximum(expected, SHARE_FLOOR)
    actual = np.maximum(actual, SHARE_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def test_deciles_hold_a_tenth_each_and_the_same_sample_has_no_drift() -> None:
    values = np.random.default_rng(0).normal(size=10_000)
    reference = BinnedDistribution.from_values(values)
    assert len(reference.edges) == 9
    np.testing.assert_allclose(reference.shares, 0.1, atol=1e-3)
    assert population_stability_index(reference, values) == pytest.approx(0.0, abs=1e-5)


def test_all_live_values_in_one_bin_gives_the_formula_s_value() -> None:
    reference = BinnedDistribution.from_values(np.arange(1000.0))
    live = np.full(100, 5.0)  # all in the first decile
    expected = 0.9 * np.log(1 / 0.1) + 9 * (SHARE_FLOOR - 0.1) * np.log(SHARE_FLOOR / 0.1)
    assert population_stability_index(reference, live) == pytest.approx(expected)
    assert expected == pytest.approx(8.283, abs=1e-3)


def test_a_shifted_normal_matches_an_independent_histogram() -> None:
    rng = np.random.default_rng(1)
    training = rng.normal(size=20_000)
    live = rng.normal(loc=0.5, scale=1.3, size=3_000)
    reference = BinnedDistribution.from_values(training)
    bounds = np.concatenate([[-np.inf], reference.edges, [np.inf]])
    expected = np.histogram(training, bounds)[0] / training.size
    actual = np.histogram(live, bounds)[0] / live.size
    psi = population_stability_index(reference, live)
    assert psi == pytest.approx(_psi_by_hand(expected, actual), rel=1e-9)
    assert psi > 0.25  # half a standard deviation and 30% wider: a large shift


def test_noise_alone_stays_well_under_the_alert_threshold() -> None:
    rng = np.random.default_rng(2)
    reference = BinnedDistribution.from_values(rng.normal(size=10_000))
    # 300 live values from the same distribution: E[PSI] is about 9 / 300 = 0.03.
    psis = [population_stability_index(reference, rng.normal(size=300)) for _ in range(200)]
    assert np.mean(psis) == pytest.approx(0.03, abs=0.01)
    assert max(psis) < 0.1


def test_ties_merge_bins_and_nans_are_ignored() -> None:
    values = np.concatenate([np.zeros(700), np.linspace(-1, -0.01, 300), [np.nan, np.inf]])
    reference = BinnedDistribution.from_values(values)
    assert len(reference.edges) == len(set(reference.edges)) < 9
    assert sum(reference.shares) == pytest.approx(1.0)
    assert BinnedDistribution.from_json(reference.to_json()) == reference
    with pytest.raises(DataError, match="no finite value"):
        BinnedDistribution.from_values(np.array([np.nan]))


def test_features_with_too_few_live_values_are_left_out() -> None:
    reference = {"a": BinnedDistribution.from_values(np.arange(100.0))}
    live = pd.DataFrame({"a": [1.0] * 10 + [np.nan] * 90})
    assert feature_drift(reference, live) == {}
    assert set(feature_drift(reference, live, min_values=10)) == {"a"}
    assert feature_drift(reference, pd.DataFrame({"b": np.arange(100.0)})) == {}


def test_latest_rows_keep_the_last_days_of_every_ticker() -> None:
    dates = pd.bdate_range("2020-01-01", periods=100)
    table = pd.DataFrame(
        {schema.DATE: np.tile(dates, 2), schema.TICKER: np.repeat(["A", "B"], 100)}
    )
    recent = latest_rows(table, days=10)
    assert len(recent) == 20
    assert recent[schema.DATE].min() == dates[-10]


@pytest.mark.slow
def test_the_reference_is_fitted_on_the_training_split_only(pipeline_dir: Path) -> None:
    version = pipeline_dir / "models" / "forecaster" / "1"
    metadata = json.loads((version / "metadata.json").read_text())
    reference = read_drift_reference(version)
    assert reference is not None
    assert set(reference) == set(schema.FEATURE_COLUMNS)
    assert metadata["drift_reference"]["file"] == "drift_reference.json"
    assert metadata["drift_reference"]["date_range"] == metadata["split"]["train"]
    assert metadata["drift_reference"]["rows"] == metadata["samples"]["train"]

    # Refit from the feature table's rows dated in the training split: the same bins.
    table = load_features(pipeline_dir / "data" / "features")
    first, last = (pd.Timestamp(day) for day in metadata["split"]["train"])
    in_train = table[(table[schema.DATE] >= first) & (table[schema.DATE] <= last)]
    assert len(in_train) == metadata["samples"]["train"]
    for feature, fitted in reference.items():
        values = in_train[feature].to_numpy(dtype=np.float32)
        refit = BinnedDistribution.from_values(values)
        np.testing.assert_allclose(fitted.edges, refit.edges, rtol=1e-6, err_msg=feature)
        np.testing.assert_allclose(fitted.shares, refit.shares, atol=1e-12, err_msg=feature)
        # The whole table (validation dates included) bins differently.
        everything = BinnedDistribution.from_values(table[feature].to_numpy(dtype=np.float32))
        assert everything.edges != fitted.edges, feature


@pytest.fixture(scope="module")
def features_into_2019(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
) -> pd.DataFrame:
    """The pipeline's tickers and index from 2015 to mid-2019, through ingest and Spark.

    The same data as the session's ``pipeline_dir`` (whose model's data ends on
    2018-12-31) and half a year more: the bars that arrived after the model was trained.
    """
    from tests.tiny_pipeline import ingest_and_features
    from training.features import load_features
    from training.sources import embedded_dataset_files

    root = tmp_path_factory.mktemp("into-2019")
    stocks_path, index_path = embedded_dataset_files()
    wide = pd.read_csv(stocks_path)[["Date", *PIPELINE_TICKERS]].merge(
        pd.read_csv(index_path), on="Date"
    )
    wide = wide[(wide["Date"] >= "2015-01-01") & (wide["Date"] <= "2019-06-28")]
    wide.to_csv(root / "slice.csv", index=False)
    ingest_and_features(spark, root, root / "slice.csv")
    return load_features(root / "features")


def _serving_model(pipeline_dir: Path) -> LoadedModel:
    version = pipeline_dir / "models" / "forecaster" / "1"
    metadata = json.loads((version / "metadata.json").read_text())
    # The drift needs the version's folder and metadata, not its SavedModel.
    return LoadedModel(
        name="forecaster", version=1, path=version, metadata=metadata, saved_model=None
    )


@pytest.mark.slow
def test_the_server_measures_drift_on_the_rows_after_the_model_s_data(
    pipeline_dir: Path, features_into_2019: pd.DataFrame
) -> None:
    model = _serving_model(pipeline_dir)
    assert model.metadata["data"]["data_date_range"][1] == "2018-12-31"
    reference = read_drift_reference(model.path)
    assert reference is not None
    table = features_into_2019
    assert table[schema.DATE].max() == pd.Timestamp("2019-06-28")

    measured = serving_drift(model, FeatureStore(table=table, path=Path("unused")))

    arrived = table[table[schema.DATE] > pd.Timestamp("2018-12-31")]
    assert arrived[schema.DATE].nunique() == 124  # Jan to Jun 2019, all five tickers
    assert measured.rows == measured.new_rows == len(arrived) == 124 * len(PIPELINE_TICKERS)
    assert measured.psi == feature_drift(reference, arrived)
    # Not what the latest quarter (April to June) reads.
    assert measured.psi != feature_drift(reference, latest_rows(table))


@pytest.mark.slow
@pytest.mark.parametrize(("last_day", "new_days"), [("2019-01-30", 20), ("2019-01-29", 19)])
def test_until_enough_rows_have_arrived_the_latest_quarter_is_measured(
    pipeline_dir: Path, features_into_2019: pd.DataFrame, last_day: str, new_days: int
) -> None:
    model = _serving_model(pipeline_dir)
    reference = read_drift_reference(model.path)
    assert reference is not None
    table = features_into_2019[features_into_2019[schema.DATE] <= pd.Timestamp(last_day)]
    arrived = rows_after(table, date(2018, 12, 31))
    assert arrived[schema.DATE].nunique() == new_days  # 21 January 2019 was a holiday

    measured = serving_drift(model, FeatureStore(table=table, path=Path("unused")))

    if new_days >= MIN_NEW_DAYS:
        assert (measured.rows, measured.new_rows) == (len(arrived), len(arrived))
        assert measured.psi == feature_drift(reference, arrived)
    else:
        quarter = latest_rows(table)
        assert (measured.rows, measured.new_rows) == (len(quarter), 0)
        assert measured.psi == feature_drift(reference, quarter)
        # The quarter reaches back into the model's own data.
        assert quarter[schema.DATE].min() < pd.Timestamp("2018-12-31")
