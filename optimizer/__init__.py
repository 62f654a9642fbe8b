"""Portfolio optimization with cvxpy: composable terms, compiled-once DPP problems.

A plain library (no web framework). Objectives and constraints are small value
objects; :class:`PortfolioOptimizer` compiles one cvxpy problem per structure, caches
it, and re-solves it with new parameter values for each request. Risk models are
scikit-learn-style estimators; a :class:`FactorModel` keeps large problems in factor
form (``Sigma = B F B' + D``).

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
    SolverTimeLimitExceeded,
)
from optimizer._estimators import (
    CovarianceEstimator,
    EWMACovariance,
    LedoitWolfCovariance,
    PCAFactorModel,
    SampleCovariance,
    check_returns,
)
from optimizer._factor_model import FactorModel
from optimizer._frontier import efficient_frontier
from optimizer._groups import AssetGroup, GroupBounds
from optimizer._hrp import LINKAGE_METHODS, HierarchicalRiskParity
from optimizer._objectives import (
    CompiledObjective,
    MaxReturn,
    MaxSharpe,
    MeanVariance,
    MinVariance,
    Objective,
)
from optimizer._optimizer import PortfolioOptimizer
from optimizer._portfolio_constraints import AssetBounds, GrossLeverage, Turnover
from optimizer._problem import CompiledProblem
from optimizer._result import PortfolioResult, PortfolioStatistics, portfolio_statistics
from optimizer._risk import covariance_factor, covariance_from_volatility, ledoit_wolf_correlation
from optimizer._risk_based import (
    MaxDiversification,
    MinCVaR,
    RiskBudgeting,
    RiskParity,
    conditional_value_at_risk,
)
from optimizer._risk_constraints import MaxVolatility, TrackingError
from optimizer._targets import EfficientReturn, EfficientRisk
from optimizer._terms import (
    CompileContext,
    ExpectedReturn,
    FactorRisk,
    FullCovarianceRisk,
    LinearTransactionCost,
    ProblemShape,
    RiskTerm,
    Term,
)

__all__ = [
    "LINKAGE_METHODS",
    "AssetBounds",
    "AssetGroup",
    "Budget",
    "CacheInfo",
    "CompileContext",
    "CompiledConstraint",
    "CompiledObjective",
    "CompiledProblem",
    "Constraint",
    "CovarianceEstimator",
    "EWMACovariance",
    "EfficientReturn",
    "EfficientRisk",
    "ExpectedReturn",
    "FactorModel",
    "FactorRisk",
    "FullCovarianceRisk",
    "GrossLeverage",
    "GroupBounds",
    "HierarchicalRiskParity",
    "InvalidProblem",
    "LedoitWolfCovariance",
    "LinearTransactionCost",
    "LongOnly",
    "MaxDiversification",
    "MaxReturn",
    "MaxSharpe",
    "MaxVolatility",
    "MeanVariance",
    "MinCVaR",
    "MinVariance",
    "NoPositiveExcessReturn",
    "NumericalSolverError",
    "Objective",
    "OptimizerError",
    "PCAFactorModel",
    "PortfolioOptimizer",
    "PortfolioResult",
    "PortfolioStatistics",
    "ProblemData",
    "ProblemShape",
    "ProgramInfeasible",
    "ProgramUnbounded",
    "RiskBudgeting",
    "RiskParity",
    "RiskTerm",
    "SampleCovariance",
    "SolverTimeLimitExceeded",
    "Term",
    "TrackingError",
    "Turnover",
    "WeightBounds",
    "check_returns",
    "conditional_value_at_risk",
    "covariance_factor",
    "covariance_from_volatility",
    "efficient_frontier",
    "ledoit_wolf_correlation",
    "portfolio_statistics",
]
