"""A TensorFlow Serving predict body, parsed and checked before it reaches a model.

Everything a request can get wrong is found here, before the request joins a batch, so
one malformed body never fails the requests batched with it. Errors carry TensorFlow
Serving's HTTP status; its clients read them as ``{"error": message}``::

    TFServingError           (status 500)
     ├── ServableNotFound    404: no such model, version or servable
     └── InvalidArgument     400: malformed body, bad shape, unknown label or signature

``app.services.tfserving`` re-exports all of it; import from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from app.services._tfserving_signature import Signature

SIGNATURE_NAME = "serving_default"
MAX_INSTANCES = 1024
"""Most instances (rows of the batch) one predict request may carry."""


class TFServingError(Exception):
    """An error answered as TensorFlow Serving does: ``{"error": message}`` with a status."""

    status_code = 500


class ServableNotFound(TFServingError):
    """No such model, version or label target (TensorFlow Serving's NOT_FOUND)."""

    status_code = 404


class InvalidArgument(TFServingError):
    """The request cannot be answered as sent (TensorFlow Serving's INVALID_ARGUMENT)."""

    status_code = 400


@dataclass(frozen=True)
class ParsedPredict:
    """A checked predict body: the model's input, and how to shape the answer."""

    features: np.ndarray
    """float32, ``(instances, lookback days, features)``, finite."""
    row_format: bool
    """True for ``instances`` (answered as ``predictions``), False for ``inputs``."""
    signature: Signature
    """The signature it was checked against; its outputs shape the answer."""


def parse_predict(body: Any, signature: Signature) -> ParsedPredict:
    """``body`` as the signature's input, or InvalidArgument saying what is wrong."""
    if not isinstance(body, dict):
        raise InvalidArgument("Request body must be a JSON object")
    signature_name = body.get("signature_name", SIGNATURE_NAME)
    if signature_name != SIGNATURE_NAME:
        raise InvalidArgument(
            f'Serving signature name: "{signature_name}" not found in signature def'
        )
    has_instances, has_inputs = "instances" in body, "inputs" in body
    if has_instances and has_inputs:
        raise InvalidArgument(
            "Not formatted correctly expecting only one of 'inputs' or 'instances' keys exist"
        )
    if not has_instances and not has_inputs:
        raise InvalidArgument("Missing 'inputs' or 'instances' key")
    if has_instances:
        raw = _row_tensor(body["instances"], signature)
    else:
        raw = body["inputs"]
        if isinstance(raw, dict):
            raw = _named_input(raw, signature)
    features = _validated(raw, signature, "instances" if has_instances else "inputs")
    return ParsedPredict(features, has_instances, signature)


def _row_tensor(instances: Any, signature: Signature) -> Any:
    """The batch from row-format ``instances``: plain values or ``{input: value}`` objects."""
    if not isinstance(instances, list):
        raise InvalidArgument("'instances' must be a JSON list, one entry per instance")
    objects = [isinstance(i, dict) for i in instances]
    if any(objects) and not all(objects):
        raise InvalidArgument(
            "'instances' mixes objects and plain values; send either every instance as "
            f'{{"{signature.input_name}": [...]}} or every one as a plain list'
        )
    if instances and all(objects):
        return [_named_input(i, signature) for i in instances]
    return instances


def _named_input(named: dict[str, Any], signature: Signature) -> Any:
    """The value of the signature's input in ``{input name: value}``."""
    unknown = sorted(set(named) - set(signature.inputs))
    if unknown:
        raise InvalidArgument(
            f"unknown input {unknown[0]!r}; the signature {SIGNATURE_NAME!r} takes "
            f"{', '.join(repr(n) for n in signature.inputs)}"
        )
    if signature.input_name not in named:
        raise InvalidArgument(f"missing input {signature.input_name!r}")
    return named[signature.input_name]


def _validated(raw: Any, signature: Signature, key: str) -> np.ndarray:
    """``raw`` as a float32 batch the signature accepts, or InvalidArgument saying why."""
    info = signature.inputs[signature.input_name]
    expected = info.shape
    wanted = (
        f"input {signature.input_name!r} of the signature {SIGNATURE_NAME!r} has shape "
        f"{list(expected) if expected is not None else 'unknown'} (instances x lookback days "
        "x features), dtype float32"
    )
    if not isinstance(raw, list) or not raw:
        raise InvalidArgument(f"'{key}' must be a non-empty list of instances; {wanted}")
    if len(raw) > MAX_INSTANCES:
        raise InvalidArgument(
            f"'{key}' holds {len(raw)} instances; at most {MAX_INSTANCES} are accepted per "
            "request: split the batch"
        )
    try:
        features = np.asarray(raw, dtype=np.float32)
    except (ValueError, TypeError):
        features = None
    if features is None or (expected is not None and not _fits(features.shape, expected)):
        raise InvalidArgument(f"{_first_bad_instance(raw, expected)}; {wanted}")
    if not np.isfinite(features).all():
        raise InvalidArgument(f"'{key}' holds values that are not finite numbers")
    return features


def _fits(shape: tuple[int, ...], expected: tuple[int, ...]) -> bool:
    return len(shape) == len(expected) and all(
        e < 0 or s == e for s, e in zip(shape, expected, strict=True)
    )


def _first_bad_instance(raw: list[Any], expected: tuple[int, ...] | None) -> str:
    """Which instance is malformed, and how."""
    inner = expected[1:] if expected is not None else None
    for index, instance in enumerate(raw):
        try:
            array = np.asarray(instance, dtype=np.float32)
        except (ValueError, TypeError):
            return f"instance {index} is not a rectangular list of numbers"
        if inner is not None and not _fits(array.shape, inner):
            return f"instance {index} has shape {list(array.shape)}, expected {list(inner)}"
    return "the instances do not form one batch"
