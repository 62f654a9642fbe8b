"""The feature table on disk, read without Spark: the whole table, or what it holds.

:func:`load_features` is what every consumer uses (training, the API server, the
back-test); it reads the Parquet files with pyarrow and never starts a JVM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import pandas as pd

from training import schema
from training.errors import ArtifactNotFound

OUTPUT_COLUMNS: Final[tuple[str, ...]] = (
    schema.DATE,
    schema.TICKER,
    schema.CLOSE,
    *schema.FEATURE_COLUMNS,
    *schema.TARGET_COLUMNS,
    schema.YEAR,
)
"""Columns of :func:`compute_features`'s output, in order."""


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
