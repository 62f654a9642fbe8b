"""What was wrong with a request's body or parameters, in words that say what to send.

``app.api.problems`` turns these into the 422 ``/problems/invalid-request`` problem:
pydantic's and FastAPI's errors, reworded where their own words mislead (a JSON syntax
error, a NaN against a bound, a body that is not JSON at all), and the bodies FastAPI
could not parse (too deeply nested, not UTF-8). The 405 problem lists the methods the
path does answer.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette._utils import get_route_path
from starlette.requests import Request

_BOUNDS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}
"""pydantic's error types of a numeric bound (``gt``, ``ge``, ``lt``, ``le``)."""


def validation_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Each of FastAPI's validation errors as the problem lists it: location, message, type."""
    return [_error(err) for err in errors]


def _error(err: Mapping[str, Any]) -> dict[str, str]:
    location = [str(part) for part in err.get("loc", ())]
    message, kind, value = str(err.get("msg", "")), str(err.get("type", "")), err.get("input")
    if kind == "json_invalid":
        # FastAPI puts the character offset where a field name goes and keeps the
        # parser's words in ctx: "body.19: JSON decode error" said neither what nor where.
        reason = (err.get("ctx") or {}).get("error", message)
        location, message = ["body"], f"the body is not valid JSON: {reason} at character "
        message += str(err.get("loc", ("", "?"))[-1])
    elif kind in _BOUNDS and isinstance(value, float) and not math.isfinite(value):
        # NaN fails every bound: "should be less than or equal to 1" would mislead.
        message = (
            f"Input should be a finite number, not {value}: NaN and Infinity are not JSON "
            "numbers, and a number past 1.8e308 overflows to infinity"
        )
    return {"location": ".".join(location), "message": message, "type": kind}


def unreadable_body_errors(cause: BaseException) -> list[dict[str, str]]:
    """The error of a body FastAPI's parser gave up on (it answered a bare 400)."""
    if isinstance(cause, RecursionError):
        message = (
            "the body nests arrays or objects too deeply to parse (the JSON parser stops "
            f"near {sys.getrecursionlimit()} levels; the bodies of this API need fewer than 10)"
        )
    elif isinstance(cause, UnicodeDecodeError):
        message = f"the body is not UTF-8 text ({cause}); send JSON encoded in UTF-8"
    else:
        message = f"the body is not valid JSON ({cause})"
    return [{"location": "body", "message": message, "type": "json_invalid"}]


def is_json(request: Request) -> bool:
    """Whether the request says its body is JSON (``application/json`` or ``+json``)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def invalid_request_detail(request: Request, errors: list[dict[str, str]]) -> str:
    """The problem's detail: the first errors, or that the body was not sent as JSON."""
    if not is_json(request) and any(e["location"] == "body" for e in errors):
        # FastAPI reads a body as JSON only when its Content-Type says so; any other
        # body fails as a whole, which pydantic calls "not a valid dictionary".
        sent = request.headers.get("content-type") or "no Content-Type"
        return (
            "The request body must be a JSON object sent with 'Content-Type: "
            f"application/json'; this one came with {sent}, so it was not read as JSON."
        )
    summary = "; ".join(f"{e['location']}: {e['message']}" for e in errors[:5])
    return (
        f"The request body or parameters are invalid: {summary}. Fix the fields listed in "
        "'errors' (the OpenAPI schema at /docs describes each)."
    )


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers at the request's path (405's ``Allow``).

    RFC 9110 (15.5.6) wants them all; Starlette's 405 lists those of the first route
    whose path matches, one of several where routes share a path (GET ``/v1/backtests``
    from the viewer's router, POST from the trader's). A route answers HEAD only if it
    lists it (Starlette's own routes do, beside GET; FastAPI's do not).
    """
    path = get_route_path(request.scope)  # as the router matches it: without root_path
    methods: set[str] = set()
    for context in iter_route_contexts(request.app.routes):
        regex = getattr(context, "path_regex", None)
        if context.methods and regex is not None and regex.match(path):
            methods |= context.methods
    return sorted(methods)
