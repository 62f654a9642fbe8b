"""The landing folder through Spark Structured Streaming, in this process's Spark session.

Real embedded bars land as files; the price table, the quarantine and the feature table
are checked against what ``quantserve ingest`` and a full feature job would make.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.stream.conftest import (
    assert_features_match_a_full_run,
    land,
    new_days,
    stream_available,
)
from training.stream import QUARANTINE_DIR, PriceStore


def quarantined(data: Path) -> pd.DataFrame:
    files = sorted((data / "raw" / QUARANTINE_DIR).glob("*.csv"))
    if not files:
        return pd.DataFrame(columns=["source", "source_row", "date", "ticker", "close", "reason"])
    return pd.concat([pd.read_csv(f, dtype=str) for f in files], ignore_index=True)


def test_landed_days_are_stored_and_their_features_published(
    spark, data_dir: Path, tmp_path: Path
) -> None:
    days = new_days()[:3]
    for day, bars in days:
        land(data_dir / "landing", f"bars-{day}.csv", bars)
    before, _ = PriceStore(data_dir / "raw").read()

    reports = stream_available(spark, data_dir)

    prices, state = PriceStore(data_dir / "raw").read()
    assert len(prices) == len(before) + sum(len(bars) for _, bars in days)
    assert prices["date"].max() == pd.Timestamp(days[-1][0])
    assert sum(r.stored for r in reports) == state.bars_stored == 18
    manifest = json.loads((data_dir / "features" / "_manifest.json").read_text())
    assert manifest["end_date"] == days[-1][0]
    assert manifest["stream_batch_id"] == state.batch_id
    assert manifest["last_bar_arrived_at"] == state.last_bar_arrived_at
    assert manifest["incremental"]["changed_from"] == days[0][0]
    assert quarantined(data_dir).empty
    assert_features_match_a_full_run(spark, data_dir, tmp_path)


def test_bad_duplicate_conflicting_late_and_unknown_bars_are_quarantined_with_reasons(
    spark, data_dir: Path, tmp_path: Path
) -> None:
    (day1, bars1), (day2, bars2) = new_days()[:2]
    land(data_dir / "landing", f"bars-{day1}.csv", bars1)
    stream_available(spark, data_dir)
    stored_close = float(bars1.loc[bars1["ticker"] == "AAPL", "close"].iloc[0])
    # Day 2, out of order, with one of every fault.
    faulty = pd.concat(
        [
            bars2.iloc[::-1],
            pd.DataFrame(
                {
                    "date": [day1, day1, "2018-01-06", day2, "2018-13-01", day2, "2099-01-02"],
                    "ticker": ["AAPL", "JNJ", "XOM", "TSLA", "AAPL", "", "JPM"],
                    "close": [
                        str(stored_close),  # identical to a stored bar
                        "1.0",  # conflicts with the stored JNJ bar
                        "70.0",  # a Saturday, long before XOM's latest bar
                        "300.0",  # a ticker with no history
                        "10.0",  # not a date
                        "10.0",  # no ticker
                        "10.0",  # in the future
                    ],
                }
            ),
        ],
        ignore_index=True,
    )
    land(data_dir / "landing", f"bars-{day2}.csv", faulty)
    land(data_dir / "landing", "broken.parquet", pd.DataFrame({"x": [1]}))  # not Parquet...
    (data_dir / "landing" / "broken.parquet").write_bytes(b"not parquet at all")

    reports = stream_available(spark, data_dir)

    prices, _ = PriceStore(data_dir / "raw").read()
    assert prices["date"].max() == pd.Timestamp(day2)
    assert (prices["date"] == pd.Timestamp(day2)).sum() == len(bars2)  # all good bars stored
    jnj = prices[(prices["ticker"] == "JNJ") & (prices["date"] == pd.Timestamp(day1))]
    assert jnj["close"].tolist() == [float(bars1.loc[bars1["ticker"] == "JNJ", "close"].iloc[0])]
    reasons = quarantined(data_dir)["reason"].str.split(":").str[0].value_counts().to_dict()
    assert reasons == {
        "duplicate": 1,
        "conflict": 1,
        "late": 1,
        "unknown ticker": 1,
        "unparseable date": 1,
        "missing ticker": 1,
        "future date": 1,
        "unreadable file": 1,
    }
    assert sum(r.stored for r in reports) == len(bars2)
    assert_features_match_a_full_run(spark, data_dir, tmp_path)


def test_a_gap_filled_within_the_late_window_is_stored_and_recomputed(
    spark, data_dir: Path, tmp_path: Path
) -> None:
    days = new_days()[:4]
    (gap_day, gap_bars) = days[1]
    for day, bars in days:
        if day != gap_day:
            land(data_dir / "landing", f"bars-{day}.csv", bars)
    stream_available(spark, data_dir)
    land(data_dir / "landing", f"bars-{gap_day}.csv", gap_bars)  # the missing day, late

    reports = stream_available(spark, data_dir, max_late_days=7)

    assert [r.stored for r in reports] == [len(gap_bars)]
    assert reports[0].changed_from is not None
    assert reports[0].changed_from.isoformat() == gap_day
    assert_features_match_a_full_run(spark, data_dir, tmp_path)


def test_a_run_with_nothing_new_changes_nothing_and_a_file_dropped_twice_is_not_stored_twice(
    spark, data_dir: Path
) -> None:
    day, bars = new_days()[0]
    land(data_dir / "landing", f"bars-{day}.csv", bars)
    stream_available(spark, data_dir)
    prices_before = (data_dir / "raw" / "prices.parquet").read_bytes()
    features_before = json.loads((data_dir / "features" / "_manifest.json").read_text())

    assert stream_available(spark, data_dir) == []  # the checkpoint knows the file
    assert (data_dir / "raw" / "prices.parquet").read_bytes() == prices_before

    land(data_dir / "landing", f"again-{day}.csv", bars)  # same bars, another name
    [report] = stream_available(spark, data_dir)
    assert report.stored == 0
    assert report.quarantined == {"duplicate": len(bars)}
    assert report.features_version is None
    prices, _ = PriceStore(data_dir / "raw").read()
    assert prices.duplicated(["date", "ticker"]).sum() == 0
    features_after = json.loads((data_dir / "features" / "_manifest.json").read_text())
    assert features_after["version"] == features_before["version"]


def test_streaming_needs_an_ingested_price_table(spark, tmp_path: Path) -> None:
    from training.errors import ArtifactNotFound

    with pytest.raises(ArtifactNotFound, match="quantserve ingest"):
        stream_available(spark, tmp_path / "empty")
