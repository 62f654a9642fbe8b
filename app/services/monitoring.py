"""What the server reports about its model and data: identity, data cutoff, drift, pipeline.

Everything here is read or computed once, when the server loads its model, from the
files the pipeline wrote: the model's ``metadata.json`` and ``drift_reference.json``,
``data/raw/manifest.json`` and ``data/features/_manifest.json``. A pipeline run that
finishes later is seen when the server next loads (a restart).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from app.core.metrics import ServiceMetrics
from app.services.feature_store import FeatureStore
from app.services.model_registry import LoadedModel
from training.drift import feature_drift, latest_rows, read_drift_reference
from training.errors import PipelineError
from training.registry import ModelRegistry

logger = logging.getLogger(__name__)

INGEST_MANIFEST = Path("raw") / "manifest.json"
FEATURES_MANIFEST = Path("features") / "_manifest.json"


@dataclass(frozen=True)
class PipelineRun:
    """The last run of one pipeline step, as its manifest records it."""

    step: str
    """``ingest``, ``features`` or ``train``."""
    finished_at: datetime
    rows: int
    """Valid price rows (ingest), feature rows (features), training samples (train)."""
    quarantined_rows: int | None = None
    """Rows the step rejected (ingest only)."""


@dataclass(frozen=True)
class MonitoringFacts:
    """What the metrics report about the loaded model and the data behind it."""

    model: LoadedModel | None = None
    stage: str | None = None
    """The serving version's registry stage (``candidate`` when it serves unpromoted)."""
    data_cutoff: date | None = None
    """Latest date of the features the model forecasts from."""
    drift: Mapping[str, float] = field(default_factory=dict)
    """Population stability index of each feature's latest rows against training."""
    pipeline: tuple[PipelineRun, ...] = ()


def monitoring_facts(
    data_dir: Path, model: LoadedModel | None, store: FeatureStore | None
) -> MonitoringFacts:
    """Gather the facts; a missing or unreadable manifest or reference is left out."""
    return MonitoringFacts(
        model=model,
        stage=serving_stage(model) if model is not None else None,
        data_cutoff=store.as_of if store is not None else None,
        drift=serving_drift(model, store) if model is not None and store is not None else {},
        pipeline=pipeline_runs(data_dir, model),
    )


def serving_stage(model: LoadedModel) -> str:
    """The registry's stage of the serving version, ``unknown`` if the registry is unreadable."""
    try:
        return str(ModelRegistry(model.path.parent).stage(model.version))
    except (PipelineError, OSError, ValueError, KeyError) as exc:
        logger.warning("the stage of %s is unknown: %s", model.path, exc)
        return "unknown"


def serving_drift(model: LoadedModel, store: FeatureStore) -> dict[str, float]:
    """PSI of each feature's latest rows in ``store`` against the model's training split."""
    try:
        reference = read_drift_reference(model.path)
    except (PipelineError, OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("drift not computed: unreadable reference in %s: %s", model.path, exc)
        return {}
    if reference is None:
        logger.warning("drift not computed: model version %s has no drift reference", model.path)
        return {}
    return feature_drift(reference, latest_rows(store.table))


def pipeline_runs(data_dir: Path, model: LoadedModel | None) -> tuple[PipelineRun, ...]:
    """The last ingest, features and training runs that the manifests record."""
    runs = []
    ingest = _read_json(data_dir / INGEST_MANIFEST)
    if ingest is not None:
        runs.append(_run("ingest", ingest, "rows", quarantined_key="quarantined_rows"))
    features = _read_json(data_dir / FEATURES_MANIFEST)
    if features is not None:
        runs.append(_run("features", features, "rows"))
    if model is not None:
        train = {**model.metadata, "rows": model.metadata.get("samples", {}).get("train")}
        runs.append(_run("train", train, "rows"))
    return tuple(run for run in runs if run is not None)


def publish(metrics: ServiceMetrics, facts: MonitoringFacts) -> None:
    """Set the gauges that describe the loaded model, its data and the pipeline."""
    metrics.model_ready.set(1 if facts.model is not None else 0)
    if facts.model is not None:
        stage = facts.stage or "unknown"
        metrics.model_info.labels(facts.model.name, str(facts.model.version), stage).set(1)
    if facts.model is not None and facts.data_cutoff is not None:
        midnight = datetime.combine(facts.data_cutoff, time(0, 0), tzinfo=UTC)
        metrics.model_data_cutoff.labels(facts.model.name).set(midnight.timestamp())
    for feature, psi in facts.drift.items():
        metrics.feature_drift.labels(feature).set(psi)
    for run in facts.pipeline:
        metrics.pipeline_last_run.labels(run.step).set(run.finished_at.timestamp())
        metrics.pipeline_rows.labels(run.step).set(run.rows)
        if run.quarantined_rows is not None:
            metrics.pipeline_quarantined_rows.labels(run.step).set(run.quarantined_rows)


def _run(
    step: str, manifest: Mapping[str, Any], rows_key: str, quarantined_key: str | None = None
) -> PipelineRun | None:
    try:
        finished_at = datetime.fromisoformat(str(manifest["created_at"]))
        rows = int(manifest[rows_key])
        quarantined = int(manifest[quarantined_key]) if quarantined_key else None
    except (KeyError, TypeError, ValueError) as exc:
        logger.warning("the %s manifest lacks a usable %s: not reported", step, exc)
        return None
    if finished_at.tzinfo is None:
        finished_at = finished_at.replace(tzinfo=UTC)
    return PipelineRun(step, finished_at, rows, quarantined)


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        logger.warning("%s is unreadable: %s", path, exc)
        return None
    return loaded if isinstance(loaded, dict) else None
