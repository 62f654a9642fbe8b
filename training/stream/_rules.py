"""The rules a micro-batch of bars meets before it is stored.

First ingest's row rules (:func:`training.validation.validate_prices`: the date parses,
the ticker is there, the close is a positive finite number, a (date, ticker) pair
appears once in the batch), then, against the bars already stored, in this order:

- **unknown ticker**: a ticker with no stored history is quarantined; its features need
  a year of history, which ``quantserve ingest`` brings in;
- **future date**: a bar dated after today (UTC) is quarantined;
- **duplicate**: a bar already stored with the same close is quarantined as a duplicate
  (a file dropped twice, a message delivered twice); nothing changes;
- **conflict**: a bar already stored with another close is quarantined, and the stored
  bar is kept: a correction is a re-ingest, not a silent overwrite;
- **late**: a bar dated more than ``max_late_days`` calendar days before its ticker's
  latest stored bar is quarantined. A bar that fills a gap within that window is
  stored, and the features are recomputed from its date on.

Bars out of order inside a batch are sorted; nothing is dropped without a row in the
quarantine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from training import schema
from training.validation import QUARANTINE_COLUMNS, validate_prices

STORED_CLOSE = "_stored_close"


@dataclass(frozen=True)
class BarVerdicts:
    """What a batch's bars became: stored, or quarantined with a reason."""

    accepted: pd.DataFrame
    """``date`` (datetime64), ``ticker``, ``close``, ``volume``, plus ``source``."""
    quarantine: pd.DataFrame
    """:data:`training.validation.QUARANTINE_COLUMNS`: the row as received and why."""

    def reasons(self) -> dict[str, int]:
        """Quarantined bars by reason kind (the text before the first colon)."""
        kinds = self.quarantine["reason"].str.split(":", n=1).str[0]
        return {str(k): int(v) for k, v in kinds.value_counts().sort_index().items()}


def check_bars(
    raw: pd.DataFrame, stored: pd.DataFrame, max_late_days: int, today: date
) -> BarVerdicts:
    """Split raw long rows (:data:`training.sources.RAW_COLUMNS`) into stored and quarantined.

    Parameters
    ----------
    raw : pandas.DataFrame
        The batch's rows as text, with ``source`` and ``source_row`` saying where each
        came from (a file and its line, a topic partition and its offset).
    stored : pandas.DataFrame
        The price table: ``date`` (datetime64), ``ticker``, ``close``.
    max_late_days : int
        Calendar days before a ticker's latest stored bar that a gap may still be filled.
    today : datetime.date
        Bars dated after it are quarantined.
    """
    result = validate_prices(raw, min_history_days=1)
    clean, origin = result.clean, result.origin
    assert origin is not None  # validate_prices always reports where clean rows came from
    latest = stored.groupby(schema.TICKER)[schema.DATE].max()
    known = stored.loc[:, [schema.DATE, schema.TICKER, schema.CLOSE]].rename(
        columns={schema.CLOSE: STORED_CLOSE}
    )
    merged = clean.merge(known, on=[schema.DATE, schema.TICKER], how="left", validate="1:1")
    day = merged[schema.DATE].dt.strftime("%Y-%m-%d")
    ticker = merged[schema.TICKER]
    ticker_latest = ticker.map(latest)
    stored_close = merged[STORED_CLOSE]
    is_stored = stored_close.notna()
    same = is_stored & np.isclose(merged[schema.CLOSE], stored_close, rtol=1e-12, atol=0.0)
    cutoff = ticker_latest - pd.Timedelta(days=max_late_days)

    reason = pd.Series(pd.NA, index=merged.index, dtype="string")
    checks = [
        (
            ticker_latest.isna(),
            "unknown ticker: " + ticker + " has no stored history; bring in at least a "
            "year of it with `quantserve ingest` first",
        ),
        (
            merged[schema.DATE].dt.date > today,
            "future date: " + day + " is after today (" + today.isoformat() + ")",
        ),
        (
            same,
            "duplicate: (" + day + ", " + ticker + ") is already stored with the same close",
        ),
        (
            is_stored & ~same,
            "conflict: ("
            + day
            + ", "
            + ticker
            + ") is stored with close "
            + stored_close.map("{:g}".format, na_action="ignore").fillna("")
            + "; the stored bar is kept (correct a stored bar with `quantserve ingest`)",
        ),
        (
            merged[schema.DATE] < cutoff,
            "late: ("
            + day
            + ", "
            + ticker
            + ") is more than "
            + str(max_late_days)
            + " days before the ticker's latest stored bar "
            + ticker_latest.dt.strftime("%Y-%m-%d").fillna(""),
        ),
    ]
    for mask, text in checks:
        target = mask.fillna(False).astype(bool) & reason.isna()
        reason[target] = text[target].astype(str)

    rejected = reason.notna()
    stream_quarantine = pd.DataFrame(
        {
            "source": origin.loc[rejected, "source"],
            "source_row": origin.loc[rejected, "source_row"],
            "date": day[rejected],
            "ticker": ticker[rejected],
            "close": merged.loc[rejected, schema.CLOSE].map(repr),
            "reason": reason[rejected].astype(str),
        }
    )
    accepted = merged.loc[~rejected, [*clean.columns]].assign(
        source=origin.loc[~rejected, "source"].to_numpy()
    )
    quarantine = pd.concat([result.quarantine, stream_quarantine], ignore_index=True).loc[
        :, list(QUARANTINE_COLUMNS)
    ]
    return BarVerdicts(
        accepted=accepted.sort_values([schema.TICKER, schema.DATE]).reset_index(drop=True),
        quarantine=quarantine,
    )
