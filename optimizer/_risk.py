"""Risk estimates: shrunk correlations, covariance from volatilities, PSD square roots.

The optimizer expresses portfolio variance as ``cp.sum_squares(L.T @ w)`` with
``Sigma = L @ L.T`` and ``L`` a ``cp.Parameter``; unlike ``cp.quad_form(w, Sigma)``
this is DPP, so a problem is compiled once and re-solved with new values.
"""

from __future__ import annotations

import numpy as np
from sklearn.covariance import LedoitWolf

from optimizer._errors import ASSETS, InvalidProblem
from optimizer._typing import FloatArray

SYMMETRY_TOLERANCE = 1e-8
"""Largest ``|Sigma - Sigma.T|`` accepted, relative to ``max |Sigma|``."""

PSD_TOLERANCE = 1e-8
"""Most negative eigenvalue accepted, relative to the largest eigenvalue."""

CHOLESKY_JITTER = 1e-12
"""Diagonal jitter, relative to the mean variance, that lets Cholesky factor a
singular (but PSD) covariance, e.g. one with a zero-volatility cash asset."""


def ledoit_wolf_correlation(returns: FloatArray) -> FloatArray:
    """Correlation matrix from the Ledoit-Wolf shrunk covariance of returns.

    Parameters
    ----------
    returns : ndarray of shape (n_observations, n_assets)
        Asset returns, one row per period. Any frequency; correlation is unit-free.

    Returns
    -------
    ndarray of shape (n_assets, n_assets)
        Symmetric correlation matrix with an exact unit diagonal.

    Raises
    ------
    InvalidProblem
        If ``returns`` is not 2-D, has fewer than two rows, contains NaN or infinite
        values, or an asset's returns are constant (its correlation is undefined).
    """
    returns = np.asarray(returns, dtype=np.float64)
    if returns.ndim != 2 or returns.shape[0] < 2:
        raise InvalidProblem(
            f"returns must be a 2-D array (n_observations, n_assets) with at least two "
            f"rows; got shape {returns.shape}."
        )
    if not np.all(np.isfinite(returns)):
        raise InvalidProblem(
            "returns contain NaN or infinite values; drop or fill them before estimating "
            "correlations."
        )
    # Shrinkage would give a constant column a positive variance and zero
    # correlations; its correlation is undefined, so refuse it instead.
    constant = np.flatnonzero(np.ptp(returns, axis=0) == 0.0).tolist()
    if constant:
        raise InvalidProblem(
            f"the returns of {ASSETS} are constant (zero variance), so their correlation is "
            "undefined; remove them or check their prices for stale data.",
            asset_positions=constant,
        )
    covariance = LedoitWolf().fit(returns).covariance_
    volatility = np.sqrt(np.diag(covariance))
    correlation: FloatArray = covariance / np.outer(volatility, volatility)
    correlation = (correlation + correlation.T) / 2.0
    np.fill_diagonal(correlation, 1.0)
    return correlation


def covariance_from_volatility(volatility: FloatArray, correlation: FloatArray) -> FloatArray:
    """Covariance ``D C D`` from volatilities ``D = diag(volatility)`` and correlation ``C``.

    Parameters
    ----------
    volatility : ndarray of shape (n_assets,)
        Non-negative volatilities; the covariance has their units squared (annualised
        volatilities give an annualised covariance).
    correlation : ndarray of shape (n_assets, n_assets)
        Correlation matrix.

    Returns
    -------
    ndarray of shape (n_assets, n_assets)
        The covariance matrix.

    Raises
    ------
    InvalidProblem
        On NaN or negative volatilities, or mismatched shapes.
    """
    volatility = np.asarray(volatility, dtype=np.float64)
    correlation = np.asarray(correlation, dtype=np.float64)
    if volatility.ndim != 1:
        raise InvalidProblem(f"volatility must be 1-D; got shape {volatility.shape}.")
    n_assets = volatility.shape[0]
    if correlation.shape != (n_assets, n_assets):
        raise InvalidProblem(
            f"correlation has shape {correlation.shape} but volatility has {n_assets} "
            f"assets; pass a ({n_assets}, {n_assets}) correlation in the same asset order."
        )
    if not (np.all(np.isfinite(volatility)) and np.all(np.isfinite(correlation))):
        raise InvalidProblem("volatility or correlation contains NaN or infinite values.")
    if np.any(volatility < 0.0):
        raise InvalidProblem("volatility must be non-negative.")
    covariance: FloatArray = correlation * np.outer(volatility, volatility)
    return covariance


def covariance_factor(covariance: FloatArray) -> FloatArray:
    """A square-root factor ``L`` with ``covariance = L @ L.T``.

    Tries a Cholesky factorisation of ``covariance + jitter * I`` (jitter
    ``CHOLESKY_JITTER`` times the mean variance); if that fails, falls back to the
    eigen-decomposition ``V diag(sqrt(max(q, 0))) V.T``, clipping the tiny negative
    eigenvalues that rounding leaves in a PSD matrix.

    Parameters
    ----------
    covariance : ndarray of shape (n_assets, n_assets)
        Symmetric positive semidefinite matrix (finite values, checked by the caller).

    Returns
    -------
    ndarray of shape (n_assets, n_assets)
        The factor ``L``.

    Raises
    ------
    InvalidProblem
        If ``covariance`` is not symmetric, or has an eigenvalue below
        ``-PSD_TOLERANCE`` times its largest eigenvalue.
    """
    covariance = np.asarray(covariance, dtype=np.float64)
    scale = float(np.max(np.abs(covariance))) if covariance.size else 0.0
    asymmetry = float(np.max(np.abs(covariance - covariance.T))) if covariance.size else 0.0
    if asymmetry > SYMMETRY_TOLERANCE * max(scale, np.finfo(np.float64).tiny):
        raise InvalidProblem(
            f"covariance is not symmetric (largest |S - S.T| = {asymmetry:.3g}); pass a "
            "symmetric matrix, e.g. (S + S.T) / 2."
        )
    symmetric = (covariance + covariance.T) / 2.0
    mean_variance = float(np.mean(np.diag(symmetric))) if symmetric.size else 0.0
    jitter = CHOLESKY_JITTER * max(mean_variance, np.finfo(np.float64).tiny)
    try:
        factor = np.linalg.cholesky(symmetric + jitter * np.eye(len(symmetric)))
    except np.linalg.LinAlgError:
        pass
    else:
        return factor.astype(np.float64, copy=False)
    eigenvalues, eigenvectors = np.linalg.eigh(symmetric)
    largest = max(float(eigenvalues[-1]), 0.0)
    smallest = float(eigenvalues[0])
    if smallest < -PSD_TOLERANCE * largest:
        raise InvalidProblem(
            f"covariance is not positive semidefinite (smallest eigenvalue {smallest:.3g}, "
            f"largest {largest:.3g}); a pairwise or hand-built covariance can be "
            "inconsistent. Use a shrinkage estimate (ledoit_wolf_correlation with "
            "covariance_from_volatility) or clip its negative eigenvalues."
        )
    root_eigenvalues = np.sqrt(np.clip(eigenvalues, 0.0, None))
    clipped_factor: FloatArray = eigenvectors * root_eigenvalues
    return clipped_factor
