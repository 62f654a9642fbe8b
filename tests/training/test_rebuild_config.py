"""A rebuild trains with the settings the version recorded, the holdout included."""

from __future__ import annotations

from training.config import TrainingConfig
from training.rebuild import training_config_of


def test_a_version_from_before_the_holdout_rebuilds_without_one() -> None:
    recorded = {"training": {"lookback_days": 10, "validation_fraction": 0.2}}
    config = training_config_of(recorded)
    assert config.holdout_fraction == 0.0
    assert config.lookback_days == 10
    assert TrainingConfig().holdout_fraction > 0  # today's default would not reproduce it


def test_a_recorded_holdout_is_kept() -> None:
    config = training_config_of({"training": {"holdout_fraction": 0.15}})
    assert config.holdout_fraction == 0.15
