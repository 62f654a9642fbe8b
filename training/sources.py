"""Reading price files: the embedded skfolio data set, or a user's CSV or Parquet.

Every reader returns *raw* long rows, values still as the file spelled them, so that
validation can quarantine a bad row with its original text:

``source, source_row, date, ticker, close, volume`` (all strings, ``volume`` may be
empty).
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from training.errors import DataError

EMBEDDED_PRICES = "sp500_dataset.csv.gz"
EMBEDDED_INDEX = "sp500_index.csv.gz"
EMBEDDED_BENCHMARK = "SP500"
RAW_COLUMNS = ("source", "source_row", "date", "ticker", "close", "volume")


@dataclass(frozen=True)
class RawPrices:
    """Raw long rows plus what is needed to describe where they came from."""

    rows: pd.DataFrame
    source: str
    """``embedded`` for the skfolio data set, else the file's path."""
    files: tuple[Path, ...]
    benchmark: str | None
    empty_wide_cells: int
    """Empty cells of wide input: no observation (e.g. before a listing), not a bad row."""


def embedded_dataset_files() -> tuple[Path, Path]:
    """Paths of the embedded S&P 500 stock and index files inside the skfolio wheel."""
    data = importlib.resources.files("skfolio") / "datasets" / "data"
    paths = (Path(str(data / EMBEDDED_PRICES)), Path(str(data / EMBEDDED_INDEX)))
    for path in paths:
        if not path.is_file():
            raise DataError(
                f"the embedded data file {path} is missing from the installed skfolio; "
                "reinstall it with `pip install --force-reinstall skfolio==1.12.2`"
            )
    return paths


def read_embedded() -> RawPrices:
    """Daily adjusted closes of 20 S&P 500 stocks and the index, 1990-01-02..2022-12-28."""
    stocks_path, index_path = embedded_dataset_files()
    stocks = _read_table(stocks_path)
    index = _read_table(index_path)
    rows_stocks, empty_stocks = _wide_to_long(stocks, f"skfolio:{EMBEDDED_PRICES}")
    rows_index, empty_index = _wide_to_long(index, f"skfolio:{EMBEDDED_INDEX}")
    return RawPrices(
        rows=pd.concat([rows_stocks, rows_index], ignore_index=True),
        source="embedded",
        files=(stocks_path, index_path),
        benchmark=EMBEDDED_BENCHMARK,
        empty_wide_cells=empty_stocks + empty_index,
    )


def read_price_file(path: Path, benchmark: str | None = None) -> RawPrices:
    """Read a user's CSV or Parquet prices, long or wide.

    Long: columns ``date, ticker, close`` and optionally ``volume`` (any case). Wide: a
    ``date`` column and one column of closes per ticker.
    """
    if not path.is_file():
        raise DataError(f"no price file at {path}; pass the path of a CSV or Parquet file")
    table = _read_table(path)
    columns = {c.strip().lower(): c for c in table.columns}
    if "date" not in columns:
        raise DataError(
            f"{path} has no 'date' column (columns: {', '.join(map(str, table.columns))}); "
            "provide long data (date,ticker,close[,volume]) or wide data (date, one column "
            "per ticker)"
        )
    table = table.rename(
        columns={
            original: lower
            for lower, original in columns.items()
            if lower in {"date", "ticker", "close", "volume"}
        }
    )
    if {"ticker", "close"} <= set(table.columns):
        rows = _long_rows(table, str(path))
        empty = 0
    elif "ticker" in table.columns or "close" in table.columns:
        raise DataError(
            f"{path} looks like long data but lacks a 'ticker' or 'close' column; long data "
            "needs date,ticker,close[,volume]"
        )
    else:
        rows, empty = _wide_to_long(table, str(path))
    if rows.empty:
        raise DataError(f"{path} holds no price rows")
    return RawPrices(
        rows=rows, source=str(path), files=(path,), benchmark=benchmark, empty_wide_cells=empty
    )


def _read_table(path: Path) -> pd.DataFrame:
    """Read every column as text (``pd.NA`` for empty cells)."""
    suffixes = "".join(path.suffixes).lower()
    try:
        if suffixes.endswith((".parquet", ".pq")):
            return pd.read_parquet(path).astype("string")
        if ".csv" in suffixes or ".txt" in suffixes:
            return pd.read_csv(path, dtype="string", keep_default_na=False, na_values=[""])
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    raise DataError(f"{path}: unknown format; use .csv, .csv.gz or .parquet")


def _long_rows(table: pd.DataFrame, source: str) -> pd.DataFrame:
    rows = pd.DataFrame(
        {
            "source": source,
            # 1-based data line number, header excluded, so users can find the row.
            "source_row": range(1, len(table) + 1),
            "date": table["date"],
            "ticker": table["ticker"].str.strip(),
            "close": table["close"],
            "volume": table["volume"] if "volume" in table.columns else pd.NA,
        }
    )
    return rows.astype({c: "string" for c in RAW_COLUMNS if c != "source_row"})


def _wide_to_long(table: pd.DataFrame, source: str) -> tuple[pd.DataFrame, int]:
    date_column = next(c for c in table.columns if str(c).strip().lower() == "date")
    table = table.rename(columns={date_column: "date"})
    table.insert(0, "source_row", range(1, len(table) + 1))
    long = table.melt(id_vars=["source_row", "date"], var_name="ticker", value_name="close")
    empty = int(long["close"].isna().sum())
    long = long[long["close"].notna()]
    rows = pd.DataFrame(
        {
            "source": source,
            "source_row": long["source_row"].to_numpy(),
            "date": long["date"].to_numpy(),
            "ticker": long["ticker"].astype("string").str.strip().to_numpy(),
            "close": long["close"].to_numpy(),
            "volume": pd.NA,
        }
    )
    return rows.astype({c: "string" for c in RAW_COLUMNS if c != "source_row"}), empty
