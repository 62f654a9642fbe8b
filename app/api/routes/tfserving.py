"""TensorFlow Serving's REST API (``/v1/models/{name}...``), so its clients work unchanged.

Status, metadata and predict follow https://www.tensorflow.org/tfx/serving/api_rest:
the same paths (``:predict`` verbs, ``/versions/{v}``, ``/labels/{label}``), bodies and
status codes. Errors here are deliberately *not* RFC 9457 problem+json like the rest
of quantserve: they are TensorFlow Serving's ``{"error": "<message>"}`` with its status
codes (400 bad input, 404 unknown model or version), because its clients parse that
shape. ``TFServingRoute`` turns every error on these routes into it.

Predict checks the body first, then hands the features to the app's ``MicroBatcher``,
which may answer several concurrent requests with one model call.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from app.api.deps import Predictor, PredictorDep, ServingStateDep, TFServingDep
from app.schemas.tfserving import (
    ErrorResponse,
    ModelMetadataResponse,
    ModelSpec,
    ModelStatusResponse,
    ModelVersionStatus,
    PredictRequest,
)
from app.services.batching import BatcherClosed, BatchQueueFull
from app.services.model_registry import LoadedModel
from app.services.tfserving import (
    SIGNATURE_NAME,
    InvalidArgument,
    ParsedPredict,
    ServableNotFound,
    TFServingError,
    TFServingService,
)

logger = logging.getLogger(__name__)


class TFServingRoute(APIRoute):
    """A route whose errors are TensorFlow Serving's ``{"error": ...}`` bodies."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def tf_serving_errors(request: Request) -> Response:
            try:
                return await handler(request)
            except TFServingError as exc:
                return JSONResponse({"error": str(exc)}, status_code=exc.status_code)
            except RequestValidationError as exc:
                return JSONResponse({"error": str(exc.errors())}, status_code=400)
            except BatcherClosed as exc:
                # TensorFlow Serving's UNAVAILABLE, so clients retry on another replica.
                return JSONResponse({"error": str(exc)}, status_code=503)
            except BatchQueueFull as exc:
                # UNAVAILABLE too, as TF Serving answers a full batching queue.
                return JSONResponse(
                    {"error": str(exc)},
                    status_code=503,
                    headers={"Retry-After": str(exc.retry_after)},
                )
            except HTTPException as exc:
                # 401/403/429 from the role dependency (app.core.security) and 413 from
                # the body limit: their status and headers (WWW-Authenticate, Retry-After),
                # in TensorFlow Serving's shape, which its clients parse.
                return JSONResponse(
                    {"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
                )
            except Exception:
                logger.exception("unhandled error on %s %s", request.method, request.url.path)
                return JSONResponse(
                    {"error": "Internal error; the server logged it"}, status_code=500
                )

        return tf_serving_errors


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Malformed request, bad shape or label."},
    404: {"model": ErrorResponse, "description": "No such model or version."},
}
_PREDICT_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": PredictRequest.model_json_schema()}},
    }
}
TAG = "tensorflow-serving"
"""The OpenAPI tag of these routes, whose errors are not problem+json (app.api.problems)."""
router = APIRouter(tags=[TAG], route_class=TFServingRoute, responses=_ERRORS)


# TensorFlow Serving parses a version as an int64 (absl::SimpleAtoi): past it, its error.
_MAX_VERSION = 2**63 - 1
_VERSION_DIGITS = re.compile(r"[0-9]+")


def _version(text: str) -> int:
    """A version path segment, as TensorFlow Serving reads it.

    Its URLs accept ASCII digits only (``str.isdigit`` would let ``²`` through to
    ``int``), so anything else is its "Malformed request" (404). A number past int64 is
    its InvalidArgument (400): checked on the digits, before ``int``, which refuses more
    than 4,300 of them.
    """
    if not _VERSION_DIGITS.fullmatch(text):
        raise ServableNotFound(f"Malformed request: version {text[:32]!r} is not a number")
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(_MAX_VERSION)) or int(digits) > _MAX_VERSION:
        shown = text if len(text) <= 32 else f"{text[:32]}... ({len(text)} digits)"
        raise InvalidArgument(f"Failed to convert version: {shown} to numbers.")
    return int(digits)


# -- model status ---------------------------------------------------------------------


def _status(
    service: TFServingService, state: ServingStateDep, name: str, version: int | None
) -> ModelStatusResponse:
    return ModelStatusResponse(
        model_version_status=[
            ModelVersionStatus(version=str(s.version), state=s.state)
            for s in service.status(state.model, name, version)
        ]
    )


@router.get("/v1/models/{name}")
def model_status(name: str, service: TFServingDep, state: ServingStateDep) -> ModelStatusResponse:
    """Status of every complete version: loaded ones AVAILABLE, the others END."""
    return _status(service, state, name, None)


