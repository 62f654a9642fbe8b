"""Errors of the back-test engine.

::

    BacktestError                 any back-test failure (a ValueError: bad inputs)
    ├── LookAheadError            a strategy asked for data after its rebalance date
    ├── MissingForecasts          the walk-forward predictions are absent or do not cover
    │                             the period; the message says how to produce them
    ├── InvalidBacktest           settings that cannot run (dates, schedule, strategy names)
    └── BacktestCancelled         the caller asked to stop (``should_stop`` returned True)
"""

from __future__ import annotations


class BacktestError(ValueError):
    """A back-test that cannot run as asked; the message says how to fix it."""


class LookAheadError(BacktestError):
    """A strategy asked its point-in-time view for data dated after the view's date."""


class MissingForecasts(BacktestError):
    """Walk-forward predictions needed by a forecast-driven strategy are missing."""


class InvalidBacktest(BacktestError):
    """Settings that cannot run: dates, schedule, costs or strategy names."""


class BacktestCancelled(BacktestError):
    """The run was stopped by its caller before it finished."""
