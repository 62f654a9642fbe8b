"""The Grafana dashboard and its provisioning: they parse, and every query reads real metrics.

The queries are also run on a real Prometheus in ``test_prometheus_scrape.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "config" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "quantserve.json"
METRIC_NAME = re.compile(r"\b(?:quantserve_[a-z0-9_]+|up)\b(?=\s*[{\[)])")


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_the_dashboard_is_well_formed(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "quantserve"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] < grid["x"] + grid["w"] <= 24, panel["title"]
    for panel in _panels(dashboard):
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "prometheus"}
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]


def test_the_dashboard_covers_the_operations_topics(dashboard: dict[str, Any]) -> None:
    rows = {p["title"] for p in dashboard["panels"] if p["type"] == "row"}
    assert rows == {"Traffic and errors", "Latency", "Model", "Optimizer", "Pipeline"}
    exprs = " ".join(t["expr"] for p in _panels(dashboard) for t in p["targets"])
    for needed in (
        "quantserve_http_requests_total",  # traffic, errors
        "quantserve_http_request_duration_seconds_bucket",  # latency
        "quantserve_model_info",  # model versions
        "quantserve_model_data_cutoff_timestamp_seconds",  # data staleness
        "quantserve_feature_drift_psi",  # drift
        "quantserve_optimizer_solves_total",  # optimizer outcomes
        "quantserve_pipeline_quarantined_rows",
        "quantserve_audit_write_failures_total",  # the audit trail cannot be written
    ):
        assert needed in exprs, needed


def test_every_query_reads_metrics_the_server_exposes(
    dashboard: dict[str, Any], exposed_sample_names: set[str]
) -> None:
    used = {
        name
        for panel in _panels(dashboard)
        for target in panel["targets"]
        for name in METRIC_NAME.findall(target["expr"])
    }
    assert len(used) >= 10
    assert used - {"up"} <= exposed_sample_names, used - {"up"} - exposed_sample_names


def test_provisioning_points_grafana_at_prometheus_and_the_dashboards() -> None:
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    (source,) = datasources["datasources"]
    assert (source["type"], source["uid"]) == ("prometheus", "prometheus")
    assert source["url"] == "http://prometheus:9090"  # the Compose service
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "quantserve.yml").read_text()
    )
    (provider,) = providers["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert "./config/grafana/dashboards:/var/lib/grafana/dashboards:ro" in mounts
