"""Tests for ``training.incremental_features``: an update equals a full recomputation.

The prices are the embedded S&P 500 data, validated as ``quantserve ingest`` does, cut at
a date; the update then adds the next bars. Every scenario compares the updated table
with one the full job writes from the same prices, value for value: Spark aggregates a
bounded row frame afresh for each row, so the slice the update computes on must give
the same bits as the whole history.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import training.feature_table as feature_table_module
from training.feature_table import MANIFEST_NAME, load_features
from training.features import compute_features, feature_code_version, write_features
from training.incremental_features import FORWARD_ROWS, update_features
from training.schema import FEATURE_COLUMNS, TARGET_COLUMNS
from training.sources import EMBEDDED_BENCHMARK, read_embedded
from training.validation import validate_prices

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

STOCKS = ("AAPL", "JPM", "KO", "WMT", "XOM")
FIRST_DATE = "2016-06-01"
LAST_DATE = pd.Timestamp("2019-01-04")
"""The last day of every scenario: the first Friday of 2019, so updates cross a year."""
CALLER_FACTS = {"input_sha256": "ab" * 32, "last_bar_arrived_at": "2019-01-04T21:00:02+00:00"}


# --- prices and tables ----------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded_prices() -> pd.DataFrame:
    """All 20 stocks and the index, 1990-2022, as validation leaves them."""
    clean: pd.DataFrame = validate_prices(read_embedded().rows, min_history_days=300).clean
    return clean


@pytest.fixture(scope="module")
def prices(embedded_prices: pd.DataFrame) -> pd.DataFrame:
    """Five stocks and the index from mid-2016 to ``LAST_DATE``."""
    kept = embedded_prices["ticker"].isin([*STOCKS, EMBEDDED_BENCHMARK]) & embedded_prices[
        "date"
    ].between(FIRST_DATE, LAST_DATE)
    return embedded_prices[kept].reset_index(drop=True)


def _full_job(
    spark: SparkSession, prices: pd.DataFrame, output: Path, benchmark: str | None
) -> dict[str, Any]:
    """What ``quantserve features`` does, on prices in memory."""
    frame = spark.createDataFrame(
        prices.assign(date=prices["date"].dt.date)[["date", "ticker", "close"]],
        "date date, ticker string, close double",
    )
    return write_features(compute_features(frame, benchmark), output, {"benchmark": benchmark})


def _without(prices: pd.DataFrame, ticker: str, date: pd.Timestamp) -> pd.DataFrame:
    return prices[~((prices["ticker"] == ticker) & (prices["date"] == date))]


def _trading_days(prices: pd.DataFrame) -> list[pd.Timestamp]:
    return sorted(pd.Timestamp(day) for day in prices["date"].unique())


@dataclass(frozen=True)
class Scenario:
    """A table built from ``before``; then ``after`` arrives, changed from ``changed_from``."""

    before: pd.DataFrame
    after: pd.DataFrame
    changed_from: dt.date
    benchmark: str | None


def _scenario(name: str, prices: pd.DataFrame) -> Scenario:
    days = _trading_days(prices)
    if name == "one-day":
        return Scenario(prices[prices["date"] < LAST_DATE], prices, LAST_DATE.date(), "SP500")
    if name == "several-days":
        first_new = days[-6]  # 2018-12-27: four days of 2018, two of 2019
        return Scenario(prices[prices["date"] < first_new], prices, first_new.date(), "SP500")
    if name == "late-bar":
        late = days[-10]  # JPM's bar of that day arrives after the next nine
        return Scenario(_without(prices, "JPM", late), prices, late.date(), "SP500")
    if name == "late-benchmark-bar":
        late = days[-15]  # the stocks' betas change, none of their own bars does
        return Scenario(_without(prices, "SP500", late), prices, late.date(), "SP500")
    if name == "no-benchmark":
        # The index as a sixth stock; JPM and KO listed late: the slice's tickers have
        # even histories, the whole table's do not (see test_features for why it matters).
        listed_late = ((prices["ticker"] == "JPM") & (prices["date"] < "2017-01-01")) | (
            (prices["ticker"] == "KO") & (prices["date"] < "2018-03-01")
        )
        stocks = prices[~listed_late]
        return Scenario(stocks[stocks["date"] < LAST_DATE], stocks, LAST_DATE.date(), None)
    if name == "one-ticker-missing":
        after = _without(prices, "XOM", LAST_DATE)
        return Scenario(prices[prices["date"] < LAST_DATE], after, LAST_DATE.date(), "SP500")
    raise ValueError(name)


SCENARIOS = [
    "one-day",
    "several-days",
    "late-bar",
    "late-benchmark-bar",
    "no-benchmark",
    "one-ticker-missing",
]


References = dict[tuple[int, str | None], tuple[pd.DataFrame, dict[str, Any]]]


@pytest.fixture(scope="module")
def references() -> References:
    """Full recomputations, shared by the tests that end with the same prices."""
    return {}


def _reference(
    spark: SparkSession,
    cache: References,
    prices: pd.DataFrame,
    benchmark: str | None,
    folder: Path,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table and manifest the full job writes from ``prices``."""
    key = (int(pd.util.hash_pandas_object(prices, index=False).sum()), benchmark)
    if key not in cache:
        output = folder / f"reference-{len(cache)}"
        manifest = _full_job(spark, prices, output, benchmark)
        cache[key] = (load_features(output), manifest)
    return cache[key]


