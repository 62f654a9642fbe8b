"""Rebalance dates: the first trading day of the back-test, then each period's last."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from backtest._errors import InvalidBacktest

Rebalance = Literal["weekly", "monthly", "quarterly"]
REBALANCES_PER_YEAR: dict[str, float] = {"weekly": 52.0, "monthly": 12.0, "quarterly": 4.0}
_PERIOD = {"weekly": "W", "monthly": "M", "quarterly": "Q"}


def rebalance_rows(dates: pd.DatetimeIndex, first: int, last: int, rebalance: str) -> np.ndarray:
    """Rows of ``dates`` where the portfolio trades, within ``first..last``.

    The first row trades (the portfolio is built from cash), then the last trading day
    of every week, month or quarter after it.
    """
    if rebalance not in _PERIOD:
        raise InvalidBacktest(
            f"rebalance={rebalance!r} is not one of {sorted(_PERIOD)}; pick one of those"
        )
    window = pd.DatetimeIndex(dates[first : last + 1])
    periods = window.to_period(_PERIOD[rebalance])
    period_ends = np.flatnonzero(np.append(periods[1:] != periods[:-1], True)) + first
    rows = np.union1d([first], period_ends[period_ends > first])
    return rows.astype(int)
