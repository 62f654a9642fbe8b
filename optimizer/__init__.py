"""Portfolio optimization with cvxpy: composable terms, compiled-once DPP problems.

A plain library (no web framework). Objectives and constraints are small value
objects; :class:`PortfolioOptimizer` compiles one cvxpy problem per structure, caches
it, and re-solves it with new parameter values for each request.

Examples
--------
>>> import numpy as np
>>> from optimizer import LongOnly, MaxSharpe, PortfolioOptimizer, WeightBounds
>>> optimizer = PortfolioOptimizer()
>>> result = optimizer.optimize(
...     MaxSharpe(risk_free_rate=0.02),
...     [LongOnly(), WeightBounds(max_weight=0.6)],
...     expected_returns=np.array([0.08, 0.12, 0.10]),
...     covariance=np.diag([0.04, 0.09, 0.0625]),
... )
>>> round(float(result.weights.sum()), 9)
1.0
"""

from optimizer._cache import CacheInfo
from optimizer._constraints import Budget, CompiledConstraint, Constraint, LongOnly, WeightBounds
from optimizer._data import ProblemData
from optimizer._errors import (
    InvalidProblem,
    NoPositiveExcessReturn,
    NumericalSolverError,
    OptimizerError,
    ProgramInfeasible,
    ProgramUnbounded,
)
from optimizer._objectives import (
    CompiledObjective,
    MaxSharpe,
    MeanVariance,
    MinVariance,
    Objective,
)
from optimizer._optimizer import PortfolioOptimizer
from optimizer._problem import CompiledProblem
from optimizer._result import PortfolioResult, PortfolioStatistics, portfolio_statistics
from optimizer._risk import covariance_factor, covariance_from_volatility, ledoit_wolf_correlation
from optimizer._terms import ExpectedReturn, FullCovarianceRisk, Term

__all__ = [
    "Budget",
    "CacheInfo",
    "CompiledConstraint",
    "CompiledObjective",
    "CompiledProblem",
    "Constraint",
    "ExpectedReturn",
    "FullCovarianceRisk",
    "InvalidProblem",
    "LongOnly",
    "MaxSharpe",
    "MeanVariance",
    "MinVariance",
    "NoPositiveExcessReturn",
    "NumericalSolverError",
    "Objective",
    "OptimizerError",
    "PortfolioOptimizer",
    "PortfolioResult",
    "PortfolioStatistics",
    "ProblemData",
    "ProgramInfeasible",
    "ProgramUnbounded",
    "Term",
    "WeightBounds",
    "covariance_factor",
    "covariance_from_volatility",
    "ledoit_wolf_correlation",
    "portfolio_statistics",
]
