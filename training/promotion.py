"""Champion/challenger: a retrained candidate replaces production only if it forecasts better.

Where the two are compared
--------------------------
Only on dates that neither version used to fit its weights or to select its model.
``quantserve train`` splits by time into ``train | gap | validation | gap | holdout``
(:mod:`training.train`); early stopping selects each version's epoch on its validation
split, so scoring there would favour the version being scored. The comparison window
is the candidate's holdout, cut further to the dates more than ``gap`` trading days
(``VOLATILITY_HORIZON_DAYS``, the longest target horizon) after the *later* of the two
versions' validation ends:

- a production version trained on older data selected on dates before the
  candidate's, and the window is the candidate's whole holdout;
- a production version whose validation reaches into the candidate's holdout (trained
  on the same or newer data with a smaller holdout, or before holdouts existed, when
  validation ran to the end of the data) saw part of it, and that part is dropped;
- if nothing is left, or the candidate records no holdout, there is no fair window:
  production stays, the candidate is archived with the reason, and the decision says
  so. Retrain once newer data has arrived, or promote by hand after checking it.

Production's training data ends before its validation does, so after the later
validation end neither version has seen a target. Production may have won its own
promotion on some of these dates; reusing them favours production, never the
candidate, as ties do.

The score is the volatility forecast's QLIKE on the same (date, ticker) samples, the
loss that ranks variance forecasts consistently; the candidate must be strictly
better.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training import schema
from training.dataset import WindowedSamples, build_windows
from training.errors import PipelineError
from training.metrics import qlike
from training.model import VARIANCE_OUTPUT
from training.model_store import read_metadata
from training.registry import ModelRegistry


@dataclass(frozen=True)
class ComparisonWindow:
    """The dates two versions are compared on, and why those dates."""

    start: str
    end: str
    selected_until: str
    """The later of the two versions' last validation dates."""
    gap_trading_days: int
    """Dates with known targets skipped after ``selected_until``, the purge."""

    def describe(self) -> str:
        """The window and why it is fair, for the CLI and the registry."""
        return (
            f"{self.start}..{self.end}, the candidate's holdout after a "
            f"{self.gap_trading_days}-day purge past both versions' validation (to "
            f"{self.selected_until}): neither version trained or selected on it"
        )


class NoFairWindow(PipelineError):
    """No date is unseen by both versions' fitting and model selection; the message says why.

    :func:`register_and_maybe_promote` catches it: production stays.
    """


@dataclass(frozen=True)
class PromotionDecision:
    """What happened to a candidate, and the scores behind it."""

    candidate: int
    production: int | None
    promoted: bool
    candidate_qlike: float | None
    production_qlike: float | None
    window: tuple[str, str] | None
    """First and last date both versions were scored on; None when not compared."""
    samples: int
    reason: str = ""
    """Which window and why, or why no comparison was possible."""

    def describe(self) -> str:
        """One line for the CLI and logs."""
        if self.production is None:
            return f"version {self.candidate} promoted: no version was in production"
        verdict = "promoted" if self.promoted else "kept as archived; production stays"
        if self.candidate_qlike is None or self.production_qlike is None:
            return f"version {self.candidate} {verdict}: {self.reason}"
        return (
            f"version {self.candidate} {verdict}: volatility QLIKE {self.candidate_qlike:.4f} "
            f"vs production version {self.production} {self.production_qlike:.4f} on "
            f"{self.samples:,} samples, {self.reason}"
        )


