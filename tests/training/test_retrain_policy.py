"""When a retrain is due: new trading days, drift on enough new rows, or neither."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from training import schema
from training.config import RetrainConfig
from training.drift import BinnedDistribution, drift_reference
from training.retrain_policy import assess_retrain, decide_retrain, training_data_end

CONFIG = RetrainConfig(max_new_days=21, drift_psi=0.25, min_drift_rows=100)
CALM = {"realized_vol_21d": 0.04, "momentum_21d": 0.11}
DRIFTED = {"realized_vol_21d": 0.04, "momentum_21d": 0.61}


def test_due_once_enough_trading_days_have_arrived() -> None:
    decision = decide_retrain(21, 441, CALM, CONFIG)
    assert decision.due
    assert decision.reason == "21 new trading days (retrain at 21)"
    assert (decision.new_days, decision.new_rows) == (21, 441)


def test_one_day_short_and_no_drift_is_not_due() -> None:
    decision = decide_retrain(20, 420, CALM, CONFIG)
    assert not decision.due
    assert "20 new trading days (retrain at 21)" in decision.reason
    assert "largest PSI 0.110 (momentum_21d) <= 0.25 on 420 new rows" in decision.reason


def test_due_by_drift_before_the_days_are_in() -> None:
    decision = decide_retrain(5, 105, DRIFTED, CONFIG)
    assert decision.due
    assert "largest PSI 0.610 (momentum_21d) > 0.25 on 105 new rows" in decision.reason
    assert decision.drift == DRIFTED


def test_drift_on_too_few_rows_does_not_count() -> None:
    decision = decide_retrain(4, 84, DRIFTED, CONFIG)
    assert not decision.due
    assert "drift not measured: 84 new rows, fewer than 100" in decision.reason


def test_a_psi_at_the_threshold_is_not_drift() -> None:
    assert not decide_retrain(5, 105, {"momentum_21d": 0.25}, CONFIG).due
    assert decide_retrain(5, 105, {"momentum_21d": 0.2501}, CONFIG).due


def test_without_a_drift_reference_only_days_decide() -> None:
    waiting = decide_retrain(3, 300, None, CONFIG)
    assert not waiting.due
    assert "no drift reference" in waiting.reason
    assert decide_retrain(30, 630, None, CONFIG).due


def test_no_new_days_is_not_due() -> None:
    decision = decide_retrain(0, 0, {}, CONFIG)
    assert not decision.due
    assert "0 new trading days" in decision.reason


def _table(start: str, days: int, tickers: int, shift: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(start, periods=days)
    frame = pd.DataFrame(
        {
            schema.DATE: np.repeat(dates, tickers),
            schema.TICKER: np.tile([f"T{k}" for k in range(tickers)], days),
        }
    )
    for column in schema.FEATURE_COLUMNS:
        frame[column] = rng.normal(size=len(frame)) + shift
    return frame


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    return _table("2020-01-01", 500, 10, shift=0.0, seed=1)


def _reference(history: pd.DataFrame) -> dict[str, BinnedDistribution]:
    return drift_reference(history[list(schema.FEATURE_COLUMNS)].to_numpy(), schema.FEATURE_COLUMNS)


@pytest.mark.parametrize(
    ("days", "shift", "due", "says"),
    [
        (21, 0.0, True, "21 new trading days"),  # many days, same distribution
        (15, 0.0, False, "<= 0.25 on 150 new rows"),  # enough rows, no drift
        (15, 1.5, True, "> 0.25 on 150 new rows"),  # enough rows, shifted features
        (8, 1.5, False, "80 new rows, fewer than 100"),  # shifted, but too few rows
    ],
)
def test_assessing_a_feature_table(
    history: pd.DataFrame, days: int, shift: float, due: bool, says: str
) -> None:
    end = history[schema.DATE].max()
    new = _table(str((end + pd.offsets.BDay(1)).date()), days, 10, shift=shift, seed=2)
    decision = assess_retrain(
        pd.concat([history, new], ignore_index=True), end.date(), _reference(history), CONFIG
    )
    assert decision.due is due
    assert says in decision.reason
    assert (decision.new_days, decision.new_rows) == (days, days * 10)


def test_rows_on_the_cut_off_day_are_not_new(history: pd.DataFrame) -> None:
    end = history[schema.DATE].max()
    decision = assess_retrain(history, end.date(), _reference(history), CONFIG)
    assert (decision.new_days, decision.new_rows) == (0, 0)
    earlier = assess_retrain(history, (end - pd.offsets.BDay(3)).date(), None, CONFIG)
    assert (earlier.new_days, earlier.new_rows) == (3, 30)


def test_the_training_data_end_comes_from_the_metadata() -> None:
    split = {
        "train": ["2000-01-03", "2015-06-30"],
        "validation": ["2015-08-03", "2019-11-28"],
        "holdout": ["2020-01-03", "2022-10-27"],
        "gap_trading_days": 21,  # as metadata.json records it beside the periods
    }
    data = {"data_date_range": ["1990-01-02", "2022-11-28"]}
    assert training_data_end({"split": split, "data": data}) == date(2022, 11, 28)
    assert training_data_end({"split": split}) == date(2022, 10, 27)
    assert training_data_end({"split": {**split, "holdout": None}}) == date(2019, 11, 28)
    assert training_data_end({}) is None
