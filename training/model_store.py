"""The model store: TensorFlow Serving's layout, ``<models_dir>/<name>/<version>/``.

Versions are positive integers; anything else in a model folder (a temporary export,
a README) is ignored, as TensorFlow Serving ignores it. Each version folder holds a
SavedModel and a ``metadata.json``. A version appears whole or not at all: it is
exported into a hidden temporary folder and renamed into place.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from training.errors import ArtifactNotFound

METADATA_FILE = "metadata.json"


def list_models(models_dir: Path) -> list[str]:
    """Names of the models that have at least one version."""
    if not models_dir.is_dir():
        return []
    return sorted(p.name for p in models_dir.iterdir() if p.is_dir() and list_versions(p))


def list_versions(model_dir: Path) -> list[int]:
    """Complete versions of one model (folders named by an integer > 0 holding a metadata file)."""
    if not model_dir.is_dir():
        return []
    versions = []
    for child in model_dir.iterdir():
        if (
            child.is_dir()
            and child.name.isdigit()
            and int(child.name) > 0
            and (child / METADATA_FILE).is_file()
        ):
            versions.append(int(child.name))
    return sorted(versions)


def latest_version(model_dir: Path) -> int:
    """The highest version, which is the one that serves."""
    versions = list_versions(model_dir)
    if not versions:
        raise ArtifactNotFound(
            f"no model version under {model_dir}; run `quantserve pipeline` (or `quantserve "
            "train`) to build one"
        )
    return versions[-1]


def read_metadata(version_dir: Path) -> dict[str, Any]:
    """The ``metadata.json`` of one version."""
    path = version_dir / METADATA_FILE
    if not path.is_file():
        raise ArtifactNotFound(f"{path} is missing; the version is incomplete")
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


@contextlib.contextmanager
def new_version(model_dir: Path) -> Iterator[tuple[int, Path]]:
    """Yield ``(version, temporary folder)``; on success the folder becomes ``<version>``.

    The version is the highest existing one plus one. If another export claimed it in
    the meantime the rename fails rather than overwrite it.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    versions = list_versions(model_dir)
    version = (versions[-1] if versions else 0) + 1
    tmp = model_dir / f".export-{version}-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        yield version, tmp
        final = model_dir / str(version)
        # os.rename onto an existing non-empty folder fails: never overwrite a version.
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
