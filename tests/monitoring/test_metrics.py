"""The service's metrics: Prometheus naming, low-cardinality labels, several worker processes.

The multiprocess test runs real worker-like processes that write to one
``PROMETHEUS_MULTIPROC_DIR``, then reads the folder as ``/metrics`` does under gunicorn.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.parser import text_string_to_metric_families

from app.core.config import Settings
from app.main import create_app
from tests.training.synthetic import synthetic_features, write_feature_table

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN_LABELS = {"ticker", "tickers", "request_id", "key", "api_key", "path", "client", "user"}


def _families(text: str) -> dict[str, tuple[str, list[tuple[str, dict[str, str], float]]]]:
    return {
        family.name: (
            family.type,
            [(sample.name, sample.labels, sample.value) for sample in family.samples],
        )
        for family in text_string_to_metric_families(text)
    }


COUNT_HISTOGRAMS = {"quantserve_predict_batch_instances", "quantserve_predict_batch_requests"}
"""Histograms of counts: the batch sizes of micro-batched predicts."""


def test_names_follow_prometheus_conventions(tmp_path: Path) -> None:
    settings = Settings(
        environment="test", data_dir=tmp_path / "data", models_dir=tmp_path / "models"
    )
    with TestClient(create_app(settings, registry=CollectorRegistry())) as client:
        client.get("/healthz")
        text = client.get("/metrics").text
    families = _families(text)
    assert len(families) >= 15
    for name, (kind, samples) in families.items():
        assert name.startswith("quantserve_"), name
        if kind == "counter":
            assert all(s[0].endswith(("_total", "_created")) for s in samples), name
        if kind == "histogram":
            # A base unit, or a count of things (Prometheus: unitless values take no suffix).
            assert name.endswith(("_seconds", "_bytes")) or name in COUNT_HISTOGRAMS, name
        if "timestamp" in name:
            assert name.endswith("_timestamp_seconds"), name
        for _, labels, _ in samples:
            assert not set(labels) & FORBIDDEN_LABELS, (name, labels)
    # Declared before the first load: every failure reason reads 0, not absent.
    (_, failures) = families["quantserve_model_load_failures"]
    assert {s[1]["reason"]: s[2] for s in failures if s[0].endswith("_total")} == {
        "missing": 1.0,  # this server has no model
        "features": 0.0,
        "invalid": 0.0,
        "error": 0.0,
    }


def test_a_model_that_fails_to_load_is_counted_and_not_ready(tmp_path: Path) -> None:
    version = tmp_path / "models" / "forecaster" / "1"
    version.mkdir(parents=True)
    (version / "metadata.json").write_text("{}")
    (version / "saved_model.pb").write_bytes(b"not a SavedModel")
    # Readable features: the feature table is read first, so the failure is the model's.
    write_feature_table(synthetic_features(n_days=40), tmp_path / "data" / "features")
    settings = Settings(
        environment="test", data_dir=tmp_path / "data", models_dir=tmp_path / "models"
    )
    with TestClient(create_app(settings, registry=CollectorRegistry())) as client:
        ready = client.get("/readyz")
        text = client.get("/metrics").text
    assert ready.status_code == 503
    assert "failed to load" in ready.json()["reason"]
    assert str(tmp_path) not in ready.json()["reason"]  # no paths to unauthenticated callers
    assert 'quantserve_model_load_failures_total{reason="error"} 1.0' in text
    assert 'quantserve_model_load_failures_total{reason="missing"} 0.0' in text
    assert "quantserve_model_ready 0.0" in text
    assert "quantserve_model_info{" not in text


WORKER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, date, datetime
    from pathlib import Path

    from prometheus_client import CollectorRegistry

    from app.core.metrics import ServiceMetrics
    from app.services.model_registry import LoadedModel
    from app.services.monitoring import MonitoringFacts, PipelineRun, publish

    ready, psi = sys.argv[1] == "ready", float(sys.argv[2])
    arrived_at, lag = float(sys.argv[3]), float(sys.argv[4])
    model = LoadedModel(
        name="forecaster", version=3, path=Path("/nowhere"), metadata={}, saved_model=None
    )
    metrics = ServiceMetrics(CollectorRegistry())
    publish(
        metrics,
        MonitoringFacts(
            model=model if ready else None,
            stage="production",
            data_cutoff=date(2022, 12, 28),
            drift={"rsi_14d": psi},
            pipeline=(PipelineRun("ingest", datetime(2026, 1, 2, tzinfo=UTC), 1000, 5),),
        ),
    )
    metrics.model_inference_seconds.labels("forecaster", "3").observe(0.002)
    # A bar that arrived after the worker started, served `lag` seconds later.
    metrics.features.started_at = 0.0
    metrics.features.served("forecaster", arrived_at, served_at=arrived_at + lag)
    metrics.optimizer_solve_seconds.labels("min_variance", "optimal").observe(0.01)
    """
)


