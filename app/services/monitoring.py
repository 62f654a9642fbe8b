"""What the server reports about its model and data: identity, freshness, drift, pipeline.

Everything here is read or computed once per serving state, when the server loads a
model or features (at start, and at each hot reload: ``app.services.lifecycle``), from
the files the pipeline and the stream wrote: the model's ``metadata.json`` and
``drift_reference.json``, ``data/raw/manifest.json`` and ``data/features/_manifest.json``.
:func:`publish` sets the gauges when the state starts to serve.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import pandas as pd

from app.core.metrics import ServiceMetrics
from app.services.feature_store import FeatureStore
from app.services.model_registry import LoadedModel
from training import schema
from training.drift import (
    MIN_LIVE_VALUES,
    MIN_NEW_DAYS,
    feature_drift,
    latest_rows,
    read_drift_reference,
    rows_after,
)
from training.errors import PipelineError
from training.registry import ModelRegistry
from training.retrain_policy import training_data_end

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
class FeatureTableFacts:
    """What the served feature table's ``_manifest.json`` says about its freshness."""

    as_of: date
    """The data's as-of date: the table's latest date (``end_date``)."""
    last_bar_arrived_at: datetime
    """When its newest bar arrived (UTC): ``last_bar_arrived_at``, which the stream writes,
    or ``created_at`` for a table the batch pipeline wrote."""
    version: int | None = None
    """The table's version (one more per published table); None when it records none."""


@dataclass(frozen=True)
class DriftMeasure:
    """The PSI of each feature and the rows it was computed on."""

    psi: dict[str, float] = field(default_factory=dict)
    rows: int = 0
    """Feature rows (dates x tickers) compared with the training reference."""
    new_rows: int = 0
    """Those dated after the model's training data: ``rows`` when the PSI is on the newly
    arrived data, 0 when it is on the latest window."""


@dataclass(frozen=True)
class MonitoringFacts:
    """What the metrics report about the loaded model and the data behind it."""

    model: LoadedModel | None = None
    stage: str | None = None
    """The serving version's registry stage (``candidate`` when it serves unpromoted)."""
    data_cutoff: date | None = None
    """Latest date of the features the model forecasts from."""
    drift: Mapping[str, float] = field(default_factory=dict)
    """Population stability index of each feature's live rows against training."""
    pipeline: tuple[PipelineRun, ...] = ()
    features: FeatureTableFacts | None = None
    """The served feature table's as-of date, newest bar's arrival and version."""
    drift_rows: int = 0
    """Feature rows the PSI was computed on."""
    drift_new_rows: int = 0
    """How many of them are dated after the model's training data (see ``DriftMeasure``)."""


def monitoring_facts(
    data_dir: Path, model: LoadedModel | None, store: FeatureStore | None
) -> MonitoringFacts:
    """Gather the facts; a missing or unreadable manifest or reference is left out."""
    drift = (
        serving_drift(model, store) if model is not None and store is not None else DriftMeasure()
    )
    return MonitoringFacts(
        model=model,
        stage=serving_stage(model) if model is not None else None,
        data_cutoff=store.as_of if store is not None else None,
        drift=drift.psi,
        pipeline=pipeline_runs(data_dir, model),
        features=served_features(store) if store is not None else None,
        drift_rows=drift.rows,
        drift_new_rows=drift.new_rows,
    )


def serving_stage(model: LoadedModel) -> str:
    """The registry's stage of the serving version, ``unknown`` if the registry is unreadable."""
    try:
        return str(ModelRegistry(model.path.parent).stage(model.version))
    except (PipelineError, OSError, ValueError, KeyError) as exc:
        logger.warning("the stage of %s is unknown: %s", model.path, exc)
        return "unknown"


