"""The OpenAPI document's error responses, as ``app.api.problems`` sends them.

FastAPI documents ``responses={422: {"model": Problem}}`` in the route's media type
(``application/json``, or ``text/html`` for the back-test report), and gives every route
with parameters a 422 ``HTTPValidationError`` body that the validation handler never
sends. Found by schemathesis (``tests/fuzz``): every error response of the schema said
``application/json`` while the server sent ``application/problem+json``.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI

from app.api.routes import tfserving
from app.schemas.problems import Problem

_SCHEMAS = "#/components/schemas/"
_ERROR_BODIES = {f"{_SCHEMAS}Problem", f"{_SCHEMAS}HTTPValidationError"}


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
