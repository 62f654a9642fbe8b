"""Every error the API returns is RFC 9457 ``application/problem+json``; all mapping is here.

Problem ``type`` values are relative URI references, ``/problems/<slug>``, documented in
``docs/errors.md``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api._problem_response import (
    PROBLEM_JSON,
    exception_problem,
    http_problem,
    problem_response,
    validation_problem,
)
from app.api._problems_openapi import document_problems
from app.core.limits import BodyTooLarge
from app.core.security import AccessDenied
from app.services._backtest_problems import backtest_problem
from app.services.audit import AuditUnavailable
from app.services.errors import (
    BacktestConflict,
    BacktestNotFound,
    BacktestQueueFull,
    EvaluationNotFound,
    LimitExceeded,
    ModelNotLoaded,
    ModelVersionNotFound,
    ModelVersionRefused,
    RegistryConflict,
    UnknownTicker,
)
from backtest import STRATEGY_NAMES, VOL_TARGET_SUFFIX, BacktestError
from optimizer import (
    InvalidProblem,
    NoPositiveExcessReturn,
    NumericalSolverError,
    OptimizerError,
    ProgramInfeasible,
    ProgramUnbounded,
    SolverTimeLimitExceeded,
)

__all__ = ["PROBLEM_JSON", "exception_problem", "install_problem_handlers", "problem_response"]

logger = logging.getLogger(__name__)


async def _refusal(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AccessDenied | BodyTooLarge)
    return exception_problem(request, exc)


async def _limit_exceeded(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LimitExceeded)
    return problem_response(
        request,
        422,
        "limit-exceeded",
        str(exc),
        title="Request over a limit",
        limit=exc.limit,
        value=exc.value,
        requested=exc.requested,
    )


async def _solver_time_limit(request: Request, exc: Exception) -> JSONResponse:
    # 422, not 503: the same problem would run out of time again, so retrying is no fix;
    # the detail says how to make the problem smaller.
    assert isinstance(exc, SolverTimeLimitExceeded)
    extensions: dict[str, Any] = {
        "limit": "limits.solver_time_limit_seconds",
        "value": exc.time_limit_seconds,
    }
    if exc.status:
        extensions["solver_status"] = exc.status
    return problem_response(
        request,
        422,
        "solver-time-limit",
        f"{exc} The limit is limits.solver_time_limit_seconds = {exc.time_limit_seconds:g} s.",
        title="The solver ran out of time",
        **extensions,
    )


async def _unknown_ticker(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UnknownTicker)
    extensions: dict[str, Any] = {}
    if exc.unavailable:
        # In the feature table but without a forecast: say why, per ticker.
        extensions["unavailable_tickers"] = [
            {"ticker": ticker, "reason": reason} for ticker, reason in exc.unavailable.items()
        ]
    return problem_response(
        request,
        404,
        "unknown-ticker",
        f"{exc} Remove or correct them.",
        title="Unknown ticker",
        unknown_tickers=exc.unknown,
        available_tickers=exc.available,
        **extensions,
    )


async def _model_not_loaded(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(
        request,
        503,
        "model-not-loaded",
        str(exc),
        title="No model loaded",
        headers={"Retry-After": "30"},
    )


async def _model_version_refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ModelVersionRefused)
    return problem_response(
        request,
        422,
        "model-version-refused",
        f"{exc}. Fix or replace the version (`quantserve train` exports a new one), or "
        "promote another; the server keeps serving the last good version meanwhile.",
        title="Model version refused",
        model=exc.name,
        version=exc.version,
        failure=exc.failure,
        serving_version=exc.serving,
    )


async def _model_version_not_found(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ModelVersionNotFound)
    return problem_response(
        request,
        404,
        "model-version-not-found",
        f"{exc}; GET /v1/models lists the versions.",
        title="No such model version",
        model=exc.name,
        available_versions=exc.available,
    )


async def _evaluation_not_found(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, EvaluationNotFound)
    return problem_response(
        request,
        404,
        "evaluation-not-found",
        f"{exc}.",
        title="No evaluation of this model version",
        model=exc.name,
        version=exc.version,
    )


async def _registry_conflict(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(
        request, 409, "registry-conflict", str(exc), title="The registry cannot do that"
    )


# Most specific first: the first matching class decides.
_OPTIMIZER_PROBLEMS: dict[type[OptimizerError], tuple[str, str]] = {
    NoPositiveExcessReturn: ("no-positive-excess-return", "Max Sharpe is undefined"),
    InvalidProblem: ("invalid-constraints", "Impossible or invalid optimization request"),
    ProgramInfeasible: ("infeasible", "The optimization problem is infeasible"),
    ProgramUnbounded: ("unbounded", "The optimization problem is unbounded"),
    NumericalSolverError: ("solver-failed", "The solvers could not solve the problem"),
}


async def _optimizer_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OptimizerError)
    slug, title = next(
        (value for kind, value in _OPTIMIZER_PROBLEMS.items() if isinstance(exc, kind)),
        ("optimization-failed", "Optimization failed"),
    )
    extensions: dict[str, Any] = {}
    if getattr(exc, "status", None):
        extensions["solver_status"] = exc.status  # type: ignore[attr-defined]
    if getattr(exc, "constraints", None):
        extensions["constraints"] = list(exc.constraints)  # type: ignore[attr-defined]
    if exc.asset_names is not None:
        # The tickers the error is about, named by the portfolio service; the
        # optimizer's bare positions are never shown, as they would mislead.
        extensions["tickers"] = list(exc.asset_names)
    if isinstance(exc, NoPositiveExcessReturn) and exc.best_asset_name is not None:
        extensions["best_asset"] = exc.best_asset_name
        extensions["best_expected_return"] = exc.best_expected_return
        extensions["risk_free_rate"] = exc.risk_free_rate
    return problem_response(request, 422, slug, str(exc), title=title, **extensions)


async def _backtest_error(request: Request, exc: Exception) -> JSONResponse:
    # A back-test refused before it is queued; a job that fails later records the same
    # problem (app.services._backtest_problems), shown by GET /v1/backtests/{id}.
    assert isinstance(exc, BacktestError)
    status, slug, title = backtest_problem(exc)
    return problem_response(
        request,
        status,
        slug,
        str(exc),
        title=title,
        strategies=list(STRATEGY_NAMES),
        strategy_suffixes=[VOL_TARGET_SUFFIX],
    )


async def _backtest_not_found(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BacktestNotFound)
    return problem_response(
        request, 404, "backtest-not-found", str(exc), title="No such back-test", id=exc.job_id
    )


async def _backtest_conflict(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BacktestConflict)
    return problem_response(
        request,
        409,
        "backtest-conflict",
        str(exc),
        title="The back-test's state does not allow it",
        id=exc.job_id,
        backtest_status=exc.status,
    )


BACKTEST_RETRY_AFTER_SECONDS = 30
"""Retry-After of a full back-test queue: about one short back-test."""


async def _backtest_queue_full(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BacktestQueueFull)
    return problem_response(
        request,
        429,
        "backtest-queue-full",
        str(exc),
        title="Too many back-tests queued",
        headers={"Retry-After": str(BACKTEST_RETRY_AFTER_SECONDS)},
        limit="backtests.max_queued",
        value=exc.limit,
        queued=exc.queued,
    )


async def _audit_unavailable(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AuditUnavailable)
    return problem_response(
        request,
        503,
        "audit-unavailable",
        str(exc),
        title="The action could not be recorded",
        headers={"Retry-After": "5"},
        action=exc.action,
        performed=exc.performed,
    )


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(
        request,
        500,
        "internal-error",
        "The server failed to answer this request; the error is logged. Retry, and report "
        "it if it persists.",
    )


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # A database the service keeps state in (the back-test jobs) is locked by another
    # process, full or gone: nothing was changed, so the caller can retry.
    logger.error("store unavailable: %s", exc, exc_info=exc)
    return problem_response(
        request,
        503,
        "store-unavailable",
        "The server could not read or write its database (it may be locked by another "
        "process, or its disk full); nothing was changed. Retry after a few seconds, and "
        "tell the operator if it persists.",
        title="Store unavailable",
        headers={"Retry-After": "5"},
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Register every exception handler on ``app``."""
    app.add_exception_handler(RequestValidationError, validation_problem)
    app.add_exception_handler(StarletteHTTPException, http_problem)
    app.add_exception_handler(AccessDenied, _refusal)
    app.add_exception_handler(BodyTooLarge, _refusal)
    app.add_exception_handler(LimitExceeded, _limit_exceeded)
    app.add_exception_handler(UnknownTicker, _unknown_ticker)
    app.add_exception_handler(ModelNotLoaded, _model_not_loaded)
    app.add_exception_handler(ModelVersionRefused, _model_version_refused)
    app.add_exception_handler(ModelVersionNotFound, _model_version_not_found)
    app.add_exception_handler(EvaluationNotFound, _evaluation_not_found)
    app.add_exception_handler(RegistryConflict, _registry_conflict)
    app.add_exception_handler(SolverTimeLimitExceeded, _solver_time_limit)
    app.add_exception_handler(OptimizerError, _optimizer_error)
    app.add_exception_handler(BacktestError, _backtest_error)
    app.add_exception_handler(BacktestNotFound, _backtest_not_found)
    app.add_exception_handler(BacktestConflict, _backtest_conflict)
    app.add_exception_handler(BacktestQueueFull, _backtest_queue_full)
    app.add_exception_handler(AuditUnavailable, _audit_unavailable)
    app.add_exception_handler(SQLAlchemyError, _store_unavailable)
    app.add_exception_handler(Exception, _unhandled)
    document_problems(app, PROBLEM_JSON)  # /openapi.json lists these bodies as sent
