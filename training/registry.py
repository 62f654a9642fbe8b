"""A small file-based model registry: each version's stage, changed atomically.

``models/<name>/registry.json`` records, for every version, its stage:

- ``candidate``: trained and exported, not serving;
- ``production``: the one version the server serves;
- ``archived``: served before, or refused.

and a history of every promotion and rollback. Updates take an exclusive ``flock`` on
``registry.lock`` and rewrite the file atomically, so two processes promoting at once
cannot lose each other's change and a reader never sees half a file. A version folder
that the file does not mention (exported by an older release, or copied in by hand)
counts as a candidate.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from training._io import atomic_write_json
from training.errors import ArtifactNotFound, PipelineError
from training.model_store import list_versions

REGISTRY_FILE = "registry.json"
LOCK_FILE = "registry.lock"


class Stage(StrEnum):
    """Where a version is in its life."""

    CANDIDATE = "candidate"
    PRODUCTION = "production"
    ARCHIVED = "archived"


class RegistryError(PipelineError):
    """A registry operation cannot be done; the message says why and what to do."""


class RegistryNotWritable(RegistryError):
    """The registry's folder cannot be written by this process (a read-only mount)."""


NOT_WRITABLE_HINT = (
    "Change stages where the model store is writable: `quantserve models promote VERSION` "
    "or `quantserve models rollback` in the pipeline's container or job (the API's "
    "deployments mount the store read-only; the server follows the registry within one "
    "poll)"
)


@dataclass(frozen=True)
class VersionRecord:
    """One version's stage and when it last changed."""

    version: int
    stage: Stage
    changed_at: str | None
    reason: str | None


class ModelRegistry:
    """The stages of one model's versions (``models/<name>/``)."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir

    @property
    def path(self) -> Path:
        """The registry file."""
        return self.model_dir / REGISTRY_FILE

    def records(self) -> list[VersionRecord]:
        """Every complete version on disk with its stage, ascending."""
        state = self._read()
        records = []
        for version in list_versions(self.model_dir):
            entry = state["versions"].get(str(version), {})
            records.append(
                VersionRecord(
                    version=version,
                    stage=Stage(entry.get("stage", Stage.CANDIDATE)),
                    changed_at=entry.get("changed_at"),
                    reason=entry.get("reason"),
                )
            )
        return records

    def stage(self, version: int) -> Stage:
        """The stage of ``version``."""
        for record in self.records():
            if record.version == version:
                return record.stage
        raise ArtifactNotFound(
            f"version {version} is not in {self.model_dir} (versions: "
            f"{', '.join(map(str, list_versions(self.model_dir))) or 'none'})"
        )

    def production(self) -> int | None:
        """The production version, or None when none was promoted."""
        found = [r.version for r in self.records() if r.stage is Stage.PRODUCTION]
        return found[-1] if found else None

    def history(self) -> list[dict[str, Any]]:
        """Promotions and rollbacks, oldest first."""
        return list(self._read()["history"])

    def register(self, version: int, reason: str = "trained") -> None:
        """Record a new export as a candidate (a no-op for a version already recorded)."""
        self._check_exists(version)
        with self._update() as state:
            state["versions"].setdefault(str(version), _entry(Stage.CANDIDATE, reason))

    def archive(self, version: int, reason: str) -> None:
        """Mark a candidate as archived (e.g. it lost to production)."""
        self._check_exists(version)
        with self._update() as state:
            if state["versions"].get(str(version), {}).get("stage") == Stage.PRODUCTION:
                raise RegistryError(
                    f"version {version} is in production; promote another version or roll "
                    "back before archiving it"
                )
            state["versions"][str(version)] = _entry(Stage.ARCHIVED, reason)

    def promote(self, version: int, reason: str = "promoted") -> int | None:
        """Make ``version`` production; the previous production version is archived.

        Returns the previous production version (None if there was none).
        """
        self._check_exists(version)
        with self._update() as state:
            previous = _production(state)
            if previous == version:
                return previous
            if previous is not None:
                state["versions"][str(previous)] = _entry(
                    Stage.ARCHIVED, f"replaced by version {version}"
                )
            state["versions"][str(version)] = _entry(Stage.PRODUCTION, reason)
            state["history"].append(
                {
                    "at": _now(),
                    "action": "promote",
                    "version": version,
                    "previous": previous,
                    "reason": reason,
                }
            )
            return previous

    def rollback(self, reason: str = "rolled back") -> int:
        """Serve again the version that production replaced; returns it.

        The current production version is archived. Raises RegistryError when there is
        nothing to roll back to.
        """
        with self._update() as state:
            current = _production(state)
            if current is None:
                raise RegistryError(
                    f"no production version in {self.model_dir}; promote one first "
                    "(`quantserve models promote VERSION`)"
                )
            target = _previous_production(state, current)
            if target is None:
                raise RegistryError(
                    f"version {current} has no earlier production version to roll back to; "
                    "promote a specific version instead"
                )
            state["versions"][str(current)] = _entry(Stage.ARCHIVED, reason)
            state["versions"][str(target)] = _entry(Stage.PRODUCTION, f"rollback from {current}")
            state["history"].append(
                {
                    "at": _now(),
                    "action": "rollback",
                    "version": target,
                    "previous": current,
                    "reason": reason,
                }
            )
            return target

    def _check_exists(self, version: int) -> None:
        if version not in list_versions(self.model_dir):
            raise ArtifactNotFound(
                f"version {version} is not in {self.model_dir} (versions: "
                f"{', '.join(map(str, list_versions(self.model_dir))) or 'none'})"
            )

    def _read(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {"versions": {}, "history": []}
        loaded: dict[str, Any] = json.loads(self.path.read_text())
        loaded.setdefault("versions", {})
        loaded.setdefault("history", [])
        return loaded

    @contextlib.contextmanager
    def _update(self) -> Iterator[dict[str, Any]]:
        """Read, let the caller change, write back atomically, all under an exclusive lock.

        Raises
        ------
        RegistryNotWritable
            When the folder is read-only to this process (nothing was changed).
        """
        with _writable(self.model_dir):
            self.model_dir.mkdir(parents=True, exist_ok=True)
            lock = (self.model_dir / LOCK_FILE).open("a")
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = self._read()
                yield state
                with _writable(self.model_dir):
                    atomic_write_json(self.path, state)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


_READ_ONLY_ERRORS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


@contextlib.contextmanager
def _writable(model_dir: Path) -> Iterator[None]:
    """Turn a read-only file system or a refused write into :class:`RegistryNotWritable`."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _READ_ONLY_ERRORS:
            raise
        reason = os.strerror(exc.errno).lower() if exc.errno is not None else "refused"
        raise RegistryNotWritable(
            f"the registry of model {model_dir.name!r} cannot be written by this server "
            f"({reason}); nothing was changed. {NOT_WRITABLE_HINT}."
        ) from exc


def _entry(stage: Stage, reason: str) -> dict[str, str]:
    return {"stage": stage.value, "changed_at": _now(), "reason": reason}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _production(state: dict[str, Any]) -> int | None:
    found = [int(v) for v, e in state["versions"].items() if e.get("stage") == Stage.PRODUCTION]
    return max(found) if found else None


def _previous_production(state: dict[str, Any], current: int) -> int | None:
    """The version that ``current``'s last promotion replaced.

    Only promotions count, so successive rollbacks walk back the promotion chain
    (3 -> 2 -> 1) rather than undo each other.
    """
    for event in reversed(state["history"]):
        if event["action"] == "promote" and event["version"] == current:
            previous = event.get("previous")
            return None if previous is None else int(previous)
    return None
