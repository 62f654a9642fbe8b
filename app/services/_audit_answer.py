"""What the client was answered for an error, for the audit row of a failed action."""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import Request
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger("app.services.audit")


async def answer_to(request: Request, exc: Exception) -> tuple[int, str, Any]:
    """The status, problem slug and body the app's exception handlers answer ``exc`` with.

    Asking the handlers themselves keeps the audit trail equal to what the client saw,
    for every error type any module registers. The catch-all ``Exception`` handler is not
    called (it logs the traceback, which the server does once anyway): that is a 500.
    """
    handlers: Mapping[Any, Any] = request.app.exception_handlers
    handler = None
    if isinstance(exc, StarletteHTTPException):
        handler = handlers.get(exc.status_code)
    if handler is None:
        handler = next(
            (
                handlers[kind]
                for kind in type(exc).__mro__
                if kind in handlers and kind not in (Exception, BaseException)
            ),
            None,
        )
    if handler is None:
        return 500, "internal-error", {"exception": f"{type(exc).__name__}: {exc}"}
    try:
        response = handler(request, exc)
        if inspect.isawaitable(response):
            response = await response
        body = json.loads(bytes(response.body))
    except Exception:  # a handler that cannot answer: the server's 500 follows
        logger.exception("audit: the exception handler for %s failed", type(exc).__name__)
        return 500, "internal-error", {"exception": f"{type(exc).__name__}: {exc}"}
    status = int(response.status_code)
    problem_type = body.get("type") if isinstance(body, dict) else None
    if isinstance(problem_type, str) and problem_type.startswith("/problems/"):
        slug = problem_type.removeprefix("/problems/")
    else:
        slug = HTTPStatus(status).phrase.lower().replace(" ", "-")
    return status, slug, body
