"""Body of ``GET /v1/backtests/{id}/equity``: equity and drawdown curves for a chart."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field

MIN_EQUITY_POINTS = 10
MAX_EQUITY_POINTS = 20_000
DEFAULT_EQUITY_POINTS = 1_000


class BacktestEquity(BaseModel):
    """Each strategy's growth of 1 net of costs and its drawdown, on common dates."""

    id: str = Field(description="The job's id.")
    points: int = Field(
        description="Points per curve: the points asked for, or every day when there are fewer."
    )
    days: int = Field(description="Trading days in the back-test (daily returns).")
    dates: list[date] = Field(
        description="The date of each point, ascending: with more days than points, the "
        "last day of each bucket of consecutive days; the back-test's last day is always last."
    )
    equity: dict[str, list[float]] = Field(
        description="By strategy, in metrics.json's order: the value of 1 invested at the "
        "start, net of costs (cumprod(1 + daily net return)), on the bucket's last day."
    )
    drawdown: dict[str, list[float]] = Field(
        description="By strategy: equity / running peak - 1 (<= 0, the initial 1 counting "
        "as a peak), computed daily; the lowest of each bucket, so the lowest point is the "
        "strategy's max_drawdown."
    )
