"""The work behind the ``quantserve`` pipeline commands: Spark sessions, training, promotion.

Each step imports its Spark or TensorFlow code when it runs, so that ``quantserve
--help``, ``quantserve keys`` and ``quantserve serve`` start without loading either.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app._cli_output import console, run_step
from app.core.config import Settings

if TYPE_CHECKING:
    import pandas as pd

    from training.evaluation import WalkForwardConfig
    from training.tracking import Tracker


def features_step(settings: Settings) -> dict[str, Any]:
    """Compute the features of ``data/raw/`` with Spark; returns the features manifest."""
    from training.features import run_features_job
    from training.spark import build_spark_session

    data_manifest_path = settings.raw_dir / "manifest.json"
    data_manifest = (
        json.loads(data_manifest_path.read_text()) if data_manifest_path.is_file() else {}
    )
    spark = build_spark_session(
        settings.spark.master,
        settings.spark.app_name,
        driver_memory=settings.spark.driver_memory,
        shuffle_partitions=settings.spark.shuffle_partitions,
    )
    try:
        return run_features_job(
            spark,
            settings.raw_dir / "prices.parquet",
            settings.features_dir,
            benchmark=data_manifest.get("benchmark"),
            input_manifest_sha256=data_manifest.get("prices_sha256"),
        )
    finally:
        spark.stop()


def tracker_for(settings: Settings) -> Tracker:
    """The MLflow tracker of ``settings.tracking`` (``MLFLOW_TRACKING_URI`` wins over its URI)."""
    from training.tracking import Tracker

    return Tracker.from_config(settings.tracking, settings.data_dir, os.environ)


def train_step(settings: Settings) -> Any:
    """Train on the features and export a new model version, tracked in MLflow."""
    from training.features import load_features
    from training.train import load_training_inputs, train_and_export

    data_manifest, features_manifest, quality = load_training_inputs(settings.data_dir)
    return train_and_export(
        load_features(settings.features_dir),
        settings.models_dir,
        settings.model_name,
        settings.training,
        data_manifest=data_manifest,
        features_manifest=features_manifest,
        quality_report=quality,
        tracker=tracker_for(settings),
    )


def promote_step(settings: Settings, version: int) -> None:
    """Register ``version`` and promote it if it beats production; print the decision."""
    from training.features import load_features
    from training.promotion import register_and_maybe_promote

    decision = run_step(
        "promotion",
        lambda: register_and_maybe_promote(
            load_features(settings.features_dir),
            settings.models_dir / settings.model_name,
            version,
        ),
    )
    console.print(decision.describe())


def evaluate_step(
    settings: Settings,
    first_year: int,
    last_year: int | None,
    refit_every: int,
    epochs: int,
    garch: bool,
    in_process: bool,
) -> dict[str, Any]:
    """Walk-forward evaluation of the serving version; writes ``<version>/evaluation/``."""
    from app.services.model_registry import serving_version
    from training.evaluation import WalkForwardConfig, write_evaluation
    from training.model_store import read_metadata

    version = serving_version(settings.models_dir, settings.model_name)
    version_dir = settings.models_dir / settings.model_name / str(version)
    metadata = read_metadata(version_dir)
    config = WalkForwardConfig(
        first_test_year=first_year,
        last_test_year=last_year,
        refit_every_years=refit_every,
        training=settings.training.model_copy(
            update={"epochs": epochs, "lookback_days": metadata["lookback_days"]}
        ),
        garch=garch,
        stale_stretches=tuple(_stale_stretches(settings.raw_dir)),
    )
    evaluation_dir = version_dir / "evaluation"
    with tracker_for(settings).run(
        "evaluate",
        name=f"evaluate {settings.model_name} {version}",
        params={
            "first_test_year": first_year,
            "last_test_year": last_year,
            "refit_every_years": refit_every,
            "purge_days": config.purge_days,
            "garch": garch,
            "challenger": config.challenger,
            "stale_stretches_excluded": len(config.stale_stretches),
            "spark_master": "in-process" if in_process else settings.spark.master,
            "training": config.training.model_dump(),
        },
        tags={"model_name": settings.model_name, "model_version": version, **_data_tags(settings)},
        fallback=str(evaluation_dir / "metrics.json"),
    ) as run:
        predictions, metrics, context = _walk_forward(settings, config, version, in_process)
        write_evaluation(
            evaluation_dir,
            predictions,
            metrics,
            {**context, **run.metadata_fields()},
            training_history=metadata.get("training"),
        )
        run.log_metrics({"walk_forward": metrics})
        # The model card's inputs: the metrics, the report and its plots (not the
        # predictions, which can run to tens of MB).
        run.log_artifacts(evaluation_dir, include=("metrics.json", "report.md", "*.png", "*.svg"))
    console.print(f"wrote {evaluation_dir} in {context['seconds']} s")
    return metrics


def _walk_forward(
    settings: Settings, config: WalkForwardConfig, version: int, in_process: bool
) -> tuple[pd.DataFrame, dict[str, Any], dict[str, Any]]:
    """The walk-forward's predictions, their metrics, and the context its report states."""
    from training.evaluation import compute_metrics, run_walk_forward
    from training.spark import build_spark_session

    started = time.perf_counter()
    spark = (
        None
        if in_process
        else build_spark_session(
            settings.spark.master, "quantserve-evaluate", driver_memory=settings.spark.driver_memory
        )
    )
    try:
        predictions = run_walk_forward(spark, settings.features_dir, config)
    finally:
        if spark is not None:
            spark.stop()
    metrics = compute_metrics(predictions)
    dates = predictions["date"]
    context = {
        "model": settings.model_name,
        "version": version,
        "test_start": str(dates.min().date()),
        "test_end": str(dates.max().date()),
        "refits": int(predictions["refit_train_end"].nunique()),
        "refit_every_years": config.refit_every_years,
        "purge_days": config.purge_days,
        "stale_stretches_excluded": len(config.stale_stretches),
        "tickers": int(predictions["ticker"].nunique()),
        "training": config.training.model_dump(),
        "garch": config.garch,
        "spark_master": "in-process" if in_process else settings.spark.master,
        "seconds": round(time.perf_counter() - started, 1),
    }
    return predictions, metrics, context


