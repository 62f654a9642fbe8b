"""Malformed price files through ``run_ingest``: never a traceback, every bad row quarantined.

Hypothesis writes long CSV files: a few good rows per ticker, then bad rows of every
kind (bad dates, non-numeric, negative, zero, non-finite and huge closes, missing
tickers and cells, duplicates that agree and that conflict, bad volumes), shuffled in.
``run_ingest`` must return a report or raise ``DataError`` for a whole-file problem
(no valid row left, a missing column); nothing else may escape. When it returns, the
rows in equal the rows kept plus the rows quarantined, each bad row is in the
quarantine with a reason, and each kept row is a good one.

Found: a file mixing UTC offsets ("2020-01-06T00:00:00+05:00" beside naive dates) ended
in ``AttributeError: Can only use .dt accessor``, and "now" and "today" were kept as
dates (``training.validation._parse_dates``).
"""

from __future__ import annotations

import csv
import io
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training.config import IngestConfig
from training.errors import DataError
from training.ingest import QUARANTINE_FILE, run_ingest

TICKERS = ["AAA", "BBB", "CCC"]
DATES = [d.date().isoformat() for d in pd.bdate_range("2020-01-01", periods=40)]
GOOD_DAYS = 6  # good rows per ticker: over min_history_days, so none is short of history
CONFIG = IngestConfig(min_history_days=3)


@dataclass(frozen=True)
class Row:
    date: str | None
    ticker: str | None
    close: str | None
    volume: str | None
    bad: bool
    """Quarantined whatever else the file holds (a conflicting duplicate also takes its
    good twin along, so good rows may be quarantined too)."""
    copy: bool = False
    """An identical copy of a good row: one of the two is quarantined, whichever is later."""


def _good(ticker: str, day: int) -> Row:
    return Row(DATES[day], ticker, f"{100 + day + TICKERS.index(ticker)}.5", None, bad=False)


GOOD_ROWS = [_good(t, d) for t in TICKERS for d in range(GOOD_DAYS)]

_letters = st.text(alphabet="abcdfghijklmopqrsuvwxyz!?#~", min_size=1, max_size=12)
"""Text that spells no number and no date (no 'e', 'n', 't': not nan, inf, now, today)."""
bad_dates = st.one_of(
    st.sampled_from(
        [
            "",
            "2020-13-01",
            "2020-02-30",
            "2020-01-01Z",
            "01/02/2020",
            "20200102",
            "2020-W02",
            "0001-01-01",
            "9999-12-31",
            "now",
            "today",
            "2020-01-01T25:00",
            "١٢٠٢-٠١-٠٢",  # noqa: RUF001 - Arabic-Indic digits
        ]
    ),
    _letters,
    st.builds(lambda m, d: f"2020-{m:02d}-{d:02d}", st.integers(13, 99), st.integers(0, 99)),
)
bad_closes = st.one_of(
    st.sampled_from(
        ["", "nan", "NaN", "inf", "-inf", "1e400", "9" * 400, "-1", "0", "-0.0", "1,5", "0x10"]
    ),
    _letters,
    st.floats(max_value=0.0, allow_nan=False, allow_infinity=False).map(repr),
)
bad_volumes = st.one_of(st.sampled_from(["-1", "abc", "nan?", "1,000"]), _letters)
zoned_dates = st.builds(
    lambda day, hour, offset: f"{DATES[day]}T{hour:02d}:00:00{offset}",
    st.integers(GOOD_DAYS, len(DATES) - 1),
    st.integers(0, 23),
    st.sampled_from(["+05:00", "-0800", "Z", "+00:00"]),
)
"""Good dates with a UTC offset: kept, on the date as written (days after the good rows)."""


@st.composite
def bad_rows(draw: st.DrawFn) -> Row:
    ticker = draw(st.sampled_from(TICKERS))
    day = draw(st.integers(GOOD_DAYS, len(DATES) - 1))  # never a good row's (date, ticker)
    date, close = DATES[day], "50.5"
    kind = draw(st.sampled_from(["date", "close", "ticker", "volume", "cells"]))
    if kind == "date":
        return Row(draw(bad_dates), ticker, close, None, bad=True)
    if kind == "close":
        return Row(date, ticker, draw(bad_closes), None, bad=True)
    if kind == "ticker":
        return Row(date, draw(st.sampled_from([None, "", "   "])), close, None, bad=True)
    if kind == "volume":
        return Row(date, ticker, close, draw(bad_volumes), bad=True)
    cells = draw(st.sampled_from(["date", "close", "both"]))
    return Row(
        None if cells in ("date", "both") else date,
        ticker,
        None if cells in ("close", "both") else close,
        None,
        bad=True,
    )


@st.composite
def duplicates(draw: st.DrawFn) -> Row:
    twin = draw(st.sampled_from(GOOD_ROWS))
    if draw(st.booleans()):
        return Row(twin.date, twin.ticker, twin.close, None, bad=True, copy=True)
    return Row(twin.date, twin.ticker, "1.25", None, bad=True)  # a conflicting one


