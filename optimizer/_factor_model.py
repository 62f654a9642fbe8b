"""A factor risk model ``Sigma = B F B' + D``, the form that keeps large problems fast.

With ``k`` factors the optimizer writes the portfolio variance as
``||G' w||^2 + ||s * w||^2`` with ``G = B chol(F)`` (``n x k``) and ``s = sqrt(D)``;
the solver then works with ``n * k`` numbers instead of the ``n^2`` of a dense
covariance.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from optimizer._errors import ASSETS, InvalidProblem
from optimizer._typing import FloatArray

_PSD_TOLERANCE = 1e-8
"""Most negative eigenvalue of ``F`` accepted, relative to its largest."""


@dataclass(frozen=True, eq=False)  # arrays have no boolean equality
class FactorModel:
    """Covariance in factor form: ``Sigma = B F B' + diag(D)``.

    Parameters
    ----------
    loadings : array-like of shape (n_assets, n_factors)
        Exposure ``B`` of each asset to each factor.
    factor_covariance : array-like of shape (n_factors, n_factors)
        Covariance ``F`` of the factor returns (symmetric positive semidefinite).
    specific_variance : array-like of shape (n_assets,)
        Non-negative idiosyncratic variance ``D`` of each asset.

    Notes
    -----
    Units are those of the returns the model was fitted on (daily returns give a
    daily covariance); :meth:`scaled` converts, e.g. ``scaled(252)`` to annualise.

    Raises
    ------
    InvalidProblem
        On mismatched shapes, non-finite values, a factor covariance that is not
        symmetric positive semidefinite, or a negative specific variance.
    """

    loadings: FloatArray
    factor_covariance: FloatArray
    specific_variance: FloatArray

    def __post_init__(self) -> None:
        loadings = as_float_array(self.loadings, "the factor model's loadings")
        factor_covariance = as_float_array(
            self.factor_covariance, "the factor model's factor_covariance"
        )
        specific = as_float_array(self.specific_variance, "the factor model's specific_variance")
        if loadings.ndim != 2 or loadings.shape[1] == 0:
            raise InvalidProblem(
                f"loadings must be a 2-D (n_assets, n_factors) array with at least one "
                f"factor; got shape {loadings.shape}."
            )
        n_assets, n_factors = loadings.shape
        if factor_covariance.shape != (n_factors, n_factors):
            raise InvalidProblem(
                f"factor_covariance has shape {factor_covariance.shape} but loadings have "
                f"{n_factors} factors; pass a ({n_factors}, {n_factors}) matrix."
            )
        if specific.shape != (n_assets,):
            raise InvalidProblem(
                f"specific_variance has shape {specific.shape}; pass one value per asset "
                f"({n_assets})."
            )
        for name, values in (
            ("loadings", loadings),
            ("factor_covariance", factor_covariance),
            ("specific_variance", specific),
        ):
            if not np.all(np.isfinite(values)):
                raise InvalidProblem(f"the factor model's {name} contains NaN or infinite values.")
        if np.any(specific < 0.0):
            raise InvalidProblem("specific_variance must be non-negative.")
        if not np.allclose(factor_covariance, factor_covariance.T, rtol=0.0, atol=1e-12):
            raise InvalidProblem("factor_covariance is not symmetric; pass (F + F.T) / 2.")
        eigenvalues = np.linalg.eigvalsh(factor_covariance)
        if eigenvalues[0] < -_PSD_TOLERANCE * max(float(eigenvalues[-1]), 0.0):
            raise InvalidProblem(
                f"factor_covariance is not positive semidefinite (smallest eigenvalue "
                f"{eigenvalues[0]:.3g}); estimate it from factor returns, e.g. with "
                "PCAFactorModel."
            )
        object.__setattr__(self, "loadings", loadings)
        object.__setattr__(self, "factor_covariance", factor_covariance)
        object.__setattr__(self, "specific_variance", specific)

    @property
    def n_assets(self) -> int:
        """Number of assets."""
        return int(self.loadings.shape[0])

    @property
    def n_factors(self) -> int:
        """Number of factors ``k``."""
        return int(self.loadings.shape[1])

    @cached_property
    def exposure(self) -> FloatArray:
        """``G = B @ chol(F)`` (``n x k``), so that ``B F B' = G G'``.

        An eigen-decomposition replaces the Cholesky factor when ``F`` is singular.
        """
        try:
            root = np.linalg.cholesky(self.factor_covariance)
        except np.linalg.LinAlgError:
            eigenvalues, eigenvectors = np.linalg.eigh(self.factor_covariance)
            root = eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))
        exposure: FloatArray = self.loadings @ root
        return exposure

    @cached_property
    def volatility(self) -> FloatArray:
        """Each asset's volatility ``sqrt(diag(Sigma))``, without forming ``Sigma``."""
        variance = np.sum(self.exposure**2, axis=1) + self.specific_variance
        volatility: FloatArray = np.sqrt(variance)
        return volatility

    def covariance(self) -> FloatArray:
        """The dense ``n x n`` covariance (costs ``n^2`` memory; for checks and small n)."""
        covariance: FloatArray = self.exposure @ self.exposure.T + np.diag(self.specific_variance)
        return covariance

    def scaled(self, factor: float) -> FactorModel:
        """The model with every variance multiplied by ``factor`` (e.g. 252 to annualise)."""
        if not (np.isfinite(factor) and factor > 0.0):
            raise InvalidProblem(f"the scaling factor must be positive and finite; got {factor}.")
        return FactorModel(
            self.loadings, self.factor_covariance * factor, self.specific_variance * factor
        )

    def with_volatility(self, volatility: npt.ArrayLike) -> FactorModel:
        """The model rescaled so that the asset volatilities are ``volatility``.

        Correlations are kept: ``Sigma' = V S^-1 Sigma S^-1 V`` with ``S`` the current
        and ``V`` the new volatilities (both diagonal). Used to pair a factor
        correlation structure with forecast volatilities.
        """
        target = np.asarray(volatility, dtype=np.float64)
        if (
            target.shape != (self.n_assets,)
            or not np.all(np.isfinite(target))
            or np.any(target < 0)
        ):
            raise InvalidProblem(
                f"volatility must hold {self.n_assets} finite non-negative values; got shape "
                f"{target.shape}."
            )
        current = self.volatility
        if np.any(current <= 0.0):
            raise InvalidProblem(
                f"the modelled volatility of {ASSETS} is zero, so the factor model cannot be "
                "rescaled to other volatilities; remove them or check their prices for stale "
                "data.",
                asset_positions=np.flatnonzero(current <= 0.0).tolist(),
            )
        ratio = target / current
        return FactorModel(
            self.loadings * ratio[:, None],
            self.factor_covariance,
            self.specific_variance * ratio**2,
        )


def as_float_array(values: npt.ArrayLike, name: str) -> FloatArray:
    """``values`` as a float64 array, or ``InvalidProblem`` if it is not numeric."""
    try:
        array: FloatArray = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidProblem(f"{name} must be numeric: {exc}") from exc
    return array
