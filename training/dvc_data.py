"""A model version's training data from DVC, and the evaluation copy DVC tracks.

``dvc.yaml`` runs the pipeline as DVC stages, and every committed ``dvc.lock`` records
the content hashes of the ``data/raw/`` and ``data/features/`` its stages produced. A
version's ``metadata.json`` records the prices' SHA-256 and the feature code version
it was trained on. When that data is no longer on disk, :func:`restore_version_data`
looks for the ``dvc.lock`` whose ``data/raw/manifest.json`` and
``data/features/_manifest.json`` match the version (the workspace's first, then every
committed one, newest first) and copies both folders from the DVC cache, or from the
default remote when the cache lacks them, so that ``quantserve rebuild`` can train on
exactly that data.

DVC is the ``mlops`` extra (``make mlops``; ``make serve`` does not install it). It is
imported only when data must be fetched; its absence is an error that says how to
install it, or how to rebuild the data without it.

::

    ArtifactNotFound
     └── VersionDataUnavailable   the version's data is neither on disk nor in DVC
"""

from __future__ import annotations

import json
import shutil
import subprocess  # nosec B404  # git only: fixed arguments, no shell
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training._io import atomic_directory
from training.errors import ArtifactNotFound
from training.feature_table import MANIFEST_NAME as FEATURES_MANIFEST
from training.ingest import MANIFEST_FILE as RAW_MANIFEST
from training.model_store import read_metadata

if TYPE_CHECKING:
    from dvc.api import DVCFileSystem

__all__ = [
    "FetchedData",
    "VersionDataUnavailable",
    "copy_evaluation",
    "data_mismatches",
    "find_dvc_root",
    "restore_version_data",
]

RAW = "raw"
FEATURES = "features"
LOCK_FILE = "dvc.lock"
INSTALL_DVC = "`make mlops` (or `pip install 'quantserve[mlops]'`)"
WITHOUT_DVC = (
    "or run `quantserve ingest` on the source that version was trained on and "
    "`quantserve features`, then rebuild"
)


class VersionDataUnavailable(ArtifactNotFound):
    """The data a version was trained on is not on disk, and DVC cannot provide it."""


@dataclass(frozen=True)
class FetchedData:
    """What :func:`restore_version_data` copied into the data folder, and why."""

    version: int
    reasons: tuple[str, ...]
    """Why the data on disk was not the version's."""
    revision: str | None
    """The Git commit whose ``dvc.lock`` tracks the data; None: the workspace's."""
    folders: tuple[Path, ...]
    files: int

    def describe(self) -> str:
        """One paragraph for the command line."""
        where = (
            "the workspace's dvc.lock"
            if self.revision is None
            else f"the dvc.lock of commit {self.revision[:12]}"
        )
        folders = " and ".join(str(folder) for folder in self.folders)
        return (
            f"the data of version {self.version} was not on disk ({'; '.join(self.reasons)}); "
            f"fetched {folders} ({self.files} files) from DVC, as {where} tracks them"
        )


def data_mismatches(data_dir: Path, recorded: Mapping[str, Any]) -> list[str]:
    """Why ``data_dir``'s raw prices and features are not those of ``recorded``.

    Parameters
    ----------
    data_dir
        The folder holding ``raw/`` and ``features/``.
    recorded
        The ``data`` section of a version's ``metadata.json``: ``prices_sha256`` and
        ``feature_code_version``.

    Returns
    -------
    list of str
        One sentence per difference; empty when the data on disk is the version's.
    """
    return _mismatches(
        _read_json(data_dir / RAW / RAW_MANIFEST),
        _read_json(data_dir / FEATURES / FEATURES_MANIFEST),
        recorded,
        data_dir,
    )


