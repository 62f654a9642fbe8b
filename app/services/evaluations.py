"""A model version's walk-forward evaluation, as ``quantserve evaluate`` wrote it.

``quantserve evaluate`` writes ``<models_dir>/<name>/<version>/evaluation/metrics.json``
(``training.evaluation.write_evaluation``): the out-of-sample metrics of the model and
its baselines by target (``volatility``, ``returns``) and the run's ``context``. It
evaluates one version only: the serving one (production, else the newest) of the model
``QUANTSERVE_MODEL_NAME`` names, so how to get an evaluation depends on the version.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.services.errors import EvaluationNotFound, ModelVersionNotFound
from app.services.model_registry import serving_version
from training.errors import PipelineError
from training.model_store import list_versions

logger = logging.getLogger(__name__)

MODEL_NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
"""A model folder's name, as ``model_name`` in the settings; ``.`` and ``..`` are refused."""
EVALUATION_DIR = "evaluation"
METRICS_FILE = "metrics.json"

_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)


@dataclass(frozen=True)
class Evaluation:
    """One version's evaluation: metrics by target and forecaster, and the run's context."""

    name: str
    version: int
    volatility: dict[str, dict[str, Any]]
    """By forecaster: QLIKE and RMSE of the variance forecasts, sample count, DM tests."""
    returns: dict[str, dict[str, Any]]
    """By forecaster: rank IC (mean, t), out-of-sample R², hit rate, RMSE, coverage."""
    context: dict[str, Any]
    """Test period, refits, tickers, training settings, run time."""


def read_evaluation(models_dir: Path, name: str, version: int, configured: str) -> Evaluation:
    """The evaluation of ``name`` at ``version`` in the store ``models_dir``.

    ``configured`` is the model ``quantserve evaluate`` evaluates by default (the
    settings' ``model_name``), for the fix a missing evaluation's message gives.

    Raises
    ------
    ModelVersionNotFound
        ``name`` is not a model folder's name (``..`` and the like never reach the
        file system), or has no complete ``version``.
    EvaluationNotFound
        The version has no readable ``evaluation/metrics.json``; the message says how to
        produce it.
    """
    valid = bool(_MODEL_NAME.match(name)) and name not in {".", ".."}
    versions = list_versions(models_dir / name) if valid else []
    if version not in versions:
        # served=name: any model in the store may be read, as its TF-Serving routes do.
        raise ModelVersionNotFound(name, version, versions, served=name)
    path = models_dir / name / str(version) / EVALUATION_DIR / METRICS_FILE
    if not path.is_file():
        raise EvaluationNotFound(
            name,
            version,
            f"model {name} version {version} has no evaluation yet; "
            f"{_how_to_evaluate(models_dir, name, version, configured)}",
        )
    try:
        document = json.loads(path.read_text())
        return Evaluation(
            name=name,
            version=version,
            volatility=dict(document.get("volatility") or {}),
            returns=dict(document.get("returns") or {}),
            context=dict(document.get("context") or {}),
        )
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        logger.warning("unreadable evaluation %s: %s", path, exc)
        raise EvaluationNotFound(
            name,
            version,
            f"the evaluation of model {name} version {version} cannot be read; write it "
            f"again: {_how_to_evaluate(models_dir, name, version, configured)}",
        ) from exc


def _how_to_evaluate(models_dir: Path, name: str, version: int, configured: str) -> str:
    """The commands that write this version's evaluation (``quantserve evaluate`` has no
    version option: it evaluates the serving version of the configured model)."""
    prefix = "" if name == configured else f"QUANTSERVE_MODEL_NAME={name} "
    try:
        serving: int | None = serving_version(models_dir, name)
    except (PipelineError, OSError, ValueError):
        serving = None
    evaluate = f"`{prefix}quantserve evaluate`"
    if serving == version:
        return (
            f"run {evaluate} (it evaluates the serving version, {version}, and writes "
            f"its evaluation/metrics.json)"
        )
    now = f" (now {serving})" if serving is not None else ""
    return (
        f"{evaluate} evaluates only the serving version{now}: make {version} the serving "
        f"one with `{prefix}quantserve models promote {version}` (servers follow it), run "
        f"{evaluate}, then promote the version to serve"
    )