def _data_tags(settings: Settings) -> dict[str, Any]:
    """The features' data hash and code version (the features manifest's), for MLflow tags."""
    path = settings.features_dir / "_manifest.json"
    manifest = json.loads(path.read_text()) if path.is_file() else {}
    return {
        "prices_sha256": manifest.get("input_sha256"),
        "feature_code_version": manifest.get("feature_code_version"),
    }


def _stale_stretches(raw_dir: Path) -> list[dict[str, Any]]:
    """Ingest's stale-price stretches, as training leaves them out (none without a report)."""
    path = raw_dir / "quality.json"
    if not path.is_file():
        return []
    stretches: list[dict[str, Any]] = json.loads(path.read_text()).get("stale_stretches", [])
    return stretches


def challenger_step(settings: Settings) -> tuple[int, Path]:
    """Train the Spark ML GBT challenger; returns its version and folder."""
    from training.challenger import GBT_PARAMS, train_and_save_challenger
    from training.spark import build_spark_session

    manifest_path = settings.features_dir / "_manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    with tracker_for(settings).run(
        "challenger",
        name="challenger spark",
        params=GBT_PARAMS,
        tags={"model_name": "spark", **_data_tags(settings)},
        fallback=f"{settings.models_dir / 'spark'}/<the new version>/metadata.json",
    ) as run:
        spark = build_spark_session(
            settings.spark.master,
            "quantserve-challenger",
            driver_memory=settings.spark.driver_memory,
        )
        try:
            version, path = train_and_save_challenger(
                spark,
                settings.features_dir,
                settings.models_dir,
                {key: manifest.get(key) for key in ("input_sha256", "feature_code_version")},
                tracking=run.metadata_fields(),
            )
        finally:
            spark.stop()
        run.fallback = str(path / "metadata.json")
        run.set_tags({"model_version": version})
        run.log_artifacts(path / "metadata.json")
    return version, path
