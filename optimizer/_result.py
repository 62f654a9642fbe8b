"""The result of one optimization, with the portfolio's risk and return statistics."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from optimizer._data import ProblemData
from optimizer._objectives import Objective
from optimizer._problem import SolveOutcome
from optimizer._risk_based import MinCVaR, conditional_value_at_risk
from optimizer._typing import FloatArray

DEFAULT_CVAR_ALPHA = 0.95
"""Confidence level of the CVaR reported for objectives other than ``min_cvar``."""


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
        ``(expected_return - transaction_cost - risk_free_rate) / volatility``: net of
        costs (equal to the usual Sharpe ratio without them); ``None`` when the
        volatility is 0.
    risk_free_rate : float
        The rate used for ``sharpe``.
    risk_contributions : ndarray of shape (n_assets,)
        Euler risk contributions ``w_i (Sigma w)_i / volatility``; they sum to
        ``volatility`` (all zero when it is 0). Read-only.
    objective : str
        Name of the objective (``"min_variance"``, ``"max_sharpe"``, ``"hrp"``, ...).
    solver : str
        Solver that produced the accepted solution (a fallback if the first failed);
        ``"HRP"`` for hierarchical risk parity, which needs none.
    status : str
        cvxpy status of the accepted solve (always ``"optimal"``).
    iterations : int or None
        Solver iterations, when the solver reports them.
    solve_time_seconds : float
        Wall time of the solve, fallbacks included, excluding input validation.
    compiled_from_cache : bool
        Whether the compiled problem came from the cache (no rebuild).
    turnover : float
        ``sum |w - current_weights|`` (from cash, the gross exposure).
    transaction_cost : float
        ``sum c_i |w_i - current_weights_i|``, in return units; 0 without costs.
    diversification_ratio : float or None
        ``sigma' w / volatility`` with ``sigma`` the asset volatilities.
    cvar : float or None
        Conditional value at risk of the scenario returns at ``cvar_alpha`` (a
        positive loss, at the scenarios' frequency); ``None`` without scenarios.
    cvar_alpha : float or None
        The confidence level of ``cvar``: the objective's for ``min_cvar``, else 0.95.
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
    turnover: float = 0.0
    transaction_cost: float = 0.0
    diversification_ratio: float | None = None
    cvar: float | None = None
    cvar_alpha: float | None = None


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


def build_result(
    objective: Objective,
    data: ProblemData,
    outcome: SolveOutcome,
    risk_free_rate: float,
    *,
    from_cache: bool,
) -> PortfolioResult:
    """The result: ``outcome``'s weights with their statistics and the solver's facts."""
    weights = outcome.weights.copy()
    marginal_risk = data.covariance_times(weights)
    volatility = math.sqrt(max(float(weights @ marginal_risk), 0.0))
    expected_return = float(data.expected_returns @ weights)
    trades = np.abs(weights - data.holdings)
    cost = 0.0 if data.transaction_costs is None else float(data.transaction_costs @ trades)
    if volatility > 0.0:
        sharpe: float | None = (expected_return - cost - risk_free_rate) / volatility
        contributions: FloatArray = weights * marginal_risk / volatility
        diversification: float | None = float(data.asset_volatility @ weights) / volatility
    else:
        sharpe, contributions, diversification = None, np.zeros_like(weights), None
    alpha = objective.alpha if isinstance(objective, MinCVaR) else DEFAULT_CVAR_ALPHA
    cvar = (
        None
        if data.scenarios is None
        else conditional_value_at_risk(data.scenarios @ weights, alpha)
    )
    weights.flags.writeable = False
    contributions.flags.writeable = False
    return PortfolioResult(
        weights=weights,
        expected_return=expected_return,
        volatility=volatility,
        sharpe=sharpe,
        risk_free_rate=risk_free_rate,
        risk_contributions=contributions,
        objective=objective.name,
        solver=outcome.solver,
        status=outcome.status,
        iterations=outcome.iterations,
        solve_time_seconds=outcome.solve_time_seconds,
        compiled_from_cache=from_cache,
        turnover=float(trades.sum()),
        transaction_cost=cost,
        diversification_ratio=diversification,
        cvar=cvar,
        cvar_alpha=None if cvar is None else alpha,
    )
