"""Data freshness at ``/metrics``: the as-of date, the newest bar's arrival, the serving lag.

A real server on a tiny real model serves feature tables published the way the stream
publishes them (a whole folder swapped in by one rename, with a ``_manifest.json`` that
records the table's version and when its newest bar arrived); a hot reload picks each
one up, and the gauges and the lag histogram are read back from ``/metrics``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from app.core.config import LifecycleSettings, Settings
from app.main import create_app
from app.services.feature_store import FeatureStore
from app.services.lifecycle import ModelLifecycle, ReloadOutcome
from app.services.monitoring import FEATURES_MANIFEST, served_features
from tests.model_store import fresh_root, publish_version, tiny_store
from tests.training.synthetic import synthetic_features, write_feature_table
from training import schema
from training.drift import feature_drift, latest_rows, read_drift_reference, rows_after

ARRIVAL = "quantserve_features_last_bar_arrival_timestamp_seconds"
LAG = "quantserve_features_serving_lag_seconds"
LAST_LAG = "quantserve_features_last_serving_lag_seconds"
CUTOFF = "quantserve_model_data_cutoff_timestamp_seconds"


def _publish_table(
    root: Path, n_days: int, version: int, created_at: datetime, arrived_at: datetime | None
) -> pd.DataFrame:
    """Swap in a feature table of ``n_days`` and its manifest, as the stream publishes."""
    features = synthetic_features(n_days=n_days)
    staging = root / "data" / "features.new"
    write_feature_table(features, staging)
    manifest: dict[str, Any] = {
        "rows": len(features),
        "tickers": sorted(features[schema.TICKER].unique()),
        "start_date": features[schema.DATE].min().date().isoformat(),
        "end_date": features[schema.DATE].max().date().isoformat(),
        "created_at": created_at.isoformat(),
        "version": version,
    }
    if arrived_at is not None:
        manifest["last_bar_arrived_at"] = arrived_at.isoformat()
    (staging / FEATURES_MANIFEST.name).write_text(json.dumps(manifest))
    live = root / "data" / "features"
    if live.exists():
        shutil.rmtree(live)
    os.rename(staging, live)
    return features


@pytest.fixture
def root(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    """Version 1 serving, version 2 staged, and features version 1 whose bar came 2 h ago."""
    root = fresh_root(tiny_store(tmp_path_factory), tmp_path)
    now = datetime.now(UTC)
    _publish_table(root, 300, 1, now - timedelta(hours=1), now - timedelta(hours=2))
    return root


@pytest.fixture
def client(root: Path) -> Iterator[TestClient]:
    settings = Settings(
        environment="test",
        data_dir=root / "data",
        models_dir=root / "models",
        lifecycle=LifecycleSettings(poll_interval_seconds=0),
    )
    with TestClient(create_app(settings, registry=CollectorRegistry())) as client:
        yield client


def _samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): float(s.value)
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for s in family.samples
    }


def _value(client: TestClient, name: str, **labels: str) -> float | None:
    return _samples(client).get((name, tuple(sorted({"model": "forecaster", **labels}.items()))))


def _midnight(features: pd.DataFrame) -> float:
    last = features[schema.DATE].max().date()
    return datetime(last.year, last.month, last.day, tzinfo=UTC).timestamp()


def _lifecycle(client: TestClient) -> ModelLifecycle:
    lifecycle: ModelLifecycle = client.app.state.lifecycle  # type: ignore[attr-defined]
    return lifecycle


def test_each_new_arrival_is_observed_once_and_other_reloads_observe_nothing(
    client: TestClient, root: Path
) -> None:
    lifecycle = _lifecycle(client)
    manifest = json.loads((root / "data" / "features" / FEATURES_MANIFEST.name).read_text())
    first_arrival = datetime.fromisoformat(manifest["last_bar_arrived_at"]).timestamp()

    # At start: the as-of date and the arrival; no lag, as the bar came before the server.
    assert _value(client, ARRIVAL) == first_arrival
    assert _value(client, CUTOFF) == _midnight(synthetic_features(n_days=300))
    assert _value(client, f"{LAG}_count") == 0  # declared, so a first slow one is an increase
    assert _value(client, LAST_LAG) is None

    # The stream publishes version 2 with the next day's bar; the poll comes a second later.
    arrived = datetime.now(UTC)
    second = _publish_table(root, 301, 2, arrived, arrived)
    time.sleep(1.0)
    assert lifecycle.check().outcome is ReloadOutcome.SWAPPED
    lag = _value(client, LAST_LAG)
    assert lag is not None
    assert 1 <= lag < 1 + 60
    assert _value(client, f"{LAG}_count") == 1
    assert _value(client, f"{LAG}_sum") == lag
    assert _value(client, f"{LAG}_bucket", le="0.5") == 0
    assert _value(client, f"{LAG}_bucket", le="600.0") == 1
    assert _value(client, ARRIVAL) == pytest.approx(arrived.timestamp())
    assert _value(client, CUTOFF) == _midnight(second)

    # Reloads without a new table: a forced one, then a new model version.
    lifecycle.reload()
    publish_version(root, root / "staged" / "2", 2)
    assert lifecycle.check().outcome is ReloadOutcome.SWAPPED
    assert lifecycle.current.model is not None
    assert lifecycle.current.model.version == 2
    assert _value(client, f"{LAG}_count") == 1
    assert _value(client, f"{LAG}_sum") == lag
    assert _value(client, LAST_LAG) == lag

    # Version 3, written by the batch pipeline: no last_bar_arrived_at, so created_at.
    created = datetime.now(UTC)
    _publish_table(root, 302, 3, created, None)
    time.sleep(0.5)
    assert lifecycle.check().outcome is ReloadOutcome.SWAPPED
    assert _value(client, f"{LAG}_count") == 2
    assert _value(client, ARRIVAL) == pytest.approx(created.timestamp())
    third_lag = _value(client, LAST_LAG)
    assert third_lag is not None
    assert 0.5 <= third_lag < 0.5 + 60
    assert _value(client, f"{LAG}_sum") == pytest.approx(lag + third_lag)


@pytest.mark.parametrize(("days_after", "on_new_rows"), [(20, True), (19, False)])
def test_the_drift_gauges_say_which_rows_the_psi_compared(
    root: Path, days_after: int, on_new_rows: bool
) -> None:
    # Version 1's data ends `days_after` trading days before the table does.
    table = synthetic_features(n_days=300)
    dates = sorted(table[schema.DATE].unique())
    trained_through = pd.Timestamp(dates[-days_after - 1]).date()
    metadata_file = root / "models" / "forecaster" / "1" / "metadata.json"
    metadata = json.loads(metadata_file.read_text())
    metadata["data"]["data_date_range"] = [str(dates[0])[:10], trained_through.isoformat()]
    metadata_file.write_text(json.dumps(metadata))
    reference = read_drift_reference(metadata_file.parent)
    assert reference is not None

    settings = Settings(environment="test", data_dir=root / "data", models_dir=root / "models")
    with TestClient(create_app(settings, registry=CollectorRegistry())) as client:
        samples = _samples(client)

    new = rows_after(table, trained_through)
    assert new[schema.DATE].nunique() == days_after
    compared = new if on_new_rows else latest_rows(table)
    assert samples[("quantserve_feature_drift_rows", ())] == len(compared)
    assert samples[("quantserve_feature_drift_new_rows", ())] == (len(new) if on_new_rows else 0)
    psi = {
        labels[0][1]: value
        for (name, labels), value in samples.items()
        if name == "quantserve_feature_drift_psi"
    }
    assert psi == pytest.approx(feature_drift(reference, compared))


def test_a_manifest_of_another_table_is_not_reported(tmp_path: Path) -> None:
    features = synthetic_features(n_days=40)
    write_feature_table(features, tmp_path / "features")
    store = FeatureStore.load(tmp_path / "features")
    manifest = {
        "rows": len(features),
        "end_date": features[schema.DATE].max().date().isoformat(),
        "created_at": "2026-01-05T21:30:00+00:00",
        "last_bar_arrived_at": "2026-01-05T21:10:02.5+00:00",
        "version": 7,
    }
    path = tmp_path / "features" / FEATURES_MANIFEST.name
    path.write_text(json.dumps(manifest))
    facts = served_features(store)
    assert facts is not None
    assert facts.version == 7
    assert facts.as_of == features[schema.DATE].max().date()
    assert facts.last_bar_arrived_at == datetime(2026, 1, 5, 21, 10, 2, 500000, tzinfo=UTC)

    # The stream published the next table between the load and the manifest's read.
    path.write_text(json.dumps({**manifest, "rows": len(features) + 3}))
    assert served_features(store) is None
    path.write_text(json.dumps({**manifest, "end_date": "2099-01-01"}))
    assert served_features(store) is None
    # A null arrival (a table without streamed bars) falls back to created_at.
    path.write_text(json.dumps({**manifest, "last_bar_arrived_at": None}))
    facts = served_features(store)
    assert facts is not None
    assert facts.last_bar_arrived_at == datetime(2026, 1, 5, 21, 30, tzinfo=UTC)
