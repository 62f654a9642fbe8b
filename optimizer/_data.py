"""Validated numeric inputs of one optimization request."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from optimizer._errors import InvalidProblem
from optimizer._risk import covariance_factor
from optimizer._typing import FloatArray


@dataclass(frozen=True, eq=False)  # arrays have no boolean equality
class ProblemData:
    """Expected returns and risk of the assets, checked and ready for the terms.

    All fields share the caller's units (the service passes annualised simple returns
    and an annualised covariance); the optimizer never rescales them.

    Attributes
    ----------
    expected_returns : ndarray of shape (n_assets,)
        Expected return of each asset.
    covariance : ndarray of shape (n_assets, n_assets)
        Symmetric positive semidefinite covariance of the asset returns.
    risk_factor : ndarray of shape (n_assets, n_assets)
        Square-root factor ``L`` with ``covariance = L @ L.T``; it is what the risk
        terms hand to cvxpy, because ``sum_squares(L.T @ w)`` is DPP.
    """

    expected_returns: FloatArray
    covariance: FloatArray
    risk_factor: FloatArray

    @property
    def n_assets(self) -> int:
        """Number of assets."""
        return int(self.expected_returns.shape[0])

    @classmethod
    def from_arrays(cls, expected_returns: npt.ArrayLike, covariance: npt.ArrayLike) -> ProblemData:
        """Validate the inputs and compute the risk factor.

        Parameters
        ----------
        expected_returns : array-like of shape (n_assets,)
            Expected return of each asset.
        covariance : array-like of shape (n_assets, n_assets)
            Covariance of the asset returns, in the same units and asset order.

        Returns
        -------
        ProblemData

        Raises
        ------
        InvalidProblem
            On non-numeric, NaN or infinite values, shape mismatches, or a covariance
            that is not symmetric positive semidefinite.
        """
        mu = _as_float_array(expected_returns, "expected_returns")
        sigma = _as_float_array(covariance, "covariance")
        if mu.ndim != 1 or mu.shape[0] == 0:
            raise InvalidProblem(
                f"expected_returns must be a non-empty 1-D array (one value per asset); "
                f"got shape {mu.shape}."
            )
        n_assets = mu.shape[0]
        if sigma.shape != (n_assets, n_assets):
            raise InvalidProblem(
                f"covariance has shape {sigma.shape} but expected_returns has {n_assets} "
                f"assets; pass a ({n_assets}, {n_assets}) covariance in the same asset order."
            )
        for name, values in (("expected_returns", mu), ("covariance", sigma)):
            if not np.all(np.isfinite(values)):
                bad = np.argwhere(~np.isfinite(values))[:5].tolist()
                raise InvalidProblem(
                    f"{name} contains NaN or infinite values (first at indices {bad}); "
                    "fill or drop those assets before optimizing."
                )
        factor = covariance_factor(sigma)
        symmetric: FloatArray = (sigma + sigma.T) / 2.0
        return cls(expected_returns=mu, covariance=symmetric, risk_factor=factor)


def _as_float_array(values: npt.ArrayLike, name: str) -> FloatArray:
    """``values`` as a float64 array, or ``InvalidProblem`` if it is not numeric."""
    try:
        array: FloatArray = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidProblem(f"{name} must be numeric: {exc}") from exc
    return array