def _replaced(scenario: Scenario) -> tuple[list[str], int]:
    """Stocks with a row on or after ``changed_from``; their rows from ``FORWARD_ROWS``
    before the first such row to the last, summed."""
    tickers, total = [], 0
    for ticker, rows in scenario.after.sort_values("date").groupby("ticker"):
        if ticker == scenario.benchmark:
            continue
        changed = np.flatnonzero(rows["date"].to_numpy() >= np.datetime64(scenario.changed_from))
        if len(changed):
            tickers.append(str(ticker))
            total += len(rows) - max(0, int(changed[0]) - FORWARD_ROWS)
    return tickers, total


def _files(folder: Path) -> dict[str, tuple[int, str]]:
    """Inode and SHA-256 of every file under ``folder``, by relative path."""
    return {
        path.relative_to(folder).as_posix(): (
            path.stat().st_ino,
            hashlib.sha256(path.read_bytes()).hexdigest(),
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


# --- an update equals a full recomputation -----------------------------------------------


@pytest.mark.parametrize("name", SCENARIOS)
def test_update_equals_full_recomputation(
    spark: SparkSession,
    tmp_path: Path,
    prices: pd.DataFrame,
    references: References,
    name: str,
) -> None:
    scenario = _scenario(name, prices)
    table = tmp_path / "features"
    first = _full_job(spark, scenario.before, table, scenario.benchmark)
    before = load_features(table)
    old_files = _files(table)

    manifest = update_features(
        spark, scenario.after, scenario.changed_from, table, scenario.benchmark, CALLER_FACTS
    )

    updated = load_features(table)
    wanted, _ = _reference(spark, references, scenario.after, scenario.benchmark, tmp_path)
    pd.testing.assert_frame_equal(updated, wanted, check_exact=True)
    # Teeth: the update did change the table, and the compared rows hold values.
    assert not before.equals(updated)
    assert updated[list(FEATURE_COLUMNS)].iloc[-1:].notna().all(axis=None)

    incremental = manifest["incremental"]
    assert incremental is not None, manifest.get("full_recompute_reason")
    assert incremental["changed_from"] == scenario.changed_from.isoformat()
    assert (incremental["tickers"], incremental["recomputed_rows"]) == _replaced(scenario)
    assert 0 < incremental["input_rows"] < len(scenario.after)
    assert manifest["version"] == first["version"] + 1 == 2
    assert manifest["rows"] == len(wanted)
    assert manifest["end_date"] == wanted["date"].max().date().isoformat()
    assert manifest["years"] == sorted(wanted["year"].unique().tolist())
    assert manifest["benchmark"] == scenario.benchmark
    assert json.loads((table / MANIFEST_NAME).read_text()) == manifest

    # Years the change does not reach are the previous files, linked, not rewritten.
    rewritten = {f"year={year}" for year in incremental["years_rewritten"]}
    untouched = {p: f for p, f in old_files.items() if p.split("/")[0].startswith("year=")}
    untouched = {p: f for p, f in untouched.items() if p.split("/")[0] not in rewritten}
    assert {p.split("/")[0] for p in untouched} == {"year=2016", "year=2017"}
    new_files = _files(table)
    assert {p: new_files.get(p) for p in untouched} == untouched
    assert incremental["files_linked"] >= len(untouched)
    assert incremental["files_copied"] == 0
    for year in rewritten:
        assert len(list((table / year).glob("*.parquet"))) == 1


def test_update_manifest_keeps_every_key_of_the_full_job(
    spark: SparkSession, tmp_path: Path, prices: pd.DataFrame, references: References
) -> None:
    scenario = _scenario("one-day", prices)
    table = tmp_path / "features"
    _, full = _reference(spark, references, scenario.after, scenario.benchmark, tmp_path)
    _full_job(spark, scenario.before, table, scenario.benchmark)
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)

    manifest = update_features(
        spark,
        scenario.after,
        scenario.changed_from,
        table,
        scenario.benchmark,
        {**CALLER_FACTS, "stream": {"batch": 7}, "rows": -1},
    )

    assert set(full) <= set(manifest)
    for key in ("rows", "tickers", "start_date", "end_date", "years", "feature_columns"):
        assert manifest[key] == full[key], key
    assert manifest["target_columns"] == list(TARGET_COLUMNS)
    assert manifest["feature_code_version"] == feature_code_version()
    assert manifest["spark_master"] == "local[2]"
    assert manifest["spark_version"] == spark.version
    assert started <= dt.datetime.fromisoformat(manifest["created_at"])
    assert manifest["input_sha256"] == CALLER_FACTS["input_sha256"]
    assert manifest["last_bar_arrived_at"] == CALLER_FACTS["last_bar_arrived_at"]
    assert manifest["stream"] == {"batch": 7}
    assert set(manifest["incremental"]) == {
        "changed_from",
        "tickers",
        "recomputed_rows",
        "input_rows",
        "years_rewritten",
        "years_linked",
        "files_linked",
        "files_copied",
        "seconds",
    }
    assert manifest["incremental"]["years_rewritten"] == [2018, 2019]
    assert manifest["incremental"]["years_linked"] == [2016, 2017]
    assert 0 < manifest["incremental"]["seconds"] < 600


def test_versions_count_every_write(
    spark: SparkSession, tmp_path: Path, prices: pd.DataFrame
) -> None:
    days = _trading_days(prices)
    table = tmp_path / "features"
    assert _full_job(spark, prices[prices["date"] < days[-2]], table, "SP500")["version"] == 1
    second = update_features(
        spark, prices[prices["date"] < days[-1]], days[-2].date(), table, "SP500"
    )
    third = update_features(spark, prices, days[-1].date(), table, "SP500")

    assert (second["version"], third["version"]) == (2, 3)
    assert second["incremental"] is not None
    assert third["incremental"] is not None
    assert json.loads((table / MANIFEST_NAME).read_text())["version"] == 3
    assert _full_job(spark, prices, table, "SP500")["version"] == 4


def test_a_table_without_a_version_counts_as_version_1(
    spark: SparkSession, tmp_path: Path, prices: pd.DataFrame
) -> None:
    scenario = _scenario("one-day", prices)
    table = tmp_path / "features"
    _full_job(spark, scenario.before, table, "SP500")
    unversioned = json.loads((table / MANIFEST_NAME).read_text())
    del unversioned["version"]
    (table / MANIFEST_NAME).write_text(json.dumps(unversioned))

    manifest = update_features(spark, scenario.after, scenario.changed_from, table, "SP500")

    assert manifest["version"] == 2
    assert manifest["incremental"] is not None


# --- when the table cannot be extended, it is recomputed -----------------------------------


def _stale_code(table: Path) -> None:
    record = json.loads((table / MANIFEST_NAME).read_text())
    record["feature_code_version"] = "000000000000"
    (table / MANIFEST_NAME).write_text(json.dumps(record))


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("no-table", "no previous table"),
        ("no-manifest", "no readable _manifest.json"),
        ("other-code", "feature code '000000000000'"),
        ("other-benchmark", "benchmark is None, not 'SP500'"),
        ("before-start", "before the table's start_date"),
        ("earlier-close-changed", "not those the table was built from"),
    ],
)
def test_full_recomputation_when_the_table_cannot_be_extended(
    spark: SparkSession,
    tmp_path: Path,
    prices: pd.DataFrame,
    references: References,
    case: str,
    reason: str,
) -> None:
    scenario = _scenario("one-day", prices)
    table = tmp_path / "features"
    after, changed_from = scenario.after, scenario.changed_from
    if case != "no-table":
        built_with = None if case == "other-benchmark" else "SP500"
        _full_job(spark, scenario.before, table, built_with)
    if case == "no-manifest":
        (table / MANIFEST_NAME).unlink()
    elif case == "other-code":
        _stale_code(table)
    elif case == "before-start":
        changed_from = dt.date(2016, 5, 31)
    elif case == "earlier-close-changed":
        # A correction dated a month before changed_from that the caller did not declare.
        corrected = (after["ticker"] == "KO") & (after["date"] == pd.Timestamp("2018-12-03"))
        assert corrected.sum() == 1
        after = after.assign(close=np.where(corrected, after["close"] * 1.01, after["close"]))

    manifest = update_features(spark, after, changed_from, table, "SP500", CALLER_FACTS)

    assert manifest["incremental"] is None
    assert reason in manifest["full_recompute_reason"]
    assert manifest["version"] == (1 if case in {"no-table", "no-manifest"} else 2)
    assert manifest["input_sha256"] == CALLER_FACTS["input_sha256"]
    assert json.loads((table / MANIFEST_NAME).read_text()) == manifest
    wanted, _ = _reference(spark, references, after, "SP500", tmp_path)
    pd.testing.assert_frame_equal(load_features(table), wanted, check_exact=True)


