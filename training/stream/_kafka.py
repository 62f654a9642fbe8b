"""Bars from a Kafka topic, one JSON object per message, consumed with librdkafka.

Spark's Kafka source is a Maven artifact, so the topic is read with confluent-kafka
and each poll's messages go through the same :class:`~training.stream._sink.BarSink`
as the landing folder's files. Exactly once comes from the sink, not from Kafka: the
next offset of each partition is committed inside the price table, in the same rename
as the bars, and a restart seeks to those offsets. The consumer group's own offsets
are never committed, so they can never disagree with the table.

A message's value is ``{"date": "YYYY-MM-DD", "ticker": "AAPL", "close": 123.45}``
(``volume`` optional); its key is not used. One that is not such an object is
quarantined with its partition and offset.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from training.errors import DataError
from training.sources import RAW_COLUMNS
from training.stream._sink import ARRIVED_AT, BarSink, BatchReport
from training.validation import QUARANTINE_COLUMNS

logger = logging.getLogger(__name__)

GROUP_ID = "quantserve-stream"
ASSIGNMENT_TIMEOUT_SECONDS = 30.0


def run_kafka_stream(
    sink: BarSink,
    bootstrap_servers: str,
    topic: str,
    *,
    trigger_seconds: float,
    available_now: bool = False,
    on_batch: Callable[[BatchReport], None] | None = None,
    max_messages: int = 50_000,
) -> None:
    """Consume ``topic`` into ``sink``, one batch per poll, until stopped.

    With ``available_now`` it returns once every partition is read to its end. The
    partitions are those the topic has at the start; restart the stream after adding some.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    source = f"kafka:{topic}"
    _, state = sink.store.read()
    resume = {k: v for k, v in state.offsets.items() if k.startswith(f"{topic}:")}
    next_batch = state.batch_id + 1 if state.source == source else 0
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": GROUP_ID,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        }
    )

    # Every partition of the topic, assigned directly at the offsets the price table
    # holds: no consumer-group rebalance to wait for, and no group offsets to trust.
    metadata = consumer.list_topics(topic, timeout=ASSIGNMENT_TIMEOUT_SECONDS)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        consumer.close()
        raise DataError(
            f"topic {topic!r} has no partitions at {bootstrap_servers} "
            f"({found.error if found is not None else 'not listed'}); check the topic's "
            "name and the bootstrap servers"
        )
    consumer.assign(
        [
            TopicPartition(topic, partition, resume.get(f"{topic}:{partition}", OFFSET_BEGINNING))
            for partition in sorted(found.partitions)
        ]
    )
    at_end: set[int] = set()
    try:
        while True:
            messages = consumer.consume(num_messages=max_messages, timeout=trigger_seconds)
            raw, rejected, offsets, ends = parse_messages(messages, topic)
            at_end = (at_end - {int(k.rsplit(":", 1)[1]) for k in offsets}) | ends
            if len(raw) or len(rejected):
                report = sink.apply(source, next_batch, raw, offsets=offsets, rejected=rejected)
                logger.info("%s", report.describe())
                if on_batch is not None:
                    on_batch(report)
                next_batch += 1
                resume.update(offsets)
            if available_now and set(found.partitions) <= at_end:
                return
    finally:
        consumer.close()


def parse_messages(
    messages: Sequence[Any], topic: str
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int], set[int]]:
    """Raw rows, quarantine rows, next offsets by ``topic:partition``, partitions at EOF.

    A partition is at its end when its last event in ``messages`` is an end-of-partition.
    """
    from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaError, KafkaException

    rows: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    offsets: dict[str, int] = {}
    ends: set[int] = set()
    for message in messages:
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                ends.add(message.partition())
                continue
            raise KafkaException(error)
        ends.discard(message.partition())  # data after an EOF: not at the end any more
        where = f"kafka:{message.topic()}/{message.partition()}"
        offsets[f"{message.topic()}:{message.partition()}"] = message.offset() + 1
        kind, millis = message.timestamp()
        arrived = (
            pd.Timestamp(datetime.now(UTC))
            if kind == TIMESTAMP_NOT_AVAILABLE
            else pd.Timestamp(millis, unit="ms", tz=UTC)
        )
        try:
            bar = json.loads(message.value())
            if not isinstance(bar, dict):
                raise ValueError(f"a JSON {type(bar).__name__}, not an object")
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            rejected.append(
                {
                    "source": where,
                    "source_row": message.offset(),
                    "date": "",
                    "ticker": "",
                    "close": "",
                    "reason": f"unparseable message: {exc}",
                }
            )
            continue
        rows.append(
            {
                "source": where,
                "source_row": message.offset(),
                **{key: _text(bar.get(key)) for key in ("date", "ticker", "close", "volume")},
                ARRIVED_AT: arrived,
            }
        )
    raw = pd.DataFrame(rows, columns=[*RAW_COLUMNS, ARRIVED_AT]).astype(
        {c: "string" for c in RAW_COLUMNS if c != "source_row"}
    )
    return raw, pd.DataFrame(rejected, columns=list(QUARANTINE_COLUMNS)), offsets, ends


def _text(value: Any) -> Any:
    """A JSON value as the text a file would hold (``pd.NA`` for a missing one)."""
    return pd.NA if value is None else str(value)
