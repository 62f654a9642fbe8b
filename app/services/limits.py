"""Count checks of a request against ``limits.*``.

:func:`check_tickers` and :func:`check_frontier_points` raise
:class:`~app.services.errors.LimitExceeded` (422 ``/problems/limit-exceeded``, with
``limit`` and ``value``) when a request asks for more than the configured limit. The
request schemas keep only hard ceilings (``TICKERS_CEILING``,
``FRONTIER_POINTS_CEILING``) that the configured limits may not exceed. The body-size
limit is a middleware, in ``app.core.limits``.
"""

from __future__ import annotations

from app.core.config import LimitSettings
from app.services.errors import LimitExceeded


def check_tickers(requested: int, limits: LimitSettings) -> None:
    """Refuse more than ``limits.max_tickers`` tickers in one request (422)."""
    if requested > limits.max_tickers:
        raise LimitExceeded(
            "limits.max_tickers",
            limits.max_tickers,
            requested,
            f"{requested} tickers requested; limits.max_tickers is {limits.max_tickers}: "
            "request fewer, or split the request.",
        )


def check_frontier_points(requested: int, limits: LimitSettings) -> None:
    """Refuse more than ``limits.max_frontier_points`` frontier points (422)."""
    if requested > limits.max_frontier_points:
        raise LimitExceeded(
            "limits.max_frontier_points",
            limits.max_frontier_points,
            requested,
            f"{requested} frontier points requested; limits.max_frontier_points is "
            f"{limits.max_frontier_points}: request fewer.",
        )