@router.get("/v1/models/{name}/versions/{version}")
def model_version_status(
    name: str, version: str, service: TFServingDep, state: ServingStateDep
) -> ModelStatusResponse:
    """Status of one version."""
    return _status(service, state, name, _version(version))


@router.get("/v1/models/{name}/labels/{label}")
def model_label_status(
    name: str, label: str, service: TFServingDep, state: ServingStateDep
) -> ModelStatusResponse:
    """Status of the version a label (production, candidate) points at."""
    return _status(service, state, name, service.label_version(name, label))


# -- model metadata -------------------------------------------------------------------


def _metadata(
    service: TFServingService,
    state: ServingStateDep,
    name: str,
    version: int | None = None,
    label: str | None = None,
) -> ModelMetadataResponse:
    chosen = service.version_for(state.model, name, version, label)
    signature = service.signature_for(state.model, name, chosen)
    return ModelMetadataResponse(
        model_spec=ModelSpec(name=name, version=str(chosen)),
        metadata={"signature_def": {"signature_def": {SIGNATURE_NAME: signature.as_json()}}},
    )


@router.get("/v1/models/{name}/metadata")
def model_metadata(
    name: str, service: TFServingDep, state: ServingStateDep
) -> ModelMetadataResponse:
    """The serving version's signature: input features [-1, lookback, features], outputs."""
    return _metadata(service, state, name)


@router.get("/v1/models/{name}/versions/{version}/metadata")
def model_version_metadata(
    name: str, version: str, service: TFServingDep, state: ServingStateDep
) -> ModelMetadataResponse:
    """One version's signature."""
    return _metadata(service, state, name, version=_version(version))


@router.get("/v1/models/{name}/labels/{label}/metadata")
def model_label_metadata(
    name: str, label: str, service: TFServingDep, state: ServingStateDep
) -> ModelMetadataResponse:
    """The signature of the version a label points at."""
    return _metadata(service, state, name, label=label)


# -- predict --------------------------------------------------------------------------


_INLINE_CHECK_BYTES = 16 * 1024
"""Bodies up to this size (a few instances) are checked without leaving the event loop."""


def _parsed_body(raw: bytes) -> Any:
    """The JSON body: orjson first (64 instances, ~300 kB, in ~1.6 ms against ~10 ms).

    What orjson refuses goes to ``json``, which reads NaN and Infinity (then refused as
    not finite, with the instance named) and words its errors with line and column.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"JSON Parse error: {exc}") from None
    except RecursionError:  # e.g. 100,000 nested '[': was a 500
        raise InvalidArgument(
            "JSON Parse error: the body nests arrays or objects too deeply; 'instances' "
            "needs 3 levels (instances x lookback days x features)"
        ) from None


async def _predict(
    request: Request,
    predictor: Predictor,
    name: str,
    version: int | None = None,
    label: str | None = None,
) -> Response:
    raw = await request.body()
    body = _parsed_body(raw)

    service, state = predictor.service, predictor.state

    def checked() -> tuple[LoadedModel, ParsedPredict]:
        model = service.resolve(state.model, name, version, label)
        return model, service.parse_predict(model, body)

    serving = state.model is not None and state.model.name == name
    if serving and version is None and label is None and len(raw) <= _INLINE_CHECK_BYTES:
        # The loaded serving version and a small body: checked on the event loop, as a
        # thread round trip costs more CPU (~150 µs) than checking a few instances.
        model, parsed = checked()
    else:
        # In a thread: resolving may load a version from disk, and a 1,024-instance
        # body takes milliseconds to check.
        model, parsed = await run_in_threadpool(checked)
    outputs = await predictor.batcher.run(model, parsed.features)
    answer = orjson.dumps(service.format_predict(parsed, outputs))
    return Response(answer, media_type="application/json")


@router.post("/v1/models/{name}:predict", openapi_extra=_PREDICT_DOC)
async def predict(
    name: str,
    request: Request,
    predictor: PredictorDep,
) -> Response:
    """Predict with the serving version: instances → predictions, inputs → outputs."""
    return await _predict(request, predictor, name)


@router.post("/v1/models/{name}/versions/{version}:predict", openapi_extra=_PREDICT_DOC)
async def predict_version(
    name: str,
    version: str,
    request: Request,
    predictor: PredictorDep,
) -> Response:
    """Predict with one version (loaded on demand)."""
    return await _predict(request, predictor, name, version=_version(version))


@router.post("/v1/models/{name}/labels/{label}:predict", openapi_extra=_PREDICT_DOC)
async def predict_label(
    name: str,
    label: str,
    request: Request,
    predictor: PredictorDep,
) -> Response:
    """Predict with the version a label (production, candidate) points at."""
    return await _predict(request, predictor, name, label=label)
