"""Settings: YAML defaults, environment overrides, unsafe values refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core.config import Settings


def test_yaml_defaults_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "custom.yaml"
    config.write_text("model_name: alpha\nspark:\n  master: spark://cluster:7077\n")
    monkeypatch.setenv("QUANTSERVE_CONFIG_FILE", str(config))
    settings = Settings()
    assert settings.model_name == "alpha"
    assert settings.spark.master == "spark://cluster:7077"
    assert settings.spark.driver_memory == "2g"  # the rest keep their defaults


def test_environment_overrides_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTSERVE_SPARK__MASTER", "k8s://https://api:6443")
    monkeypatch.setenv("QUANTSERVE_OPTIMIZER__RISK_FREE_RATE", "0.03")
    monkeypatch.setenv("QUANTSERVE_PORT", "9000")
    settings = Settings()
    assert settings.spark.master == "k8s://https://api:6443"
    assert settings.optimizer.risk_free_rate == pytest.approx(0.03)
    assert settings.port == 9000
    assert settings.training.lookback_days == 20  # from config/default.yaml


def test_unknown_and_unsafe_settings_are_refused() -> None:
    with pytest.raises(ValidationError, match="cors_origins"):
        Settings(environment="production", cors_origins=("*",))
    with pytest.raises(ValidationError):
        Settings(training={"lookback_days": 0})
    with pytest.raises(ValidationError):
        Settings(model_name="../escape")
