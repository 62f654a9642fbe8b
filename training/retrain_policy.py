"""When a retrain is due: the data has moved on past the serving model, or away from it.

The serving version was trained on the data up to a cut-off day, which its
``metadata.json`` records (the ingest manifest's last date). As live bars arrive the
feature table grows past that day. A retrain is due when either

- the table holds at least ``max_new_days`` trading days after the cut-off, or
- on the rows after the cut-off (at least ``min_drift_rows`` of them), some feature's
  population stability index against the version's training distribution
  (:mod:`training.drift`) exceeds ``drift_psi``.

:func:`decide_retrain` is the rule on plain numbers; :func:`assess_retrain` measures
them on a feature table; :func:`training_data_end` reads the cut-off from the metadata.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from training import schema
from training.config import RetrainConfig
from training.drift import BinnedDistribution, feature_drift


@dataclass(frozen=True)
class RetrainDecision:
    """Whether a retrain is due, why, and the numbers the rule looked at."""

    due: bool
    reason: str
    new_days: int = 0
    """Trading days in the features after the serving version's training data."""
    new_rows: int = 0
    """Feature rows (day and ticker) on those days."""
    drift: Mapping[str, float] = field(default_factory=dict)
    """PSI per feature on the new rows; empty when drift was not measured."""


def decide_retrain(
    new_days: int,
    new_rows: int,
    drift: Mapping[str, float] | None,
    config: RetrainConfig,
) -> RetrainDecision:
    """Apply the rule of the module docstring to measured values.

    Parameters
    ----------
    new_days, new_rows
        Trading days and feature rows after the serving version's training data.
    drift
        PSI per feature on those rows; ``None`` when the version has no drift reference.
    config
        ``max_new_days``, ``drift_psi`` and ``min_drift_rows``.
    """
    measured = dict(drift or {})
    days = f"{new_days} new trading days (retrain at {config.max_new_days})"
    if new_days >= config.max_new_days:
        return RetrainDecision(True, days, new_days, new_rows, measured)
    if drift is None:
        return RetrainDecision(
            False,
            f"{days}; drift not measured: the version has no drift reference",
            new_days,
            new_rows,
        )
    if new_rows < config.min_drift_rows:
        return RetrainDecision(
            False,
            f"{days}; drift not measured: {new_rows} new rows, fewer than {config.min_drift_rows}",
            new_days,
            new_rows,
        )
    if not measured:
        return RetrainDecision(
            False,
            f"{days}; drift not measured: no feature has enough finite values",
            new_days,
            new_rows,
        )
    feature, psi = max(measured.items(), key=lambda item: item[1])
    verdict = ">" if psi > config.drift_psi else "<="
    reason = (
        f"{days}; largest PSI {psi:.3f} ({feature}) {verdict} {config.drift_psi} "
        f"on {new_rows} new rows"
    )
    return RetrainDecision(psi > config.drift_psi, reason, new_days, new_rows, measured)


def assess_retrain(
    features: pd.DataFrame,
    trained_through: date,
    reference: Mapping[str, BinnedDistribution] | None,
    config: RetrainConfig,
) -> RetrainDecision:
    """Measure the feature rows after ``trained_through`` and decide.

    Parameters
    ----------
    features
        The feature table (:func:`training.feature_table.load_features`).
    trained_through
        The last day of the serving version's training data (:func:`training_data_end`).
    reference
        The version's drift reference (:func:`training.drift.read_drift_reference`);
        ``None`` when it has none, and drift is then not measured.
    config
        The thresholds.
    """
    new = features[features[schema.DATE] > pd.Timestamp(trained_through)]
    drift = None if reference is None else feature_drift(reference, new, config.min_drift_rows)
    return decide_retrain(int(new[schema.DATE].nunique()), len(new), drift, config)


def training_data_end(metadata: Mapping[str, Any]) -> date | None:
    """The last day of the data a model version was trained on, from its metadata.

    That is the ingest manifest's last date (``data.data_date_range``); for metadata
    without it, the last day of the version's train, validation and holdout periods.
    None when the metadata records neither.
    """
    data_range = (metadata.get("data") or {}).get("data_date_range")
    if data_range:
        return date.fromisoformat(data_range[1])
    # Periods are [start, end] pairs; the split also holds counts (gap_trading_days).
    periods = [
        period
        for period in (metadata.get("split") or {}).values()
        if isinstance(period, list | tuple) and len(period) == 2
    ]
    if not periods:
        return None
    return max(date.fromisoformat(period[1]) for period in periods)
