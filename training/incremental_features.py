"""Incremental features: publish the rows that new daily bars change, not the whole table.

A streaming job appends bars to the price table and calls :func:`update_features` to
publish their features within seconds. The bars dated on or after ``changed_from``
change, for each stock, only

- its rows from its first row dated on or after ``changed_from`` to its last: their
  trailing windows (and, with no benchmark, the market return) now hold the new rows;
- the 21 rows before those, whose targets look forward (``lead(5)`` and ``ROWS
  BETWEEN 1 FOLLOWING AND 21 FOLLOWING``) into them.

Nothing earlier changes: every feature reads rows up to its own (see
:mod:`training.features`), and no return dated before ``changed_from`` changes, so
neither does the market return on such a date.

Those rows need the 252 rows before each (``lag(252)`` for momentum, 252 returns hence
253 closes for beta, 252 closes for drawdown) and the market return on the dates they
span. :func:`training.features.compute_features` therefore runs on a slice: every
ticker's rows from one row before a common start date to its last, the start being the
earliest date a stock's first needed row has. Each ticker's return is then right on
every date from the start, and so is the equal-weighted market return without a
benchmark. The output is cut to the rows to replace and merged with the table.

Spark evaluates a bounded row frame (``ROWS BETWEEN n PRECEDING AND CURRENT ROW``) by
aggregating the rows of each frame afresh, in frame order; it does not add and
subtract rows as the frame slides. So a row computed from the slice equals, bit for
bit, the same row computed from the whole history.

The result is a new table version: a new directory swapped in with
:func:`training._io.atomic_directory`. A year the change does not reach is hard-linked
from the previous version's files (copied where the filesystem refuses a link); a year
it reaches is rewritten with pyarrow in the schema Spark wrote. A full recomputation
replaces the incremental path when the previous table cannot be extended (see
:func:`update_features`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pandas as pd

from training import schema
from training._io import atomic_directory, atomic_write_json
from training.errors import DataError
from training.feature_table import (
    FILE_COLUMNS,
    MANIFEST_NAME,
    OUTPUT_COLUMNS,
    link_partitions,
    next_version,
    read_manifest,
    rewrite_partition,
    rows_split_at,
    stored_file_schema,
    stored_keys,
    summarise_written,
)
from training.features import (
    compute_features,
    feature_code_version,
    provenance,
    write_features,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import SparkSession

__all__ = ["FORWARD_ROWS", "LOOKBACK_ROWS", "update_features"]

logger = logging.getLogger(__name__)

LOOKBACK_ROWS: Final = 252
"""Rows before a row that its features read: ``lag(252)``, and 252 returns span 253 closes."""
FORWARD_ROWS: Final = max(schema.RETURN_HORIZON_DAYS, schema.VOLATILITY_HORIZON_DAYS)
"""Rows after a row that its targets read."""

_PRICE_SCHEMA: Final = "date date, ticker string, close double"
_ROW: Final = "_row"  # position of a row in its ticker's history, from 0


@dataclass(frozen=True)
class _Plan:
    """What one update recomputes."""

    replace_from: dict[str, dt.date]
    """Per stock with a row dated on or after ``changed_from``: its first replaced date."""
    spark_input: pd.DataFrame
    """The slice of prices ``compute_features`` runs on."""


def update_features(
    spark: SparkSession,
    prices: pd.DataFrame,
    changed_from: dt.date,
    features_dir: Path,
    benchmark: str | None,
    manifest: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Publish the features of bars added to ``prices`` as a new version of the table.

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
        Session to compute on.
    prices : pandas.DataFrame
        The whole validated price table after the new bars: ``date`` (datetime64 or
        ``datetime.date``), ``ticker``, ``close`` (other columns are ignored).
    changed_from : datetime.date
        Earliest date of any bar added, inserted late or corrected since the table in
        ``features_dir`` was built. Rows dated before it must be those the table was
        built from; that is checked against the table's ``close`` column for the
        stocks (not for the benchmark, which the table does not hold).
    features_dir : pathlib.Path
        Features directory written by :func:`training.features.write_features` or by
        this function; replaced as a whole.
    benchmark : str or None
        Benchmark ticker, or None for the equal-weighted market return (see
        :func:`training.features.compute_features`).
    manifest : Mapping[str, Any] or None
        Extra JSON-serialisable keys for ``_manifest.json`` (e.g. the bars' arrival
        time, ``input_sha256``, the stream batch); keys computed here take precedence.

    Returns
    -------
    dict[str, Any]
        The manifest written: the keys of :func:`training.features.write_features`
        (``rows``, ``tickers``, ``start_date``, ``end_date``, ``years``,
        ``feature_columns``, ``target_columns``, ``benchmark``, ``input_sha256``,
        ``spark_master``, ``spark_version``, ``created_at``, ``feature_code_version``,
        ``version``), the caller's keys, and ``incremental``: ``changed_from`` (ISO
        date), ``tickers`` (stocks with replaced rows), ``recomputed_rows`` (rows
        replaced), ``input_rows`` (price rows given to Spark), ``years_rewritten``,
        ``years_linked``, ``files_linked``, ``files_copied`` and ``seconds`` (wall
        time up to writing the manifest). After a full recomputation ``incremental``
        is None and ``full_recompute_reason`` says why.

    Raises
    ------
    DataError
        If ``prices`` lacks a column or cannot be used (see ``compute_features``).

    Notes
    -----
    The table is recomputed in full, as ``quantserve features`` would, when there is
    no previous table or readable manifest, when its ``feature_code_version`` or
    ``benchmark`` differs from the current one, when ``changed_from`` is before its
    ``start_date``, or when the rows dated before ``changed_from`` are not those it
    was built from.
    """
    started = time.perf_counter()
    caller = dict(manifest or {})
    table = _price_table(prices)
    changed = pd.Timestamp(changed_from)
    previous = read_manifest(features_dir)
    reason = _why_not_incremental(previous, features_dir, benchmark, changed)
    if reason is None:
        plan = _plan(table, changed, benchmark)
        file_schema = stored_file_schema(features_dir)
        old_rows = stored_keys(features_dir)
        reason = _inconsistency(table, old_rows, changed, benchmark, plan, file_schema)
    if reason is not None:
        logger.info("recomputing every feature of %s: %s", features_dir, reason)
        return _recompute_all(spark, table, features_dir, benchmark, caller, reason)

    replaced = _replaced_rows(spark, plan, benchmark)
    years_rewritten = sorted(set(_years_of(replaced)) | _years_from(old_rows, plan.replace_from))
    with atomic_directory(features_dir) as staging:
        staging.mkdir()
        carried = link_partitions(features_dir, staging, set(years_rewritten))
        for year in years_rewritten:
            rewrite_partition(features_dir, staging, year, replaced, plan.replace_from, file_schema)
        written = summarise_written(staging)
        record: dict[str, Any] = {
            "input_sha256": None,
            **caller,
            **written,
            "benchmark": benchmark,
            **provenance(spark),
            "version": next_version(previous),
            "incremental": {
                "changed_from": changed.date().isoformat(),
                "tickers": sorted(plan.replace_from),
                "recomputed_rows": replaced.num_rows,
                "input_rows": len(plan.spark_input),
                "years_rewritten": years_rewritten,
                "years_linked": carried.years,
                "files_linked": carried.linked,
                "files_copied": carried.copied,
                "seconds": round(time.perf_counter() - started, 3),
            },
        }
        atomic_write_json(staging / MANIFEST_NAME, record)
    return record


