"""The feature table on disk, read and patched without Spark.

:func:`load_features` is what every consumer uses (training, the API server, the
back-test); it reads the Parquet files with pyarrow and never starts a JVM.

Every write publishes a new *version* of the table, counted in ``_manifest.json``
(:func:`next_version`). An incremental update (:mod:`training.incremental_features`)
builds the new version next to the previous one: :func:`link_partitions` hard-links the
years it leaves alone, :func:`rewrite_partition` rewrites a year with some rows replaced.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pandas as pd

from training import schema
from training.errors import ArtifactNotFound

if TYPE_CHECKING:
    import pyarrow as pa

MANIFEST_NAME: Final = "_manifest.json"
"""Written inside the features directory; Spark and pyarrow skip files starting with ``_``."""

OUTPUT_COLUMNS: Final[tuple[str, ...]] = (
    schema.DATE,
    schema.TICKER,
    schema.CLOSE,
    *schema.FEATURE_COLUMNS,
    *schema.TARGET_COLUMNS,
    schema.YEAR,
)
"""Columns of :func:`compute_features`'s output, in order."""
FILE_COLUMNS: Final[tuple[str, ...]] = OUTPUT_COLUMNS[:-1]
"""Columns inside each Parquet file: ``year`` is the directory (``year=2015``)."""


def load_features(path: Path) -> pd.DataFrame:
    """Read a features directory with pyarrow (no Spark, no JVM).

    Parameters
    ----------
    path : pathlib.Path
        Directory written by :func:`write_features`.

    Returns
    -------
    pandas.DataFrame
        :data:`OUTPUT_COLUMNS`, sorted by (ticker, date) with a fresh index; ``date``
        is ``datetime64[ns]`` (midnight, no time zone), ``year`` is ``int64`` and
        nulls are NaN. Units as in :func:`compute_features`.

    Raises
    ------
    ArtifactNotFound
        If ``path`` is missing or holds no Parquet file.
    """
    import pyarrow.dataset as ds

    if not path.is_dir():
        raise ArtifactNotFound(f"no features at {path}; run `quantserve features` first")
    # Hive partitioning turns ``year=2015`` back into an int column; files starting
    # with "_" or "." (_manifest.json, _SUCCESS, .crc) are skipped by default.
    dataset = ds.dataset(path, format="parquet", partitioning="hive")
    if not dataset.files:
        raise ArtifactNotFound(f"no Parquet file in {path}; run `quantserve features` first")
    frame = dataset.to_table().to_pandas(date_as_object=False)
    frame[schema.DATE] = frame[schema.DATE].astype("datetime64[ns]")
    frame[schema.YEAR] = frame[schema.YEAR].astype("int64")
    ordered: pd.DataFrame = frame[list(OUTPUT_COLUMNS)].sort_values(
        [schema.TICKER, schema.DATE], kind="stable"
    )
    return ordered.reset_index(drop=True)


def summarise_written(directory: Path) -> dict[str, Any]:
    """Rows, tickers, date range and years of the Parquet files under ``directory``.

    Read back with pyarrow, as consumers will, rather than recomputing the windows.
    (Spark would also do, but warns that it ignores a path whose name starts with
    ``.``, as the staging directory's does, before reading it anyway.)
    """
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    dataset = ds.dataset(directory, format="parquet", partitioning="hive")
    if not dataset.files:  # Spark writes no data file for an empty partitioned frame
        return {"rows": 0}
    table = dataset.to_table(columns=[schema.DATE, schema.TICKER, schema.YEAR])
    if table.num_rows == 0:
        return {"rows": 0}
    date_range = pc.min_max(table[schema.DATE]).as_py()
    return {
        "rows": table.num_rows,
        "tickers": sorted(pc.unique(table[schema.TICKER]).to_pylist()),
        "start_date": date_range["min"].isoformat(),
        "end_date": date_range["max"].isoformat(),
        "years": sorted(int(year) for year in pc.unique(table[schema.YEAR]).to_pylist()),
    }


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The ``_manifest.json`` of the features directory ``path``; None if absent or unreadable.

    A manifest that is not a JSON object counts as unreadable: the callers then treat
    the table as having none (a full rewrite, version 1).
    """
    try:
        record = json.loads((path / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def next_version(previous: Mapping[str, Any] | None) -> int:
    """The version the next write of a table records, given the manifest it replaces.

    No previous manifest: 1. A manifest without ``version`` (tables written before
    versions were counted) is version 1, so its successor is 2.
    """
    if previous is None:
        return 1
    version = previous.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return 2  # a malformed count is read as a missing one
    return version + 1


# --- a new version from the previous one ------------------------------------------------


def stored_keys(path: Path) -> pd.DataFrame:
    """``ticker``, ``date`` (datetime64[ns]), ``close`` and ``year`` of every stored row.

    Sorted by (ticker, date): what an update checks its prices against.
    """
    import pyarrow.dataset as ds

    dataset = ds.dataset(path, format="parquet", partitioning="hive")
    columns = [schema.TICKER, schema.DATE, schema.CLOSE, schema.YEAR]
    frame = dataset.to_table(columns=columns).to_pandas(date_as_object=False)
    frame[schema.DATE] = frame[schema.DATE].astype("datetime64[ns]")
    ordered: pd.DataFrame = frame.sort_values(
        [schema.TICKER, schema.DATE], kind="stable", ignore_index=True
    )
    return ordered


def stored_file_schema(path: Path) -> pa.Schema:
    """The Arrow schema of the table's Parquet files, with the metadata Spark wrote."""
    import pyarrow.parquet as pq

    file_schema: pa.Schema = pq.read_schema(min(path.glob(f"{schema.YEAR}=*/*.parquet")))
    return file_schema


