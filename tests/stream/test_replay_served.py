"""The live path as the README runs it: a served model, `quantserve stream`, `quantserve
replay`, and Prometheus scraping the server with the repository's alert rules.

The replay feeds the embedded data's December 2018 into the landing folder; the server
must answer with each new ``as_of`` from the same model version while the staleness
alert stays quiet. The data holds five of the embedded stocks, so the replayed bars of
the other fifteen are quarantined as unknown tickers, which is checked too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.monitoring._servers import (
    REPO,
    PrometheusApi,
    free_port,
    http_post_json,
    prometheus_command,
    quantserve_uvicorn,
    running,
    wait_for,
    write_prometheus_config,
)
from tests.stream.conftest import TICKERS, new_days
from training.config import TrainingConfig
from training.features import load_features
from training.stream import QUARANTINE_DIR
from training.train import load_training_inputs, train_and_export

pytestmark = pytest.mark.slow

RULES = REPO / "config" / "prometheus" / "rules"
STALENESS_ALERT = "QuantserveModelDataStale"
REPLAYED_DAYS = 4


@pytest.fixture(scope="module")
def served_root(cut_off_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cut-off data and a tiny model trained on it (version 1)."""
    root = tmp_path_factory.mktemp("replay-served")
    shutil.copytree(cut_off_data, root / "data")
    data_manifest, features_manifest, quality = load_training_inputs(root / "data")
    train_and_export(
        load_features(root / "data" / "features"),
        root / "models",
        "forecaster",
        TrainingConfig(lookback_days=10, hidden_units=8, epochs=2),
        data_manifest=data_manifest,
        features_manifest=features_manifest,
        quality_report=quality,
    )
    return root


def forecasts(url: str) -> dict:
    status, _, body = http_post_json(f"{url}/v1/forecasts", {})
    assert status == 200, body
    return body  # type: ignore[return-value]


@pytest.fixture
def live(
    served_root: Path, prometheus_binary: str, tmp_path: Path
) -> Iterator[tuple[str, PrometheusApi]]:
    """quantserve, the stream and Prometheus, all running on ``served_root``."""
    env = {
        "QUANTSERVE_ENVIRONMENT": "test",
        "QUANTSERVE_DATA_DIR": str(served_root / "data"),
        "QUANTSERVE_MODELS_DIR": str(served_root / "models"),
        "QUANTSERVE_LIFECYCLE__POLL_INTERVAL_SECONDS": "0.5",
        "QUANTSERVE_LIMITS__RATE_PER_SECOND": "0",
        "QUANTSERVE_STREAM__TRIGGER_SECONDS": "0.5",
        "QUANTSERVE_SPARK__MASTER": "local[2]",
        "QUANTSERVE_SPARK__SHUFFLE_PARTITIONS": "2",
        "QUANTSERVE_SPARK__DRIVER_MEMORY": "1g",
        "PYSPARK_PYTHON": sys.executable,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": str(REPO),
    }
    stream_command = [sys.executable, "-m", "app.cli", "stream"]
    with (
        quantserve_uvicorn(env, tmp_path / "quantserve.log") as url,
        running(stream_command, tmp_path / "stream.log", env) as stream,
    ):
        checkpoint = served_root / "data" / "stream-checkpoint" / "metadata"
        wait_for("the stream's query", lambda: checkpoint.is_file() or None, 180, process=stream)
        port = url.rsplit(":", 1)[1]
        config = write_prometheus_config(tmp_path / "prometheus.yml", RULES, int(port))
        prometheus_port = free_port()
        command = prometheus_command(prometheus_binary, config, tmp_path / "tsdb", prometheus_port)
        with running(command, tmp_path / "prometheus.log", {}) as prometheus:
            api = PrometheusApi(f"http://127.0.0.1:{prometheus_port}")
            wait_for(
                "a first scrape",
                lambda: api.query('up{job="quantserve"}') or None,
                60,
                process=prometheus,
            )
            yield url, api


def test_a_replay_moves_the_served_forecasts_day_by_day_with_the_staleness_alert_quiet(
    served_root: Path, live: tuple[str, PrometheusApi], tmp_path: Path
) -> None:
    url, prometheus = live
    days = [day for day, _ in new_days()[:REPLAYED_DAYS]]
    before = forecasts(url)
    assert before["as_of"] == "2018-11-30"

    replay = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli",
            "replay",
            "--from",
            days[0],
            "--days",
            str(REPLAYED_DAYS),
            "--speed",
            "0.2",
        ],
        cwd=REPO,
        env={**os.environ, "QUANTSERVE_DATA_DIR": str(served_root / "data")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    deadline = time.monotonic() + 240
    while not seen or seen[-1] != days[-1]:
        assert time.monotonic() < deadline, f"served as_of {seen} by the deadline"
        answer = forecasts(url)
        assert answer["model"] == before["model"]  # the same version throughout
        if not seen or answer["as_of"] != seen[-1]:
            seen.append(answer["as_of"])
        time.sleep(0.2)
    output, _ = replay.communicate(timeout=60)
    assert replay.returncode == 0, output

    # The as_of advanced day by day through the replayed days, never backwards.
    assert seen[0] == "2018-11-30"
    assert seen[1:] == sorted(seen[1:])
    assert set(seen[1:]) <= set(days)
    assert len(seen) - 1 >= REPLAYED_DAYS - 1  # at most one pair of days served together
    after = forecasts(url)
    assert after["forecasts"] != before["forecasts"]
    assert {f["ticker"] for f in after["forecasts"]} == set(TICKERS)

    # Freshness as Prometheus sees it: a bar arrived within the last minutes, the lag was
    # observed, and neither the staleness alert nor its expression is active.
    arrival = wait_for(
        "the arrival metric",
        lambda: prometheus.query("quantserve_features_last_bar_arrival_timestamp_seconds") or None,
        30,
    )
    assert time.time() - float(arrival[0]["value"][1]) < 300
    assert prometheus.query("quantserve_features_serving_lag_seconds_count > 0")
    rule = next(
        rule
        for group in yaml.safe_load((RULES / "quantserve-alerts.yml").read_text())["groups"]
        for rule in group["rules"]
        if rule.get("alert") == STALENESS_ALERT
    )
    assert prometheus.query(rule["expr"]) == []
    assert prometheus.query(f'ALERTS{{alertname="{STALENESS_ALERT}"}}') == []

    # The other fifteen stocks' bars were quarantined, each with its reason.
    quarantine = pd.concat(
        pd.read_csv(f) for f in (served_root / "data" / "raw" / QUARANTINE_DIR).glob("*.csv")
    )
    assert set(quarantine["reason"].str.split(":").str[0]) == {"unknown ticker"}
    assert not set(quarantine["ticker"]) & {*TICKERS, "SP500"}
