"""Risk models as scikit-learn-style estimators.

``__init__`` stores parameters only; ``fit(returns)`` validates the returns, sets the
fitted attributes (names ending in ``_``) and returns ``self``. Every estimator sets
``covariance_`` in the units of the returns it saw (daily returns give a daily
covariance: multiply by the periods per year to annualise).
:class:`PCAFactorModel` also sets ``factor_model_``, which the optimizer uses in
factor form so that the cost of a solve grows with ``n * k`` rather than ``n^2``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Self

import numpy as np
import numpy.typing as npt
import scipy.linalg
from sklearn.covariance import LedoitWolf

from optimizer._errors import InvalidProblem
from optimizer._factor_model import FactorModel
from optimizer._typing import FloatArray


def check_returns(returns: npt.ArrayLike, *, min_rows: int = 2) -> FloatArray:
    """``returns`` as a finite float64 ``(n_observations, n_assets)`` array.

    Raises
    ------
    InvalidProblem
        If it is not numeric, not 2-D, has fewer than ``min_rows`` rows, or contains
        NaN or infinite values.
    """
    try:
        array: FloatArray = np.array(returns, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidProblem(f"returns must be numeric: {exc}") from exc
    if array.ndim != 2 or array.shape[0] < min_rows or array.shape[1] == 0:
        raise InvalidProblem(
            f"returns must be a 2-D array (n_observations, n_assets) with at least "
            f"{min_rows} rows; got shape {array.shape}."
        )
    if not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))[:5].tolist()
        raise InvalidProblem(
            f"returns contain NaN or infinite values (first at [row, column] {bad}); drop "
            "or fill them before estimating risk."
        )
    return array


class CovarianceEstimator(ABC):
    """Base class: ``fit(returns)`` sets ``covariance_`` and returns ``self``."""

    covariance_: FloatArray
    """Fitted covariance, in the units of the returns."""

    @abstractmethod
    def fit(self, returns: npt.ArrayLike) -> Self:
        """Estimate the covariance of ``returns`` (one row per period)."""

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_"))
        return f"{type(self).__name__}({params})"


class SampleCovariance(CovarianceEstimator):
    """The sample covariance (``ddof=1``)."""

    def fit(self, returns: npt.ArrayLike) -> Self:
        """Set ``covariance_`` to ``np.cov(returns, rowvar=False)``."""
        array = check_returns(returns)
        self.covariance_ = np.atleast_2d(np.cov(array, rowvar=False))
        return self


class LedoitWolfCovariance(CovarianceEstimator):
    """Ledoit-Wolf shrinkage towards a scaled identity (scikit-learn's estimator).

    Shrinkage keeps the estimate well conditioned when assets are many relative to
    observations. Sets ``shrinkage_`` beside ``covariance_``.
    """

    shrinkage_: float

    def fit(self, returns: npt.ArrayLike) -> Self:
        """Fit scikit-learn's ``LedoitWolf`` on ``returns``."""
        array = check_returns(returns)
        model = LedoitWolf().fit(array)
        self.covariance_ = np.asarray(model.covariance_, dtype=np.float64)
        self.shrinkage_ = float(model.shrinkage_)
        return self


class EWMACovariance(CovarianceEstimator):
    """Exponentially weighted covariance: recent periods count more.

    Period ``t`` of ``T`` gets the weight ``0.5 ** ((T - 1 - t) / half_life)``; the
    covariance is the weighted covariance about the weighted mean with the
    reliability-weights correction ``V1^2 / (V1^2 - V2)``, so equal weights (an
    infinite half-life) give exactly the sample covariance.

    Parameters
    ----------
    half_life : float
        Periods after which an observation's weight halves (e.g. 63 trading days).
    """

    def __init__(self, half_life: float) -> None:
        self.half_life = half_life

    def fit(self, returns: npt.ArrayLike) -> Self:
        """Set ``covariance_`` and ``weights_`` (the normalised period weights)."""
        if not (math.isfinite(self.half_life) and self.half_life > 0.0):
            raise InvalidProblem(
                f"half_life={self.half_life} must be a positive number of periods (e.g. 63)."
            )
        array = check_returns(returns)
        ages = np.arange(array.shape[0] - 1, -1, -1, dtype=np.float64)
        weights = 0.5 ** (ages / self.half_life)
        weights /= weights.sum()
        mean = weights @ array
        centred = array - mean
        correction = 1.0 / (1.0 - float(np.sum(weights**2)))
        self.weights_: FloatArray = weights
        self.covariance_ = (centred * weights[:, None]).T @ centred * correction
        return self


class PCAFactorModel(CovarianceEstimator):
    """A statistical factor model from the principal components of the returns.

    With ``S = V diag(lambda) V'`` the sample covariance, the ``k`` leading
    components give ``B = V[:, :k]`` and ``F = diag(lambda[:k])``; the specific
    variances ``D = diag(S - B F B')`` make the model's variances equal the sample
    ones. ``covariance_ = B F B' + diag(D)``.

    Parameters
    ----------
    n_factors : int
        Number of factors ``k``, between 1 and ``n_assets - 1``.

    Attributes
    ----------
    loadings_ : ndarray of shape (n_assets, n_factors)
    factor_covariance_ : ndarray of shape (n_factors, n_factors)
    specific_variance_ : ndarray of shape (n_assets,)
    explained_variance_ratio_ : float
        Share of the total sample variance carried by the factors.
    factor_model_ : FactorModel
        The fitted model, for the optimizer's factor form.
    covariance_ : ndarray of shape (n_assets, n_assets)
        The dense covariance, formed on first access.
    """

    loadings_: FloatArray
    factor_covariance_: FloatArray
    specific_variance_: FloatArray
    explained_variance_ratio_: float
    factor_model_: FactorModel

    def __init__(self, n_factors: int) -> None:
        self.n_factors = n_factors

    def fit(self, returns: npt.ArrayLike) -> Self:
        """Fit the loadings, factor covariance and specific variances."""
        array = check_returns(returns)
        n_assets = array.shape[1]
        if not (isinstance(self.n_factors, int) and 1 <= self.n_factors < n_assets):
            raise InvalidProblem(
                f"n_factors={self.n_factors} must be an integer from 1 to n_assets - 1 = "
                f"{n_assets - 1}; use SampleCovariance for a full-rank estimate."
            )
        leading = _components_from_observations(array, self.n_factors)
        if leading is None:
            sample = np.atleast_2d(np.cov(array, rowvar=False))
            eigenvalues, eigenvectors = np.linalg.eigh(sample)
            order = np.argsort(eigenvalues)[::-1][: self.n_factors]
            loadings, variances = eigenvectors[:, order], np.diag(sample)
            factor_variance = np.clip(eigenvalues[order], 0.0, None)
        else:
            factor_variance, loadings, variances = leading
        systematic = np.sum(loadings**2 * factor_variance, axis=1)
        specific = np.clip(variances - systematic, 0.0, None)
        self.loadings_ = loadings
        self.factor_covariance_ = np.diag(factor_variance)
        self.specific_variance_ = specific
        total = float(np.sum(variances))
        self.explained_variance_ratio_ = float(factor_variance.sum()) / total if total > 0 else 0.0
        self.factor_model_ = FactorModel(loadings, self.factor_covariance_, specific)
        return self

    def __getattr__(self, name: str) -> FloatArray:
        # The dense covariance is formed only when asked for: it costs n^2 memory.
        if name == "covariance_" and "factor_model_" in self.__dict__:
            covariance = self.factor_model_.covariance()
            self.__dict__["covariance_"] = covariance
            return covariance
        raise AttributeError(name)


_GRAM_EIGENVALUE_FLOOR = 1e-10
"""Smallest leading eigenvalue, relative to the largest, taken from the Gram matrix."""


def _components_from_observations(
    returns: FloatArray, n_components: int
) -> tuple[FloatArray, FloatArray, FloatArray] | None:
    """The leading principal components, when there are fewer observations than assets.

    With ``X`` the centred returns (``T x n``, ``T < n``), the sample covariance
    ``X'X / (T - 1)`` (``n x n``) and the Gram matrix ``X X' / (T - 1)`` (``T x T``)
    share their non-zero eigenvalues, and ``X'u / sqrt((T - 1) lambda)`` maps an
    eigenvector ``u`` of the Gram matrix to the covariance's. Decomposing the small
    matrix costs ``O(T^2 n)`` instead of ``O(n^3)`` (a 252-day window of 500 assets:
    about a sixth of the time) and never forms the ``n x n`` covariance.

    Returns
    -------
    tuple of (eigenvalues, eigenvectors, variances) or None
        The ``n_components`` largest eigenvalues (descending), their unit eigenvectors
        as columns and each asset's sample variance; ``None`` when there are at least
        as many observations as assets, or when a wanted eigenvalue is (numerically)
        zero, as a direction the returns never moved in is not recoverable from them.
    """
    n_observations, n_assets = returns.shape
    if n_observations >= n_assets or n_components >= n_observations:
        return None
    centred = returns - returns.mean(axis=0)
    scale = n_observations - 1
    # Only the wanted eigenpairs (LAPACK's syevr): about half the time of all of them.
    eigenvalues, vectors = scipy.linalg.eigh(
        centred @ centred.T / scale,
        subset_by_index=[n_observations - n_components, n_observations - 1],
        driver="evr",
    )
    leading, vectors = eigenvalues[::-1], vectors[:, ::-1]
    if not leading[-1] > _GRAM_EIGENVALUE_FLOOR * max(float(leading[0]), 0.0):
        return None
    loadings: FloatArray = (centred.T @ vectors) / np.sqrt(scale * leading)
    variances: FloatArray = np.einsum("ij,ij->j", centred, centred) / scale
    return leading, loadings, variances