def test_several_workers_combine_into_one_consistent_exposition(tmp_path: Path) -> None:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    pids = []
    # The second worker still serves an older bar (60 s older), which took it longer.
    workers = (("ready", "0.1", "1767650060", "4.0"), ("not-ready", "0.4", "1767650000", "30.0"))
    for args in workers:  # in this order
        worker = subprocess.run(
            [sys.executable, "-c", f"{WORKER}\nprint(__import__('os').getpid())", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        pids.append(int(worker.stdout.strip()))

    def exposition() -> str:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(tmp_path))
        return generate_latest(registry).decode()

    text = exposition()
    # Counters and histograms add up over the workers.
    assert 'quantserve_model_inference_seconds_count{model="forecaster",version="3"} 2.0' in text
    assert (
        'quantserve_optimizer_solves_total{objective="min_variance",status="optimal"} 2.0' in text
    )
    # Gauges: one series each, however many workers set it.
    assert text.count("quantserve_model_info{") == 1
    assert 'quantserve_model_info{name="forecaster",stage="production",version="3"} 1.0' in text
    assert "quantserve_model_ready 0.0" in text  # the lowest: not every worker is ready
    assert 'quantserve_feature_drift_psi{feature="rsi_14d"} 0.4' in text  # the latest set
    assert text.count("quantserve_feature_drift_psi{") == 1
    assert 'quantserve_pipeline_quarantined_rows{step="ingest"} 5.0' in text
    assert text.count("quantserve_model_data_cutoff_timestamp_seconds{") == 1
    # Freshness: the stalest worker's arrival, the slowest worker's lag, every observation.
    arrival = "quantserve_features_last_bar_arrival_timestamp_seconds"
    assert f'{arrival}{{model="forecaster"}} 1.76765e+09' in text
    assert 'quantserve_features_last_serving_lag_seconds{model="forecaster"} 30.0' in text
    assert 'quantserve_features_serving_lag_seconds_count{model="forecaster"} 2.0' in text
    assert 'quantserve_features_serving_lag_seconds_sum{model="forecaster"} 34.0' in text
    assert 'quantserve_features_serving_lag_seconds_bucket{le="5.0",model="forecaster"} 1.0' in text

    # gunicorn's child_exit hook: a worker that exited no longer counts in live gauges.
    mark_process_dead(pids[1], str(tmp_path))
    text = exposition()
    assert "quantserve_model_ready 1.0" in text
    assert 'quantserve_feature_drift_psi{feature="rsi_14d"} 0.1' in text
    assert 'quantserve_model_inference_seconds_count{model="forecaster",version="3"} 2.0' in text
    assert f'{arrival}{{model="forecaster"}} 1.76765006e+09' in text
    assert 'quantserve_features_last_serving_lag_seconds{model="forecaster"} 4.0' in text
    assert 'quantserve_features_serving_lag_seconds_count{model="forecaster"} 2.0' in text


def test_without_multiprocess_dir_each_app_counts_on_its_own_registry(tmp_path: Path) -> None:
    # Two apps in one process each count their own requests on their own registry.
    settings = Settings(
        environment="test", data_dir=tmp_path / "data", models_dir=tmp_path / "models"
    )
    first, second = CollectorRegistry(), CollectorRegistry()
    with (
        TestClient(create_app(settings, registry=first)) as a,
        TestClient(create_app(settings, registry=second)) as b,
    ):
        for _ in range(3):
            a.get("/healthz")
        b.get("/healthz")
        count = 'quantserve_http_requests_total{handler="/healthz",method="GET",status="200"}'
        assert f"{count} 3.0" in a.get("/metrics").text
        assert f"{count} 1.0" in b.get("/metrics").text