def _price_table(prices: pd.DataFrame) -> pd.DataFrame:
    """``date`` (datetime64[ns]), ``ticker``, ``close`` and ``_row``, sorted by (ticker, date)."""
    missing = [c for c in (schema.DATE, schema.TICKER, schema.CLOSE) if c not in prices.columns]
    if missing:
        raise DataError(f"prices lack columns {missing}; expected date, ticker, close")
    table = pd.DataFrame(
        {
            schema.DATE: pd.to_datetime(prices[schema.DATE]).astype("datetime64[ns]"),
            schema.TICKER: prices[schema.TICKER].astype(str),
            schema.CLOSE: prices[schema.CLOSE].astype("float64"),
        }
    )
    table = table.sort_values([schema.TICKER, schema.DATE], kind="stable", ignore_index=True)
    table[_ROW] = table.groupby(schema.TICKER, sort=False).cumcount()
    return table


def _why_not_incremental(
    previous: Mapping[str, Any] | None,
    features_dir: Path,
    benchmark: str | None,
    changed: pd.Timestamp,
) -> str | None:
    """Why the previous table cannot be extended, or None if it can."""
    if not features_dir.is_dir():
        return f"there is no previous table at {features_dir}"
    if previous is None:
        return f"{features_dir} has no readable {MANIFEST_NAME}"
    current = feature_code_version()
    if previous.get("feature_code_version") != current:
        return (
            f"the table was built by feature code {previous.get('feature_code_version')!r}, "
            f"the code is now {current!r}"
        )
    if previous.get("benchmark") != benchmark:
        return f"the table's benchmark is {previous.get('benchmark')!r}, not {benchmark!r}"
    start = previous.get("start_date")
    if not isinstance(start, str) or changed < pd.Timestamp(start):
        return f"changed_from {changed.date()} is before the table's start_date {start}"
    if not any(features_dir.glob("year=*/*.parquet")):
        return f"{features_dir} holds no year partition"
    return None


