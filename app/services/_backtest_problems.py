"""Back-test failures as RFC 9457 problem documents.

One table for both ways a back-test fails: at once, when ``POST /v1/backtests`` refuses
it (``app.api.problems`` answers with it), and later, when its job fails (the worker
stores the document in the job's row, and ``GET /v1/backtests/{id}`` shows it). So a
missing-forecasts failure reads the same whichever way it arrives. Slugs are documented
in ``docs/errors.md``.
"""

from __future__ import annotations

from typing import Any

from backtest import BacktestError, InvalidBacktest, LookAheadError, MissingForecasts
from training.errors import DataError

# Most specific first: the first matching class decides.
BACKTEST_PROBLEMS: dict[type[BacktestError], tuple[int, str, str]] = {
    MissingForecasts: (422, "missing-forecasts", "The walk-forward forecasts are missing"),
    InvalidBacktest: (422, "invalid-backtest", "The back-test cannot run as asked"),
    # A strategy that peeks is a bug of the strategy, not of the request.
    LookAheadError: (500, "look-ahead", "A strategy asked for data from its future"),
}
"""Status, slug and title of each back-test error."""


def backtest_problem(exc: BacktestError) -> tuple[int, str, str]:
    """The status, slug and title of ``exc``."""
    return next(
        (value for kind, value in BACKTEST_PROBLEMS.items() if isinstance(exc, kind)),
        (422, "backtest-failed", "The back-test failed"),
    )


def failure_problem(exc: BaseException, instance: str) -> dict[str, Any]:
    """The problem a job that raised ``exc`` records; ``instance`` is the job's path."""
    if isinstance(exc, BacktestError):
        status, slug, title = backtest_problem(exc)
        detail = str(exc)
    elif isinstance(exc, DataError):  # the prices file (backtests.prices_file)
        status, slug, title = 422, "invalid-prices", "The prices cannot be used"
        detail = f"{exc} (backtests.prices_file, QUANTSERVE_BACKTESTS__PRICES_FILE)"
    else:
        status, slug, title = 500, "backtest-failed", "The back-test failed"
        detail = (
            f"the back-test failed on the server ({type(exc).__name__}: {exc}); the error "
            "is logged. Submit it again, and report it if it persists."
        )
    return {
        "type": f"/problems/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }


def exhausted_problem(attempts: int, instance: str) -> dict[str, Any]:
    """The problem of a job whose worker died ``attempts`` times: it is not started again."""
    return {
        "type": "/problems/backtest-interrupted",
        "title": "The back-test was interrupted too often",
        "status": 500,
        "detail": (
            f"the back-test was started {attempts} times and each time the process running "
            "it stopped before it finished (a server restart, or a worker killed, e.g. for "
            "memory); it is not started again (backtests.max_attempts). Submit it again, "
            "with a shorter period or fewer strategies or tickers if it needs much memory."
        ),
        "instance": instance,
    }