# --- a failed update leaves the previous table -----------------------------------------------


def test_a_failure_mid_write_leaves_the_previous_table(
    spark: SparkSession, tmp_path: Path, prices: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = _scenario("several-days", prices)  # rewrites 2018, then 2019
    table = tmp_path / "features"
    _full_job(spark, scenario.before, table, "SP500")
    before, files, manifest = load_features(table), _files(table), (table / MANIFEST_NAME)
    manifest_text = manifest.read_text()
    write_parquet = feature_table_module._write_parquet
    written: list[Path] = []

    def write_then_fail_on_the_second_year(rows: pa.Table, path: Path) -> None:
        write_parquet(rows, path)
        written.append(path)
        if len(written) == 2:
            raise OSError(f"injected: disk full after writing {path}")

    monkeypatch.setattr(feature_table_module, "_write_parquet", write_then_fail_on_the_second_year)
    with pytest.raises(OSError, match="injected: disk full"):
        update_features(spark, scenario.after, scenario.changed_from, table, "SP500")

    assert len(written) == 2, "the failure must come after files were written"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features"], "no staging left behind"
    assert manifest.read_text() == manifest_text
    assert _files(table) == files
    pd.testing.assert_frame_equal(load_features(table), before, check_exact=True)

    monkeypatch.undo()
    retried = update_features(spark, scenario.after, scenario.changed_from, table, "SP500")
    assert retried["version"] == 2
    assert retried["incremental"] is not None


# --- the whole embedded data: one new day, timed against the full job ------------------------


@pytest.mark.slow
def test_one_new_day_on_the_embedded_data_is_faster_than_the_full_job(
    spark: SparkSession,
    tmp_path: Path,
    embedded_prices: pd.DataFrame,
    record_property: Any,
) -> None:
    last_day = embedded_prices["date"].max()
    table = tmp_path / "features"
    _full_job(spark, embedded_prices[embedded_prices["date"] < last_day], table, "SP500")

    started = time.perf_counter()
    manifest = update_features(spark, embedded_prices, last_day.date(), table, "SP500")
    update_seconds = time.perf_counter() - started
    started = time.perf_counter()
    _full_job(spark, embedded_prices, tmp_path / "full", "SP500")
    full_seconds = time.perf_counter() - started

    record_property("update_features_seconds", round(update_seconds, 2))
    record_property("full_job_seconds", round(full_seconds, 2))
    print(f"\nupdate_features: {update_seconds:.2f} s, full job: {full_seconds:.2f} s")
    assert manifest["incremental"]["recomputed_rows"] == 20 * (1 + FORWARD_ROWS)
    assert manifest["incremental"]["years_rewritten"] == [2022]
    pd.testing.assert_frame_equal(
        load_features(table), load_features(tmp_path / "full"), check_exact=True
    )
    assert update_seconds < full_seconds