def _plan(table: pd.DataFrame, changed: pd.Timestamp, benchmark: str | None) -> _Plan:
    """The stocks' first replaced dates and the price slice that recomputes them."""
    stocks = table if benchmark is None else table[table[schema.TICKER] != benchmark]
    first_changed = stocks[stocks[schema.DATE] >= changed].groupby(schema.TICKER)[_ROW].min()
    if first_changed.empty:
        return _Plan(replace_from={}, spark_input=table.iloc[:0])
    date_at = table.set_index([schema.TICKER, _ROW])[schema.DATE]

    def dates(rows: pd.Series) -> dict[str, pd.Timestamp]:
        """Per ticker, the date of its row at the given position."""
        return {
            str(ticker): pd.Timestamp(date_at.loc[(str(ticker), int(row))])
            for ticker, row in rows.items()
        }

    replace_from = dates((first_changed - FORWARD_ROWS).clip(lower=0))
    start = min(dates((first_changed - FORWARD_ROWS - LOOKBACK_ROWS).clip(lower=0)).values())
    # Every ticker's rows from one row before the start: its first return there is right.
    first_kept = table[table[schema.DATE] >= start].groupby(schema.TICKER)[_ROW].min() - 1
    kept = table[_ROW] >= table[schema.TICKER].map(first_kept.clip(lower=0))
    return _Plan(
        replace_from={ticker: day.date() for ticker, day in replace_from.items()},
        spark_input=table[kept],
    )


def _inconsistency(
    table: pd.DataFrame,
    stored: pd.DataFrame,
    changed: pd.Timestamp,
    benchmark: str | None,
    plan: _Plan,
    file_schema: pa.Schema,
) -> str | None:
    """Why the stored table is not the one ``table`` minus its changes, or None if it is."""
    if tuple(file_schema.names) != FILE_COLUMNS:
        return f"the stored files hold columns {file_schema.names}, not {list(FILE_COLUMNS)}"
    stocks = table if benchmark is None else table[table[schema.TICKER] != benchmark]
    before = stocks[stocks[schema.DATE] < changed]
    stored_before = stored[stored[schema.DATE] < changed]
    same = len(before) == len(stored_before) and all(
        (before[column].to_numpy() == stored_before[column].to_numpy()).all()
        for column in (schema.TICKER, schema.DATE, schema.CLOSE)
    )
    if not same:
        return (
            f"the stocks' prices dated before changed_from {changed.date()} are not those "
            "the table was built from"
        )
    later = stored.loc[stored[schema.DATE] >= changed, schema.TICKER]
    if gone := sorted(set(later) - set(plan.replace_from)):
        return f"rows dated on or after {changed.date()} are gone from the prices of {gone}"
    if plan.replace_from and benchmark not in (None, *plan.spark_input[schema.TICKER].unique()):
        return f"the benchmark {benchmark!r} has no price on the dates the update reads"
    return None


def _replaced_rows(spark: SparkSession, plan: _Plan, benchmark: str | None) -> pa.Table:
    """Features of the slice, only the rows from each stock's first replaced date."""
    import pyarrow as pa

    if not plan.replace_from:
        return pa.table({column: [] for column in OUTPUT_COLUMNS})
    slice_ = plan.spark_input
    spark_prices = spark.createDataFrame(
        pd.DataFrame(
            {
                schema.DATE: slice_[schema.DATE].dt.date,
                schema.TICKER: slice_[schema.TICKER],
                schema.CLOSE: slice_[schema.CLOSE],
            }
        ),
        _PRICE_SCHEMA,
    )
    computed: pa.Table = compute_features(spark_prices, benchmark).toArrow()
    return rows_split_at(computed, plan.replace_from, keep="from").select(list(OUTPUT_COLUMNS))


def _years_of(rows: pa.Table) -> list[int]:
    import pyarrow.compute as pc

    return [int(year) for year in pc.unique(rows[schema.YEAR]).to_pylist()]


def _years_from(stored: pd.DataFrame, replace_from: Mapping[str, dt.date]) -> set[int]:
    """Years of stored rows on or after their ticker's cut: rows the update removes."""
    cut = stored[schema.TICKER].map({t: pd.Timestamp(d) for t, d in replace_from.items()})
    return {int(year) for year in stored.loc[stored[schema.DATE] >= cut, schema.YEAR].unique()}


def _recompute_all(
    spark: SparkSession,
    table: pd.DataFrame,
    features_dir: Path,
    benchmark: str | None,
    caller: Mapping[str, Any],
    reason: str,
) -> dict[str, Any]:
    """The whole feature job on ``table``, recorded with ``incremental: null`` and why."""
    spark_prices = spark.createDataFrame(
        pd.DataFrame(
            {
                schema.DATE: table[schema.DATE].dt.date,
                schema.TICKER: table[schema.TICKER],
                schema.CLOSE: table[schema.CLOSE],
            }
        ),
        _PRICE_SCHEMA,
    )
    facts = {
        **caller,
        "benchmark": benchmark,
        "incremental": None,
        "full_recompute_reason": reason,
    }
    return write_features(compute_features(spark_prices, benchmark), features_dir, facts)
