"""Optimized allocations and efficient frontiers, from the model's forecasts or your inputs."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from app.api.deps import AuditDep, MetricsDep, PortfolioServiceDep, SettingsDep
from app.core.config import Settings
from app.core.metrics import ServiceMetrics
from app.schemas.models import ModelRef
from app.schemas.portfolios import (
    FrontierPoint,
    FrontierRequest,
    FrontierResponse,
    OptimizeRequest,
    OptimizeResponse,
    SolverReport,
)
from app.schemas.problems import Problem
from app.services.errors import ServiceError
from app.services.portfolios import Allocation, Frontier, MarketInputs, check_limits
from optimizer import InvalidProblem, NumericalSolverError, ProgramInfeasible, ProgramUnbounded

router = APIRouter(prefix="/v1/portfolios", tags=["portfolios"])

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem},
    422: {"model": Problem},
    503: {"model": Problem},
}


# The outcome label of a request that raised: what the request asked for could not be
# done (a client-side outcome), or the solvers failed, or the server did ("error").
_OUTCOMES: tuple[tuple[type[Exception], str], ...] = (
    (ProgramInfeasible, "infeasible"),
    (ProgramUnbounded, "unbounded"),
    (NumericalSolverError, "solver_error"),
    (InvalidProblem, "invalid_request"),
    (ServiceError, "rejected"),
)


@contextmanager
def _timed(metrics: ServiceMetrics, objective: str) -> Iterator[list[str]]:
    """Observe the solve time under ``objective`` and the outcome the caller records.

    Alerts count ``solver_error`` and ``error`` as failures; an infeasible or invalid
    request, or an unknown ticker, is the client's outcome, not the optimizer's failure.
    """
    started = time.perf_counter()
    outcome = ["error"]
    try:
        yield outcome
    except Exception as exc:
        outcome[0] = next((label for kind, label in _OUTCOMES if isinstance(exc, kind)), "error")
        raise
    finally:
        metrics.optimizer_solve_seconds.labels(objective, outcome[0]).observe(
            time.perf_counter() - started
        )


def _risk_free_rate(requested: float | None, settings: Settings) -> float:
    """The request's annual risk-free rate, else the configured default."""
    return requested if requested is not None else settings.optimizer.risk_free_rate


def _labelled(tickers: Sequence[str], values: Iterable[float]) -> dict[str, float]:
    return dict(zip(tickers, map(float, values), strict=True))


def _model_ref(market: MarketInputs) -> ModelRef | None:
    if market.model_name is None or market.model_version is None:
        return None
    return ModelRef(name=market.model_name, version=market.model_version)


def _model_versions(market: MarketInputs) -> dict[str, int]:
    """The model versions behind the inputs, for the audit trail; empty for the request's own."""
    ref = _model_ref(market)
    return {ref.name: ref.version} if ref is not None else {}


@router.post("/optimize", responses=_PROBLEMS)
async def optimize_portfolio(
    body: OptimizeRequest,
    request: Request,
    service: PortfolioServiceDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    audit: AuditDep,
) -> OptimizeResponse:
    """Optimal weights for the tickers under the objective and constraints."""
    risk_free_rate = _risk_free_rate(body.risk_free_rate, settings)
    async with audit.action(request, "portfolios.optimize", inputs=body) as entry:
        check_limits(body, settings.limits)  # a refusal is audited too
        with _timed(metrics, body.objective.value) as outcome:
            allocation = await run_in_threadpool(service.optimize, body, risk_free_rate)
            outcome[0] = allocation.result.status
        response = _optimize_response(body, allocation, risk_free_rate)
        entry.succeeded(outputs=response, model_versions=_model_versions(allocation.market))
    return response


@router.post("/frontier", responses=_PROBLEMS)
async def efficient_frontier(
    body: FrontierRequest,
    request: Request,
    service: PortfolioServiceDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    audit: AuditDep,
) -> FrontierResponse:
    """Portfolios along the efficient frontier, from min variance to the highest return."""
    risk_free_rate = _risk_free_rate(body.risk_free_rate, settings)
    async with audit.action(request, "portfolios.frontier", inputs=body) as entry:
        check_limits(body, settings.limits)  # a refusal is audited too
        with _timed(metrics, "frontier") as outcome:
            frontier = await run_in_threadpool(service.frontier, body, risk_free_rate)
            outcome[0] = "optimal"
        response = _frontier_response(body, frontier, risk_free_rate)
        entry.succeeded(outputs=response, model_versions=_model_versions(frontier.market))
    return response


def _optimize_response(
    body: OptimizeRequest, allocation: Allocation, risk_free_rate: float
) -> OptimizeResponse:
    """The response body of an allocation."""
    result, market = allocation.result, allocation.market
    return OptimizeResponse(
        objective=body.objective,
        weights=_labelled(body.tickers, result.weights),
        expected_return=result.expected_return,
        volatility=result.volatility,
        sharpe=result.sharpe,
        risk_free_rate=risk_free_rate,
        risk_contributions=_labelled(body.tickers, result.risk_contributions),
        turnover=result.turnover,
        transaction_cost=result.transaction_cost,
        diversification_ratio=result.diversification_ratio,
        cvar=result.cvar,
        cvar_alpha=result.cvar_alpha,
        solver=SolverReport(
            name=result.solver,
            status=result.status,
            solve_time_ms=result.solve_time_seconds * 1000.0,
            iterations=result.iterations,
            compiled_from_cache=result.compiled_from_cache,
        ),
        inputs=market.inputs,
        model=_model_ref(market),
        as_of=market.as_of,
        covariance=market.covariance_method,
    )


def _frontier_response(
    body: FrontierRequest, frontier: Frontier, risk_free_rate: float
) -> FrontierResponse:
    """The response body of a frontier."""
    market = frontier.market
    return FrontierResponse(
        points=[
            FrontierPoint(
                expected_return=point.expected_return,
                volatility=point.volatility,
                sharpe=point.sharpe,
                weights=_labelled(body.tickers, point.weights),
            )
            for point in frontier.points
        ],
        risk_free_rate=risk_free_rate,
        solve_time_ms=sum(p.solve_time_seconds for p in frontier.points) * 1000.0,
        inputs=market.inputs,
        model=_model_ref(market),
        as_of=market.as_of,
        covariance=market.covariance_method,
    )
