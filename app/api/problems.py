"""Every error the API returns is RFC 9457 ``application/problem+json``; all mapping is here.

Problem ``type`` values are relative URI references, ``/problems/<slug>``, documented in
``docs/errors.md``.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api._problems_openapi import document_problems
from app.api._request_errors import (
    allowed_methods,
    invalid_request_detail,
    unreadable_body_errors,
    validation_errors,
)
from app.core.limits import BodyTooLarge
from app.core.security import AccessDenied
from app.schemas.problems import Problem
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

PROBLEM_JSON = "application/problem+json"
logger = logging.getLogger(__name__)


def problem_response(
    request: Request,
    status: int,
    slug: str,
    detail: str,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """A problem+json response for ``request``."""
    problem = Problem(
        type=f"/problems/{slug}",
        title=title or HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        **extensions,
    )
    return JSONResponse(
        problem.body(), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def _invalid_request(request: Request, errors: list[dict[str, str]]) -> JSONResponse:
    return problem_response(
        request,
        422,
        "invalid-request",
        invalid_request_detail(request, errors),
        title="Invalid request",
        errors=errors,
    )


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _invalid_request(request, validation_errors(exc.errors()))


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == 400 and isinstance(exc.__cause__, RecursionError | ValueError):
        # FastAPI could not parse the body (too deep, not UTF-8): its bare 400 "There was
        # an error parsing the body" is the 422 of any other body that is not JSON.
        return _invalid_request(request, unreadable_body_errors(exc.__cause__))
    detail = str(exc.detail) if exc.detail else HTTPStatus(status).description
    headers: dict[str, str] | None = getattr(exc, "headers", None)
    extensions: dict[str, Any] = {}
    if status == 404 and detail == "Not Found":
        detail = f"No endpoint at {request.url.path}; the API is listed at /docs."
    elif status == 405:
        allowed = allowed_methods(request)
        headers = {**(headers or {}), "Allow": ", ".join(allowed)}
        extensions["allowed_methods"] = allowed
        detail = (
            f"{request.method} is not allowed on {request.url.path}; it answers "
            f"{', '.join(allowed)}. See /docs."
        )
    return problem_response(
        request,
        status,
        HTTPStatus(status).phrase.lower().replace(" ", "-"),
        detail,
        headers=headers,
        **extensions,
    )


def exception_problem(request: Request, exc: AccessDenied | BodyTooLarge) -> JSONResponse:
    """The problem for a refusal that names its own slug, title, headers and extensions.

    401, 403 and 429 (``app.core.security``) and 413 (``app.core.limits``); the
    middlewares that refuse before routing (``/metrics``, the body size) call it too.
    """
    return problem_response(
        request,
        exc.status_code,
        exc.slug,
        str(exc.detail),
        title=exc.title,
        headers=dict(exc.headers) if exc.headers else None,
        **exc.extensions,
    )


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
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
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
