"""``ingest``/``pipeline --until``, ``replay`` and ``retrain`` on the command line."""

from __future__ import annotations

import csv
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import get_settings
from training.feature_table import load_features
from training.model_store import list_versions
from training.registry import ModelRegistry, Stage

TICKERS = 21


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_ingest_until_then_replay_continues_from_the_next_day(data_dir: Path) -> None:
    code, output = _invoke("ingest", "--until", "2022-12-22")
    assert code == 0, output
    assert "(1990-01-02..2022-12-22)" in output
    assert "quarantined 0 rows" in output
    manifest = json.loads((data_dir / "raw" / "manifest.json").read_text())
    assert manifest["until"] == "2022-12-22"
    assert manifest["rows_after_until"] == 3 * TICKERS  # 12-23, 12-27, 12-28
    dates = pq.read_table(data_dir / "raw" / "prices.parquet", columns=["date"])["date"]
    assert str(max(dates.to_pylist())) == "2022-12-22"

    # Without --from, the feed starts on the first trading day the ingest left out.
    code, output = _invoke("replay", "--speed", "1000")
    assert code == 0, output
    landing = data_dir / "landing"
    files = ["bars-2022-12-23.csv", "bars-2022-12-27.csv", "bars-2022-12-28.csv"]
    assert sorted(p.name for p in landing.iterdir()) == files
    for name in files:
        day = name.removeprefix("bars-").removesuffix(".csv")
        assert f"{day}: {TICKERS} bars to {landing / name}" in output
        with (landing / name).open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == TICKERS
        assert {row["date"] for row in rows} == {day}


def test_until_must_be_an_iso_day_within_the_data(data_dir: Path) -> None:
    code, output = _invoke("ingest", "--until", "2023-01-03")
    assert code == 1
    assert "ingest failed" in output
    assert "outside the data's dates 1990-01-02..2022-12-28" in output
    assert not (data_dir / "raw").exists()

    code, output = _invoke("pipeline", "--until", "28/11/2022")
    assert code == 2
    assert "'28/11/2022' is not a day as YYYY-MM-DD" in output
    assert not (data_dir / "raw").exists()


def test_replay_sends_the_chosen_days(data_dir: Path) -> None:
    code, output = _invoke(
        "replay", "--from", "2022-12-01", "--to", "2022-12-09", "--days", "2", "--speed", "50"
    )
    assert code == 0, output
    assert "replaying 2 days, 2022-12-01..2022-12-02, at 50 days per second" in output
    assert sorted(p.name for p in (data_dir / "landing").iterdir()) == [
        "bars-2022-12-01.csv",
        "bars-2022-12-02.csv",
    ]


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--from", "2023-02-01"], 1, "no bars from 2023-02-01"),
        (["--from", "2022-12-01", "--speed", "0"], 2, "0.0 is not a positive number"),
        (["--from", "2022-12-01", "--speed", "inf"], 2, "inf is not a positive number"),
        (["--from", "Dec 1"], 2, "'Dec 1' is not a day as YYYY-MM-DD"),
        ([], 2, "to continue from; pass a day"),  # no --from, no ingested data
    ],
)
def test_replay_refuses_what_it_cannot_send(
    data_dir: Path, args: list[str], code: int, says: str
) -> None:
    exit_code, output = _invoke("replay", *args)
    assert exit_code == code, output
    assert says in output
    assert not (data_dir / "landing").exists()


@pytest.fixture(scope="module")
def kafka_bootstrap() -> Iterator[str]:
    """librdkafka's mock cluster on loopback; it lives as long as the producer that made it."""
    owner = Producer({"test.mock.num.brokers": 1, "log_level": 3})
    (broker,) = owner.list_topics(timeout=10).brokers.values()
    yield f"{broker.host}:{broker.port}"
    owner.flush(5)


