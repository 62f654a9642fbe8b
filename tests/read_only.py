"""A folder made read-only for real: a read-only bind mount of itself (needs root).

Deployments mount the model store read-only; this reproduces that on the test machine
instead of simulating the error. Tests skip, saying why, where mounting is not allowed.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` bind-mounted read-only onto itself for the duration of the block."""
    mounted = subprocess.run(
        ["mount", "--bind", "-o", "ro", str(folder), str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot make {folder} read-only with a bind mount ({mounted.stderr.strip()}); "
            "the read-only store tests need root, as CI runs them"
        )
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)
