"""TensorFlow Serving's REST API over the model store: status, metadata and predict.

The routes in ``app.api.routes.tfserving`` only parse and shape; everything that knows
of versions, labels, signatures and tensors is here. Errors are ``TFServingError``
subclasses carrying TensorFlow Serving's HTTP status and message::

    TFServingError           (status 500)
     ├── ServableNotFound    404: no such model, version or servable
     └── InvalidArgument     400: malformed body, bad shape, unknown label or signature

Versions other than the serving one are loaded on demand and kept in a small
least-recently-used cache, so a client may pin any complete version in the store.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.services.model_registry import LoadedModel, load_model, serving_version
from training.errors import ArtifactNotFound
from training.model_store import list_versions
from training.registry import ModelRegistry, Stage

logger = logging.getLogger(__name__)

SIGNATURE_NAME = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
MAX_INSTANCES = 1024
"""Most instances (rows of the batch) one predict request may carry."""
LABELS = (Stage.PRODUCTION.value, Stage.CANDIDATE.value)
_MODEL_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")

Loader = Callable[[Path, str, int], LoadedModel]


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
class TensorInfo:
    """One input or output of a signature, as its ``SignatureDef`` records it."""

    name: str
    """The graph tensor, e.g. ``serving_default_features:0``."""
    dtype: str
    """The ``DataType`` enum name, e.g. ``DT_FLOAT``."""
    shape: tuple[int, ...] | None
    """Dimensions, -1 where unknown; None when even the rank is unknown."""

    def as_json(self) -> dict[str, Any]:
        """The protobuf JSON TensorFlow Serving prints (int64 sizes as strings)."""
        dims = [{"size": str(size), "name": ""} for size in self.shape or ()]
        return {
            "dtype": self.dtype,
            "tensor_shape": {"dim": dims, "unknown_rank": self.shape is None},
            "name": self.name,
        }


@dataclass(frozen=True)
class Signature:
    """The ``serving_default`` signature of one SavedModel version."""

    inputs: Mapping[str, TensorInfo]
    outputs: Mapping[str, TensorInfo]
    method_name: str

    @property
    def input_name(self) -> str:
        """The only input (the forecaster takes one tensor, ``features``)."""
        (name,) = self.inputs
        return name

    def as_json(self) -> dict[str, Any]:
        """One ``SignatureDef`` in TensorFlow Serving's metadata JSON."""
        return {
            "inputs": {k: v.as_json() for k, v in self.inputs.items()},
            "outputs": {k: v.as_json() for k, v in self.outputs.items()},
            "method_name": self.method_name,
        }


@dataclass(frozen=True)
class VersionState:
    """A version's state in TensorFlow Serving's ``ModelVersionStatus`` terms."""

    version: int
    state: str
    """``AVAILABLE`` when loaded and answering, ``END`` for a version not loaded."""


def read_signature(version_dir: Path) -> Signature:
    """The ``serving_default`` SignatureDef recorded in ``saved_model.pb``.

    Read from the protobuf rather than the loaded function, so tensor names and
    ``method_name`` are the ones TensorFlow Serving reports for the same SavedModel.
    """
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((version_dir / "saved_model.pb").read_bytes())
    signature_def = saved.meta_graphs[0].signature_def[SIGNATURE_NAME]

    def info(proto: Any) -> TensorInfo:
        shape = None
        if not proto.tensor_shape.unknown_rank:
            shape = tuple(int(d.size) for d in proto.tensor_shape.dim)
        return TensorInfo(proto.name, types_pb2.DataType.Name(proto.dtype), shape)

    return Signature(
        inputs={k: info(signature_def.inputs[k]) for k in sorted(signature_def.inputs)},
        outputs={k: info(signature_def.outputs[k]) for k in sorted(signature_def.outputs)},
        method_name=signature_def.method_name or PREDICT_METHOD,
    )


