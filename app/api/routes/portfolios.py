"""Optimized allocations from the model's forecasts."""

from __future__ import annotations

import time

from fastapi import APIRouter

from app.api.deps import MetricsDep, PortfolioServiceDep, SettingsDep
from app.schemas.models import ModelRef
from app.schemas.portfolios import OptimizeRequest, OptimizeResponse, SolverReport
from app.schemas.problems import Problem
from app.services.portfolios import AllocationSpec

router = APIRouter(prefix="/v1/portfolios", tags=["portfolios"])


@router.post(
    "/optimize",
    responses={404: {"model": Problem}, 422: {"model": Problem}, 503: {"model": Problem}},
)
def optimize_portfolio(
    body: OptimizeRequest,
    service: PortfolioServiceDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> OptimizeResponse:
    """Optimal weights for the tickers under the objective and constraints."""
    risk_free_rate = (
        body.risk_free_rate
        if body.risk_free_rate is not None
        else settings.optimizer.risk_free_rate
    )
    spec = AllocationSpec(
        tickers=tuple(body.tickers),
        objective=body.objective.value,
        risk_aversion=body.risk_aversion,
        risk_free_rate=risk_free_rate,
        long_only=body.constraints.long_only,
        min_weight=body.constraints.min_weight,
        max_weight=body.constraints.max_weight,
    )
    started = time.perf_counter()
    outcome = "error"
    try:
        allocation = service.optimize(spec)
        outcome = allocation.result.status
    finally:
        metrics.optimizer_solve_seconds.labels(body.objective.value, outcome).observe(
            time.perf_counter() - started
        )
    result = allocation.result
    model = service.forecasts.model
    return OptimizeResponse(
        objective=body.objective,
        weights=dict(zip(body.tickers, map(float, result.weights), strict=True)),
        expected_return=result.expected_return,
        volatility=result.volatility,
        sharpe=result.sharpe,
        risk_free_rate=risk_free_rate,
        risk_contributions=dict(
            zip(body.tickers, map(float, result.risk_contributions), strict=True)
        ),
        solver=SolverReport(
            name=result.solver,
            status=result.status,
            solve_time_ms=result.solve_time_seconds * 1000.0,
            iterations=result.iterations,
        ),
        model=ModelRef(name=model.name, version=model.version),
        as_of=allocation.as_of,
        covariance=allocation.covariance_method,
    )