_CUT: Final = "_cut"


def rows_split_at(rows: pa.Table, cuts: Mapping[str, dt.date], *, keep: str) -> pa.Table:
    """Rows dated on or after their ticker's cut (``keep="from"``), or the others (``"before"``).

    A ticker absent from ``cuts`` has no cut: all its rows are "before".
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if keep not in ("from", "before"):
        raise ValueError(f"keep must be 'from' or 'before', got {keep!r}")
    cut_table = pa.table(
        {
            schema.TICKER: pa.array(list(cuts), pa.string()),
            _CUT: pa.array(list(cuts.values()), pa.date32()),
        }
    )
    ticker_column = rows.schema.get_field_index(schema.TICKER)
    typed = rows.set_column(ticker_column, schema.TICKER, rows[schema.TICKER].cast(pa.string()))
    joined = typed.join(cut_table, keys=schema.TICKER, join_type="left outer")
    from_cut = pc.fill_null(pc.greater_equal(joined[schema.DATE], joined[_CUT]), False)
    selected = joined.filter(from_cut if keep == "from" else pc.invert(from_cut))
    return selected.drop_columns([_CUT])


@dataclass(frozen=True)
class LinkedFiles:
    """What :func:`link_partitions` carried over from the previous version."""

    years: list[int]
    linked: int
    """Files hard-linked: the same inode as in the previous version."""
    copied: int
    """Files copied because the filesystem refused a link."""


def link_partitions(path: Path, staging: Path, skip_years: set[int]) -> LinkedFiles:
    """Carry every file of ``path`` but the manifest and ``skip_years`` over to ``staging``.

    Each file is hard-linked (no byte is copied, and the previous version's file stays
    as it is), or copied where the filesystem refuses a link (another device, a
    filesystem without links).
    """
    skipped = {f"{schema.YEAR}={year}" for year in skip_years}
    years: list[int] = []
    linked = copied = 0
    for entry in sorted(path.iterdir()):
        if entry.name == MANIFEST_NAME or entry.name in skipped:
            continue
        if entry.is_dir():
            (staging / entry.name).mkdir()
            if entry.name.startswith(f"{schema.YEAR}="):
                years.append(int(entry.name.partition("=")[2]))
            files = sorted(child for child in entry.iterdir() if child.is_file())
        else:
            files = [entry]
        for source in files:
            target = staging / source.relative_to(path)
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)
                copied += 1
            else:
                linked += 1
    return LinkedFiles(years=sorted(years), linked=linked, copied=copied)


def rewrite_partition(
    path: Path,
    staging: Path,
    year: int,
    replacement: pa.Table,
    cuts: Mapping[str, dt.date],
    file_schema: pa.Schema,
) -> int:
    """Write ``year`` into ``staging``: its stored rows before each cut, and ``replacement``.

    Parameters
    ----------
    path, staging : pathlib.Path
        The table's directory and the new version's.
    year : int
        The partition to write; it may be new.
    replacement : pyarrow.Table
        Rows that replace those from each ticker's cut on (any years; at least
        :data:`FILE_COLUMNS` and ``year``).
    cuts : Mapping[str, datetime.date]
        Per ticker, the first date whose stored row is replaced.
    file_schema : pyarrow.Schema
        Schema of the stored files (:func:`stored_file_schema`); the new file has it.

    Returns
    -------
    int
        Rows written: one Parquet file sorted by (ticker, date), none if 0.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    columns = list(FILE_COLUMNS)
    parts = [replacement.filter(pc.equal(replacement[schema.YEAR], year)).select(columns)]
    stored_dir = path / f"{schema.YEAR}={year}"
    if stored_dir.is_dir():
        stored = ds.dataset(stored_dir, format="parquet").to_table()
        parts.append(rows_split_at(stored, cuts, keep="before").select(columns))
    rows = pa.concat_tables([part.cast(file_schema) for part in parts])
    if rows.num_rows == 0:
        return 0
    rows = rows.sort_by([(schema.TICKER, "ascending"), (schema.DATE, "ascending")])
    target = staging / f"{schema.YEAR}={year}"
    target.mkdir()
    name = f"part-00000-{uuid.uuid4()}.c000.snappy.parquet"
    _write_parquet(rows.replace_schema_metadata(file_schema.metadata), target / name)
    return int(rows.num_rows)


def _write_parquet(rows: pa.Table, path: Path) -> None:
    """Write ``rows`` as one Snappy-compressed Parquet file, as Spark's writer does."""
    import pyarrow.parquet as pq

    pq.write_table(rows, path, compression="snappy")