class TFServingService:
    """Resolve versions and labels, describe signatures and predict, TF-Serving style.

    Parameters
    ----------
    models_dir
        The model store, ``<models_dir>/<name>/<version>/``.
    max_extra_versions
        Versions other than the serving one kept loaded (least recently used evicted).
    loader
        Loads one version; ``app.services.model_registry.load_model`` by default.
    """

    def __init__(
        self,
        models_dir: Path,
        max_extra_versions: int = 2,
        loader: Loader = load_model,
    ) -> None:
        self.models_dir = models_dir
        self.max_extra_versions = max_extra_versions
        self._loader = loader
        self._extra: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        self._signatures: dict[tuple[str, int], Signature] = {}
        # One lock for the cache: loads are rare, and loading under it means two
        # requests for the same new version load it once.
        self._lock = threading.Lock()

    # -- resolving ------------------------------------------------------------------

    def resolve(
        self,
        serving: LoadedModel | None,
        name: str,
        version: int | None = None,
        label: str | None = None,
    ) -> LoadedModel:
        """The model that answers ``name`` (at ``version`` or ``label`` when given).

        ``serving`` is the version the server loaded at start; requests without a
        version or label get it (or, for another model in the store, its registry
        serving version). Other versions are loaded on demand.
        """
        chosen = self.version_for(serving, name, version, label)
        if serving is not None and serving.name == name and serving.version == chosen:
            return serving
        return self._load_extra(name, chosen)

    def version_for(
        self,
        serving: LoadedModel | None,
        name: str,
        version: int | None = None,
        label: str | None = None,
    ) -> int:
        """The complete version a request names, without loading it."""
        model_dir = self._model_dir(name)
        if label is not None:
            version = self.label_version(name, label)
        if version is None:
            if serving is not None and serving.name == name:
                return serving.version
            try:
                return serving_version(self.models_dir, name)
            except ArtifactNotFound:
                raise ServableNotFound(f"Servable not found for request: Latest({name})") from None
        served = serving is not None and serving.name == name and serving.version == version
        if not served and version not in list_versions(model_dir):
            raise ServableNotFound(f"Servable not found for request: Specific({name}, {version})")
        return version

    def label_version(self, name: str, label: str) -> int:
        """The version a label points at: the registry's production or newest candidate."""
        model_dir = self._model_dir(name)
        registry = ModelRegistry(model_dir)
        found: int | None = None
        if label == Stage.PRODUCTION:
            found = registry.production()
        elif label == Stage.CANDIDATE:
            candidates = [r.version for r in registry.records() if r.stage is Stage.CANDIDATE]
            found = max(candidates) if candidates else None
        if found is None:
            # TensorFlow Serving answers an unknown or unassigned label with INVALID_ARGUMENT.
            why = f"model {name} has no {label} version" if label in LABELS else "no such label"
            raise InvalidArgument(
                f"Unrecognized servable version label: {label} ({why}; labels are "
                f"{', '.join(LABELS)})"
            )
        return found

    def _model_dir(self, name: str) -> Path:
        if not _MODEL_NAME.match(name) or name in {".", ".."}:
            raise ServableNotFound(f"Could not find any versions of model {name}")
        return self.models_dir / name

    def _load_extra(self, name: str, version: int) -> LoadedModel:
        key = (name, version)
        with self._lock:
            model = self._extra.get(key)
            if model is not None:
                self._extra.move_to_end(key)
                return model
            model = self._loader(self.models_dir, name, version)
            self._extra[key] = model
            while len(self._extra) > self.max_extra_versions:
                evicted, _ = self._extra.popitem(last=False)
                logger.info("unloaded on-demand model %s version %s", *evicted)
            return model

    # -- status and metadata --------------------------------------------------------

    def status(
        self, serving: LoadedModel | None, name: str, version: int | None = None
    ) -> list[VersionState]:
        """``ModelVersionStatus`` of every complete version, newest first (or of one).

        Loaded versions (the serving one and any loaded on demand) are ``AVAILABLE``;
        the other complete versions are ``END``, as TensorFlow Serving reports a
        version it has unloaded. They still answer a predict that names them.
        """
        versions = list_versions(self._model_dir(name))
        loaded = {v for (n, v) in list(self._extra) if n == name}
        if serving is not None and serving.name == name:
            loaded.add(serving.version)
        if version is not None:
            if version not in versions and version not in loaded:
                raise ServableNotFound(f"Could not find version {version} of model {name}")
            versions = [version]
        elif not versions and not loaded:
            raise ServableNotFound(f"Could not find any versions of model {name}")
        states = sorted(set(versions) | (loaded if version is None else set()), reverse=True)
        return [VersionState(v, "AVAILABLE" if v in loaded else "END") for v in states]

    def signature(self, name: str, version: int) -> Signature:
        """The serving signature of one version, read from disk once."""
        key = (name, version)
        found = self._signatures.get(key)
        if found is None:
            found = read_signature(self._model_dir(name) / str(version))
            self._signatures[key] = found
        return found

    # -- predict --------------------------------------------------------------------

    def predict(self, model: LoadedModel, body: Any) -> dict[str, Any]:
        """Answer a predict body in the row (``instances``) or columnar (``inputs``) format.

        The row format answers ``{"predictions": [...]}``, one entry per instance, each
        an object of output name to value when the signature has several outputs. The
        columnar format answers ``{"outputs": ...}``: the output's batch, or an object
        of output name to batch.
        """
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
        signature = self.signature(model.name, model.version)
        row_format = has_instances
        raw = _row_tensor(body["instances"], signature) if row_format else body["inputs"]
        if not row_format and isinstance(raw, dict):
            raw = _named_input(raw, signature)
        features = _validated(raw, signature, "instances" if row_format else "inputs")
        outputs = self._run(model, signature, features)
        if row_format:
            return {"predictions": _rows(outputs)}
        if len(outputs) == 1:
            return {"outputs": next(iter(outputs.values())).tolist()}
        return {"outputs": {name: value.tolist() for name, value in outputs.items()}}

    @staticmethod
    def _run(
        model: LoadedModel, signature: Signature, features: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Outputs with the signature's shapes (``LoadedModel.predict`` drops unit axes)."""
        result = model.predict(features)
        batch = features.shape[0]
        shaped = {}
        for name, info in signature.outputs.items():
            value = np.asarray(result[name])
            if info.shape is not None:
                value = value.reshape((batch, *(-1 if d < 0 else d for d in info.shape[1:])))
            shaped[name] = value
        return shaped


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


def _rows(outputs: dict[str, np.ndarray]) -> list[Any]:
    """Row-format predictions: per instance, the value or an object of output to value."""
    if len(outputs) == 1:
        single: list[Any] = next(iter(outputs.values())).tolist()
        return single
    columns = {name: value.tolist() for name, value in outputs.items()}
    batch = len(next(iter(columns.values())))
    return [{name: column[i] for name, column in columns.items()} for i in range(batch)]