def register_and_maybe_promote(
    features: pd.DataFrame, model_dir: Path, candidate: int
) -> PromotionDecision:
    """Register ``candidate``; promote it if it beats production (or nothing serves).

    Both versions forecast the same samples of :func:`comparison_window`; see the
    module docstring for why that window.
    """
    registry = ModelRegistry(model_dir)
    registry.register(candidate)
    production = registry.production()
    if production is None:
        registry.promote(candidate, reason="first production version")
        return PromotionDecision(
            candidate, None, True, None, None, None, 0, "no version was in production"
        )
    if production == candidate:
        return PromotionDecision(
            candidate, production, True, None, None, None, 0, "already in production"
        )

    try:
        window = comparison_window(
            _dates_with_targets(features),
            candidate,
            read_metadata(model_dir / str(candidate)),
            production,
            read_metadata(model_dir / str(production)),
        )
        common = _common_samples(
            features, model_dir, (candidate, production), window.start, window.end
        )
        if len(common[candidate]) == 0:
            raise NoFairWindow(
                f"no (date, ticker) sample of {window.start}..{window.end} is one both "
                "versions can forecast"
            )
    except NoFairWindow as refused:
        reason = f"not compared: {refused}"
        registry.archive(candidate, reason=reason)
        return PromotionDecision(candidate, production, False, None, None, None, 0, reason)

    scores: dict[int, float] = {}
    for version, windows in common.items():
        predicted = _predict_variance(model_dir / str(version), windows.features)
        scores[version] = qlike(windows.target_variance, predicted)
    promoted = scores[candidate] < scores[production]
    comparison = f"QLIKE {scores[candidate]:.4f} vs production {scores[production]:.4f} on "
    if promoted:
        registry.promote(candidate, reason=f"{comparison}{window.describe()}")
    else:
        registry.archive(candidate, reason=f"not better: {comparison}{window.describe()}")
    return PromotionDecision(
        candidate,
        production,
        promoted,
        scores[candidate],
        scores[production],
        (window.start, window.end),
        len(common[candidate]),
        window.describe(),
    )


def comparison_window(
    dates: np.ndarray,
    candidate: int,
    candidate_metadata: dict[str, Any],
    production: int,
    production_metadata: dict[str, Any],
) -> ComparisonWindow:
    """The part of the candidate's holdout after both versions' validation and a purge.

    Parameters
    ----------
    dates
        Sorted distinct dates whose targets are known (``datetime64``): the purge
        counts these, as training's split does.
    candidate, production
        Version numbers, for the messages.
    candidate_metadata, production_metadata
        The versions' ``metadata.json``; their ``split`` is read.

    Raises
    ------
    NoFairWindow
        When the candidate records no holdout, production no validation window, or no
        holdout date is left after the purge.
    """
    candidate_split = candidate_metadata.get("split", {})
    production_split = production_metadata.get("split", {})
    holdout = candidate_split.get("holdout")
    if not holdout:
        raise NoFairWindow(
            f"version {candidate} records no holdout window (trained before holdouts, or "
            "with holdout_fraction 0), so it has no data it did not select on; retrain it "
            "with a holdout, or promote it by hand after checking it"
        )
    if not production_split.get("validation"):
        raise NoFairWindow(
            f"production version {production} records no validation window, so the "
            "dates it selected on are unknown; promote by hand after checking it"
        )
    gap = max(
        schema.VOLATILITY_HORIZON_DAYS,
        int(candidate_split.get("gap_trading_days", 0)),
        int(production_split.get("gap_trading_days", 0)),
    )
    ends = {
        candidate: candidate_split["validation"][1],
        production: production_split["validation"][1],
    }
    selected_until = max(ends.values())
    after = dates[dates > np.datetime64(selected_until)][gap:]
    fair = after[(after >= np.datetime64(holdout[0])) & (after <= np.datetime64(holdout[1]))]
    if len(fair) == 0:
        later = " and ".join(f"version {v}" for v, end in ends.items() if end == selected_until)
        raise NoFairWindow(
            f"no date of version {candidate}'s holdout {holdout[0]}..{holdout[1]} is more "
            f"than {gap} trading days after {selected_until}, where {later}'s validation "
            "ends, so every date is one a version selected on (or within the purge); "
            "retrain once newer data has arrived, or promote by hand after checking it"
        )
    return ComparisonWindow(
        start=_day(fair[0]), end=_day(fair[-1]), selected_until=selected_until, gap_trading_days=gap
    )


def _dates_with_targets(features: pd.DataFrame) -> np.ndarray:
    """Sorted distinct dates where some ticker's two targets are both known."""
    known = features[schema.TARGET_RETURN].notna() & features[schema.TARGET_VARIANCE].notna()
    dates = features.loc[known, schema.DATE].to_numpy(dtype="datetime64[ns]")
    return np.unique(dates)


def _day(value: np.datetime64) -> str:
    return str(np.datetime_as_string(value, unit="D"))


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
