"""Champion/challenger: a retrained candidate replaces production only if it forecasts better.

Both versions forecast the same samples: the candidate's validation window (the most
recent dates with known targets, which the candidate never trained on). The primary
score is the volatility forecast's QLIKE, the loss that ranks variance forecasts
consistently; ties keep production.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.dataset import WindowedSamples, build_windows
from training.metrics import qlike
from training.model import VARIANCE_OUTPUT
from training.model_store import read_metadata
from training.registry import ModelRegistry


@dataclass(frozen=True)
class PromotionDecision:
    """What happened to a candidate, and the scores behind it."""

    candidate: int
    production: int | None
    promoted: bool
    candidate_qlike: float | None
    production_qlike: float | None
    window: tuple[str, str] | None
    samples: int

    def describe(self) -> str:
        """One line for the CLI and logs."""
        if self.production is None:
            return f"version {self.candidate} promoted: no version was in production"
        verdict = "promoted" if self.promoted else "kept as archived; production stays"
        return (
            f"version {self.candidate} {verdict}: volatility QLIKE {self.candidate_qlike:.4f} "
            f"vs production version {self.production} {self.production_qlike:.4f} on "
            f"{self.samples:,} samples {self.window[0]}..{self.window[1]}"
            if self.window
            and self.candidate_qlike is not None
            and self.production_qlike is not None
            else f"version {self.candidate} {verdict}"
        )


def register_and_maybe_promote(
    features: pd.DataFrame, model_dir: Path, candidate: int
) -> PromotionDecision:
    """Register ``candidate``; promote it if it beats production (or nothing serves)."""
    registry = ModelRegistry(model_dir)
    registry.register(candidate)
    production = registry.production()
    if production is None:
        registry.promote(candidate, reason="first production version")
        return PromotionDecision(candidate, None, True, None, None, None, 0)

    metadata = read_metadata(model_dir / str(candidate))
    start, end = metadata["split"]["validation"]
    scores: dict[int, float] = {}
    common = _common_samples(features, model_dir, (candidate, production), start, end)
    for version, windows in common.items():
        predicted = _predict_variance(model_dir / str(version), windows.features)
        scores[version] = qlike(windows.target_variance, predicted)
    samples = len(common[candidate])
    promoted = scores[candidate] < scores[production]
    if promoted:
        registry.promote(
            candidate,
            reason=f"QLIKE {scores[candidate]:.4f} < {scores[production]:.4f} on {start}..{end}",
        )
    else:
        registry.archive(
            candidate,
            reason=f"QLIKE {scores[candidate]:.4f} >= production {scores[production]:.4f}",
        )
    return PromotionDecision(
        candidate,
        production,
        promoted,
        scores[candidate],
        scores[production],
        (start, end),
        samples,
    )


def _common_samples(
    features: pd.DataFrame, model_dir: Path, versions: tuple[int, ...], start: str, end: str
) -> dict[int, WindowedSamples]:
    """Each version's windows over the same (date, ticker) samples with known targets."""
    per_version: dict[int, WindowedSamples] = {}
    for version in versions:
        metadata: dict[str, Any] = read_metadata(model_dir / str(version))
        windows = build_windows(
            features, int(metadata["lookback_days"]), tuple(metadata["features"])
        )
        dates = windows.dates
        in_window = (dates >= np.datetime64(start)) & (dates <= np.datetime64(end))
        per_version[version] = windows.select(in_window & windows.has_targets)
    keys = [
        set(zip(w.dates.tolist(), w.tickers.tolist(), strict=True)) for w in per_version.values()
    ]
    shared = set.intersection(*keys)
    return {
        version: w.select(
            np.array(
                [k in shared for k in zip(w.dates.tolist(), w.tickers.tolist(), strict=True)],
                dtype=bool,
            )
        )
        for version, w in per_version.items()
    }


def _predict_variance(version_dir: Path, features: np.ndarray, batch: int = 4096) -> np.ndarray:
    import tensorflow as tf

    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    parts = [
        signature(features=tf.constant(features[i : i + batch]))[VARIANCE_OUTPUT].numpy()[:, 0]
        for i in range(0, len(features), batch)
    ]
    return np.concatenate(parts) if parts else np.empty(0)
