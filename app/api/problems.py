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
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.schemas.problems import Problem
from app.services.errors import ModelNotLoaded, UnknownTicker
from optimizer import (
    InvalidProblem,
    NoPositiveExcessReturn,
    NumericalSolverError,
    OptimizerError,
    ProgramInfeasible,
    ProgramUnbounded,
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


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "location": ".".join(str(part) for part in err.get("loc", ())),
            "message": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in exc.errors()
    ]
    summary = "; ".join(f"{e['location']}: {e['message']}" for e in errors[:5])
    return problem_response(
        request,
        422,
        "invalid-request",
        f"The request body or parameters are invalid: {summary}. Fix the fields listed in "
        "'errors' (the OpenAPI schema at /docs describes each).",
        title="Invalid request",
        errors=errors,
    )


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    detail = str(exc.detail) if exc.detail else HTTPStatus(status).description
    if status == 404 and detail == "Not Found":
        detail = f"No endpoint at {request.url.path}; the API is listed at /docs."
    elif status == 405:
        detail = f"{request.method} is not allowed on {request.url.path}; see /docs."
    return problem_response(
        request,
        status,
        HTTPStatus(status).phrase.lower().replace(" ", "-"),
        detail,
        headers=getattr(exc, "headers", None),
    )


async def _unknown_ticker(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UnknownTicker)
    return problem_response(
        request,
        404,
        "unknown-ticker",
        f"{exc} Remove or correct them.",
        title="Unknown ticker",
        unknown_tickers=exc.unknown,
        available_tickers=exc.available,
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
    return problem_response(request, 422, slug, str(exc), title=title, **extensions)


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(
        request,
        500,
        "internal-error",
        "The server failed to answer this request; the error is logged. Retry, and report "
        "it if it persists.",
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Register every exception handler on ``app``."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(UnknownTicker, _unknown_ticker)
    app.add_exception_handler(ModelNotLoaded, _model_not_loaded)
    app.add_exception_handler(OptimizerError, _optimizer_error)
    app.add_exception_handler(Exception, _unhandled)
