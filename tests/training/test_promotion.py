"""Champion/challenger promotion with real SavedModels on the same samples."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.training.synthetic import synthetic_features
from training import schema
from training.config import TrainingConfig
from training.model_store import read_metadata
from training.promotion import NoFairWindow, comparison_window, register_and_maybe_promote
from training.registry import ModelRegistry, Stage
from training.train import train_and_export

TRAINED = TrainingConfig(lookback_days=5, hidden_units=8, epochs=4, batch_size=128, patience=2)
# A learning rate this small leaves the network at its random initialisation.
UNTRAINED = TRAINED.model_copy(update={"learning_rate": 1e-9, "epochs": 1})
# As versions were trained before holdouts: validation runs to the last date.
NO_HOLDOUT = TRAINED.model_copy(update={"holdout_fraction": 0.0, "epochs": 1})
GAP = schema.VOLATILITY_HORIZON_DAYS


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    models = tmp_path_factory.mktemp("models")
    features = synthetic_features(n_days=700)
    for config in (TRAINED, UNTRAINED, TRAINED.model_copy(update={"seed": 11}), NO_HOLDOUT):
        train_and_export(features, models, "m", config)
    return features, models / "m"


def _known_dates(features: pd.DataFrame) -> pd.DatetimeIndex:
    known = features[schema.TARGET_RETURN].notna() & features[schema.TARGET_VARIANCE].notna()
    return pd.DatetimeIndex(sorted(features.loc[known, schema.DATE].unique()))


def _assert_unseen_by_selection(features: pd.DataFrame, model_dir, decision) -> None:
    """The window lies in the candidate's holdout, after every version's validation + purge."""
    assert decision.window is not None
    start, end = (pd.Timestamp(day) for day in decision.window)
    known = _known_dates(features)
    candidate = read_metadata(model_dir / str(decision.candidate))["split"]
    production = read_metadata(model_dir / str(decision.production))["split"]
    for split in (candidate, production):
        last_validation = pd.Timestamp(split["validation"][1])
        assert start > last_validation
        purge = known[(known > last_validation) & (known < start)]
        assert len(purge) >= GAP  # no date of the purge gap either
    holdout = [pd.Timestamp(day) for day in candidate["holdout"]]
    assert holdout[0] <= start <= end <= holdout[1]
    assert "neither version trained or selected on it" in decision.describe()
    assert f"{decision.window[0]}..{decision.window[1]}" in decision.describe()


def test_first_version_is_promoted_and_a_worse_one_is_archived(store) -> None:
    features, model_dir = store
    first = register_and_maybe_promote(features, model_dir, 1)
    assert first.promoted
    assert first.production is None
    worse = register_and_maybe_promote(features, model_dir, 2)
    assert not worse.promoted
    assert worse.candidate_qlike > worse.production_qlike
    assert worse.samples > 100
    registry = ModelRegistry(model_dir)
    assert registry.production() == 1
    assert registry.stage(2) is Stage.ARCHIVED
    assert "production stays" in worse.describe()
    _assert_unseen_by_selection(features, model_dir, worse)


def test_a_better_candidate_replaces_production(store) -> None:
    features, model_dir = store
    registry = ModelRegistry(model_dir)
    registry.promote(2, reason="a poor model in production, for the test")
    better = register_and_maybe_promote(features, model_dir, 3)
    assert better.promoted
    assert better.production == 2
    assert better.candidate_qlike < better.production_qlike
    assert registry.production() == 3
    assert registry.stage(2) is Stage.ARCHIVED
    _assert_unseen_by_selection(features, model_dir, better)
    # Same data and fractions: the window is the candidate's whole holdout.
    assert list(better.window) == read_metadata(model_dir / "3")["split"]["holdout"]
    assert "neither version trained or selected on it" in registry.records()[2].reason


def test_production_that_selected_on_the_holdout_keeps_its_place(store) -> None:
    features, model_dir = store
    registry = ModelRegistry(model_dir)
    # Version 4 validated up to the last date: the candidate's holdout is no fair test.
    registry.promote(4, reason="a version without a holdout, for the test")
    decision = register_and_maybe_promote(features, model_dir, 3)
    assert not decision.promoted
    assert decision.window is None
    assert decision.candidate_qlike is None
    assert registry.production() == 4
    assert registry.stage(3) is Stage.ARCHIVED
    last_validation = read_metadata(model_dir / "4")["split"]["validation"][1]
    assert f"after {last_validation}, where version 4's validation ends" in decision.reason
    assert "production stays: not compared" in decision.describe()


def test_a_candidate_without_a_holdout_is_not_promoted_over_production(store) -> None:
    features, model_dir = store
    registry = ModelRegistry(model_dir)
    registry.promote(1, reason="for the test")
    decision = register_and_maybe_promote(features, model_dir, 4)
    assert not decision.promoted
    assert "version 4 records no holdout window" in decision.describe()
    assert registry.production() == 1
    assert registry.stage(4) is Stage.ARCHIVED


def _split(validation_end: str, holdout: list[str] | None) -> dict:
    return {"split": {"validation": ["2000-01-03", validation_end], "holdout": holdout}}


def test_the_window_starts_a_purge_after_the_later_validation_end() -> None:
    dates = pd.bdate_range("2020-01-01", periods=200).to_numpy(dtype="datetime64[ns]")
    day = [str(d)[:10] for d in dates]
    candidate = _split(day[139], [day[161], day[199]])
    # Production validated past the candidate's validation end (a newer version with
    # a smaller holdout): the window starts a purge after production's validation.
    production = _split(day[150], None)
    window = comparison_window(dates, 2, candidate, 1, production)
    assert (window.start, window.end) == (day[150 + GAP + 1], day[199])
    assert window.selected_until == day[150]
    assert window.gap_trading_days == GAP
    # An older production: the window is the candidate's holdout.
    older = comparison_window(dates, 2, candidate, 1, _split(day[100], [day[120], day[150]]))
    assert (older.start, older.end) == (day[161], day[199])
    # Nothing left after the purge: no window, and the message says whose validation.
    with pytest.raises(NoFairWindow, match="where version 1's validation ends"):
        comparison_window(dates, 2, candidate, 1, _split(day[199 - GAP], None))
    with pytest.raises(NoFairWindow, match="version 2 records no holdout"):
        comparison_window(dates, 2, _split(day[199], None), 1, production)
