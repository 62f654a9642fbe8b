"""TensorFlow Serving's REST API over the model store: status, metadata and predict.

The routes in ``app.api.routes.tfserving`` only parse and shape; everything that knows
of versions, labels, signatures and tensors is here. Errors are ``TFServingError``
subclasses carrying TensorFlow Serving's HTTP status and message (``ServableNotFound``
404, ``InvalidArgument`` 400; the tree is drawn in ``_tfserving_request``, which defines
them with the request checks and is re-exported here).

A predict is three steps, so that concurrent requests can share one model call
(``app.services.batching``): ``parse_predict`` checks the body against the signature,
the model runs (alone or in a batch), ``format_predict`` shapes the outputs.

Versions other than the serving one are loaded on demand and kept in a small
least-recently-used cache, so a client may pin any complete version in the store.

Nothing cached outlives the files it came from. A signature belongs to the loaded model
it was read for: the serving version's is read again when the lifecycle swaps in a new
model (a new version, or the same version rewritten in place and reloaded). On-demand
versions and the signatures of versions not loaded are keyed by the ``(file, size,
mtime)`` of the files ``app.services.model_fingerprint`` watches, so a version folder
rewritten in place is loaded and described afresh on the next request.
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

from app.services._tfserving_request import (
    MAX_INSTANCES,
    SIGNATURE_NAME,
    InvalidArgument,
    ParsedPredict,
    ServableNotFound,
    TFServingError,
    parse_predict,
)
from app.services._tfserving_signature import (
    Signature,
    TensorInfo,
    read_signature,
)
from app.services.model_fingerprint import _VERSION_FILES, _stats
from app.services.model_registry import LoadedModel, load_model, serving_version
from training.errors import ArtifactNotFound
from training.model_store import list_versions
from training.registry import ModelRegistry, Stage

__all__ = [
    "MAX_INSTANCES",
    "SIGNATURE_NAME",
    "InvalidArgument",
    "ParsedPredict",
    "ServableNotFound",
    "Signature",
    "TFServingError",
    "TFServingService",
    "TensorInfo",
    "VersionState",
    "read_signature",
]

logger = logging.getLogger(__name__)

LABELS = (Stage.PRODUCTION.value, Stage.CANDIDATE.value)
_MODEL_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")

Loader = Callable[[Path, str, int], LoadedModel]
VersionFiles = tuple[tuple[str, int, int], ...]
"""(file, size, mtime in ns) of a version's metadata, graph and variable index."""


@dataclass(frozen=True)
class VersionState:
    """A version's state in TensorFlow Serving's ``ModelVersionStatus`` terms."""

    version: int
    state: str
    """``AVAILABLE`` when loaded and answering, ``END`` for a version not loaded."""


@dataclass(frozen=True)
class _Loaded:
    """A version loaded on demand, its signature and the files both came from."""

    model: LoadedModel
    signature: Signature
    files: VersionFiles


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
        self._extra: OrderedDict[tuple[str, int], _Loaded] = OrderedDict()
        # Signatures of versions described but not loaded, with the files read.
        self._signatures: dict[tuple[str, int], tuple[VersionFiles, Signature]] = {}
        # The signature of the last model not loaded here: the serving one, in practice.
        self._pinned: tuple[LoadedModel, Signature] | None = None
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
        version_dir = self._model_dir(name) / str(version)
        # Read before loading: files rewritten during the load differ at the next request.
        files = _version_files(version_dir)
        with self._lock:
            loaded = self._extra.get(key)
            if loaded is not None and loaded.files == files:
                self._extra.move_to_end(key)
                return loaded.model
            if loaded is not None:
                logger.info("model %s version %s was rewritten in place; loading it again", *key)
            model = self._loader(self.models_dir, name, version)
            self._extra[key] = _Loaded(model, self._read_signature(key, version_dir, files), files)
            self._extra.move_to_end(key)
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
        """The serving signature of one version on disk, read again when its files change."""
        version_dir = self._model_dir(name) / str(version)
        return self._read_signature((name, version), version_dir, _version_files(version_dir))

    def signature_for(self, serving: LoadedModel | None, name: str, version: int) -> Signature:
        """The signature a predict for ``name`` at ``version`` is checked against.

        The serving model's own when ``version`` is the serving one (not the files on
        disk, which may have been rewritten but not yet swapped in); else the version's
        on disk, as a predict naming it would load it.
        """
        if serving is not None and serving.name == name and serving.version == version:
            return self.signature_of(serving)
        return self.signature(name, version)

    def signature_of(self, model: LoadedModel) -> Signature:
        """The signature of a loaded ``model``, read once per loaded model.

        An on-demand version's was read when it loaded; the serving model's is read
        the first time it is asked for, so a model the lifecycle swaps in (even the same
        version, rewritten in place) never answers with its predecessor's.
        """
        pinned = self._pinned
        if pinned is not None and pinned[0] is model:
            return pinned[1]
        loaded = self._extra.get((model.name, model.version))
        if loaded is not None and loaded.model is model:
            return loaded.signature
        signature = read_signature(model.path)
        self._pinned = (model, signature)
        return signature

    def _read_signature(
        self, key: tuple[str, int], version_dir: Path, files: VersionFiles
    ) -> Signature:
        cached = self._signatures.get(key)
        if cached is not None and cached[0] == files:
            return cached[1]
        signature = read_signature(version_dir)
        self._signatures[key] = (files, signature)
        return signature

    # -- predict --------------------------------------------------------------------

    def parse_predict(self, model: LoadedModel, body: Any) -> ParsedPredict:
        """Check a predict body against ``model``'s signature; InvalidArgument says why not.

        Takes the row (``instances``) or columnar (``inputs``) format, plain or named
        (``{"features": ...}``). Runs before the request joins a batch, so a bad body
        fails alone.
        """
        return parse_predict(body, self.signature_of(model))

    @staticmethod
    def format_predict(parsed: ParsedPredict, outputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """The answer to ``parsed`` from the model's outputs for its rows.

        The row format answers ``{"predictions": [...]}``, one entry per instance, each
        an object of output name to value when the signature has several outputs. The
        columnar format answers ``{"outputs": ...}``: the output's batch, or an object
        of output name to batch.
        """
        shaped = _shaped(outputs, parsed.signature, parsed.features.shape[0])
        if parsed.row_format:
            return {"predictions": _rows(shaped)}
        if len(shaped) == 1:
            return {"outputs": next(iter(shaped.values())).tolist()}
        return {"outputs": {name: value.tolist() for name, value in shaped.items()}}


def _version_files(version_dir: Path) -> VersionFiles:
    """What identifies a version's content: the files the lifecycle's fingerprint stats."""
    return _stats(version_dir, _VERSION_FILES)


def _shaped(
    outputs: Mapping[str, np.ndarray], signature: Signature, batch: int
) -> dict[str, np.ndarray]:
    """Outputs with the signature's shapes (``LoadedModel.predict`` drops unit axes)."""
    shaped = {}
    for name, info in signature.outputs.items():
        value = np.asarray(outputs[name])
        if info.shape is not None:
            value = value.reshape((batch, *(-1 if d < 0 else d for d in info.shape[1:])))
        shaped[name] = value
    return shaped


def _rows(outputs: dict[str, np.ndarray]) -> list[Any]:
    """Row-format predictions: per instance, the value or an object of output to value."""
    if len(outputs) == 1:
        single: list[Any] = next(iter(outputs.values())).tolist()
        return single
    columns = {name: value.tolist() for name, value in outputs.items()}
    batch = len(next(iter(columns.values())))
    return [{name: column[i] for name, column in columns.items()} for i in range(batch)]
