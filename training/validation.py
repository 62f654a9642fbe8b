"""Row-level validation of raw prices: keep the good rows, quarantine the rest with a reason.

Checks, in order (a row is quarantined by the first that fails):

1. the date parses (ISO 8601 ``YYYY-MM-DD``, optionally with a time, whose UTC offset
   is dropped: the date is kept as written);
2. the ticker is present;
3. the close parses as a number, is finite and is positive;
4. (date, ticker) is unique: identical copies of a kept row are quarantined as
   duplicates, conflicting copies are all quarantined (there is no way to tell which
   close is right);
5. the ticker has at least ``min_history_days`` valid rows, else all its rows go.

Nothing is dropped without a row in the quarantine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import pandas as pd

from training import schema

QUARANTINE_COLUMNS = ("source", "source_row", "date", "ticker", "close", "reason")


@dataclass(frozen=True)
class ValidationResult:
    """Clean typed rows and the quarantined raw rows."""

    clean: pd.DataFrame
    """``date`` (datetime64), ``ticker``, ``close`` (float64), ``volume`` (float64, NaN)."""
    quarantine: pd.DataFrame
    """Raw text of each rejected row plus ``reason``."""
    origin: pd.DataFrame | None = None
    """``source`` and ``source_row`` of each clean row, aligned with ``clean``."""

    def reasons(self) -> dict[str, int]:
        """Quarantined row counts by reason kind (the text before the first colon)."""
        kinds = self.quarantine["reason"].str.split(":", n=1).str[0]
        return {str(k): int(v) for k, v in kinds.value_counts().sort_index().items()}


def validate_prices(raw: pd.DataFrame, min_history_days: int) -> ValidationResult:
    """Validate raw long rows (see :mod:`training.sources`) and split them."""
    frame = raw.reset_index(drop=True).copy()
    reason = pd.Series(pd.NA, index=frame.index, dtype="string")

    dates = _parse_dates(frame["date"])
    _flag(reason, dates.isna(), "unparseable date: " + frame["date"].fillna("<empty>"))

    tickers = frame["ticker"].fillna("").str.strip()
    _flag(reason, tickers == "", pd.Series("missing ticker", index=frame.index))

    closes = pd.to_numeric(frame["close"], errors="coerce")
    close_text = frame["close"].fillna("<empty>")
    _flag(
        reason, closes.isna() & frame["close"].isna(), pd.Series("missing close", index=frame.index)
    )
    _flag(reason, closes.isna(), "close is not a number: " + close_text)
    _flag(reason, ~np.isfinite(closes.fillna(0.0)), "non-finite close: " + close_text)
    _flag(reason, closes <= 0, "non-positive close: " + close_text)

    volumes = pd.to_numeric(frame["volume"], errors="coerce")
    bad_volume = frame["volume"].notna() & (volumes.isna() | (volumes < 0))
    _flag(reason, bad_volume, "invalid volume: " + frame["volume"].fillna(""))

    typed = pd.DataFrame(
        {
            schema.DATE: dates.dt.normalize(),
            schema.TICKER: tickers.astype(str),
            schema.CLOSE: closes.astype("float64"),
            schema.VOLUME: volumes.astype("float64"),
        }
    )
    _flag_duplicates(typed, reason)

    valid = reason.isna()
    counts = typed[valid].groupby(schema.TICKER).size()
    short = counts[counts < min_history_days]
    for ticker, count in short.items():
        mask = valid & (typed[schema.TICKER] == ticker)
        reason[mask] = (
            f"too little history: {ticker} has {count} valid rows, fewer than "
            f"min_history_days={min_history_days}"
        )

    kept = reason.isna()
    clean = typed[kept].sort_values([schema.TICKER, schema.DATE])
    origin = frame.loc[clean.index, ["source", "source_row"]].reset_index(drop=True)
    quarantine = frame.loc[~kept, list(QUARANTINE_COLUMNS[:-1])].assign(
        reason=reason[~kept].astype(str)
    )
    return ValidationResult(
        clean=clean.reset_index(drop=True),
        quarantine=quarantine.reset_index(drop=True),
        origin=origin,
    )


_ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?)?$"
"""``YYYY-MM-DD``, optionally with a time: the shapes :func:`_parse_dates` reads."""
_UTC_OFFSET = r"([0-9]:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?)\s*(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)$"
"""A UTC offset after a time (``+05:00``, ``Z``); group 1 is the time before it."""


def _parse_dates(text: pd.Series) -> pd.Series:
    """Naive datetimes of ISO 8601 ``YYYY-MM-DD`` text (a time allowed), NaT otherwise.

    A UTC offset after a time is dropped, keeping the date as written (the trading day,
    as a Parquet file's timestamps with a time zone read). pandas alone took "now" and
    "today" as dates, and a file mixing offsets made it return objects, which ended
    ingestion in a traceback (found by ``tests/training/test_ingest_fuzz.py``).
    """
    local = text.str.strip().str.replace(_UTC_OFFSET, r"\1", regex=True)
    iso = local.where(local.str.fullmatch(_ISO_DATE).fillna(False).astype(bool))
    return pd.to_datetime(iso, errors="coerce", format="ISO8601")


def _flag(reason: pd.Series, mask: pd.Series, text: pd.Series) -> None:
    """Set ``reason`` where ``mask`` holds and no earlier check already failed."""
    target = mask.fillna(False).astype(bool) & reason.isna()
    reason[target] = text[target].astype(str)


def _flag_duplicates(typed: pd.DataFrame, reason: pd.Series) -> None:
    candidates = typed[reason.isna()]
    key = [schema.DATE, schema.TICKER]
    dup_mask = candidates.duplicated(key, keep=False)
    if not dup_mask.any():
        return
    groups = candidates[dup_mask].groupby(key, sort=False)
    for group_key, group in groups:
        date, ticker = cast(tuple[pd.Timestamp, str], group_key)
        day = date.date().isoformat()
        distinct = group[schema.CLOSE].unique()
        if len(distinct) == 1:
            extra = group.index[1:]
            reason[extra] = (
                f"duplicate (date, ticker): ({day}, {ticker}) repeats a kept row "
                f"with the same close {distinct[0]:g}"
            )
        else:
            listed = ", ".join(f"{value:g}" for value in distinct)
            reason[group.index] = (
                f"conflicting duplicates: ({day}, {ticker}) has closes {listed}; "
                "keep one row per date and ticker"
            )
