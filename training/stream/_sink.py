"""One micro-batch of bars, applied exactly once: checked, stored, then published as features.

A batch runs in three steps, each safe to repeat:

1. its quarantined bars are written to ``stream-quarantine/<source>-<batch>.csv``
   (rewritten whole if the batch runs again);
2. the accepted bars and the stream's new position are committed in one rename of
   ``prices.parquet`` (:class:`training.stream._store.PriceStore`);
3. the feature table is updated from the earliest changed date and swapped in
   atomically, recording the batch it includes.

A batch whose id the price table already holds (the stream restarted after step 2) is
not applied again; only step 3 runs, if the feature table does not include it yet. So a
kill at any point loses no bar and stores none twice.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from training import schema
from training._io import atomic_write_bytes
from training.config import StreamConfig
from training.features import MANIFEST_NAME
from training.stream._rules import check_bars
from training.stream._store import PriceStore, StreamState

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

QUARANTINE_DIR = "stream-quarantine"
ARRIVED_AT = "arrived_at"
"""Column of the raw rows: when the row's file landed or its message was produced (UTC)."""


@dataclass(frozen=True)
class BatchReport:
    """What one batch did."""

    batch_id: int
    received: int
    stored: int
    quarantined: dict[str, int]
    changed_from: date | None
    """The earliest date whose features were recomputed (None: none were)."""
    features_version: int | None
    already_applied: bool
    seconds: float

    def describe(self) -> str:
        """One line for the console and the log."""
        if self.already_applied:
            head = f"batch {self.batch_id}: already stored"
        else:
            head = f"batch {self.batch_id}: {self.received} bars, {self.stored} stored"
            if self.quarantined:
                head += ", quarantined " + ", ".join(
                    f"{count} {kind}" for kind, count in self.quarantined.items()
                )
        if self.features_version is not None:
            head += f"; features version {self.features_version} from {self.changed_from}"
        return f"{head} ({self.seconds:.1f} s)"


class BarSink:
    """Applies batches of raw bars to the price table in ``raw_dir`` and the features."""

    def __init__(
        self,
        spark: SparkSession,
        raw_dir: Path,
        features_dir: Path,
        config: StreamConfig,
        benchmark: str | None,
    ) -> None:
        self.spark = spark
        self.store = PriceStore(raw_dir)
        self.features_dir = features_dir
        self.quarantine_dir = raw_dir / QUARANTINE_DIR
        self.config = config
        self.benchmark = benchmark

    def apply(
        self,
        source: str,
        batch_id: int,
        raw: pd.DataFrame,
        offsets: dict[str, int] | None = None,
        rejected: pd.DataFrame | None = None,
    ) -> BatchReport:
        """Apply ``raw`` (:data:`training.sources.RAW_COLUMNS` plus ``arrived_at``) once.

        ``source`` and ``batch_id`` identify the batch: the same pair applied again is
        recognised and not stored twice. ``offsets`` (Kafka) are committed with the bars.
        ``rejected`` are quarantine rows the reader already made (an unreadable file, a
        message that is not JSON).
        """
        started = time.perf_counter()
        prices, state = self.store.read()
        if state.applied(source, batch_id):
            version = self.publish_pending(prices, state)
            return BatchReport(
                batch_id,
                len(raw),
                0,
                {},
                _day(state.pending_from) if version else None,
                version,
                True,
                time.perf_counter() - started,
            )
        verdicts = check_bars(raw, prices, self.config.max_late_days, datetime.now(UTC).date())
        if rejected is not None and len(rejected):
            verdicts = dataclasses.replace(
                verdicts, quarantine=pd.concat([rejected, verdicts.quarantine], ignore_index=True)
            )
        self._write_quarantine(source, batch_id, verdicts.quarantine)
        accepted = verdicts.accepted
        pending = state.pending_from if self._features_behind(state) else None
        changed_from = None
        arrived = state.last_bar_arrived_at
        if len(accepted):
            changed_from = accepted[schema.DATE].min().date().isoformat()
            pending = min(filter(None, (pending, changed_from)))
            arrivals = raw.loc[raw["source"].isin(accepted["source"]), ARRIVED_AT]
            arrived = max(filter(None, (arrived, pd.Timestamp(arrivals.max()).isoformat())))
            prices = (
                pd.concat([prices, accepted.drop(columns="source")], ignore_index=True)
                .sort_values([schema.TICKER, schema.DATE])
                .reset_index(drop=True)
            )
        state = dataclasses.replace(
            state,
            source=source,
            batch_id=batch_id,
            offsets={**state.offsets, **(offsets or {})},
            pending_from=pending,
            last_bar_arrived_at=arrived,
            bars_stored=state.bars_stored + len(accepted),
        )
        self.store.commit(prices, state)
        version = self.publish_pending(prices, state)
        return BatchReport(
            batch_id,
            len(raw),
            len(accepted),
            verdicts.reasons(),
            _day(pending) if version else None,
            version,
            False,
            time.perf_counter() - started,
        )

    def resume(self) -> int | None:
        """Publish the features a killed run committed bars for but never published."""
        prices, state = self.store.read()
        return self.publish_pending(prices, state)

    def publish_pending(self, prices: pd.DataFrame, state: StreamState) -> int | None:
        """Update the features from ``state.pending_from`` unless they include the batch."""
        if not self._features_behind(state):
            return None
        from training.incremental_features import update_features

        assert state.pending_from is not None
        manifest = update_features(
            self.spark,
            prices,
            date.fromisoformat(state.pending_from),
            self.features_dir,
            self.benchmark,
            {
                "input_sha256": self.store.digest(),
                "stream_source": state.source,
                "stream_batch_id": state.batch_id,
                "last_bar_arrived_at": state.last_bar_arrived_at,
            },
        )
        version: int = manifest["version"]
        return version

    def _features_behind(self, state: StreamState) -> bool:
        if state.pending_from is None:
            return False
        path = self.features_dir / MANIFEST_NAME
        manifest: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
        included = (manifest.get("stream_source"), manifest.get("stream_batch_id"))
        return included != (state.source, state.batch_id)

    def _write_quarantine(self, source: str, batch_id: int, quarantine: pd.DataFrame) -> None:
        if quarantine.empty:
            return
        name = f"{re.sub(r'[^A-Za-z0-9]+', '-', source).strip('-')}-{batch_id:08d}.csv"
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(
            self.quarantine_dir / name, quarantine.to_csv(index=False).encode("utf-8")
        )
        logger.warning("batch %s: %d bars quarantined in %s", batch_id, len(quarantine), name)


def _day(iso: str | None) -> date | None:
    return date.fromisoformat(iso) if iso else None
