"""Champion/challenger promotion with real SavedModels on the same samples."""

from __future__ import annotations

import pytest

from tests.training.synthetic import synthetic_features
from training.config import TrainingConfig
from training.promotion import register_and_maybe_promote
from training.registry import ModelRegistry, Stage
from training.train import train_and_export

TRAINED = TrainingConfig(lookback_days=5, hidden_units=8, epochs=4, batch_size=128, patience=2)
# A learning rate this small leaves the network at its random initialisation.
UNTRAINED = TRAINED.model_copy(update={"learning_rate": 1e-9, "epochs": 1})


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    models = tmp_path_factory.mktemp("models")
    features = synthetic_features(n_days=700)
    for config in (TRAINED, UNTRAINED, TRAINED.model_copy(update={"seed": 11})):
        train_and_export(features, models, "m", config)
    return features, models / "m"


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
