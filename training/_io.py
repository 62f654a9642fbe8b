"""Atomic writes: readers see the old artifact or the new one, never half of one."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600; artifacts are read by other users (the API's, a container's).
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def atomic_write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    text = json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling directory that replaces ``final`` when the block succeeds.

    The new directory is moved in with ``os.replace``. An existing ``final`` is first
    renamed aside and removed after the swap, so at no point does ``final`` hold a mix
    of old and new files; if the block raises, ``final`` is left untouched.

    The siblings' names carry the writer's process id. A writer killed mid-write (a
    SIGKILL runs no clean-up) leaves them behind; the next write to ``final`` removes
    those of dead processes and, if the writer died between its two renames, first puts
    the previous ``final`` back. Writers on other hosts sharing the folder are not
    told apart: one host writes a given ``final`` at a time.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    _recover_dead_writers(final)
    tag = f"{os.getpid()}-{uuid.uuid4().hex}"
    tmp = final.parent / f".{final.name}.tmp-{tag}"
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to {tmp}")
        old = final.parent / f".{final.name}.old-{tag}"
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _recover_dead_writers(final: Path) -> None:
    """Restore ``final`` from a dead writer's ``.old-`` copy if it is gone; remove the rest."""
    leftovers: dict[str, list[Path]] = {"old": [], "tmp": []}
    for sibling in final.parent.glob(f".{final.name}.*-*"):
        kind, _, rest = sibling.name.removeprefix(f".{final.name}.").partition("-")
        pid = rest.partition("-")[0]
        if kind in leftovers and pid.isdigit() and not _alive(int(pid)):
            leftovers[kind].append(sibling)
    if not final.exists() and leftovers["old"]:
        newest = max(leftovers["old"], key=lambda p: p.stat().st_mtime)
        os.replace(newest, final)
        leftovers["old"].remove(newest)
        logger.warning("restored %s from %s, left by a writer that died", final, newest.name)
    for leftover in leftovers["old"] + leftovers["tmp"]:
        shutil.rmtree(leftover, ignore_errors=True)
        logger.warning("removed %s, left by a writer that died", leftover)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
