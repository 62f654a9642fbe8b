"""The feature job: daily closes in, one row of features and targets per (date, ticker) out.

Every column is defined in :mod:`training.schema`. The job runs on Spark with built-in
column functions only (pandas UDFs are ~6x slower, Python UDFs ~9x). All windows are
partitioned by ticker and ordered by date, so "n days" means "n rows of that ticker".

Look-ahead is ruled out by construction: a feature at date ``t`` is built from ``lag``
(rows before ``t``) or from a trailing ``ROWS BETWEEN n-1 PRECEDING AND CURRENT ROW``
frame, never from an ordered window without a frame (that one is cumulative) nor from a
forward frame. Only the two targets look forward, through ``lead`` and
``ROWS BETWEEN 1 FOLLOWING AND 21 FOLLOWING``. A rolling value is null until its frame
holds ``n`` observations, counted over that same frame.

The writer swaps a whole directory in (:func:`training._io.atomic_directory`), so a
reader sees the previous features or the new ones, never a mix. :func:`load_features`
(:mod:`training.feature_table`) reads them back with pyarrow and never starts a JVM;
pyspark is imported lazily so the API server can import this module without it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from training import schema
from training._feature_columns import (
    LOG_RETURN,
    MARKET_LOG_RETURN,
    PRICE_CHANGE,
    feature_columns,
    target_columns,
)
from training._io import atomic_directory, atomic_write_json
from training.errors import ArtifactNotFound, DataError
from training.feature_table import (
    MANIFEST_NAME,
    OUTPUT_COLUMNS,
    load_features,
    next_version,
    read_manifest,
    summarise_written,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "MANIFEST_NAME",
    "OUTPUT_COLUMNS",
    "compute_features",
    "feature_code_version",
    "load_features",
    "provenance",
    "run_features_job",
    "write_features",
]


_ROWS_PER_PARTITION: Final = 20_000
"""Fewest price rows worth a partition of their own in the window stage."""


def compute_features(prices: DataFrame, benchmark: str | None) -> DataFrame:
    """Return features and targets for every (date, ticker) of a non-benchmark ticker.

    Parameters
    ----------
    prices : pyspark.sql.DataFrame
        Raw prices, long format: ``date`` (date), ``ticker`` (string), ``close``
        (adjusted close in the ticker's currency, > 0); other columns are ignored.
        One row per (date, ticker).
    benchmark : str or None
        Ticker of the market index, e.g. ``"SP500"``. Its daily log return ``r_m``
        is joined on date for ``beta_252d`` and its own rows are left out of the
        output. With ``None``, ``r_m`` is the equal-weighted average of the daily log
        returns of all tickers that have one on that date (a market proxy built from
        same-day data only, so it adds no look-ahead), summed in ticker order so that
        its bits do not depend on how Spark partitions the data.

    Returns
    -------
    pyspark.sql.DataFrame
        Lazy frame with :data:`OUTPUT_COLUMNS`: ``date``, ``ticker``, ``close``, the
        features of :data:`training.schema.FEATURE_COLUMNS` (log returns as natural
        logs, not percent; volatilities annualised with 252 days; ratios as fractions;
        RSI in 0..100), the targets of :data:`training.schema.TARGET_COLUMNS` (log
        return and variance of daily log returns, not annualised) and ``year`` (int).

    Raises
    ------
    DataError
        If a column is missing, the table is empty, a close is null, NaN or not
        positive, a (date, ticker) pair repeats, ``benchmark`` is not in the data or
        no other ticker is. Checking runs one small aggregation job.

    Notes
    -----
    RSI is Cutler's: ``100 - 100 / (1 + G / L)`` with ``G`` and ``L`` the simple
    14-row means of the close-to-close price gains and losses, and 100 when ``L == 0``
    (flat windows included). Beta is ``covar_samp(r, r_m) / var_samp(r_m)`` over 252
    rows and needs 252 rows where both returns exist, so a date missing from the
    benchmark nulls beta for the next 252 rows of every stock. A ticker's return spans
    from its previous row, so over a gap in one ticker's history it covers several
    days while ``r_m`` covers one.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as sf

    prices, rows = _validated(prices, benchmark)
    # Every window is partitioned by ticker, so the tickers are split once, into ranges
    # of about equal row counts. Hash partitioning left it to adaptive execution, which
    # merges a table this small into one partition: the window work (~30 s of CPU on the
    # embedded data, most of it beta's 252-row frames) then ran on one core.
    partitions = int(prices.sparkSession.conf.get("spark.sql.shuffle.partitions") or 8)
    # A slice of a few thousand rows (an incremental update) gains nothing from more
    # partitions but their tasks' start-up cost.
    partitions = max(1, min(partitions, -(-rows // _ROWS_PER_PARTITION)))
    prices = prices.repartitionByRange(partitions, schema.TICKER)
    by_ticker = Window.partitionBy(schema.TICKER).orderBy(schema.DATE)
    previous_close = sf.lag(schema.CLOSE, 1).over(by_ticker)
    with_returns = prices.withColumns(
        {
            LOG_RETURN: sf.ln(sf.col(schema.CLOSE) / previous_close),
            PRICE_CHANGE: sf.col(schema.CLOSE) - previous_close,
        }
    )
    if benchmark is None:
        stocks = with_returns
        market = _equal_weighted_market(with_returns)
    else:
        is_benchmark = sf.col(schema.TICKER) == sf.lit(benchmark)
        stocks = with_returns.filter(~is_benchmark)
        market = with_returns.filter(is_benchmark).select(
            schema.DATE, sf.col(LOG_RETURN).alias(MARKET_LOG_RETURN)
        )
    # One row per date: broadcast it, so the stocks keep their partitioning by ticker
    # and the feature windows below need no second shuffle.
    joined = stocks.join(sf.broadcast(market), on=schema.DATE, how="left")
    return joined.select(
        schema.DATE,
        schema.TICKER,
        schema.CLOSE,
        *feature_columns(by_ticker),
        *target_columns(by_ticker),
        sf.year(schema.DATE).alias(schema.YEAR),
    )


def write_features(
    features: DataFrame,
    output_dir: Path,
    manifest: Mapping[str, Any],
    *,
    files_per_year: int = 4,
) -> dict[str, Any]:
    """Write ``features`` as Parquet partitioned by ``year`` and swap it in atomically.

    Spark writes into a temporary sibling of ``output_dir``; ``_manifest.json`` is
    written next to the data and the directory then replaces ``output_dir`` in one
    rename. If anything fails, ``output_dir`` keeps its previous content and the
    temporary directory is removed. ``output_dir`` must be on a filesystem the driver
    and the executors share (the local disk under ``local[*]``).

    Parameters
    ----------
    features : pyspark.sql.DataFrame
        Output of :func:`compute_features` (at least :data:`OUTPUT_COLUMNS`).
    output_dir : pathlib.Path
        Final features directory, e.g. ``data/features``.
    manifest : Mapping[str, Any]
        Facts the caller knows: ``benchmark`` and ``input_sha256`` (SHA-256 of the raw
        data's manifest), plus any extra JSON-serialisable keys. Keys this function
        computes take precedence.
    files_per_year : int, default 4
        Partitions after ``coalesce``, hence the most Parquet files in one year.

    Returns
    -------
    dict[str, Any]
        The manifest as written: ``rows``, ``tickers`` (sorted), ``start_date`` and
        ``end_date`` (ISO dates), ``years``, ``feature_columns``, ``target_columns``,
        ``benchmark``, ``input_sha256``, ``spark_master``, ``spark_version``,
        ``created_at`` (UTC, ISO 8601), ``feature_code_version`` (first 12 hex
        digits of the SHA-256 of this file) and ``version`` (the replaced table's
        version plus one, see :func:`training.feature_table.next_version`), with the
        caller's other keys.

    Raises
    ------
    DataError
        If a column of :data:`OUTPUT_COLUMNS` is missing or there is no row to write.
    """
    missing = [column for column in OUTPUT_COLUMNS if column not in features.columns]
    if missing:
        raise DataError(f"features lack columns {missing}; build them with compute_features")
    if files_per_year < 1:
        raise ValueError(f"files_per_year must be >= 1, got {files_per_year}")
    spark = features.sparkSession
    ordered = features.select(*OUTPUT_COLUMNS)
    version = next_version(read_manifest(output_dir))
    with atomic_directory(output_dir) as staging:
        uri = staging.resolve().as_uri()  # file://: the swap below is a local rename
        (
            ordered.coalesce(files_per_year)
            # Sorting by year first satisfies the partitioned writer's own sort.
            .sortWithinPartitions(schema.YEAR, schema.TICKER, schema.DATE)
            .write.mode("errorifexists")
            .partitionBy(schema.YEAR)
            .parquet(uri)
        )
        written = summarise_written(staging)
        if written["rows"] == 0:
            raise DataError(f"no feature rows to write; {output_dir} is left as it was")
        record: dict[str, Any] = {
            "benchmark": None,
            "input_sha256": None,
            **manifest,
            **written,
            **provenance(spark),
            "version": version,
        }
        atomic_write_json(staging / MANIFEST_NAME, record)
    return record


def run_features_job(
    spark: SparkSession,
    raw_prices_path: Path,
    output_dir: Path,
    benchmark: str | None,
    input_manifest_sha256: str | None,
) -> dict[str, Any]:
    """Read raw prices, compute features and targets, write them; return the manifest.

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
        Session to run on (see :func:`training.spark.build_spark_session`).
    raw_prices_path : pathlib.Path
        Raw prices Parquet file or directory written by ``quantserve ingest``.
    output_dir : pathlib.Path
        Features directory to replace.
    benchmark : str or None
        Benchmark ticker, or ``None`` for the equal-weighted market proxy (see
        :func:`compute_features`).
    input_manifest_sha256 : str or None
        SHA-256 of the raw data's manifest, recorded as ``input_sha256``.

    Returns
    -------
    dict[str, Any]
        The manifest written by :func:`write_features`, with ``input_path``.

    Raises
    ------
    ArtifactNotFound
        If ``raw_prices_path`` does not exist or holds no Parquet file.
    DataError
        If the prices cannot be used (see :func:`compute_features`).
    """
    if not raw_prices_path.exists() or (
        raw_prices_path.is_dir() and not any(raw_prices_path.rglob("*.parquet"))
    ):
        raise ArtifactNotFound(f"no raw prices at {raw_prices_path}; run `quantserve ingest` first")
    prices = spark.read.parquet(raw_prices_path.resolve().as_uri())
    features = compute_features(prices, benchmark)
    caller_facts = {
        "benchmark": benchmark,
        "input_sha256": input_manifest_sha256,
        "input_path": str(raw_prices_path),
    }
    return write_features(features, output_dir, caller_facts)


FEATURE_CODE_FILES: Final[tuple[Path, ...]] = (
    Path(__file__),
    Path(__file__).with_name("_feature_columns.py"),
)
"""The files whose code decides the features: this job and the column definitions."""


def provenance(spark: SparkSession) -> dict[str, Any]:
    """What every feature manifest records about how the table was made."""
    return {
        "feature_columns": list(schema.FEATURE_COLUMNS),
        "target_columns": list(schema.TARGET_COLUMNS),
        "spark_master": spark.conf.get("spark.master", "unknown"),
        "spark_version": spark.version,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "feature_code_version": feature_code_version(),
    }


def feature_code_version(files: Sequence[Path] = FEATURE_CODE_FILES) -> str:
    """First 12 hex digits of a SHA-256 over ``files``: changes whenever their code does."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _equal_weighted_market(with_returns: DataFrame) -> DataFrame:
    """Per date, the mean of the tickers' log returns, summed in ticker order.

    ``avg`` would sum each partition's returns and then the partial sums; floating-point
    addition is not associative, so its last bits would follow the partitions'
    boundaries (set by the tickers' row counts and ``spark.sql.shuffle.partitions``),
    and a table recomputed in part would differ from one recomputed in full.
    """
    from pyspark.sql import functions as sf

    log_return = sf.col(LOG_RETURN)
    returns = sf.array_sort(
        sf.collect_list(sf.when(log_return.isNotNull(), sf.struct(schema.TICKER, LOG_RETURN)))
    ).getField(LOG_RETURN)
    total = sf.aggregate(returns, sf.lit(0.0), lambda acc, value: acc + value)
    mean = sf.when(sf.size(returns) > 0, total / sf.size(returns))
    return with_returns.groupBy(schema.DATE).agg(mean.alias(MARKET_LOG_RETURN))


def _validated(prices: DataFrame, benchmark: str | None) -> tuple[DataFrame, int]:
    """``date``, ``ticker``, ``close`` with their types, and the row count.

    Raises DataError if the prices are unusable.
    """
    from pyspark.sql import functions as sf

    missing = [c for c in (schema.DATE, schema.TICKER, schema.CLOSE) if c not in prices.columns]
    if missing:
        raise DataError(f"prices lack columns {missing}; expected date, ticker, close")
    typed = prices.select(
        sf.col(schema.DATE).cast("date").alias(schema.DATE),
        sf.col(schema.TICKER).cast("string").alias(schema.TICKER),
        sf.col(schema.CLOSE).cast("double").alias(schema.CLOSE),
    )
    close = sf.col(schema.CLOSE)
    per_ticker = (
        typed.groupBy(schema.TICKER)
        .agg(
            sf.count(sf.lit(1)).alias("rows"),
            sf.count(schema.DATE).alias("dated_rows"),
            sf.count_distinct(schema.DATE).alias("dates"),
            # Spark orders NaN above every number, so ``close > 0`` alone lets NaN in.
            sf.count(sf.when(close.isNull() | sf.isnan(close) | (close <= 0), 1)).alias(
                "bad_closes"
            ),
        )
        .collect()
    )
    if not per_ticker:
        raise DataError("the price table is empty; run `quantserve ingest` again")
    tickers = sorted(row[schema.TICKER] for row in per_ticker if row[schema.TICKER] is not None)
    problems = []
    if any(row[schema.TICKER] is None for row in per_ticker):
        problems.append("some rows have no ticker")
    if undated := [row[schema.TICKER] for row in per_ticker if row["dated_rows"] < row["rows"]]:
        problems.append(f"rows without a date for {undated}")
    if repeated := [row[schema.TICKER] for row in per_ticker if row["dates"] < row["dated_rows"]]:
        problems.append(f"repeated (date, ticker) rows for {repeated}")
    if bad := [row[schema.TICKER] for row in per_ticker if row["bad_closes"]]:
        problems.append(f"null, NaN or non-positive closes for {bad}")
    if problems:
        raise DataError("unusable prices: " + "; ".join(problems))
    if benchmark is not None and benchmark not in tickers:
        raise DataError(
            f"benchmark {benchmark!r} is not in the prices (tickers: {tickers}); name one "
            "of them, or none to use the equal-weighted average return as the market"
        )
    if tickers == [benchmark]:
        raise DataError(f"the prices hold only the benchmark {benchmark!r}; nothing to compute")
    return typed, sum(int(row["rows"]) for row in per_ticker)
