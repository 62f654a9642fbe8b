"""The price table the stream appends to, and the stream's position, committed together.

``data/raw/prices.parquet`` is the one source of truth. The stream's state (which
batch was applied last, the Kafka offsets to resume from, the earliest date whose
features may still be unpublished) is stored in that file's own Parquet metadata, so
one atomic rename commits the bars and the position together: after a crash, either
both are there or neither is. ``manifest.json`` beside it is derived from the table
and rewritten after every commit.
"""

from __future__ import annotations

import dataclasses
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from training import schema
from training._io import atomic_write_bytes, atomic_write_json, sha256_file
from training.errors import ArtifactNotFound
from training.ingest import MANIFEST_FILE, PRICES_FILE, PRICES_SCHEMA

STATE_KEY = b"quantserve.stream"


@dataclass(frozen=True)
class StreamState:
    """Where the stream stands, as committed with the prices."""

    source: str | None = None
    """Whose batch ids these are: ``landing:<checkpoint id>`` or ``kafka:<topic>``."""
    batch_id: int = -1
    """The last batch applied (-1: none)."""
    offsets: dict[str, int] = field(default_factory=dict)
    """Kafka: the next offset to read, by ``topic:partition``."""
    pending_from: str | None = None
    """The earliest date (ISO) of bars whose features may not be published yet."""
    last_bar_arrived_at: str | None = None
    """When the newest stored bar arrived (UTC, ISO 8601)."""
    bars_stored: int = 0
    """Bars the stream has stored, in all."""

    def applied(self, source: str, batch_id: int) -> bool:
        """True when ``batch_id`` of ``source`` is already in the table."""
        return self.source == source and batch_id <= self.batch_id


class PriceStore:
    """Reads and commits ``prices.parquet`` and its stream state, in ``raw_dir``."""

    def __init__(self, raw_dir: Path) -> None:
        self.raw_dir = raw_dir
        self.path = raw_dir / PRICES_FILE

    def read(self) -> tuple[pd.DataFrame, StreamState]:
        """The prices (``date`` as datetime64[ns]) and the committed stream state."""
        if not self.path.is_file():
            raise ArtifactNotFound(
                f"no price table at {self.path}; run `quantserve ingest` (or "
                "`quantserve pipeline --until DATE`) before streaming new bars into it"
            )
        table = pq.read_table(self.path)
        metadata = table.schema.metadata or {}
        state = StreamState()
        if STATE_KEY in metadata:
            state = StreamState(**json.loads(metadata[STATE_KEY]))
        prices = table.to_pandas(date_as_object=False)
        prices[schema.DATE] = prices[schema.DATE].astype("datetime64[ns]")
        return prices, state

    def digest(self) -> str:
        """SHA-256 of the committed table (the features record it as their input)."""
        return sha256_file(self.path)

    def commit(self, prices: pd.DataFrame, state: StreamState) -> str:
        """Replace the table and state in one rename; refresh the manifest; return its SHA-256."""
        frame = prices.loc[:, list(PRICES_SCHEMA.names)]
        frame = frame.assign(**{schema.DATE: frame[schema.DATE].dt.date})
        table = pa.Table.from_pandas(frame, schema=PRICES_SCHEMA, preserve_index=False)
        table = table.replace_schema_metadata(
            {STATE_KEY: json.dumps(dataclasses.asdict(state), sort_keys=True).encode()}
        )
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        atomic_write_bytes(self.path, sink.getvalue())
        digest = sha256_file(self.path)
        self._refresh_manifest(prices, state, digest)
        return digest

    def _refresh_manifest(self, prices: pd.DataFrame, state: StreamState, digest: str) -> None:
        path = self.raw_dir / MANIFEST_FILE
        manifest: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
        manifest.update(
            {
                "prices_sha256": digest,
                "rows": len(prices),
                "tickers": sorted(prices[schema.TICKER].unique().tolist()),
                "date_range": [
                    prices[schema.DATE].min().date().isoformat(),
                    prices[schema.DATE].max().date().isoformat(),
                ],
                "stream": {
                    "source": state.source,
                    "batch_id": state.batch_id,
                    "bars_stored": state.bars_stored,
                    "last_bar_arrived_at": state.last_bar_arrived_at,
                    "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                },
            }
        )
        atomic_write_json(path, manifest)
