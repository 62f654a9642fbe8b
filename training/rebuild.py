"""Rebuilding a model version from the same data, code and seeds.

A version's ``metadata.json`` names the prices' SHA-256, the feature code version and
the full training configuration, seed included. ``quantserve rebuild VERSION`` checks
that the current data and features are the ones the version was trained on, trains
again with the same configuration, and exports the result as a new version whose
validation metrics can be compared with the original's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from training.config import TrainingConfig
from training.errors import DataError
from training.model_store import read_metadata
from training.tracking import Tracker
from training.train import TrainResult, train_and_export


def training_config_of(metadata: dict[str, Any]) -> TrainingConfig:
    """The training configuration recorded in a version's metadata.

    Versions trained before the holdout existed recorded no ``holdout_fraction``: they
    trained on every date up to validation, so they rebuild with none (not today's
    default), or the rebuild would not reproduce them.
    """
    recorded = {"holdout_fraction": 0.0, **metadata.get("training", {})}
    return TrainingConfig(
        **{key: recorded[key] for key in TrainingConfig.model_fields if key in recorded}
    )


def rebuild_version(
    features: pd.DataFrame,
    models_dir: Path,
    model_name: str,
    version: int,
    *,
    data_manifest: dict[str, Any],
    features_manifest: dict[str, Any],
    quality_report: dict[str, Any] | None,
    tracker: Tracker | None = None,
) -> TrainResult:
    """Train ``version`` again on the same inputs; raise DataError if the inputs differ.

    ``tracker`` records the new training as an MLflow run, as ``train_and_export`` does.
    """
    metadata = read_metadata(models_dir / model_name / str(version))
    recorded = metadata.get("data", {})
    checks = [
        (
            "prices SHA-256",
            recorded.get("prices_sha256"),
            data_manifest.get("prices_sha256"),
            "run `quantserve ingest` on the source that version was trained on",
        ),
        (
            "feature code version",
            recorded.get("feature_code_version"),
            features_manifest.get("feature_code_version"),
            "check out the code of that version and run `quantserve features`",
        ),
    ]
    for label, then, now, fix in checks:
        if then != now:
            raise DataError(
                f"version {version} was trained with {label} {then}, the current data has "
                f"{now}; {fix}, then rebuild"
            )
    return train_and_export(
        features,
        models_dir,
        model_name,
        training_config_of(metadata),
        data_manifest=data_manifest,
        features_manifest=features_manifest,
        quality_report=quality_report,
        tracker=tracker,
    )
