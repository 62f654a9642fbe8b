"""Bars from a Kafka topic: librdkafka's mock cluster speaks the Kafka protocol on loopback.

The consumer is the real confluent-kafka client the stream uses; only the broker is
librdkafka's own in-process implementation, since no Kafka broker can be installed here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from confluent_kafka import Producer

from tests.stream.conftest import assert_features_match_a_full_run, new_days, stream_available
from training.config import StreamConfig
from training.stream import QUARANTINE_DIR, PriceStore

TOPIC = "bars"


@pytest.fixture(scope="module")
def kafka() -> Iterator[str]:
    """A one-broker mock cluster; yields its bootstrap address. The topic is created by the
    first message produced to it, with the mock cluster's default partitions (several)."""
    owner = Producer({"test.mock.num.brokers": 1, "log_level": 3})
    (broker,) = owner.list_topics(timeout=10).brokers.values()
    yield f"{broker.host}:{broker.port}"
    owner.flush(5)


def produce(bootstrap: str, bars: pd.DataFrame, extra: tuple[bytes, ...] = ()) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "log_level": 3})
    for bar in bars.itertuples(index=False):
        value = {"date": bar.date, "ticker": bar.ticker, "close": float(bar.close)}
        producer.produce(TOPIC, key=bar.ticker.encode(), value=json.dumps(value).encode())
    for value in extra:
        producer.produce(TOPIC, value=value)
    assert producer.flush(10) == 0


def test_bars_from_a_topic_are_stored_once_and_a_restart_resumes_at_the_stored_offsets(
    spark, kafka: str, data_dir: Path, tmp_path: Path
) -> None:
    (_, bars1), (day2, bars2), (day3, bars3) = new_days()[:3]
    produce(kafka, pd.concat([bars1, bars2]), extra=(b"not json", b"[1, 2]"))

    first = stream_available(spark, data_dir, kafka_bootstrap_servers=kafka, kafka_topic=TOPIC)

    assert sum(r.stored for r in first) == len(bars1) + len(bars2)
    prices, state = PriceStore(data_dir / "raw").read()
    assert prices["date"].max() == pd.Timestamp(day2)
    assert sum(state.offsets.values()) == len(bars1) + len(bars2) + 2  # next offsets
    quarantine = pd.concat(
        pd.read_csv(f) for f in (data_dir / "raw" / QUARANTINE_DIR).glob("*.csv")
    )
    assert sorted(quarantine["reason"].str.split(":").str[0]) == ["unparseable message"] * 2
    assert quarantine["source"].str.startswith(f"kafka:{TOPIC}/").all()

    # A second run with one more day reads only that day: nothing twice, nothing lost.
    produce(kafka, bars3)
    second = stream_available(spark, data_dir, kafka_bootstrap_servers=kafka, kafka_topic=TOPIC)

    assert sum(r.stored for r in second) == len(bars3)
    assert all(not r.quarantined for r in second)
    prices, state = PriceStore(data_dir / "raw").read()
    assert state.bars_stored == len(bars1) + len(bars2) + len(bars3)
    assert prices.duplicated(["date", "ticker"]).sum() == 0
    manifest = json.loads((data_dir / "features" / "_manifest.json").read_text())
    assert manifest["end_date"] == day3
    assert manifest["stream_source"] == f"kafka:{TOPIC}"
    assert_features_match_a_full_run(spark, data_dir, tmp_path)


def test_a_batch_applied_again_is_recognised_and_not_stored_twice(spark, data_dir: Path) -> None:
    from training.stream import BarSink

    day, bars = new_days()[0]
    raw = pd.DataFrame(
        {
            "source": "kafka:bars/0",
            "source_row": range(len(bars)),
            "date": bars["date"],
            "ticker": bars["ticker"],
            "close": bars["close"].astype(str),
            "volume": pd.NA,
            "arrived_at": pd.Timestamp.now(tz="UTC"),
        }
    ).astype(
        {
            "source": "string",
            "date": "string",
            "ticker": "string",
            "close": "string",
            "volume": "string",
        }
    )
    sink = BarSink(spark, data_dir / "raw", data_dir / "features", StreamConfig(), "SP500")

    first = sink.apply("kafka:bars", 0, raw, offsets={"bars:0": len(bars)})
    again = sink.apply("kafka:bars", 0, raw, offsets={"bars:0": len(bars)})

    assert (first.stored, first.already_applied) == (len(bars), False)
    assert (again.stored, again.already_applied, again.features_version) == (0, True, None)
    prices, state = PriceStore(data_dir / "raw").read()
    assert (prices["date"] == pd.Timestamp(day)).sum() == len(bars)
    assert state.bars_stored == len(bars)
