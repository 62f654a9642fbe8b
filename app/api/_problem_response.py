"""The problem+json response, and the problems of requests the API cannot read or route.

``app.api.problems`` maps the domain's exceptions to problems and installs every
handler; this module holds what they all build on (:func:`problem_response`), the 422
of a body that fails validation or cannot be parsed, the HTTP errors Starlette raises
(404, 405 with ``Allow``), and the refusals that carry their own slug (401, 403, 413,
429).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api._request_errors import (
    allowed_methods,
    invalid_request_detail,
    unreadable_body_errors,
    validation_errors,
)
from app.core.limits import BodyTooLarge
from app.core.security import AccessDenied
from app.schemas.problems import Problem

PROBLEM_JSON = "application/problem+json"


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


async def validation_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _invalid_request(request, validation_errors(exc.errors()))


async def http_problem(request: Request, exc: Exception) -> JSONResponse:
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
