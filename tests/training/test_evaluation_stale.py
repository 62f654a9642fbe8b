"""The walk-forward leaves out ingest's stale stretches, as production training does."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import pytest

import training.fit
from tests.training.synthetic import synthetic_features
from tests.training.test_evaluation import CONFIG
from training import schema
from training.dataset import STALE_PADDING
from training.evaluation import evaluate_refit, refit_schedule


def test_stale_stretches_are_out_of_training_and_of_the_scores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    features = synthetic_features(n_days=900)
    ticker = str(features[schema.TICKER].iloc[0])
    # One stretch in the training years, one in the test year.
    stretches = (
        {"ticker": ticker, "start": "2011-03-01", "end": "2011-03-10"},
        {"ticker": ticker, "start": "2012-05-01", "end": "2012-05-10"},
    )
    config = dataclasses.replace(CONFIG, stale_stretches=stretches)
    refit = refit_schedule(pd.DatetimeIndex(features[schema.DATE]), config)[0]
    fitted_on: list[Any] = []
    original = training.fit.fit_forecaster

    def recording(train: Any, validation: Any, *args: Any, **kwargs: Any) -> Any:
        fitted_on.extend([train, validation])
        return original(train, validation, *args, **kwargs)

    monkeypatch.setattr(training.fit, "fit_forecaster", recording)
    predictions = evaluate_refit(features, refit, config)

    def inside(dates: pd.DatetimeIndex, tickers: np.ndarray, stretch: dict[str, str]) -> int:
        start = pd.Timestamp(stretch["start"]) - STALE_PADDING
        end = pd.Timestamp(stretch["end"])
        return int(((tickers == stretch["ticker"]) & (dates >= start) & (dates <= end)).sum())

    assert fitted_on, "the refit trained no model"
    for samples in fitted_on:  # neither fitting nor early stopping saw a stale sample
        dates = pd.DatetimeIndex(samples.dates)
        assert all(inside(dates, samples.tickers, s) == 0 for s in stretches)
    scored = pd.DatetimeIndex(predictions["date"])
    assert inside(scored, predictions["ticker"].to_numpy(), stretches[1]) == 0
    # The rest of that ticker's test year is still scored, by every forecaster alike.
    assert (predictions["ticker"] == ticker).any()
    per_forecaster = predictions.groupby(["forecaster", "target"]).size()
    assert per_forecaster.loc[["model", "trailing_21d"], "variance_21d"].nunique() == 1
