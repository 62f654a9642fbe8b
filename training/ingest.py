"""``quantserve ingest``: read prices, validate, quarantine, report, write Parquet.

Outputs under ``output_dir`` (``data/raw/`` by default), each written atomically:

- ``prices.parquet``: the validated long prices (see :mod:`training.schema`);
- ``quarantine.csv``: every rejected row, as the file spelled it, with its reason;
- ``quality.json``: stale stretches and implausible jumps (kept, but flagged);
- ``manifest.json``: source, input and output SHA-256, rows, tickers, date range, and
  the ``until`` cut-off when one was given.

``until`` builds the data as it stood at the end of that day: rows dated after it are
left out before validation (neither kept nor quarantined), so a later date can arrive
afterwards as live data (``quantserve replay``, ``quantserve stream``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from training import schema
from training._io import atomic_write_bytes, atomic_write_json, sha256_file
from training.config import IngestConfig
from training.errors import DataError
from training.quality import data_quality_report
from training.sources import RawPrices, read_embedded, read_price_file
from training.validation import validate_prices

PRICES_FILE = "prices.parquet"
QUARANTINE_FILE = "quarantine.csv"
QUALITY_FILE = "quality.json"
MANIFEST_FILE = "manifest.json"

PRICES_SCHEMA = pa.schema(
    [
        pa.field(schema.DATE, pa.date32(), nullable=False),
        pa.field(schema.TICKER, pa.string(), nullable=False),
        pa.field(schema.CLOSE, pa.float64(), nullable=False),
        pa.field(schema.VOLUME, pa.float64()),
    ]
)


@dataclass(frozen=True)
class IngestReport:
    """What ``run_ingest`` kept, quarantined and flagged."""

    manifest: dict[str, Any]
    quarantine_reasons: dict[str, int]
    quality_summary: dict[str, int]
    output_dir: Path


def run_ingest(
    output_dir: Path,
    config: IngestConfig,
    source: Path | None = None,
    benchmark: str | None = None,
    until: date | None = None,
) -> IngestReport:
    """Ingest the embedded data set (``source=None``) or a user's price file.

    Parameters
    ----------
    output_dir
        Folder for the outputs (created if missing).
    config
        Validation and data-quality thresholds.
    source
        A CSV or Parquet file, long or wide; ``None`` reads the embedded S&P 500 set.
    benchmark
        The ticker used as the market in features (the embedded set uses ``SP500``);
        ``None`` for a user file means an equal-weighted market proxy.
    until
        The last day to ingest (inclusive); rows dated after it are left out. It must
        lie within the input's dates.

    Raises
    ------
    DataError
        If no valid row is left, the benchmark is not among the tickers, or ``until``
        lies outside the input's dates.
    """
    raw = read_embedded() if source is None else read_price_file(source, benchmark)
    benchmark = benchmark or raw.benchmark
    rows, rows_after_until = (raw.rows, 0) if until is None else _cut_at(raw, until)
    result = validate_prices(rows, config.min_history_days)
    clean = result.clean
    if clean.empty:
        raise DataError(
            f"no valid rows left after validation ({len(result.quarantine)} quarantined, "
            f"by reason {result.reasons()}); see the reasons and fix the input"
        )
    tickers = sorted(clean[schema.TICKER].unique().tolist())
    if benchmark is not None and benchmark not in tickers:
        raise DataError(
            f"benchmark {benchmark!r} is not among the valid tickers ({', '.join(tickers)}); "
            "pass --benchmark with one of them, or none for an equal-weighted proxy"
        )

    output_dir.mkdir(parents=True, exist_ok=True)
    prices_path = output_dir / PRICES_FILE
    atomic_write_bytes(prices_path, _parquet_bytes(clean))
    atomic_write_bytes(
        output_dir / QUARANTINE_FILE,
        result.quarantine.to_csv(index=False).encode("utf-8"),
    )
    quality = data_quality_report(clean, config)
    atomic_write_json(output_dir / QUALITY_FILE, quality)

    manifest = _manifest(raw, clean, result.quarantine, benchmark, prices_path, tickers)
    manifest["empty_wide_cells"] = raw.empty_wide_cells
    manifest["quarantine_reasons"] = result.reasons()
    manifest["quality_summary"] = quality["summary"]
    manifest["until"] = None if until is None else until.isoformat()
    manifest["rows_after_until"] = rows_after_until
    atomic_write_json(output_dir / MANIFEST_FILE, manifest)
    return IngestReport(
        manifest=manifest,
        quarantine_reasons=result.reasons(),
        quality_summary=quality["summary"],
        output_dir=output_dir,
    )


def _cut_at(raw: RawPrices, until: date) -> tuple[pd.DataFrame, int]:
    """The raw rows dated on or before ``until``, and how many were dated after it.

    Every date shape validation accepts starts with ``YYYY-MM-DD``, so the first ten
    characters order rows by day. A row whose text does not start with a date is kept:
    validation quarantines it with its reason.
    """
    day = raw.rows["date"].str.strip().str.slice(0, 10)
    iso = day.str.fullmatch(_ISO_DAY).fillna(False).astype(bool)
    days = pd.to_datetime(day.where(iso), errors="coerce", format="%Y-%m-%d")
    if days.isna().all():
        raise DataError(f"{raw.source} holds no ISO dates (YYYY-MM-DD) to cut at {until}")
    first, last = days.min().date(), days.max().date()
    if not first <= until <= last:
        raise DataError(
            f"--until {until} is outside the data's dates {first}..{last}; pass a day within them"
        )
    after = (days > pd.Timestamp(until)).fillna(False).astype(bool)
    return raw.rows[~after], int(after.sum())


_ISO_DAY = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"


def _parquet_bytes(clean: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(
        clean.assign(**{schema.DATE: clean[schema.DATE].dt.date}),
        schema=PRICES_SCHEMA,
        preserve_index=False,
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _manifest(
    raw: RawPrices,
    clean: pd.DataFrame,
    quarantine: pd.DataFrame,
    benchmark: str | None,
    prices_path: Path,
    tickers: list[str],
) -> dict[str, Any]:
    return {
        "source": raw.source,
        "inputs": [{"path": str(path), "sha256": sha256_file(path)} for path in raw.files],
        "prices_file": PRICES_FILE,
        "prices_sha256": sha256_file(prices_path),
        "rows": len(clean),
        "quarantined_rows": len(quarantine),
        "tickers": tickers,
        "benchmark": benchmark,
        "date_range": [
            clean[schema.DATE].min().date().isoformat(),
            clean[schema.DATE].max().date().isoformat(),
        ],
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
