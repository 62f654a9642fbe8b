"""A real Prometheus scrapes a real quantserve, and its rules evaluate on what it scraped.

quantserve runs as the container runs it: gunicorn with two uvicorn workers and
``PROMETHEUS_MULTIPROC_DIR``, on the model the session's pipeline run built. Debian's
``prometheus`` scrapes it every second with the repository's alert rules loaded. The
checks go through Prometheus's HTTP API: ``up`` is 1, every quantserve series exists
with its labels and the values the server's own data imply, every rule evaluates, the
dashboard's queries run, and the server's log is JSON with the request ids.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import PIPELINE_TICKERS
from tests.monitoring._servers import (
    REPO,
    PrometheusApi,
    free_port,
    gunicorn_command,
    http_get,
    http_post_json,
    prometheus_command,
    running,
    wait_for,
    write_prometheus_config,
)
from training import schema

pytestmark = pytest.mark.slow

WORKERS = 2
FORECAST_REQUESTS = 6
RULES = REPO / "config" / "prometheus" / "rules"
DASHBOARD = REPO / "config" / "grafana" / "dashboards" / "quantserve.json"
TENSORFLOW_NATIVE_LINE = re.compile(r"WARNING: All log messages before absl|[IWEF]\d{4} ")


@dataclass(frozen=True)
class Stack:
    """The running servers."""

    quantserve_url: str
    quantserve_log: Path
    prometheus: PrometheusApi


@pytest.fixture(scope="module")
def stack(
    prometheus_binary: str, pipeline_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """quantserve under gunicorn with some traffic served, and Prometheus scraping it."""
    root = tmp_path_factory.mktemp("prometheus-stack")
    api_port, prometheus_port = free_port(), free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    api_env = {
        "QUANTSERVE_ENVIRONMENT": "test",
        "QUANTSERVE_DATA_DIR": str(pipeline_dir / "data"),
        "QUANTSERVE_MODELS_DIR": str(pipeline_dir / "models"),
        "PROMETHEUS_MULTIPROC_DIR": str(root / "metrics"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": str(REPO),
    }
    config = write_prometheus_config(root / "prometheus.yml", RULES, api_port)
    api_log = root / "quantserve.log"
    with running(gunicorn_command(api_port, WORKERS), api_log, api_env) as api:
        wait_for(
            "quantserve /readyz",
            lambda: True if http_get(f"{api_url}/readyz")[0] == 200 else None,
            timeout=180,
            process=api,
        )
        _serve_traffic(api_url)
        command = prometheus_command(prometheus_binary, config, root / "tsdb", prometheus_port)
        with running(command, root / "prometheus.log", {}) as prometheus:
            api_client = PrometheusApi(f"http://127.0.0.1:{prometheus_port}")
            wait_for(
                "a first scrape of quantserve",
                lambda: api_client.query('up{job="quantserve"}') or None,
                timeout=60,
                process=prometheus,
            )
            yield Stack(api_url, api_log, api_client)


def _serve_traffic(api_url: str) -> None:
    for i in range(FORECAST_REQUESTS):
        status, headers, _ = http_post_json(
            f"{api_url}/v1/forecasts",
            {"tickers": ["AAPL", "XOM"]},
            headers={"X-Request-ID": f"scrape-test-{i}"},
        )
        assert status == 200
        assert headers["x-request-id"] == f"scrape-test-{i}"
    for _ in range(2):
        status, _, body = http_post_json(
            f"{api_url}/v1/portfolios/optimize", {"tickers": PIPELINE_TICKERS}
        )
        assert status == 200, body
    assert http_get(f"{api_url}/v1/nothing")[0] == 404


def _value(sample: dict[str, Any]) -> float:
    return float(sample["value"][1])


def _eventually(stack: Stack, promql: str, timeout: float = 30) -> list[dict[str, Any]]:
    """The result of ``promql`` once it is not empty (scrapes land every second)."""
    deadline = time.monotonic() + timeout
    while True:
        result = stack.prometheus.query(promql)
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def test_prometheus_scrapes_quantserve_and_up_is_1(stack: Stack) -> None:
    # Scrapes time out after the 1 s interval: on a machine shared with other jobs one
    # can miss, so the check is that scrapes succeed, not that none ever failed.
    (up,) = _eventually(stack, 'up{job="quantserve"} == 1')
    assert _value(up) == 1
    deadline = time.monotonic() + 30
    while True:
        targets = stack.prometheus.get("/api/v1/targets")["activeTargets"]
        if [t["health"] for t in targets] == ["up"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert [t["health"] for t in targets] == ["up"]
    assert targets[0]["lastError"] == ""


def test_model_series_carry_the_serving_model_and_its_data(stack: Stack) -> None:
    (info,) = _eventually(stack, "quantserve_model_info")
    assert _value(info) == 1
    labels = info["metric"]
    assert (labels["name"], labels["version"], labels["stage"]) == ("forecaster", "1", "candidate")
    (ready,) = stack.prometheus.query("quantserve_model_ready")
    assert _value(ready) == 1
    (cutoff,) = stack.prometheus.query("quantserve_model_data_cutoff_timestamp_seconds")
    assert cutoff["metric"]["model"] == "forecaster"
    assert _value(cutoff) == datetime(2018, 12, 31, tzinfo=UTC).timestamp()
    # Each of the two workers ran its one batch at load; /metrics sums the workers.
    (inference,) = stack.prometheus.query("quantserve_model_inference_seconds_count")
    assert (inference["metric"]["model"], inference["metric"]["version"]) == ("forecaster", "1")
    assert _value(inference) == WORKERS
    failures = stack.prometheus.query("quantserve_model_load_failures_total")
    assert {f["metric"]["reason"]: _value(f) for f in failures} == {
        "missing": 0,
        "features": 0,
        "invalid": 0,
        "error": 0,
    }


def test_drift_and_pipeline_series_match_the_artifacts(stack: Stack, pipeline_dir: Path) -> None:
    drift = _eventually(stack, "quantserve_feature_drift_psi")
    psi = {d["metric"]["feature"]: _value(d) for d in drift}
    assert set(psi) == set(schema.FEATURE_COLUMNS)
    assert all(value >= 0 for value in psi.values())

    ingest = json.loads((pipeline_dir / "data" / "raw" / "manifest.json").read_text())
    features = json.loads((pipeline_dir / "data" / "features" / "_manifest.json").read_text())
    metadata = json.loads(
        (pipeline_dir / "models" / "forecaster" / "1" / "metadata.json").read_text()
    )
    rows = {
        r["metric"]["step"]: _value(r) for r in stack.prometheus.query("quantserve_pipeline_rows")
    }
    assert rows == {
        "ingest": ingest["rows"],
        "features": features["rows"],
        "train": metadata["samples"]["train"],
    }
    (quarantined,) = stack.prometheus.query("quantserve_pipeline_quarantined_rows")
    assert quarantined["metric"]["step"] == "ingest"
    assert _value(quarantined) == ingest["quarantined_rows"]
    last_runs = stack.prometheus.query("quantserve_pipeline_last_run_timestamp_seconds")
    assert {r["metric"]["step"]: _value(r) for r in last_runs} == {
        "ingest": datetime.fromisoformat(ingest["created_at"]).timestamp(),
        "features": datetime.fromisoformat(features["created_at"]).timestamp(),
        "train": datetime.fromisoformat(metadata["created_at"]).timestamp(),
    }


def test_http_and_optimizer_series_count_every_request_over_both_workers(stack: Stack) -> None:
    forecasts = _eventually(
        stack, 'quantserve_http_requests_total{handler="/v1/forecasts",status="200"}'
    )
    assert sum(_value(s) for s in forecasts) == FORECAST_REQUESTS
    assert {s["metric"]["method"] for s in forecasts} == {"POST"}
    (not_found,) = stack.prometheus.query('quantserve_http_requests_total{status="404"}')
    assert not_found["metric"]["handler"] == "none"  # unmatched paths share one label value
    buckets = stack.prometheus.series(
        'quantserve_http_request_duration_seconds_bucket{handler="/v1/forecasts"}'
    )
    assert {"0.0005", "0.001", "0.0025", "+Inf"} <= {b["le"] for b in buckets}
    (solves,) = stack.prometheus.query(
        'quantserve_optimizer_solves_total{objective="min_variance",status="optimal"}'
    )
    assert _value(solves) == 2
    (solve_count,) = stack.prometheus.query(
        'quantserve_optimizer_solve_seconds_count{objective="min_variance",status="optimal"}'
    )
    assert _value(solve_count) == 2


def test_audit_series_time_each_recorded_optimization_and_count_no_failure(
    stack: Stack,
) -> None:
    # Every worker declares each known action's failure series at 0 when it starts, so
    # the alert sees even a first failure; the two optimizations were each one write.
    failures = _eventually(stack, "quantserve_audit_write_failures_total")
    by_labels = {(f["metric"]["action"], f["metric"]["stage"]): _value(f) for f in failures}
    assert ("portfolios.optimize", "result") in by_labels
    assert ("admin.promote", "intent") in by_labels
    assert set(by_labels.values()) == {0}
    writes = stack.prometheus.query("quantserve_audit_write_seconds_count")
    assert {w["metric"]["stage"]: _value(w) for w in writes} == {
        "intent": 0,
        "result": 2,
        "failure_record": 0,
    }


def test_no_series_has_a_high_cardinality_label(stack: Stack) -> None:
    series = stack.prometheus.series('{__name__=~"quantserve_.+"}')
    assert len(series) > 50
    labels = {name for s in series for name in s}
    assert labels <= {
        "__name__",
        "job",
        "instance",
        "handler",
        "method",
        "status",
        "le",
        "objective",
        "name",
        "version",
        "stage",
        "model",
        "reason",
        "outcome",
        "feature",
        "step",
        "action",
    }
    assert not {s.get("handler") for s in series} & {f"/v1/forecasts/{t}" for t in PIPELINE_TICKERS}


def test_every_alert_rule_evaluates_on_the_scraped_series(stack: Stack) -> None:
    defined = {
        rule["alert"]
        for path in RULES.glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    }

    def all_evaluated() -> list[dict[str, Any]] | None:
        groups = stack.prometheus.get("/api/v1/rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return rules if all(rule["health"] != "unknown" for rule in rules) else None

    rules = wait_for("every rule evaluated", all_evaluated, timeout=30)
    assert {rule["name"] for rule in rules} == defined
    assert {rule["name"]: rule["health"] for rule in rules} == dict.fromkeys(defined, "ok")


def test_the_drift_alert_is_pending_on_this_data_and_the_staleness_alert_is_not(
    stack: Stack,
) -> None:
    # The latest quarter of the model's features (the late-2018 sell-off) is unlike the
    # training years: the drift alert must be on its way to firing. The features end in
    # 2018 but were written minutes ago, and staleness is about arrival, not dates.
    psi = {
        d["metric"]["feature"]: _value(d)
        for d in stack.prometheus.query("quantserve_feature_drift_psi")
    }
    drifted = {feature for feature, value in psi.items() if value > 0.25}
    assert drifted, psi

    def alerts() -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] = stack.prometheus.get("/api/v1/alerts")["alerts"]
        names = {a["labels"]["alertname"] for a in found}
        wanted = {"QuantserveFeatureDrift"}
        return found if wanted <= names else None

    found = wait_for("pending alerts", alerts, timeout=30)
    pending_drift = {
        a["labels"]["feature"]
        for a in found
        if a["labels"]["alertname"] == "QuantserveFeatureDrift"
    }
    assert pending_drift == drifted
    assert {a["state"] for a in found} == {"pending"}
    fired = {a["labels"]["alertname"] for a in found}
    assert not fired & {
        "QuantserveModelDataStale",
        "QuantserveTargetDown",
        "QuantserveModelNotReady",
        "QuantserveModelLoadFailed",
    }


def test_every_dashboard_query_runs_on_prometheus(stack: Stack) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert _eventually(stack, "rate(quantserve_http_requests_total[1m])")  # two scrapes in
    empty = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            promql = target["expr"].replace("$__rate_interval", "1m")
            if not stack.prometheus.query(promql):
                empty.append((panel["title"], promql))
    assert empty == []


def test_the_server_logs_json_lines_with_the_request_id(stack: Stack) -> None:
    lines = [line for line in stack.quantserve_log.read_text().splitlines() if line.strip()]
    # TensorFlow's C++ runtime writes a few plain lines to stderr when it starts, below
    # Python's logging; every other line, gunicorn's and uvicorn's included, is JSON.
    entries = [json.loads(line) for line in lines if not TENSORFLOW_NATIVE_LINE.match(line)]
    assert len(entries) >= len(lines) - 4 * WORKERS
    access = [e for e in entries if e.get("request_id") == "scrape-test-0"]
    assert len(access) == 1
    (line,) = access
    assert line["logger"] == "app.access"
    assert (line["method"], line["path"], line["status"]) == ("POST", "/v1/forecasts", 200)
    assert line["duration_ms"] > 0
    assert {"timestamp", "level", "message"} <= set(line)
    assert not [e for e in entries if "AAPL" in json.dumps(e)]  # no request body is logged
