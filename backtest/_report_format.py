"""Formatting of the report's numbers and settings: percentages, p-values, missing values."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

SIGNIFICANCE = 0.05
MISSING = "\N{EN DASH}"  # shown for a missing (None or NaN) value


def _number(value: Any) -> float | None:
    """``value`` as a finite float, else None (None, NaN, text, booleans)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _fmt(value: Any, spec: str = ".2f") -> str:
    """A number in format ``spec`` (``".1%"`` for a fraction), or MISSING."""
    number = _number(value)
    return MISSING if number is None else format(number, spec)


def _sharpe(row: Mapping[str, Any]) -> float:
    """For ranking: a missing Sharpe ratio ranks last (0.0 is a value, not missing)."""
    number = _number(row.get("sharpe"))
    return -math.inf if number is None else number


def _pct(value: Any) -> str:
    return _fmt(value, ".1%")


def _summary(value: Any) -> str:
    """A settings dict in one line: its lists (such as tickers) left out."""
    if not isinstance(value, Mapping):
        return _plain(value)
    return _plain({k: v for k, v in value.items() if not isinstance(v, list | tuple | set)})


def _costs(settings: Mapping[str, Any]) -> str:
    text = f"{_plain(settings.get('cost_bps'))} bps of each trade's value"
    spreads = settings.get("spread_bps")
    if spreads:
        text += f", plus half the bid-ask spread given for {len(spreads)} ticker(s)"
    return text


def _p_value(value: Any) -> str:
    """A p-value as HTML: three decimals, ``&lt; 0.001`` below that."""
    number = _number(value)
    if number is None:
        return MISSING
    return "&lt; 0.001" if number < 0.001 else f"{number:.3f}"


def _p_phrase(value: Any) -> str:
    """``p = 0.123`` or ``p &lt; 0.001`` (HTML)."""
    shown = _p_value(value)
    return f"p {shown}" if shown.startswith("&lt;") else f"p = {shown}"


def _interval(value: Any) -> str:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        return MISSING
    low, high = _number(value[0]), _number(value[1])
    return MISSING if low is None or high is None else f"[{low:.2f}, {high:.2f}]"


def _plain(value: Any) -> str:
    """Any settings value as text (unescaped): lists joined, dicts as ``key: value``."""
    if value is None:
        return MISSING
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_plain(v)}" for k, v in value.items()) or MISSING
    if isinstance(value, list | tuple | set):
        return ", ".join(_plain(v) for v in value) or MISSING
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# --- Sections -----------------------------------------------------------------------
