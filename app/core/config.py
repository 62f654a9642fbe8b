"""Settings: YAML defaults in ``config/``, overridden by ``QUANTSERVE_*`` environment variables."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from training.config import IngestConfig, SparkConfig, TrainingConfig

DEFAULT_CONFIG_FILE = Path(__file__).resolve().parents[2] / "config" / "default.yaml"
CONFIG_FILE_VARIABLE = "QUANTSERVE_CONFIG_FILE"


class OptimizerSettings(BaseModel):
    """How the service solves allocations."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    solver: str = "CLARABEL"
    fallback_solvers: tuple[str, ...] = ("SCS",)
    cache_size: int = Field(128, ge=1, description="Compiled problems kept (LRU).")
    risk_free_rate: float = Field(0.0, description="Annualised, default for requests.")
    correlation_lookback_days: int = Field(
        252, ge=30, description="Trailing daily returns behind the Ledoit-Wolf correlation."
    )


class Settings(BaseSettings):
    """Every setting of the service and the pipeline."""

    model_config = SettingsConfigDict(
        env_prefix="QUANTSERVE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("data")
    models_dir: Path = Path("models")
    model_name: str = Field("forecaster", pattern=r"^[A-Za-z0-9_.-]+$")
    host: str = "0.0.0.0"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(
        2, ge=1, le=64, description="gunicorn worker processes; 1 runs a single uvicorn."
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    cors_origins: tuple[str, ...] = ()

    ingest: IngestConfig = IngestConfig()
    spark: SparkConfig = SparkConfig()
    training: TrainingConfig = TrainingConfig()
    optimizer: OptimizerSettings = OptimizerSettings()

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment == "production" and "*" in self.cors_origins:
            raise ValueError(
                "cors_origins='*' is refused in production; list the front-ends' origins"
            )
        return self

    @property
    def raw_dir(self) -> Path:
        """Validated prices, quarantine, quality report and manifest."""
        return self.data_dir / "raw"

    @property
    def features_dir(self) -> Path:
        """The Spark feature table (Parquet partitioned by year)."""
        return self.data_dir / "features"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then environment, then the YAML file."""
        yaml_file = Path(os.environ.get(CONFIG_FILE_VARIABLE, DEFAULT_CONFIG_FILE))
        return (
            init_settings,
            env_settings,
            YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file),
        )


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once (tests override the dependency instead)."""
    return Settings()
