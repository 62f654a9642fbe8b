"""The offline pipeline on a small source, as the session fixtures build it.

Ingest, Spark features and a tiny model (10-day lookback, 8 units, 3 epochs) into
``root/data`` and ``root/models``, with the library's own functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def ingest_and_features(spark: SparkSession, data_dir: Path, source: Path) -> dict[str, Any]:
    """Ingest ``source`` (benchmark SP500) into ``data_dir/raw`` and compute its features
    into ``data_dir/features``; returns the ingest manifest."""
    from training.config import IngestConfig
    from training.features import run_features_job
    from training.ingest import run_ingest

    report = run_ingest(data_dir / "raw", IngestConfig(), source=source, benchmark="SP500")
    run_features_job(
        spark,
        data_dir / "raw" / "prices.parquet",
        data_dir / "features",
        benchmark="SP500",
        input_manifest_sha256=report.manifest["prices_sha256"],
    )
    return dict(report.manifest)


def run_tiny_pipeline(spark: SparkSession, root: Path, source: Path) -> dict[str, Any]:
    """Ingest and features into ``root/data``, then train "forecaster" into ``root/models``.

    Returns the ingest manifest.
    """
    from training.config import TrainingConfig
    from training.features import load_features
    from training.train import load_training_inputs, train_and_export

    data_dir = root / "data"
    manifest = ingest_and_features(spark, data_dir, source)
    data_manifest, features_manifest, quality = load_training_inputs(data_dir)
    train_and_export(
        load_features(data_dir / "features"),
        root / "models",
        "forecaster",
        TrainingConfig(lookback_days=10, hidden_units=8, epochs=3),
        data_manifest=data_manifest,
        features_manifest=features_manifest,
        quality_report=quality,
    )
    return manifest
