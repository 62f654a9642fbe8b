"""What the server watches on disk: the serving version, its files and the features.

A ``Fingerprint`` is cheap to read (one ``registry.json`` read, a folder listing and a
``stat`` per feature file), so ``app.services.lifecycle`` reads one every poll and
rebuilds the serving state only when it changed.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

from app.core.config import Settings
from app.services.errors import RegistryConflict
from training.features import MANIFEST_NAME
from training.model_store import METADATA_FILE
from training.registry import ModelRegistry, Stage

# Files whose change means a version folder was rewritten in place (never done by the
# pipeline, which exports new versions; a hand-made fix would be).
_VERSION_FILES = (METADATA_FILE, "saved_model.pb", "variables/variables.index")


@dataclass(frozen=True)
class Fingerprint:
    """What is on disk for the served model; a change means a rebuild."""

    version: int | None
    """The serving version: the registry's production one, else the newest."""
    stage: str | None
    """Its registry stage (a change alone relabels the metrics, no reload)."""
    version_files: tuple[tuple[str, int, int], ...]
    """(file, size, mtime in ns) of the version's metadata, graph and variable index."""
    features: str | None
    """SHA-256 over the features manifest and every file's name, size and mtime."""
    problem: str | None = None
    """Why the serving version could not be read (an unreadable registry)."""

    def same_model(self, other: Fingerprint | None) -> bool:
        """True when ``other`` names the same version with the same files."""
        return other is not None and (self.version, self.version_files) == (
            other.version,
            other.version_files,
        )

    def same_artifacts(self, other: Fingerprint) -> bool:
        """True when only the stage differs."""
        return replace(self, stage=other.stage) == other


def read_fingerprint(settings: Settings, version: int | None = None) -> Fingerprint:
    """The fingerprint of the serving version (of ``version`` when given) and features.

    Costs a read of ``registry.json``, a listing of the model folder and a ``stat`` of
    each feature file: cheap enough for a poll every few seconds. Raises ``OSError``
    when a folder changes under the walk (the next poll tries again).
    """
    model_dir = settings.models_dir / settings.model_name
    problem: str | None = None
    try:
        records = ModelRegistry(model_dir).records()
    except (ValueError, KeyError, TypeError) as exc:
        records, problem = [], f"the registry {model_dir / 'registry.json'} is unreadable: {exc}"
    if version is None and records:
        production = [r.version for r in records if r.stage is Stage.PRODUCTION]
        version = production[-1] if production else records[-1].version
    stage = next((r.stage.value for r in records if r.version == version), None)
    files: tuple[tuple[str, int, int], ...] = ()
    if version is not None:
        files = _stats(model_dir / str(version), _VERSION_FILES)
    return Fingerprint(version, stage, files, features_identity(settings.features_dir), problem)


def features_identity(features_dir: Path) -> str | None:
    """A digest of the feature table's manifest and files; None when there is none.

    The manifest carries the table's content hash and creation time when the Spark job
    wrote it; names, sizes and mtimes catch a table written by other means.
    """
    if not features_dir.is_dir():
        return None
    digest = hashlib.sha256()
    manifest = features_dir / MANIFEST_NAME
    if manifest.is_file():
        digest.update(manifest.read_bytes())
    for path in sorted(features_dir.rglob("*")):
        if path.is_file():
            stat = path.stat()
            relative = path.relative_to(features_dir).as_posix()
            digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _stats(folder: Path, names: tuple[str, ...]) -> tuple[tuple[str, int, int], ...]:
    found = []
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            stat = (folder / name).stat()
            found.append((name, stat.st_size, stat.st_mtime_ns))
    return tuple(found)


def rollback_target(registry: ModelRegistry) -> tuple[int, int]:
    """(production version, the version its promotion replaced), as ``rollback`` will do.

    Read before rolling back so that the target can be verified first. Raises
    RegistryConflict when there is no production version or nothing before it.
    """
    current = registry.production()
    if current is None:
        raise RegistryConflict(
            f"no production version in {registry.model_dir}; promote one first "
            "(POST /v1/admin/models/{name}/versions/{version}/promote)"
        )
    for event in reversed(registry.history()):
        if event.get("action") == "promote" and event.get("version") == current:
            previous = event.get("previous")
            if previous is not None:
                return current, int(previous)
            break
    raise RegistryConflict(
        f"version {current} has no earlier production version to roll back to; "
        "promote a specific version instead"
    )
