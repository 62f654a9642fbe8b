"""The replayed feed: which days, the landing files, the pacing, and a real Kafka topic."""

from __future__ import annotations

import csv
import gzip
import json
import os
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from training.errors import DataError
from training.replay import (
    KafkaBarProducer,
    KafkaDeliveryError,
    TradingDay,
    day_after,
    embedded_bars,
    landing_file_name,
    replay,
    select_days,
    write_landing_file,
)
from training.sources import embedded_dataset_files

# The last 21 trading days of the embedded set: 2022-11-29..2022-12-28.
TAIL_START = date(2022, 11, 29)
TAIL_DAYS = 21
TICKERS = 21  # 20 stocks and the SP500 index


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return embedded_bars()


@pytest.fixture(scope="module")
def embedded_text() -> dict[str, set[tuple[str, str, str]]]:
    """Every (date, ticker, close) of the embedded files as written, read with csv alone."""
    by_day: dict[str, set[tuple[str, str, str]]] = {}
    for path in embedded_dataset_files():
        with gzip.open(path, "rt", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            for row in reader:
                for ticker, close in zip(header[1:], row[1:], strict=True):
                    by_day.setdefault(row[0], set()).add((row[0], ticker, close))
    return by_day


def test_days_run_from_the_first_to_the_last_inclusive(bars: pd.DataFrame) -> None:
    days = select_days(bars, TAIL_START)
    assert [d.day for d in days][:3] == [date(2022, 11, 29), date(2022, 11, 30), date(2022, 12, 1)]
    assert len(days) == TAIL_DAYS
    assert days[-1].day == date(2022, 12, 28)
    # 2022-12-24..26 is a weekend and Christmas: no bars, no day.
    chosen = select_days(bars, date(2022, 12, 23), date(2022, 12, 27))
    assert [d.day for d in chosen] == [date(2022, 12, 23), date(2022, 12, 27)]
    assert [d.day for d in select_days(bars, TAIL_START, limit=2)] == [
        date(2022, 11, 29),
        date(2022, 11, 30),
    ]
    assert all(len(d.bars) == TICKERS for d in days)
    assert day_after(bars, date(2022, 12, 23)) == date(2022, 12, 27)
    assert day_after(bars, date(2022, 12, 28)) is None


def test_days_outside_the_data_are_refused(bars: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"data runs 1990-01-02\.\.2022-12-28"):
        select_days(bars, date(2023, 1, 3))
    with pytest.raises(DataError, match="at least 1"):
        select_days(bars, TAIL_START, limit=0)


def test_landing_files_hold_each_days_embedded_rows_exactly(
    bars: pd.DataFrame, embedded_text: dict[str, set[tuple[str, str, str]]], tmp_path: Path
) -> None:
    days = select_days(bars, TAIL_START)
    sent = replay(days, lambda d: write_landing_file(tmp_path, d), speed=1e6)
    assert sent == TAIL_DAYS
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"bars-{d.day.isoformat()}.csv" for d in days
    ]
    for trading_day in days:
        path = tmp_path / landing_file_name(trading_day.day)
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
        assert rows[0] == ["date", "ticker", "close"]
        written = [tuple(row) for row in rows[1:]]
        assert len(written) == TICKERS
        assert set(written) == embedded_text[trading_day.day.isoformat()]
        assert {row[1] for row in written} >= {"AAPL", "XOM", "SP500"}


