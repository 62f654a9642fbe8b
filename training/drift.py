"""Feature drift: the population stability index of live features against training.

At training time each feature's distribution over the training split is summarised
as decile bins: the interior bin edges (quantiles of the training values) and the
share of training values in each bin. The summary is written beside the model, in
``drift_reference.json``. At serving time the live feature rows (those dated after the
model's training data once ``MIN_NEW_DAYS`` trading days of them exist, else the latest
``LIVE_WINDOW_DAYS``) are binned on the same edges and compared with the population
stability index::

    PSI = sum_i (live_i - reference_i) * ln(live_i / reference_i)

over the bins ``i`` (shares floored at ``SHARE_FLOOR`` so an empty bin stays finite).
The usual reading: below 0.1 no shift, 0.1-0.25 a moderate shift, above 0.25 a large
one. Under no drift the expected PSI is about ``(bins - 1) * (1/n_live + 1/n_reference)``
(the statistic behaves like a chi-square over the bins), about 0.03 for 10 bins and
300 live values, so a few hundred live values are enough to read 0.25.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from training import schema
from training._io import atomic_write_json
from training.errors import DataError

DRIFT_REFERENCE_FILE: Final = "drift_reference.json"
DEFAULT_BINS: Final = 10
# Shares below this count as this: ln(0) would make one empty bin's PSI infinite.
SHARE_FLOOR: Final = 1e-4
# Trading days of the latest feature rows compared with training (about a quarter).
LIVE_WINDOW_DAYS: Final = 63
# Fewer finite live values than this and a feature's PSI is too noisy to report.
MIN_LIVE_VALUES: Final = 50
# Trading days of rows dated after a model's training data needed before its drift is
# measured on them alone (``rows_after``) rather than on the latest ``LIVE_WINDOW_DAYS``:
# about a month of every ticker. Fewer days are mostly the same few market moves, and
# the slow features (63- and 252-day windows) have barely moved yet.
MIN_NEW_DAYS: Final = 20


@dataclass(frozen=True)
class BinnedDistribution:
    """One feature's reference distribution: interior bin edges and the share per bin.

    ``edges`` are ascending; bin ``i`` holds the values ``v`` with
    ``edges[i-1] <= v < edges[i]`` (the first and last bins are open-ended), so there
    are ``len(edges) + 1`` shares, summing to 1.
    """

    edges: tuple[float, ...]
    shares: tuple[float, ...]

    @classmethod
    def from_values(cls, values: np.ndarray, bins: int = DEFAULT_BINS) -> BinnedDistribution:
        """Quantile bins of the finite ``values`` (ties can merge bins: edges are unique)."""
        finite = _finite(values)
        if finite.size == 0:
            raise DataError("no finite value to build a drift reference from")
        if bins < 2:
            raise ValueError(f"bins must be >= 2, got {bins}")
        quantiles = np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)[1:-1])
        edges = tuple(float(edge) for edge in np.unique(quantiles))
        return cls(edges=edges, shares=tuple(float(s) for s in _bin_shares(edges, finite)))

    def shares_of(self, values: np.ndarray) -> np.ndarray:
        """The share of the finite ``values`` in each bin."""
        return _bin_shares(self.edges, _finite(values))

    def to_json(self) -> dict[str, list[float]]:
        """``{"edges": [...], "shares": [...]}``."""
        return {"edges": list(self.edges), "shares": list(self.shares)}

    @classmethod
    def from_json(cls, payload: Mapping[str, Sequence[float]]) -> BinnedDistribution:
        """Inverse of :meth:`to_json`."""
        edges = tuple(float(e) for e in payload["edges"])
        shares = tuple(float(s) for s in payload["shares"])
        if len(shares) != len(edges) + 1:
            raise DataError(f"a drift reference has {len(edges)} edges but {len(shares)} shares")
        return cls(edges=edges, shares=shares)


def population_stability_index(reference: BinnedDistribution, values: np.ndarray) -> float:
    """PSI of the finite ``values`` against ``reference`` (0 when they match exactly)."""
    expected = np.maximum(np.asarray(reference.shares), SHARE_FLOOR)
    actual = np.maximum(reference.shares_of(values), SHARE_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def drift_reference(
    rows: np.ndarray,
    feature_columns: Sequence[str],
    bins: int = DEFAULT_BINS,
) -> dict[str, BinnedDistribution]:
    """Each feature's binned distribution over ``rows`` (``(n_rows, n_features)``)."""
    if rows.ndim != 2 or rows.shape[1] != len(feature_columns):
        raise ValueError(
            f"rows of shape {rows.shape} do not match {len(feature_columns)} feature columns"
        )
    return {
        name: BinnedDistribution.from_values(rows[:, i], bins)
        for i, name in enumerate(feature_columns)
    }


def write_drift_reference(
    version_dir: Path,
    reference: Mapping[str, BinnedDistribution],
    description: Mapping[str, Any],
) -> Path:
    """Write ``version_dir/drift_reference.json``; ``description`` says what it was fit on."""
    path = version_dir / DRIFT_REFERENCE_FILE
    atomic_write_json(
        path,
        {
            **description,
            "statistic": "population stability index",
            "bins": "quantiles of the training values; edges are the interior bin edges",
            "features": {name: dist.to_json() for name, dist in reference.items()},
        },
    )
    return path


def read_drift_reference(version_dir: Path) -> dict[str, BinnedDistribution] | None:
    """The reference written beside a model version; None for a version without one."""
    path = version_dir / DRIFT_REFERENCE_FILE
    if not path.is_file():
        return None
    payload = json.loads(path.read_text())
    return {name: BinnedDistribution.from_json(dist) for name, dist in payload["features"].items()}


def latest_rows(features: pd.DataFrame, days: int = LIVE_WINDOW_DAYS) -> pd.DataFrame:
    """The feature rows dated on the last ``days`` distinct dates of the table."""
    dates = np.sort(features[schema.DATE].unique())
    if dates.size == 0:
        return features.iloc[0:0]
    recent: pd.DataFrame = features[features[schema.DATE] >= dates[max(dates.size - days, 0)]]
    return recent


def rows_after(features: pd.DataFrame, day: date) -> pd.DataFrame:
    """The feature rows dated after ``day``, e.g. those that arrived after a model's data."""
    new: pd.DataFrame = features[features[schema.DATE] > pd.Timestamp(day)]
    return new


def feature_drift(
    reference: Mapping[str, BinnedDistribution],
    live: pd.DataFrame,
    min_values: int = MIN_LIVE_VALUES,
) -> dict[str, float]:
    """PSI of each reference feature in ``live``.

    A feature missing from ``live``, or with fewer than ``min_values`` finite values
    there, is left out: its PSI would be noise.
    """
    drift = {}
    for name, dist in reference.items():
        if name not in live.columns:
            continue
        values = live[name].to_numpy(dtype=float, na_value=np.nan)
        if np.isfinite(values).sum() >= min_values:
            drift[name] = population_stability_index(dist, values)
    return drift


def _bin_shares(edges: Sequence[float], finite: np.ndarray) -> np.ndarray:
    counts = np.bincount(
        np.searchsorted(np.asarray(edges, dtype=float), finite, side="right"),
        minlength=len(edges) + 1,
    )
    return counts / max(finite.size, 1)


def _finite(values: np.ndarray) -> np.ndarray:
    flat = np.asarray(values, dtype=float).reshape(-1)
    finite: np.ndarray = flat[np.isfinite(flat)]
    return finite
