"""Walk-forward evaluation: purged schedule, same samples for all, no look-ahead, Spark."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.training.synthetic import synthetic_features, write_feature_table
from training import schema
from training.config import TrainingConfig
from training.evaluation import (
    WalkForwardConfig,
    compute_metrics,
    evaluate_refit,
    refit_schedule,
    run_walk_forward,
    write_evaluation,
)
from training.evaluation._stats import diebold_mariano, r2_out_of_sample

CONFIG = WalkForwardConfig(
    first_test_year=2012,
    training=TrainingConfig(lookback_days=5, hidden_units=4, epochs=2, batch_size=256),
)
VOLATILITY = {"model", "trailing_21d", "ewma_0.94", "garch_1_1", "gjr_garch_1_1", "har", "log_har"}
RETURNS = {"model", "zero", "historical_mean", "momentum_12_1", "linear"}


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    # 2010-01-01 .. 2013-06: two test years, 2012 and 2013, after 500+ training days
    return synthetic_features(n_days=900)


@pytest.fixture(scope="module")
def predictions(features: pd.DataFrame) -> pd.DataFrame:
    refit = refit_schedule(pd.DatetimeIndex(features[schema.DATE]), CONFIG)[0]
    return evaluate_refit(features, refit, CONFIG)


def test_schedule_purges_the_target_horizon(features: pd.DataFrame) -> None:
    dates = pd.DatetimeIndex(sorted(features[schema.DATE].unique()))
    refits = refit_schedule(dates, CONFIG)
    assert [r.test_start.year for r in refits] == [2012, 2013]
    for refit in refits:
        between = dates[(dates > refit.train_end) & (dates < refit.test_start)]
        assert len(between) == schema.VOLATILITY_HORIZON_DAYS
    with pytest.raises(ValueError, match="shorter than the 21-day target horizon"):
        WalkForwardConfig(purge_days=5)


def test_every_forecaster_forecasts_the_same_test_samples(predictions: pd.DataFrame) -> None:
    assert set(predictions["forecaster"][predictions["target"] == "variance_21d"]) == VOLATILITY
    assert set(predictions["forecaster"][predictions["target"] == "log_return_5d"]) == RETURNS
    quantile_targets = {t for t in predictions["target"].unique() if "_q" in t}
    assert quantile_targets == {"log_return_5d_q05", "log_return_5d_q50", "log_return_5d_q95"}
    samples = {
        name: set(zip(group["date"], group["ticker"], strict=True))
        for name, group in predictions.groupby(["target", "forecaster"])
    }
    assert len({frozenset(s) for s in samples.values()}) == 1
    assert predictions["date"].dt.year.eq(2012).all()
    assert np.isfinite(predictions["forecast"]).all()
    variance = predictions[predictions["target"] == "variance_21d"]
    assert (variance["forecast"] > 0).all()


def test_realized_values_are_the_targets(features: pd.DataFrame, predictions: pd.DataFrame) -> None:
    truth = features.set_index([schema.DATE, schema.TICKER])
    rows = predictions[predictions["forecaster"] == "zero"]
    expected = truth.loc[list(zip(rows["date"], rows["ticker"], strict=True)), schema.TARGET_RETURN]
    np.testing.assert_allclose(rows["realized"].to_numpy(), expected.to_numpy())


def test_forecasts_do_not_change_when_the_future_does(
    features: pd.DataFrame, predictions: pd.DataFrame
) -> None:
    """Scramble every row after the test period: no 2012 forecast may move."""
    refit = refit_schedule(pd.DatetimeIndex(features[schema.DATE]), CONFIG)[0]
    later = features[schema.DATE] > refit.test_end
    scrambled = features.copy()
    rng = np.random.default_rng(1)
    for column in (*schema.FEATURE_COLUMNS, *schema.TARGET_COLUMNS):
        scrambled.loc[later, column] = rng.permutation(scrambled.loc[later, column].to_numpy())
    again = evaluate_refit(scrambled, refit, CONFIG)
    pd.testing.assert_series_equal(
        again["forecast"].reset_index(drop=True), predictions["forecast"].reset_index(drop=True)
    )


def test_metrics_and_artefacts(tmp_path: Path, predictions: pd.DataFrame) -> None:
    metrics = compute_metrics(predictions)
    assert set(metrics["volatility"]) == VOLATILITY
    assert set(metrics["returns"]) == RETURNS
    model = metrics["volatility"]["model"]
    assert model["dm_baseline"] in VOLATILITY - {"model"}
    best = min((v["qlike"], k) for k, v in metrics["volatility"].items() if k != "model")[1]
    assert model["dm_baseline"] == best
    assert metrics["returns"]["historical_mean"]["r2_oos"] == pytest.approx(0.0)
    assert metrics["returns"]["zero"]["ic_mean"] is None
    coverage = metrics["returns"]["model"]["quantile_coverage"]
    assert list(coverage) == ["0.05", "0.50", "0.95"]
    assert coverage["0.05"] <= coverage["0.50"] <= coverage["0.95"]

    out = tmp_path / "evaluation"
    write_evaluation(
        out,
        predictions,
        metrics,
        {"refits": 1},
        training_history={"loss": [2.0, 1.0], "val_loss": [2.5, 1.5]},
    )
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["volatility"]["model"]["qlike"] == pytest.approx(model["qlike"])
    table = pd.read_parquet(out / "predictions.parquet")
    assert list(table.columns) == ["date", "ticker", "forecaster", "target", "forecast", "realized"]
    assert len(table) == len(predictions)
    assert "| model |" in (out / "report.md").read_text()
    for plot in ("loss.png", "volatility.png", "ic.png", "quantile_calibration.png"):
        assert (out / plot).read_bytes()[:4] == b"\x89PNG"


def test_diebold_mariano_and_r2() -> None:
    rng = np.random.default_rng(0)
    dates = np.repeat(pd.bdate_range("2020-01-01", periods=300).to_numpy(), 3)
    noise = rng.normal(size=dates.size)
    better, worse = noise**2, noise**2 + 0.5 + rng.normal(0, 0.1, dates.size)
    statistic, p_value = diebold_mariano(dates, better, worse, lags=4)
    assert statistic < -5
    assert p_value < 1e-6
    same, p_same = diebold_mariano(dates, better, better + rng.normal(0, 1e-3, dates.size), 4)
    assert abs(same) < 4
    assert p_same > 1e-4
    realized = rng.normal(size=100)
    assert r2_out_of_sample(realized, realized, np.zeros(100)) == pytest.approx(1.0)
    assert r2_out_of_sample(realized, np.zeros(100), np.zeros(100)) == pytest.approx(0.0)


def test_refits_run_as_spark_tasks(spark, tmp_path: Path, features: pd.DataFrame) -> None:
    path = tmp_path / "features"
    write_feature_table(features, path)
    config = WalkForwardConfig(first_test_year=2012, training=CONFIG.training, garch=False)
    distributed = run_walk_forward(spark, path, config)
    local = run_walk_forward(None, path, config)
    # The Spark ML challenger needs Spark: it is only in the distributed run, scored on
    # exactly the model's samples, both targets.
    challenger = distributed[distributed["forecaster"] == "spark_gbt"]
    distributed = distributed[distributed["forecaster"] != "spark_gbt"]
    model = distributed[distributed["forecaster"] == "model"]
    for target in ("log_return_5d", "variance_21d"):
        ours = challenger[challenger["target"] == target]
        theirs = model[model["target"] == target]
        assert set(zip(ours["date"], ours["ticker"], strict=True)) == set(
            zip(theirs["date"], theirs["ticker"], strict=True)
        )
        assert np.isfinite(ours["forecast"]).all()
    assert (challenger.loc[challenger["target"] == "variance_21d", "forecast"] > 0).all()
    assert sorted(distributed["refit_train_end"].dt.year.unique()) == [2011, 2012]
    baselines = ["date", "ticker", "forecaster", "target"]
    key = distributed.sort_values(baselines).reset_index(drop=True)
    expected = local.sort_values(baselines).reset_index(drop=True)
    pd.testing.assert_frame_equal(key[baselines], expected[baselines])
    not_model = key["forecaster"] != "model"
    np.testing.assert_allclose(
        key.loc[not_model, "forecast"], expected.loc[not_model, "forecast"], rtol=1e-9
    )
    # the network trains with one thread per task on the executors: same seed, close results
    np.testing.assert_allclose(
        key.loc[~not_model, "forecast"], expected.loc[~not_model, "forecast"], rtol=0.05
    )