def find_dvc_root(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` holding a ``.dvc/`` folder, or None."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / ".dvc").is_dir():
            return folder
    return None


def restore_version_data(data_dir: Path, version_dir: Path) -> FetchedData | None:
    """Put the data ``version_dir`` was trained on into ``data_dir``, from DVC if needed.

    Parameters
    ----------
    data_dir
        The folder holding ``raw/`` and ``features/``, inside a DVC repository.
    version_dir
        ``models/<name>/<version>/``, whose ``metadata.json`` names the data.

    Returns
    -------
    FetchedData or None
        What was fetched; None when the data on disk already is the version's, or when
        ``data_dir`` is not in a DVC repository (the rebuild then says what differs).

    Raises
    ------
    VersionDataUnavailable
        DVC is not installed, or no ``dvc.lock`` tracks data matching the version, or
        its data is in neither the cache nor the remote.
    """
    metadata = read_metadata(version_dir)
    version = int(metadata.get("version", version_dir.name))
    recorded = metadata.get("data", {})
    reasons = data_mismatches(data_dir, recorded)
    root = find_dvc_root(data_dir)
    if not reasons or root is None:
        return None
    missing = f"the data of version {version} is not on disk ({'; '.join(reasons)})"
    try:
        from dvc.api import DVCFileSystem
    except ImportError as exc:
        raise VersionDataUnavailable(
            f"{missing}. {root} is a DVC repository, which may hold it, but DVC is not "
            f"installed: {INSTALL_DVC} installs it, then rebuild again; {WITHOUT_DVC}"
        ) from exc

    folders = {
        name: (data_dir / name).resolve().relative_to(root).as_posix() for name in (RAW, FEATURES)
    }
    revisions: list[str | None] = [None, *_lock_revisions(root)]
    unreadable: list[str] = []
    for revision in revisions:
        with closing(DVCFileSystem(str(root), rev=revision)) as fs:
            found = _manifests_at(fs, folders)
            if isinstance(found, str):
                unreadable.append(f"{(revision or 'workspace')[:12]}: {found}")
                continue
            if _mismatches(*found, recorded, Path(folders[RAW]).parent):
                continue
            files = sum(_fetch(fs, folders[name], data_dir / name) for name in (RAW, FEATURES))
        return FetchedData(
            version=version,
            reasons=tuple(reasons),
            revision=revision,
            folders=tuple(data_dir / name for name in (RAW, FEATURES)),
            files=files,
        )
    could_not = (
        f"; {len(unreadable)} could not be read ({unreadable[0]}"
        f"{', …' if len(unreadable) > 1 else ''})"
        if unreadable
        else ""
    )
    raise VersionDataUnavailable(
        f"{missing}, and no DVC-tracked data matches it (prices SHA-256 "
        f"{_short(recorded.get('prices_sha256'))}, feature code version "
        f"{recorded.get('feature_code_version')}): checked the workspace's {LOCK_FILE} and "
        f"{len(revisions) - 1} committed one(s){could_not}. If another clone trained it, "
        f"fetch its commits and configure its DVC remote, then rebuild again (and commit "
        f"{LOCK_FILE} after each `dvc repro`, then `dvc push`: docs/dvc.md); {WITHOUT_DVC}"
    )


def copy_evaluation(evaluation_dir: Path, target: Path) -> Path:
    """Copy ``quantserve evaluate``'s folder to ``target``, swapped in whole; returns it.

    The DVC pipeline's evaluate stage tracks this copy: the original sits inside the
    model store, the train stage's output, where no other stage may write
    (``.dvcignore`` leaves it out of train's output; docs/dvc.md).
    """
    if not evaluation_dir.is_dir():
        raise ArtifactNotFound(f"{evaluation_dir} is missing; run `quantserve evaluate` first")
    with atomic_directory(target) as staging:
        shutil.copytree(evaluation_dir, staging)
    return target


def _mismatches(
    raw: dict[str, Any] | None,
    features: dict[str, Any] | None,
    recorded: Mapping[str, Any],
    data_dir: Path,
) -> list[str]:
    prices = recorded.get("prices_sha256")
    code = recorded.get("feature_code_version")
    reasons = []
    if raw is None:
        reasons.append(f"{data_dir / RAW / RAW_MANIFEST} is missing")
    elif raw.get("prices_sha256") != prices:
        reasons.append(
            f"{data_dir / RAW} holds prices SHA-256 {_short(raw.get('prices_sha256'))}, "
            f"the version's is {_short(prices)}"
        )
    if features is None:
        reasons.append(f"{data_dir / FEATURES / FEATURES_MANIFEST} is missing")
    elif features.get("feature_code_version") != code:
        reasons.append(
            f"{data_dir / FEATURES} has feature code version "
            f"{features.get('feature_code_version')}, the version's is {code}"
        )
    elif features.get("input_sha256") != prices:
        reasons.append(
            f"{data_dir / FEATURES} was computed from prices SHA-256 "
            f"{_short(features.get('input_sha256'))}, the version's are {_short(prices)}"
        )
    return reasons


def _manifests_at(
    fs: DVCFileSystem, folders: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, Any]] | str:
    """Both manifests as one ``dvc.lock`` tracks them, or why they cannot be read."""
    from dvc.exceptions import DvcException
    from dvc_data.index import DataIndexError

    try:
        raw = json.loads(fs.read_text(f"{folders[RAW]}/{RAW_MANIFEST}"))
        features = json.loads(fs.read_text(f"{folders[FEATURES]}/{FEATURES_MANIFEST}"))
    except (DvcException, DataIndexError, OSError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    return raw, features


def _fetch(fs: DVCFileSystem, source: str, target: Path) -> int:
    """Copy the tracked folder ``source`` to ``target``, swapped in whole; count its files."""
    with atomic_directory(target) as staging:
        fs.get(source, str(staging), recursive=True)
        return sum(1 for path in staging.rglob("*") if path.is_file())


def _lock_revisions(root: Path) -> list[str]:
    """The commits of every branch and tag that changed ``dvc.lock``, newest first."""
    git = shutil.which("git")
    if git is None:
        return []
    listed = subprocess.run(  # nosec B603  # fixed arguments, no shell
        [git, "-C", str(root), "log", "--all", "--format=%H", "--", LOCK_FILE],
        capture_output=True,
        text=True,
        check=False,
    )
    return listed.stdout.split() if listed.returncode == 0 else []


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        loaded: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return loaded


def _short(sha256: Any) -> str:
    return f"{sha256[:12]}…" if isinstance(sha256, str) else str(sha256)
