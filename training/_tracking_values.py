"""What MLflow accepts: flat metric and parameter keys, finite numbers, short strings.

Also the code's git commit and the display form of a tracking URI, for the run's tags
and for ``metadata.json``.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess  # nosec B404: one fixed `git rev-parse`, no shell
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

CODE_ROOT: Final = Path(__file__).resolve().parents[1]
"""The checkout holding ``training/`` (when installed editable, as ``make install`` does)."""

MAX_KEY_LENGTH: Final = 250
"""MLflow's limit on metric, parameter and tag keys."""
MAX_PARAM_LENGTH: Final = 6000
"""MLflow's limit on a parameter's value (characters)."""
_ILLEGAL_KEY_CHARACTERS: Final = re.compile(r"[^A-Za-z0-9_.\- /]")


def mlflow_key(key: str) -> str:
    """``key`` with the characters MLflow refuses replaced by ``_``.

    MLflow keys allow letters, digits, ``_ - . /`` and spaces, so a back-test strategy
    ``min_variance+vol_target`` becomes ``min_variance_vol_target``.
    """
    return _ILLEGAL_KEY_CHARACTERS.sub("_", key)[:MAX_KEY_LENGTH]


def flatten_metrics(tree: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers of a nested mapping, keyed by their dotted paths.

    ``{"volatility": {"model": {"qlike": 0.41}}}`` with prefix ``validation`` gives
    ``{"validation.volatility.model.qlike": 0.41}``. Strings, lists, booleans, None and
    non-finite numbers are left out: MLflow metrics are finite floats.
    """
    flat: dict[str, float] = {}
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten_metrics(value, path))
        elif (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        ):
            flat[mlflow_key(path)] = float(value)
    return flat


def flatten_params(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Every leaf of a nested mapping as a string, keyed by its dotted path.

    Lists and tuples stay whole (``[5, 21]``); a value longer than MLflow's limit is cut,
    ending in ``...``.
    """
    flat: dict[str, str] = {}
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, path))
            continue
        text = str(value)
        if len(text) > MAX_PARAM_LENGTH:
            text = text[: MAX_PARAM_LENGTH - 3] + "..."
        flat[mlflow_key(path)] = text
    return flat


def display_uri(uri: str) -> str:
    """``uri`` without a user name, password or query (they may hold credentials)."""
    netloc = urlsplit(uri).netloc
    if "@" in netloc:
        uri = uri.replace(netloc, netloc.rsplit("@", 1)[1], 1)
    return uri.split("?", 1)[0]


def is_http(uri: str) -> bool:
    """True for a tracking server (``http://``, ``https://``)."""
    return urlsplit(uri).scheme in {"http", "https"}


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI; None for another store or ``:memory:``."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri == prefix or ":memory:" in uri:
        return None
    return Path(uri.removeprefix(prefix).split("?", 1)[0])


def git_commit(code_root: Path = CODE_ROOT) -> str | None:
    """The commit checked out at ``code_root``; None outside a git checkout of the code.

    The checkout's top level must be ``code_root`` itself: an installed copy of the code
    under a checkout's ``.venv`` is not that checkout's code.
    """
    git = shutil.which("git")
    if git is None:
        return None
    try:
        found = subprocess.run(  # nosec B603: fixed arguments, no shell
            [git, "-C", str(code_root), "rev-parse", "--show-toplevel", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = found.stdout.splitlines()
    if found.returncode != 0 or len(lines) != 2:
        return None
    top_level, commit = lines
    if Path(top_level).resolve() != code_root.resolve():
        return None
    return commit if re.fullmatch(r"[0-9a-f]{40,64}", commit) else None
