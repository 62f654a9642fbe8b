"""``quantserve stream``: new bars in, validated, stored once, published as features.

Bars come from a landing folder (Spark Structured Streaming's file source, checkpointed)
or a Kafka topic (confluent-kafka). Each micro-batch goes through the same
:class:`BarSink`: ingest's row rules plus the stream's own (duplicates, conflicts, late
bars; see :mod:`training.stream._rules`), one atomic commit of the bars and the
stream's position, then an incremental update of the feature table that the server's
hot reload picks up. docs/live-data.md describes the whole path.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from training.config import StreamConfig
from training.stream._kafka import run_kafka_stream
from training.stream._landing import FILE_PATTERN, read_landed_files, run_landing_stream
from training.stream._rules import BarVerdicts, check_bars
from training.stream._sink import QUARANTINE_DIR, BarSink, BatchReport
from training.stream._store import PriceStore, StreamState

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = [
    "FILE_PATTERN",
    "QUARANTINE_DIR",
    "BarSink",
    "BarVerdicts",
    "BatchReport",
    "PriceStore",
    "StreamState",
    "check_bars",
    "read_landed_files",
    "run_stream",
]


def run_stream(
    spark: SparkSession,
    *,
    raw_dir: Path,
    features_dir: Path,
    landing_dir: Path,
    checkpoint_dir: Path,
    config: StreamConfig,
    available_now: bool = False,
    on_batch: Callable[[BatchReport], None] | None = None,
) -> None:
    """Run the stream from Kafka when ``config`` names servers, else from ``landing_dir``.

    First publishes any features a killed run left unpublished. With ``available_now``
    it processes what is waiting and returns; otherwise it runs until stopped.
    """
    manifest_path = raw_dir / "manifest.json"
    benchmark = (
        json.loads(manifest_path.read_text()).get("benchmark") if manifest_path.is_file() else None
    )
    sink = BarSink(spark, raw_dir, features_dir, config, benchmark)
    sink.resume()
    if config.kafka_bootstrap_servers:
        run_kafka_stream(
            sink,
            config.kafka_bootstrap_servers,
            config.kafka_topic,
            trigger_seconds=config.trigger_seconds,
            available_now=available_now,
            on_batch=on_batch,
        )
    else:
        run_landing_stream(
            sink,
            landing_dir,
            checkpoint_dir,
            trigger_seconds=config.trigger_seconds,
            available_now=available_now,
            on_batch=on_batch,
        )
