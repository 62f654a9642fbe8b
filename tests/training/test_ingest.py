"""Ingest: the embedded data set, users' long and wide files, quarantine and quality."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from training.config import IngestConfig
from training.errors import DataError
from training.ingest import run_ingest
from training.quality import data_quality_report
from training.sources import read_embedded, read_price_file
from training.validation import validate_prices

CONFIG = IngestConfig(min_history_days=3)


@pytest.fixture(scope="module")
def embedded_ingest(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("raw")
    return run_ingest(out, IngestConfig())


def test_embedded_data_set_is_read_whole(embedded_ingest) -> None:
    manifest = embedded_ingest.manifest
    assert manifest["source"] == "embedded"
    assert manifest["benchmark"] == "SP500"
    assert manifest["date_range"] == ["1990-01-02", "2022-12-28"]
    assert len(manifest["tickers"]) == 21  # 20 stocks and the index
    assert {"AAPL", "AMD", "BAC", "XOM", "SP500"} <= set(manifest["tickers"])
    assert manifest["rows"] == 21 * 8313
    assert manifest["quarantined_rows"] == 0
    assert all(len(item["sha256"]) == 64 for item in manifest["inputs"])
    table = pq.read_table(embedded_ingest.output_dir / "prices.parquet")
    assert table.num_rows == manifest["rows"]
    assert str(table.schema.field("date").type) == "date32[day]"


def test_embedded_faults_are_reported_not_dropped(embedded_ingest) -> None:
    quality = json.loads((embedded_ingest.output_dir / "quality.json").read_text())
    stale = [s for s in quality["stale_stretches"] if s["ticker"] == "RRC"]
    # RRC's early-1990s closes sit unchanged for weeks at a time.
    assert max(s["days"] for s in stale) >= 50
    jumps = {(j["ticker"], j["date"]) for j in quality["jumps"]}
    assert ("AAPL", "2000-09-29") in jumps  # -52% in a day: real, but flagged for review
    assert ("RRC", "1990-04-10") in jumps


def _write_long(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    text = "date,ticker,close\n" + "\n".join(",".join(r) for r in rows) + "\n"
    path.write_text(text)
    return path


def test_every_bad_row_is_quarantined_with_its_reason(tmp_path: Path) -> None:
    good = [(f"2024-01-0{d}", "AAA", f"{10 + d}") for d in range(1, 6)]
    bad = [
        ("2024-13-45", "AAA", "11"),  # unparseable date
        ("2024-01-06", "AAA", "-3"),  # non-positive
        ("2024-01-07", "AAA", "inf"),  # non-finite
        ("2024-01-08", "AAA", "abc"),  # not a number
        ("2024-01-08", "", "12"),  # missing ticker
        ("2024-01-01", "AAA", "11"),  # identical duplicate of a kept row
        ("2024-01-02", "BBB", "5"),  # BBB: conflicting duplicates...
        ("2024-01-02", "BBB", "6"),
        ("2024-01-03", "CCC", "7"),  # too little history
    ]
    source = _write_long(tmp_path / "prices.csv", good + bad)
    report = run_ingest(tmp_path / "out", CONFIG, source=source)

    quarantine = pd.read_csv(tmp_path / "out" / "quarantine.csv", dtype=str)
    assert report.manifest["rows"] == 5
    assert report.manifest["quarantined_rows"] == len(bad) == len(quarantine)
    reasons = quarantine["reason"].tolist()
    assert reasons[0].startswith("unparseable date: 2024-13-45")
    assert reasons[1] == "non-positive close: -3"
    assert reasons[2] == "non-finite close: inf"
    assert reasons[3] == "close is not a number: abc"
    assert reasons[4] == "missing ticker"
    assert reasons[5].startswith("duplicate (date, ticker): (2024-01-01, AAA)")
    assert reasons[6].startswith("conflicting duplicates: (2024-01-02, BBB) has closes 5, 6")
    assert reasons[7] == reasons[6]
    assert reasons[8].startswith("too little history: CCC has 1 valid rows")
    # The raw text survives, and each row points back at its line in the file.
    assert quarantine["close"].tolist()[:4] == ["11", "-3", "inf", "abc"]
    assert quarantine["source_row"].astype(int).tolist() == list(range(6, 6 + len(bad)))
    # Kept + quarantined accounts for every input row.
    assert report.manifest["rows"] + report.manifest["quarantined_rows"] == len(good) + len(bad)


def test_wide_and_long_files_ingest_alike(tmp_path: Path) -> None:
    dates = pd.bdate_range("2024-01-01", periods=6).strftime("%Y-%m-%d")
    wide = pd.DataFrame({"Date": dates, "AAA": np.arange(1.0, 7.0), "BBB": np.arange(2.0, 8.0)})
    wide.loc[0, "BBB"] = np.nan  # not listed yet: no observation, not a bad row
    wide_path = tmp_path / "wide.parquet"
    wide.to_parquet(wide_path)
    long = wide.melt(id_vars="Date", var_name="Ticker", value_name="Close").dropna()
    long_path = tmp_path / "long.csv"
    long.to_csv(long_path, index=False)

    from_wide = run_ingest(tmp_path / "w", CONFIG, source=wide_path)
    from_long = run_ingest(tmp_path / "l", CONFIG, source=long_path)
    assert from_wide.manifest["rows"] == from_long.manifest["rows"] == 11
    assert from_wide.manifest["empty_wide_cells"] == 1
    assert from_wide.manifest["benchmark"] is None
    a = pd.read_parquet(tmp_path / "w" / "prices.parquet")
    b = pd.read_parquet(tmp_path / "l" / "prices.parquet")
    pd.testing.assert_frame_equal(a, b)


def test_unusable_inputs_raise_data_errors_that_say_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no price file"):
        read_price_file(tmp_path / "missing.csv")
    no_date = tmp_path / "no_date.csv"
    no_date.write_text("day,AAA\n2024-01-01,1\n")
    with pytest.raises(DataError, match="no 'date' column"):
        read_price_file(no_date)
    half_long = tmp_path / "half.csv"
    half_long.write_text("date,ticker,price\n2024-01-01,AAA,1\n")
    with pytest.raises(DataError, match="lacks a 'ticker' or 'close'"):
        read_price_file(half_long)
    all_bad = _write_long(tmp_path / "bad.csv", [("x", "AAA", "1"), ("2024-01-01", "AAA", "0")])
    with pytest.raises(DataError, match="no valid rows left"):
        run_ingest(tmp_path / "out", CONFIG, source=all_bad)
    source = _write_long(tmp_path / "ok.csv", [(f"2024-01-0{d}", "AAA", "1") for d in range(1, 5)])
    with pytest.raises(DataError, match="benchmark 'SPX' is not among"):
        run_ingest(tmp_path / "out", CONFIG, source=source, benchmark="SPX")


def test_failed_ingest_leaves_previous_outputs_untouched(tmp_path: Path) -> None:
    source = _write_long(
        tmp_path / "ok.csv", [(f"2024-01-0{d}", "AAA", str(d)) for d in range(1, 5)]
    )
    run_ingest(tmp_path / "out", CONFIG, source=source)
    before = (tmp_path / "out" / "prices.parquet").read_bytes()
    broken = _write_long(tmp_path / "broken.csv", [("nope", "AAA", "1")])
    with pytest.raises(DataError):
        run_ingest(tmp_path / "out", CONFIG, source=broken)
    assert (tmp_path / "out" / "prices.parquet").read_bytes() == before
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


def test_quality_report_finds_stale_runs_and_jumps() -> None:
    dates = pd.bdate_range("2020-01-01", periods=120)
    rng = np.random.default_rng(0)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(dates))))
    closes[30:37] = closes[30]  # 7 identical closes
    closes[80:] *= 2.0  # a one-day doubling that never reverses
    clean = pd.DataFrame({"date": dates, "ticker": "AAA", "close": closes})
    report = data_quality_report(clean, IngestConfig())
    assert report["stale_stretches"] == [
        {
            "ticker": "AAA",
            "start": dates[30].date().isoformat(),
            "end": dates[36].date().isoformat(),
            "days": 7,
            "close": float(closes[30]),
        }
    ]
    assert len(report["jumps"]) == 1
    jump = report["jumps"][0]
    assert jump["date"] == dates[80].date().isoformat()
    assert jump["log_return"] == pytest.approx(np.log(closes[80] / closes[79]), abs=1e-6)
    assert jump["sigma_multiple"] > 8
    assert jump["reversed_next_day"] is False


def test_validation_keeps_clean_rows_typed_and_sorted() -> None:
    raw = read_embedded().rows
    sample = raw[raw["ticker"].isin(["AAPL", "SP500"])].iloc[::-1].head(2000)
    result = validate_prices(sample, min_history_days=10)
    assert result.quarantine.empty
    clean = result.clean
    assert clean["date"].dtype.kind == "M"
    assert clean["close"].dtype == np.float64
    assert clean.equals(clean.sort_values(["ticker", "date"]).reset_index(drop=True))
