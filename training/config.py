"""Parameters of the offline pipeline, as plain pydantic models.

``app.core.config.Settings`` composes them, so the YAML defaults in ``config/`` and
``QUANTSERVE_*`` environment variables reach every stage; the library itself reads
neither.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class IngestConfig(BaseModel):
    """Validation thresholds of ``quantserve ingest``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_history_days: int = Field(
        300, ge=2, description="A ticker with fewer valid rows is quarantined whole."
    )
    stale_min_days: int = Field(
        5, ge=2, description="Report runs of at least this many identical closes."
    )
    jump_min_abs_log_return: float = Field(
        0.25, gt=0, description="Report one-day moves at least this large (log return)..."
    )
    jump_min_sigma: float = Field(
        8.0, gt=0, description="...and at least this many trailing 63-day daily sigmas."
    )


class SparkConfig(BaseModel):
    """Where and how the Spark feature job runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    master: str = Field("local[*]", description="local[*], spark://host:7077, k8s://https://…")
    app_name: str = "quantserve-features"
    driver_memory: str = "2g"
    shuffle_partitions: int = Field(8, ge=1)


class TrainingConfig(BaseModel):
    """Model shape and training schedule of ``quantserve train``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lookback_days: int = Field(20, ge=1, description="Rows of features the model sees.")
    hidden_units: int = Field(32, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    epochs: int = Field(12, ge=1)
    patience: int = Field(3, ge=1, description="Early stopping on validation loss.")
    batch_size: int = Field(512, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    validation_fraction: float = Field(
        0.2,
        gt=0,
        lt=1,
        description="Share of the dated sample for early stopping, just before the holdout.",
    )
    holdout_fraction: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="Share of the dated sample held out at the end: promotion compares "
        "versions there; neither fitting nor early stopping sees it. 0: no holdout, and "
        "the version is never promoted over production automatically.",
    )
    window_stride: int = Field(
        1, ge=1, description="Keep every n-th training window (overlapping targets repeat)."
    )
    seed: int = 7
    volatility_loss: Literal["qlike", "mse_log"] = Field(
        "qlike", description="qlike: QLIKE on the variance; mse_log: MSE on its log."
    )

    @model_validator(mode="after")
    def _leave_room_to_train(self) -> TrainingConfig:
        """Validation and holdout together must leave dates to train on."""
        if self.validation_fraction + self.holdout_fraction >= 1:
            raise ValueError(
                f"validation_fraction ({self.validation_fraction}) + holdout_fraction "
                f"({self.holdout_fraction}) must be below 1 to leave dates to train on"
            )
        return self


class StreamConfig(BaseModel):
    """``quantserve stream``: where new bars come from and how late ones are treated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    landing_dir: Path | None = Field(
        None, description="Folder watched for bar files; None is <data_dir>/landing."
    )
    checkpoint_dir: Path | None = Field(
        None, description="The stream's checkpoint; None is <data_dir>/stream-checkpoint."
    )
    kafka_bootstrap_servers: str | None = Field(
        None, description="host:port[,host:port]: read JSON bars from Kafka, not the folder."
    )
    kafka_topic: str = Field("quantserve.bars", min_length=1)
    trigger_seconds: float = Field(
        1.0, gt=0, le=3600, description="How often the stream looks for new bars."
    )
    max_late_days: int = Field(
        7,
        ge=0,
        description="A bar dated more than this many calendar days before its ticker's "
        "latest stored bar is quarantined as late; a later one is stored and the features "
        "from its date on are recomputed.",
    )


class RetrainConfig(BaseModel):
    """``quantserve retrain --if-due``: when the data has moved on enough to retrain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_days: int = Field(
        21,
        ge=1,
        description="Retrain once the features hold this many trading days past the end of "
        "the serving model's training data.",
    )
    drift_psi: float = Field(
        0.25,
        gt=0,
        description="...or once any feature's PSI on the newly arrived rows exceeds this.",
    )
    min_drift_rows: int = Field(
        100, ge=1, description="New rows needed before drift can trigger a retrain."
    )
