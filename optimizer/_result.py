"""The result of one optimization, with the portfolio's risk and return statistics."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from optimizer._typing import FloatArray


@dataclass(frozen=True, eq=False)  # arrays have no boolean equality
class PortfolioResult:
    """Optimal weights and their statistics.

    Returns and risks are in the units of the ``expected_returns`` and ``covariance``
    given to the optimizer (the service passes annualised simple returns, so these
    are annualised too).

    Attributes
    ----------
    weights : ndarray of shape (n_assets,)
        Portfolio weights summing to 1, in the input asset order (read-only).
    expected_return : float
        ``mu' w``.
    volatility : float
        ``sqrt(w' Sigma w)``.
    sharpe : float or None
        ``(expected_return - risk_free_rate) / volatility``; ``None`` when the
        volatility is 0.
    risk_free_rate : float
        The rate used for ``sharpe``.
    risk_contributions : ndarray of shape (n_assets,)
        Euler risk contributions ``w_i (Sigma w)_i / volatility``; they sum to
        ``volatility`` (all zero when it is 0). Read-only.
    objective : str
        Name of the objective (``"min_variance"``, ``"mean_variance"``, ``"max_sharpe"``).
    solver : str
        Solver that produced the accepted solution (a fallback if the first failed).
    status : str
        cvxpy status of the accepted solve (always ``"optimal"``).
    iterations : int or None
        Solver iterations, when the solver reports them.
    solve_time_seconds : float
        Wall time of the solve, fallbacks included, excluding input validation.
    compiled_from_cache : bool
        Whether the compiled problem came from the cache (no rebuild).
    """

    weights: FloatArray
    expected_return: float
    volatility: float
    sharpe: float | None
    risk_free_rate: float
    risk_contributions: FloatArray
    objective: str
    solver: str
    status: str
    iterations: int | None
    solve_time_seconds: float
    compiled_from_cache: bool


@dataclass(frozen=True, eq=False)  # arrays have no boolean equality
class PortfolioStatistics:
    """Return and risk figures of given weights (see :func:`portfolio_statistics`)."""

    expected_return: float
    volatility: float
    sharpe: float | None
    risk_contributions: FloatArray


def portfolio_statistics(
    weights: FloatArray,
    expected_returns: FloatArray,
    covariance: FloatArray,
    risk_free_rate: float = 0.0,
) -> PortfolioStatistics:
    """Expected return, volatility, Sharpe ratio and risk contributions of ``weights``.

    Parameters
    ----------
    weights : ndarray of shape (n_assets,)
    expected_returns : ndarray of shape (n_assets,)
    covariance : ndarray of shape (n_assets, n_assets)
    risk_free_rate : float, optional
        In the units of ``expected_returns``.

    Returns
    -------
    PortfolioStatistics
    """
    marginal_risk = covariance @ weights
    variance = max(float(weights @ marginal_risk), 0.0)
    volatility = math.sqrt(variance)
    expected_return = float(expected_returns @ weights)
    if volatility > 0.0:
        sharpe: float | None = (expected_return - risk_free_rate) / volatility
        contributions: FloatArray = weights * marginal_risk / volatility
    else:
        sharpe, contributions = None, np.zeros_like(weights)
    return PortfolioStatistics(expected_return, volatility, sharpe, contributions)
