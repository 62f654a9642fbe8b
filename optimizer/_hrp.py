"""Hierarchical risk parity (Lopez de Prado, 2016): clustering instead of a solver."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import numpy.typing as npt
import scipy.cluster.hierarchy as sch
from scipy.spatial.distance import squareform

from optimizer._data import ProblemData
from optimizer._errors import ASSETS, InvalidProblem
from optimizer._objectives import CompiledObjective, Objective
from optimizer._terms import CompileContext
from optimizer._typing import FloatArray

LINKAGE_METHODS = ("single", "complete", "average", "weighted", "centroid", "median", "ward")
"""scipy's linkage methods."""


_NEGLIGIBLE_VOLATILITY = 1e-8
"""A volatility below this fraction of the largest is zero (no real asset is that quiet)."""


@dataclass(frozen=True)
class HierarchicalRiskParity(Objective):
    """Hierarchical risk parity: cluster, order, then split risk by recursive bisection.

    1. Distances ``d_ij = sqrt((1 - rho_ij) / 2)`` from the correlation implied by the
       covariance; scipy's hierarchical clustering with ``linkage``.
    2. Quasi-diagonalisation: the leaves of the cluster tree in pre-order.
    3. Recursive bisection of that order into halves; each half gets a share of the
       weight inversely proportional to the variance of its inverse-variance
       portfolio.

    This is PyPortfolioOpt's ``HRPOpt`` algorithm. Weights are long-only and fully
    invested; other constraints are refused (use ``RiskBudgeting`` for a constrained
    risk-based allocation).

    Parameters
    ----------
    linkage : str, optional
        One of scipy's methods (``LINKAGE_METHODS``); default ``"single"``, as in the
        original paper.
    correlation : array-like of shape (n_assets, n_assets), optional
        Correlation for the clustering; default: the one the covariance implies.
        PyPortfolioOpt clusters on the pairwise correlation of returns with missing
        values, which differs from the covariance-implied one when assets have
        histories of different lengths.
    """

    name: ClassVar[str] = "hrp"
    supported_constraints: ClassVar[frozenset[str]] = frozenset({"budget", "long_only"})

    linkage: str = "single"
    correlation: npt.ArrayLike | None = field(default=None, compare=False)

    def check_feasible(self, data: ProblemData, lower: FloatArray, upper: FloatArray) -> None:
        """Reject an unknown linkage method and assets with zero variance."""
        if self.linkage not in LINKAGE_METHODS:
            raise InvalidProblem(f"linkage={self.linkage!r} is not one of {list(LINKAGE_METHODS)}.")
        if self.correlation is not None:
            correlation = np.asarray(self.correlation, dtype=np.float64)
            shape = (data.n_assets, data.n_assets)
            if correlation.shape != shape or not np.all(np.isfinite(correlation)):
                raise InvalidProblem(
                    f"correlation must be a finite {shape} matrix in asset order; got shape "
                    f"{correlation.shape}."
                )
        volatility = data.asset_volatility
        # Relative, not == 0: a constant column's sample variance comes out as rounding
        # noise (~1e-34), which would pass a zero test and take the whole allocation.
        if np.any(volatility <= _NEGLIGIBLE_VOLATILITY * max(float(volatility.max()), 0.0)):
            asset = int(np.argmin(volatility))
            raise InvalidProblem(
                f"{ASSETS} has zero variance: its correlations, and so the clustering, are "
                "undefined; remove it.",
                asset_positions=[asset],
            )

    def allocate(self, data: ProblemData) -> FloatArray:
        """The HRP weights, in asset order."""
        covariance = data.covariance
        if self.correlation is None:
            volatility = data.asset_volatility
            correlation = covariance / np.outer(volatility, volatility)
        else:
            correlation = np.asarray(self.correlation, dtype=np.float64)
        distance = np.sqrt(np.clip((1.0 - correlation) / 2.0, 0.0, 1.0))
        np.fill_diagonal(distance, 0.0)
        tree = sch.linkage(squareform(distance, checks=False), self.linkage)
        order: list[int] = sch.to_tree(tree, rd=False).pre_order()
        weights = np.ones(data.n_assets)
        clusters = [order]
        while clusters:
            clusters = [
                half
                for cluster in clusters
                if len(cluster) > 1
                for half in (cluster[: len(cluster) // 2], cluster[len(cluster) // 2 :])
            ]
            for first, second in zip(clusters[::2], clusters[1::2], strict=True):
                first_variance = _inverse_variance_portfolio_variance(covariance, first)
                second_variance = _inverse_variance_portfolio_variance(covariance, second)
                alpha = 1.0 - first_variance / (first_variance + second_variance)
                weights[first] *= alpha
                weights[second] *= 1.0 - alpha
        return weights

    def compile(self, context: CompileContext) -> CompiledObjective:
        """HRP is not a convex program: :meth:`allocate` computes it."""
        raise TypeError("hierarchical risk parity is allocated directly, not compiled")

    def update(self, compiled: CompiledObjective, data: ProblemData) -> None:
        """Never called (see :meth:`compile`)."""
        raise TypeError("hierarchical risk parity is allocated directly, not compiled")


def _inverse_variance_portfolio_variance(covariance: FloatArray, members: list[int]) -> float:
    """Variance of the inverse-variance portfolio of ``members``."""
    block = covariance[np.ix_(members, members)]
    weights = 1.0 / np.diag(block)
    weights /= weights.sum()
    return float(weights @ block @ weights)
