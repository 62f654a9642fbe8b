"""The OpenAPI document's error responses, as ``app.api.problems`` sends them.

FastAPI documents ``responses={422: {"model": Problem}}`` in the route's media type
(``application/json``, or ``text/html`` for the back-test report), and gives every route
with parameters a 422 ``HTTPValidationError`` body that the validation handler never
sends. Found by schemathesis (``tests/fuzz``): every error response of the schema said
``application/json`` while the server sent ``application/problem+json``.

It also declares the refusals that come from outside a route's own code, on exactly the
operations that can answer them: 401 (no key or an unknown one) and 429 (the key's rate
limit, with ``Retry-After``) on every operation behind a ``require_role`` dependency
(``app.core.security``), 403 where that role is above the lowest, and 413 on every
operation that takes a body (``app.core.limits`` refuses an oversize one before routing).
They are declared whatever this server's settings: development mode (no keys) or no rate
limit only make a server answer fewer of them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts

from app.api.routes import tfserving
from app.core.config import ROLES, Role
from app.core.security import API_KEY_HEADER, require_role
from app.schemas.problems import Problem
from app.schemas.tfserving import ErrorResponse

_SCHEMAS = "#/components/schemas/"
_ERROR_BODIES = {f"{_SCHEMAS}Problem", f"{_SCHEMAS}HTTPValidationError"}
_ROLE_OF: dict[object, Role] = {require_role(role): role for role in ROLES}
"""The role of each ``require_role`` dependency (one function per role: it is cached)."""
_TF_SERVING_ERROR = {
    "application/json": {"schema": {"$ref": f"{_SCHEMAS}{ErrorResponse.__name__}"}}
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    429: {
        "Retry-After": {
            "description": "Seconds to wait before retrying.",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}


def document_problems(app: FastAPI, media_type: str) -> None:
    """Make ``app``'s OpenAPI document list its error bodies as ``Problem`` in ``media_type``.

    Every error response whose body is a ``Problem`` or FastAPI's ``HTTPValidationError``
    becomes a ``Problem`` in ``media_type``; on the TensorFlow Serving routes, which
    answer an invalid request with their own 400 ``{"error": ...}``, the 422 goes.
    """
    generate = app.openapi
    documented: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        document = generate()  # FastAPI caches it: rewritten once per generation
        if not documented or documented[0] is not document:
            _problem_responses(document, media_type)
            _refusals(document, _required_roles(app), media_type)
            documented[:] = [document]
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _problem_responses(document: dict[str, Any], media_type: str) -> None:
    """Rewrite the error responses of ``document`` in place."""
    problem = {media_type: {"schema": {"$ref": f"{_SCHEMAS}Problem"}}}
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            tf_serving = tfserving.TAG in operation.get("tags", ())
            responses = operation.get("responses", {})
            for status, response in list(responses.items()):
                bodies = response.get("content", {}).values()
                if not any(b.get("schema", {}).get("$ref") in _ERROR_BODIES for b in bodies):
                    continue
                if tf_serving:
                    del responses[status]
                else:
                    response["content"] = json.loads(json.dumps(problem))  # a copy each
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Problem", Problem.model_json_schema())
    if "HTTPValidationError" not in json.dumps(document.get("paths", {})):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)


def _required_roles(app: FastAPI) -> dict[tuple[str, str], Role]:
    """The role each operation needs, by path and method: its highest ``require_role``.

    The routes are walked as FastAPI routes requests, each with the dependencies of the
    routers it was included with, however deep.
    """
    roles: dict[tuple[str, str], Role] = {}
    for context in iter_route_contexts(app.routes):
        dependant: Dependant | None = getattr(context, "dependant", None)
        found = [_ROLE_OF[d.call] for d in _dependants(dependant) if d.call in _ROLE_OF]
        path = context.path_format
        if found and path is not None:
            role = max(found, key=ROLES.index)
            roles.update({(path, method.lower()): role for method in context.methods or ()})
    return roles


def _dependants(dependant: Dependant | None) -> Iterator[Dependant]:
    if dependant is not None:
        yield dependant
        for sub in dependant.dependencies:
            yield from _dependants(sub)


def _refusals(
    document: dict[str, Any], roles: dict[tuple[str, str], Role], media_type: str
) -> None:
    """Declare 401, 403, 413 and 429 where they can be answered (the module's docstring)."""
    problem = {media_type: {"schema": {"$ref": f"{_SCHEMAS}Problem"}}}
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            # TensorFlow Serving's routes answer the role dependency's refusals in its own
            # shape (tfserving.TFServingRoute); the body limit answers before routing.
            tf_serving = tfserving.TAG in operation.get("tags", ())
            responses = operation.setdefault("responses", {})
            for status, description in _refusals_of(operation, roles.get((path, method))).items():
                content = _TF_SERVING_ERROR if tf_serving and status != 413 else problem
                _declare(responses, status, description, content)
            operation["responses"] = dict(sorted(responses.items()))


def _refusals_of(operation: dict[str, Any], role: Role | None) -> dict[int, str]:
    """The refusals ``operation``, which needs ``role`` (None: open), can answer, and why."""
    refusals: dict[int, str] = {}
    if "requestBody" in operation:
        refusals[413] = "The body is over limits.max_body_bytes."
    if role is not None:
        refusals[401] = (
            f"No API key, or one this server does not know: send it in {API_KEY_HEADER} or "
            "as 'Authorization: Bearer <key>'."
        )
        if role != ROLES[0]:
            allowed = " or ".join(ROLES[ROLES.index(role) :])
            refusals[403] = f"The key's role is below {role}: call with a {allowed} key."
        refusals[429] = (
            "The key is over its rate limit (limits.rate_per_second, limits.burst); see "
            "Retry-After."
        )
    return refusals


def _declare(
    responses: dict[str, Any], status: int, description: str, content: dict[str, Any]
) -> None:
    """Add ``status`` to ``responses``; to one already there, add the words and headers."""
    response = responses.get(str(status))
    if response is None:
        responses[str(status)] = response = {
            "description": description,
            "content": copy.deepcopy(content),
        }
    else:  # e.g. a full back-test queue's 429
        response["description"] = f"{response.get('description', '')} {description}".strip()
    if status in _HEADERS:
        response.setdefault("headers", {}).update(copy.deepcopy(_HEADERS[status]))