def test_replay_to_kafka(data_dir: Path, kafka_bootstrap: str) -> None:
    code, output = _invoke(
        "replay",
        "--from",
        "2022-12-27",
        "--speed",
        "1000",
        "--kafka",
        kafka_bootstrap,
        "--topic",
        "cli.bars",
    )
    assert code == 0, output
    assert f"2022-12-28: {TICKERS} bars to kafka {kafka_bootstrap} topic cli.bars" in output
    assert not (data_dir / "landing").exists()

    consumer = Consumer(
        {"bootstrap.servers": kafka_bootstrap, "group.id": "cli-test", "log_level": 3}
    )
    try:
        partitions = consumer.list_topics("cli.bars", timeout=10).topics["cli.bars"].partitions
        consumer.assign([TopicPartition("cli.bars", p, 0) for p in partitions])
        values: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while len(values) < 2 * TICKERS and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                values.append(json.loads(message.value() or b"null"))
    finally:
        consumer.close()
    assert len(values) == 2 * TICKERS
    assert sorted({v["date"] for v in values}) == ["2022-12-27", "2022-12-28"]
    aapl = {v["date"]: v["close"] for v in values if v["ticker"] == "AAPL"}
    assert set(aapl) == {"2022-12-27", "2022-12-28"}
    assert all(isinstance(close, float) and close > 0 for close in aapl.values())


def _copy_pipeline(pipeline_dir: Path, data_dir: Path, trained_through: str) -> Path:
    """The shared pipeline output, copied, its version 1 said to be trained through a day."""
    shutil.copytree(pipeline_dir / "data", data_dir)
    models = data_dir.parent / "models"
    shutil.copytree(pipeline_dir / "models", models)
    metadata_path = models / "forecaster" / "1" / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata["data"]["data_date_range"][1] = trained_through
    metadata_path.write_text(json.dumps(metadata))
    return models / "forecaster"


def _after(data_dir: Path, day: str) -> tuple[int, int]:
    """Trading days and feature rows (one per stock and day) after ``day``."""
    dates = load_features(data_dir / "features")["date"]
    later = dates[dates > pd.Timestamp(day)]
    return int(later.nunique()), len(later)


@pytest.mark.slow
def test_retrain_if_due_does_nothing_before_it_is_due(pipeline_dir: Path, data_dir: Path) -> None:
    # Ten trading days (50 rows of 5 stocks) after the version's data: neither trigger.
    model_dir = _copy_pipeline(pipeline_dir, data_dir, "2018-12-14")
    assert _after(data_dir, "2018-12-14") == (10, 50)
    code, output = _invoke("retrain", "--if-due")
    assert code == 0, output
    assert (
        "retrain not due: serving version 1 was trained on data through 2018-12-14; "
        "10 new trading days (retrain at 21); drift not measured: 50 new rows, fewer than 100"
    ) in output
    assert "nothing to do" in output
    assert list_versions(model_dir) == [1]


@pytest.mark.slow
def test_retrain_if_due_trains_and_goes_through_promotion(
    pipeline_dir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir = _copy_pipeline(pipeline_dir, data_dir, "2018-11-15")
    new_days, _ = _after(data_dir, "2018-11-15")
    assert new_days >= 21
    # The tiny network of the shared pipeline, so that training takes seconds.
    for key, value in {"LOOKBACK_DAYS": "10", "HIDDEN_UNITS": "8", "EPOCHS": "2"}.items():
        monkeypatch.setenv(f"QUANTSERVE_TRAINING__{key}", value)
    get_settings.cache_clear()
    assert _invoke("models", "promote", "1")[0] == 0

    code, output = _invoke("retrain", "--if-due")
    assert code == 0, output
    assert "retrain due: serving version 1 was trained on data through 2018-11-15; " in output
    assert f"{new_days} new trading days (retrain at 21)" in output
    assert "exported forecaster version 2" in output
    assert "promotion done" in output
    assert list_versions(model_dir) == [1, 2]
    stages = {record.version: record.stage for record in ModelRegistry(model_dir).records()}
    assert stages[2] in {Stage.PRODUCTION, Stage.ARCHIVED}
    assert stages[1] == (Stage.ARCHIVED if stages[2] == Stage.PRODUCTION else Stage.PRODUCTION)
    assert "version 2" in output.split("promotion done")[1]
