"""Optimize requests as optimizer objects: objective, constraints, covariance estimator.

Shared by ``POST /v1/portfolios/*`` (``app.services.portfolios``) and the optimize-style
strategies of back-tests (``app.services._backtest_strategies``), so that an objective or
constraint means the same in both.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.schemas.portfolios import Constraints, ObjectiveChoice, RiskModel, RiskModelMethod
from optimizer import (
    AssetBounds,
    AssetGroup,
    Constraint,
    CovarianceEstimator,
    EfficientReturn,
    EfficientRisk,
    EWMACovariance,
    GrossLeverage,
    GroupBounds,
    HierarchicalRiskParity,
    LedoitWolfCovariance,
    LongOnly,
    MaxDiversification,
    MaxSharpe,
    MaxVolatility,
    MeanVariance,
    MinCVaR,
    MinVariance,
    Objective,
    PCAFactorModel,
    RiskBudgeting,
    RiskParity,
    SampleCovariance,
    TrackingError,
    Turnover,
    WeightBounds,
)

__all__ = ["build_constraints", "build_estimator", "build_objective"]


def build_estimator(risk_model: RiskModel) -> CovarianceEstimator:
    """The covariance estimator of ``risk_model``."""
    if risk_model.method is RiskModelMethod.SAMPLE:
        return SampleCovariance()
    if risk_model.method is RiskModelMethod.EWMA:
        assert risk_model.half_life is not None
        return EWMACovariance(half_life=risk_model.half_life)
    if risk_model.method is RiskModelMethod.PCA_FACTOR:
        assert risk_model.n_factors is not None
        return PCAFactorModel(n_factors=risk_model.n_factors)
    return LedoitWolfCovariance()


def build_objective(
    request: ObjectiveChoice, risk_free_rate: float, tickers: Sequence[str]
) -> Objective:
    """The optimizer objective of ``request``; ``tickers`` order the risk budgets."""
    # Each request field read here belongs to one objective; the schema refuses it with
    # another (OBJECTIVE_FIELDS), so a new one belongs in that table too.
    match request.objective.value:
        case "max_sharpe":
            return MaxSharpe(risk_free_rate=risk_free_rate)
        case "mean_variance":
            return MeanVariance(risk_aversion=request.risk_aversion)
        case "efficient_return":
            assert request.target_return is not None
            return EfficientReturn(target_return=request.target_return)
        case "efficient_risk":
            assert request.target_volatility is not None
            return EfficientRisk(target_volatility=request.target_volatility)
        case "risk_parity":
            return RiskParity()
        case "risk_budgeting":
            budgets = request.risk_budgets
            return RiskBudgeting(None if budgets is None else tuple(budgets[t] for t in tickers))
        case "max_diversification":
            return MaxDiversification()
        case "min_cvar":
            return MinCVaR(alpha=request.cvar_alpha)
        case "hrp":
            return HierarchicalRiskParity(linkage=request.linkage)
    return MinVariance()


def build_constraints(spec: Constraints, tickers: Sequence[str]) -> list[Constraint]:
    """The optimizer constraints of ``spec`` over ``tickers``, in the problem's asset order."""
    constraints: list[Constraint] = []
    if spec.long_only:
        constraints.append(LongOnly())
    if spec.asset_bounds:
        # Per-ticker bounds replace the global ones for that ticker.
        low = -np.inf if spec.min_weight is None else spec.min_weight
        high = np.inf if spec.max_weight is None else spec.max_weight
        bounds = {t: spec.asset_bounds.get(t) for t in tickers}
        constraints.append(
            AssetBounds(
                min_weights=[
                    low if b is None or b.min_weight is None else b.min_weight
                    for b in bounds.values()
                ],
                max_weights=[
                    high if b is None or b.max_weight is None else b.max_weight
                    for b in bounds.values()
                ],
            )
        )
    elif spec.min_weight is not None or spec.max_weight is not None:
        constraints.append(WeightBounds(min_weight=spec.min_weight, max_weight=spec.max_weight))
    if spec.max_gross_leverage is not None:
        constraints.append(GrossLeverage(spec.max_gross_leverage))
    if spec.groups:
        positions = {ticker: i for i, ticker in enumerate(tickers)}
        constraints.append(
            GroupBounds(
                tuple(
                    AssetGroup(
                        name,
                        tuple(positions[t] for t in group.tickers),
                        group.min_weight,
                        group.max_weight,
                    )
                    for name, group in spec.groups.items()
                )
            )
        )
    if spec.max_turnover is not None:
        constraints.append(Turnover(spec.max_turnover))
    if spec.max_volatility is not None:
        constraints.append(MaxVolatility(spec.max_volatility))
    if spec.tracking_error is not None:
        benchmark = np.array([spec.tracking_error.benchmark_weights.get(t, 0.0) for t in tickers])
        constraints.append(TrackingError(benchmark, spec.tracking_error.max_tracking_error))
    return constraints