def test_a_landing_file_is_renamed_into_place_whole(
    bars: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (trading_day,) = select_days(bars, date(2022, 12, 1), limit=1)
    final = tmp_path / "bars-2022-12-01.csv"
    seen: list[tuple[str, str, bool]] = []
    real_replace = os.replace

    def watching_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        # At the rename: the final name is not there yet, the hidden file is complete.
        seen.append((Path(src).name, Path(src).read_text(), Path(dst).exists()))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", watching_replace)
    assert write_landing_file(tmp_path, trading_day) == final
    assert seen == [(".bars-2022-12-01.csv.tmp", final.read_text(), False)]
    assert final.read_text() == trading_day.csv_text()
    assert [p.name for p in tmp_path.iterdir()] == [final.name]


def test_a_failed_write_leaves_no_file_behind(
    bars: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (trading_day,) = select_days(bars, date(2022, 12, 1), limit=1)

    def failing_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_landing_file(tmp_path, trading_day)
    assert list(tmp_path.iterdir()) == []


class FakeClock:
    """A clock that moves only when slept on, or when a send takes time."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_pacing_sends_one_day_per_interval(bars: pd.DataFrame) -> None:
    days = select_days(bars, TAIL_START, limit=5)
    clock = FakeClock()
    sent_at: list[tuple[date, float]] = []
    count = replay(
        days,
        lambda d: sent_at.append((d.day, clock.now)),
        speed=0.2,
        sleep=clock.sleep,
        clock=clock,
    )
    assert count == 5
    assert [day for day, _ in sent_at] == [d.day for d in days]
    assert clock.sleeps == pytest.approx([5.0] * 4)
    assert [at - 100.0 for _, at in sent_at] == pytest.approx([0.0, 5.0, 10.0, 15.0, 20.0])


def test_a_slow_send_delays_its_day_not_the_schedule(bars: pd.DataFrame) -> None:
    days = select_days(bars, TAIL_START, limit=4)
    clock = FakeClock()
    reported: list[tuple[date, object]] = []

    def slow_send(trading_day: TradingDay) -> str:
        clock.now += 0.3  # each send takes 0.3 s of the 0.5 s between days
        return f"sent {trading_day.day}"

    replay(
        days,
        slow_send,
        speed=2.0,
        sleep=clock.sleep,
        clock=clock,
        on_sent=lambda d, result: reported.append((d.day, result)),
    )
    assert clock.sleeps == pytest.approx([0.2, 0.2, 0.2])
    assert reported == [(d.day, f"sent {d.day}") for d in days]


@pytest.mark.parametrize("speed", [0.0, -1.0, float("nan"), float("inf")])
def test_a_speed_that_is_not_positive_and_finite_is_refused(
    bars: pd.DataFrame, speed: float
) -> None:
    with pytest.raises(ValueError, match="positive"):
        replay(select_days(bars, TAIL_START, limit=1), lambda d: None, speed=speed)


@pytest.fixture(scope="module")
def kafka_bootstrap() -> Iterator[str]:
    """librdkafka's mock cluster on loopback; it lives as long as the producer that made it."""
    owner = Producer({"test.mock.num.brokers": 1, "log_level": 3})
    brokers = owner.list_topics(timeout=10).brokers
    (broker,) = brokers.values()
    yield f"{broker.host}:{broker.port}"
    owner.flush(5)


def _consume_all(bootstrap: str, topic: str, expected: int) -> list[tuple[bytes, bytes, int]]:
    """``(key, value, partition)`` of every message of ``topic``, from the beginning."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "replay-test",
            "enable.auto.commit": False,
            "log_level": 3,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        received: list[tuple[bytes, bytes, int]] = []
        deadline = time.monotonic() + 30
        while len(received) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            key, value, partition = message.key(), message.value(), message.partition()
            assert key is not None
            assert value is not None
            assert partition is not None
            received.append((key, value, partition))
        # Anything beyond the expected messages would be a duplicate.
        extra = consumer.poll(1.0)
        assert extra is None or extra.error() is not None
        return received
    finally:
        consumer.close()


def test_kafka_receives_one_json_message_per_bar_keyed_by_ticker(
    bars: pd.DataFrame,
    embedded_text: dict[str, set[tuple[str, str, str]]],
    kafka_bootstrap: str,
) -> None:
    days = select_days(bars, date(2022, 12, 22), limit=3)
    producer = KafkaBarProducer(kafka_bootstrap, "bars.test", {"log_level": 3})
    try:
        counts = [producer.send(trading_day) for trading_day in days]
    finally:
        producer.close()
    assert counts == [TICKERS] * 3

    received = _consume_all(kafka_bootstrap, "bars.test", 3 * TICKERS)
    assert len(received) == 3 * TICKERS
    decoded = [(key.decode(), json.loads(value.decode("utf-8"))) for key, value, _ in received]
    assert all(key == value["ticker"] for key, value in decoded)
    assert all(set(value) == {"date", "ticker", "close"} for _, value in decoded)
    expected = {
        (day, ticker, float(close))
        for d in days
        for day, ticker, close in embedded_text[d.day.isoformat()]
    }
    assert {(v["date"], v["ticker"], v["close"]) for _, v in decoded} == expected
    # A ticker's bars share a partition, so a consumer reads them in date order.
    partitions: dict[str, set[int]] = {}
    dates: dict[str, list[str]] = {}
    for (key, _, partition), (_, value) in zip(received, decoded, strict=True):
        partitions.setdefault(key.decode(), set()).add(partition)
        dates.setdefault(key.decode(), []).append(value["date"])
    assert all(len(p) == 1 for p in partitions.values())
    assert all(d == ["2022-12-22", "2022-12-23", "2022-12-27"] for d in dates.values())


def test_undelivered_bars_raise_a_delivery_error(bars: pd.DataFrame) -> None:
    (trading_day,) = select_days(bars, TAIL_START, limit=1)
    # Nothing listens on port 1: every message times out after a second.
    producer = KafkaBarProducer(
        "127.0.0.1:1", "bars.test", {"message.timeout.ms": 1000, "log_level": 0}
    )
    with pytest.raises(KafkaDeliveryError, match=r"21 bars of 2022-11-29 were refused"):
        producer.send(trading_day)
