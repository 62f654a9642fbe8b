"""Bars from a landing folder, through Spark Structured Streaming's file source.

Spark lists the folder, records each micro-batch's files in its checkpoint's offset log
before the batch runs and in its commit log after, and on a restart runs an unfinished
batch again with the same files and the same id. The files are read here with the same
reader as ``quantserve ingest`` (CSV or Parquet, long or wide), so any file ingest takes
can land. Names starting with ``.`` or ``_`` are skipped by Spark: write a file under
such a name and rename it when complete, and no half-written file is ever read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

import pandas as pd

from training.errors import DataError
from training.sources import RAW_COLUMNS, read_price_file
from training.stream._sink import ARRIVED_AT, BarSink, BatchReport
from training.validation import QUARANTINE_COLUMNS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

logger = logging.getLogger(__name__)

FILE_PATTERN = "*.{csv,csv.gz,parquet,pq}"
"""The formats ``quantserve ingest`` reads; other files in the folder are left alone."""


BINARY_FILE_SCHEMA = "path STRING, modificationTime TIMESTAMP, length LONG, content BINARY"
"""Spark's ``binaryFile`` columns; only ``path`` is read (the content is not loaded)."""


def run_landing_stream(
    sink: BarSink,
    landing_dir: Path,
    checkpoint_dir: Path,
    *,
    trigger_seconds: float,
    available_now: bool = False,
    on_batch: Callable[[BatchReport], None] | None = None,
) -> None:
    """Stream the files landing in ``landing_dir`` into ``sink`` until stopped.

    With ``available_now`` the files already there are processed and the call returns
    (Spark's ``availableNow`` trigger); otherwise the folder is checked every
    ``trigger_seconds`` and the call blocks until the query stops or fails.
    """
    landing_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    files = (
        sink.spark.readStream.format("binaryFile")
        .schema(BINARY_FILE_SCHEMA)
        .option("pathGlobFilter", FILE_PATTERN)
        .load(landing_dir.resolve().as_uri())
        .select("path")
    )

    def handle(batch: DataFrame, batch_id: int) -> None:
        raw, unreadable = read_landed_files([row["path"] for row in batch.collect()])
        source = f"landing:{_query_id(checkpoint_dir)}"
        report = sink.apply(source, batch_id, raw, rejected=unreadable)
        logger.info("%s", report.describe())
        if on_batch is not None:
            on_batch(report)

    writer = (
        files.writeStream.foreachBatch(handle)
        .option("checkpointLocation", checkpoint_dir.resolve().as_uri())
        .queryName("quantserve-landing")
    )
    if available_now:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{trigger_seconds} seconds")
    query = writer.start()
    query.awaitTermination()


def read_landed_files(paths: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The raw rows of the landed files (with each file's arrival), and unreadable files.

    A file's arrival is its modification time: the moment it was renamed into place.
    An unreadable file is one quarantine row carrying the reader's error.
    """
    frames, unreadable = [], []
    for uri in sorted(paths):
        path = Path(unquote(urlparse(uri).path))
        try:
            arrived = pd.Timestamp(path.stat().st_mtime, unit="s", tz=UTC)
            rows = read_price_file(path).rows
        except (DataError, OSError) as exc:
            unreadable.append(
                {
                    "source": str(path),
                    "source_row": 0,
                    "date": "",
                    "ticker": "",
                    "close": "",
                    "reason": f"unreadable file: {exc}",
                }
            )
            continue
        frames.append(rows.assign(**{ARRIVED_AT: arrived}))
    raw = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=[*RAW_COLUMNS, ARRIVED_AT])
    )
    return raw, pd.DataFrame(unreadable, columns=list(QUARANTINE_COLUMNS))


def _query_id(checkpoint_dir: Path) -> str:
    """The query's id, fixed when its checkpoint was created: batch ids count within it."""
    metadata = checkpoint_dir / "metadata"
    query_id: str = json.loads(metadata.read_text().splitlines()[0])["id"]
    return query_id
