"""Validated numeric inputs of one optimization request."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from optimizer._errors import InvalidProblem
from optimizer._estimators import check_returns
from optimizer._factor_model import FactorModel, as_float_array
from optimizer._risk import covariance_factor
from optimizer._typing import FloatArray


@dataclass(frozen=True, eq=False)  # arrays have no boolean equality
class ProblemData:
    """Expected returns, risk and trading inputs of the assets, checked for the terms.

    All returns and risks share the caller's units (the service passes annualised
    simple returns and an annualised covariance); the optimizer never rescales them.
    Scenario returns (for CVaR) keep their own frequency.

    Attributes
    ----------
    expected_returns : ndarray of shape (n_assets,)
        Expected return of each asset.
    risk_factor : ndarray of shape (n_assets, m)
        ``L`` with ``covariance = L @ L.T + diag(specific_volatility**2)``: the
        ``n x n`` square root of a dense covariance, or the ``n x k`` factor exposure
        ``B chol(F)`` of a factor model. The risk terms hand it to cvxpy, because
        ``sum_squares(L.T @ w)`` is DPP.
    specific_volatility : ndarray of shape (n_assets,) or None
        ``sqrt(D)`` of a factor model; ``None`` for a dense covariance.
    current_weights : ndarray of shape (n_assets,)
        Holdings before trading, for turnover and costs (zeros: starting from cash).
    transaction_costs : ndarray of shape (n_assets,) or None
        Linear cost per unit of weight traded, in return units (10 bps = 0.001).
    scenarios : ndarray of shape (n_scenarios, n_assets) or None
        Historical (or simulated) per-period returns, for CVaR.
    """

    expected_returns: FloatArray
    risk_factor: FloatArray
    specific_volatility: FloatArray | None = None
    current_weights: FloatArray | None = None
    transaction_costs: FloatArray | None = None
    scenarios: FloatArray | None = None
    dense_covariance: FloatArray | None = None

    @property
    def n_assets(self) -> int:
        """Number of assets."""
        return int(self.expected_returns.shape[0])

    @property
    def n_factors(self) -> int | None:
        """Number of factors of a factor model; ``None`` for a dense covariance."""
        return None if self.specific_volatility is None else int(self.risk_factor.shape[1])

    @property
    def holdings(self) -> FloatArray:
        """``current_weights``, or zeros when none were given."""
        if self.current_weights is None:
            return np.zeros(self.n_assets)
        return self.current_weights

    @cached_property
    def covariance(self) -> FloatArray:
        """The dense covariance (formed from the factors on first access)."""
        if self.dense_covariance is not None:
            return self.dense_covariance
        assert self.specific_volatility is not None
        covariance: FloatArray = self.risk_factor @ self.risk_factor.T + np.diag(
            self.specific_volatility**2
        )
        return covariance

    @cached_property
    def asset_volatility(self) -> FloatArray:
        """Each asset's volatility ``sqrt(diag(covariance))``."""
        if self.dense_covariance is not None:
            variance = np.clip(np.diag(self.dense_covariance), 0.0, None)
        else:
            assert self.specific_volatility is not None
            variance = np.sum(self.risk_factor**2, axis=1) + self.specific_volatility**2
        volatility: FloatArray = np.sqrt(variance)
        return volatility

    def covariance_times(self, weights: FloatArray) -> FloatArray:
        """``covariance @ weights``, in ``O(n k)`` for a factor model."""
        if self.dense_covariance is not None:
            product: FloatArray = self.dense_covariance @ weights
            return product
        assert self.specific_volatility is not None
        return (
            self.risk_factor @ (self.risk_factor.T @ weights)
            + self.specific_volatility**2 * weights
        )

    def risk_vector(self, weights: FloatArray) -> FloatArray:
        """The vector whose squared norm is ``w' Sigma w``, as the risk terms build it."""
        vector: FloatArray = self.risk_factor.T @ weights
        if self.specific_volatility is None:
            return vector
        return np.concatenate([vector, self.specific_volatility * weights])

    @classmethod
    def from_arrays(
        cls,
        expected_returns: npt.ArrayLike,
        covariance: npt.ArrayLike | FactorModel,
        *,
        returns: npt.ArrayLike | None = None,
        current_weights: npt.ArrayLike | None = None,
        transaction_costs: npt.ArrayLike | None = None,
    ) -> ProblemData:
        """Validate the inputs and compute the risk factor.

        Parameters
        ----------
        expected_returns : array-like of shape (n_assets,)
            Expected return of each asset.
        covariance : array-like of shape (n_assets, n_assets), or FactorModel
            Covariance of the asset returns in the same units and asset order, dense
            or as a factor model (kept in factor form).
        returns : array-like of shape (n_scenarios, n_assets), optional
            Scenario returns for CVaR, in the same asset order.
        current_weights : array-like of shape (n_assets,), optional
            Current holdings (default: none, i.e. starting from cash).
        transaction_costs : float or array-like of shape (n_assets,), optional
            Linear cost per unit traded, in return units (10 bps = 0.001).

        Returns
        -------
        ProblemData

        Raises
        ------
        InvalidProblem
            On non-numeric, NaN or infinite values, shape mismatches, or a covariance
            that is not symmetric positive semidefinite.
        """
        mu = as_float_array(expected_returns, "expected_returns")
        if mu.ndim != 1 or mu.shape[0] == 0:
            raise InvalidProblem(
                f"expected_returns must be a non-empty 1-D array (one value per asset); "
                f"got shape {mu.shape}."
            )
        n_assets = mu.shape[0]
        _check_finite(mu, "expected_returns")
        optional = {
            "scenarios": _scenarios(returns, n_assets),
            "current_weights": _vector(current_weights, n_assets, "current_weights"),
            "transaction_costs": _vector(transaction_costs, n_assets, "transaction_costs"),
        }
        costs = optional["transaction_costs"]
        if costs is not None and np.any(costs < 0.0):
            raise InvalidProblem("transaction_costs must be non-negative.")
        if isinstance(covariance, FactorModel):
            if covariance.n_assets != n_assets:
                raise InvalidProblem(
                    f"the factor model has {covariance.n_assets} assets but expected_returns "
                    f"has {n_assets}; use the same assets in the same order."
                )
            return cls(
                expected_returns=mu,
                risk_factor=covariance.exposure,
                specific_volatility=np.sqrt(covariance.specific_variance),
                **optional,
            )
        sigma = as_float_array(covariance, "covariance")
        if sigma.shape != (n_assets, n_assets):
            raise InvalidProblem(
                f"covariance has shape {sigma.shape} but expected_returns has {n_assets} "
                f"assets; pass a ({n_assets}, {n_assets}) covariance in the same asset order."
            )
        _check_finite(sigma, "covariance")
        factor = covariance_factor(sigma)
        symmetric: FloatArray = (sigma + sigma.T) / 2.0
        return cls(expected_returns=mu, risk_factor=factor, dense_covariance=symmetric, **optional)


def _check_finite(values: FloatArray, name: str) -> None:
    if not np.all(np.isfinite(values)):
        bad = np.argwhere(~np.isfinite(values))[:5].tolist()
        raise InvalidProblem(
            f"{name} contains NaN or infinite values (first at indices {bad}); "
            "fill or drop those assets before optimizing."
        )


def _vector(values: npt.ArrayLike | None, n_assets: int, name: str) -> FloatArray | None:
    """An optional per-asset vector (a scalar is broadcast), checked."""
    if values is None:
        return None
    array = as_float_array(values, name)
    if array.ndim == 0:
        array = np.full(n_assets, float(array))
    if array.shape != (n_assets,):
        raise InvalidProblem(
            f"{name} has shape {array.shape}; pass one value per asset ({n_assets})."
        )
    _check_finite(array, name)
    return array


def _scenarios(returns: npt.ArrayLike | None, n_assets: int) -> FloatArray | None:
    if returns is None:
        return None
    scenarios = check_returns(returns)
    if scenarios.shape[1] != n_assets:
        raise InvalidProblem(
            f"returns have {scenarios.shape[1]} columns but there are {n_assets} assets; "
            "pass one column per asset, in the same order."
        )
    return scenarios