def serving_drift(model: LoadedModel, store: FeatureStore) -> DriftMeasure:
    """PSI of each feature's live rows in ``store`` against the model's training split.

    The live rows are those of :func:`drift_rows`: the newly arrived ones once there are
    enough, else the latest window.
    """
    try:
        reference = read_drift_reference(model.path)
    except (PipelineError, OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("drift not computed: unreadable reference in %s: %s", model.path, exc)
        return DriftMeasure()
    if reference is None:
        logger.warning("drift not computed: model version %s has no drift reference", model.path)
        return DriftMeasure()
    rows, new = drift_rows(model, store.table)
    return DriftMeasure(feature_drift(reference, rows), len(rows), len(rows) if new else 0)


def drift_rows(model: LoadedModel, table: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """The rows whose drift is reported, and whether they are the newly arrived ones.

    The newly arrived rows are those dated after the model's training data (the last day
    its ``metadata.json`` records, ``training.retrain_policy.training_data_end``): the
    data the model never saw, which a retrain would add. They are used once they span
    ``training.drift.MIN_NEW_DAYS`` trading days and hold ``MIN_LIVE_VALUES`` rows;
    until then (and for metadata without that day) the latest ``LIVE_WINDOW_DAYS``.
    """
    try:
        trained_through = training_data_end(model.metadata)
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        logger.warning("the training data's last day of %s is unreadable: %s", model.path, exc)
        trained_through = None
    if trained_through is not None:
        new = rows_after(table, trained_through)
        if new[schema.DATE].nunique() >= MIN_NEW_DAYS and len(new) >= MIN_LIVE_VALUES:
            return new, True
    return latest_rows(table), False


def served_features(store: FeatureStore) -> FeatureTableFacts | None:
    """The freshness facts of the table in ``store``, from the manifest beside its files.

    None when the manifest is missing or unusable, or describes another table than the
    one loaded: the stream published a newer one between the load and this read, and
    the next check loads that one.
    """
    manifest = _read_json(store.path / FEATURES_MANIFEST.name)
    if manifest is None:
        return None
    try:
        as_of = date.fromisoformat(str(manifest["end_date"]))
        arrived = manifest.get("last_bar_arrived_at") or manifest["created_at"]
        last_bar_arrived_at = _utc(datetime.fromisoformat(str(arrived)))
        version = manifest.get("version")
        rows = manifest.get("rows")
    except (KeyError, TypeError, ValueError) as exc:
        logger.warning("the features manifest in %s lacks a usable %s", store.path, exc)
        return None
    if as_of != store.as_of or (isinstance(rows, int) and rows != len(store.table)):
        logger.info(
            "the features manifest in %s describes a newer table than the one loaded; "
            "its freshness is reported once that table loads",
            store.path,
        )
        return None
    return FeatureTableFacts(
        as_of=as_of,
        last_bar_arrived_at=last_bar_arrived_at,
        version=version if isinstance(version, int) and not isinstance(version, bool) else None,
    )


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
    """Set the gauges that describe the loaded model, its data and the pipeline.

    Called as the state starts to serve, so the time of the call is when this process
    started serving the features: the end of their bar's serving lag.
    """
    metrics.model_ready.set(1 if facts.model is not None else 0)
    if facts.model is not None:
        stage = facts.stage or "unknown"
        metrics.model_info.labels(facts.model.name, str(facts.model.version), stage).set(1)
    if facts.model is not None and facts.data_cutoff is not None:
        midnight = datetime.combine(facts.data_cutoff, time(0, 0), tzinfo=UTC)
        metrics.model_data_cutoff.labels(facts.model.name).set(midnight.timestamp())
    if facts.model is not None and facts.features is not None:
        _publish_freshness(metrics, facts.model.name, facts.features)
    for feature, psi in facts.drift.items():
        metrics.feature_drift.labels(feature).set(psi)
    if facts.model is not None:
        metrics.feature_drift_rows.set(facts.drift_rows)
        metrics.feature_drift_new_rows.set(facts.drift_new_rows)
    for run in facts.pipeline:
        metrics.pipeline_last_run.labels(run.step).set(run.finished_at.timestamp())
        metrics.pipeline_rows.labels(run.step).set(run.rows)
        if run.quarantined_rows is not None:
            metrics.pipeline_quarantined_rows.labels(run.step).set(run.quarantined_rows)


def _publish_freshness(metrics: ServiceMetrics, model: str, table: FeatureTableFacts) -> None:
    arrived_at = table.last_bar_arrived_at.timestamp()
    lag = metrics.features.served(model, arrived_at, served_at=datetime.now(UTC).timestamp())
    if lag is not None:
        logger.info(
            "serving features version %s as of %s, %.1f s after their newest bar arrived",
            table.version,
            table.as_of,
            lag,
            extra={"features_version": table.version, "serving_lag_seconds": round(lag, 3)},
        )


def _utc(moment: datetime) -> datetime:
    """``moment`` with UTC as its zone when it has none (the manifests write UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


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
    return PipelineRun(step, _utc(finished_at), rows, quarantined)


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        logger.warning("%s is unreadable: %s", path, exc)
        return None
    return loaded if isinstance(loaded, dict) else None