@st.composite
def price_files(draw: st.DrawFn) -> list[Row]:
    extra = draw(
        st.lists(
            st.one_of(
                bad_rows(),
                duplicates(),
                st.builds(
                    lambda t, d: Row(d, t, "70.5", None, bad=False),
                    st.sampled_from(TICKERS),
                    zoned_dates,
                ),
            ),
            max_size=25,
        )
    )
    rows = GOOD_ROWS + extra
    return draw(st.permutations(rows))


def _write(rows: list[Row], path: Path, with_volume: bool) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["date", "ticker", "close"] + (["volume"] if with_volume else [])
    writer.writerow(header)
    for row in rows:
        cells = [row.date, row.ticker, row.close] + ([row.volume] if with_volume else [])
        writer.writerow(["" if cell is None else cell for cell in cells])
    path.write_text(buffer.getvalue(), encoding="utf-8")


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(rows=price_files(), with_volume=st.booleans())
def test_every_bad_row_is_quarantined_with_its_reason(rows: list[Row], with_volume: bool) -> None:
    if not with_volume:  # a bad volume needs the column
        rows = [r for r in rows if r.volume is None]
    folder = Path(tempfile.mkdtemp(prefix="ingest-fuzz-"))
    try:
        source = folder / "prices.csv"
        _write(rows, source, with_volume)
        report = run_ingest(folder / "out", CONFIG, source=source)
        quarantine = pd.read_csv(
            folder / "out" / QUARANTINE_FILE, dtype="string", keep_default_na=False
        )
    finally:
        shutil.rmtree(folder)

    manifest = report.manifest
    assert manifest["rows"] + manifest["quarantined_rows"] == len(rows)
    assert len(quarantine) == manifest["quarantined_rows"]
    assert (quarantine["reason"].str.len() > 0).all()
    quarantined = {int(n) for n in quarantine["source_row"]}
    copies = set(zip(quarantine["date"], quarantine["ticker"], quarantine["close"], strict=True))
    for line, row in enumerate(rows, start=1):  # source_row: 1-based, header excluded
        if row.copy:
            assert (row.date, row.ticker, row.close) in copies, row
        elif row.bad:
            assert line in quarantined, (row, quarantine.to_dict("records"))
    good_kept = manifest["rows"]
    assert good_kept <= sum(not row.bad for row in rows)
    assert sum(manifest["quarantine_reasons"].values()) == manifest["quarantined_rows"]


@settings(max_examples=50, deadline=None)
@given(rows=st.lists(bad_rows(), min_size=1, max_size=10))
def test_a_file_of_bad_rows_only_is_a_data_error(rows: list[Row]) -> None:
    folder = Path(tempfile.mkdtemp(prefix="ingest-fuzz-"))
    try:
        source = folder / "prices.csv"
        _write(rows, source, with_volume=True)
        with pytest.raises(DataError, match="no valid rows left after validation"):
            run_ingest(folder / "out", CONFIG, source=source)
    finally:
        shutil.rmtree(folder)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "cannot read"),
        ("date,ticker\n2020-01-01,AAA\n", "lacks a 'ticker' or 'close' column"),
        ("day,ticker,close\n2020-01-01,AAA,1\n", "no 'date' column"),
        ("date,ticker,close\n", "holds no price rows"),
        (
            "date,ticker,close\n2020-01-01,AAA,1\n2020-01-02,AAA,1,extra,cells\n",
            "Expected 3 fields in line 3, saw 5",
        ),
        ('date,ticker,close\n"2020-01-01,AAA,1\n', "cannot read"),
    ],
    ids=["empty", "no-close", "no-date", "header-only", "extra-cells", "open-quote"],
)
def test_whole_file_problems_are_data_errors(tmp_path: Path, text: str, message: str) -> None:
    source = tmp_path / "prices.csv"
    source.write_text(text)
    with pytest.raises(DataError, match=message):
        run_ingest(tmp_path / "out", CONFIG, source=source)


def test_dates_with_a_utc_offset_keep_the_date_as_written(tmp_path: Path) -> None:
    rows = [*GOOD_ROWS, Row(f"{DATES[10]}T23:30:00-05:00", "AAA", "70.5", None, bad=False)]
    rows.append(Row(f"{DATES[11]}T01:00:00+09:00", "AAA", "71.5", None, bad=False))
    rows.append(Row("now", "AAA", "72.5", None, bad=True))
    _write(rows, tmp_path / "prices.csv", with_volume=False)
    report = run_ingest(tmp_path / "out", CONFIG, source=tmp_path / "prices.csv")
    assert report.manifest["date_range"] == [DATES[0], DATES[11]]
    assert report.quarantine_reasons == {"unparseable date": 1}
    assert report.manifest["rows"] == len(GOOD_ROWS) + 2
