"""Invariants of every objective under every constraint set."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer import (
    Constraint,
    LongOnly,
    MaxSharpe,
    MeanVariance,
    MinVariance,
    Objective,
    PortfolioOptimizer,
    WeightBounds,
    portfolio_statistics,
)
from optimizer._constraints import clean_weights
from tests.optimizer._markets import Market

BOUND_TOLERANCE = 1e-6

OBJECTIVES: dict[str, Objective] = {
    "min_variance": MinVariance(),
    "mean_variance": MeanVariance(risk_aversion=3.0),
    "max_sharpe": MaxSharpe(risk_free_rate=0.01),
}

CONSTRAINT_SETS: dict[str, list[Constraint]] = {
    "budget_only": [],
    "long_only": [LongOnly()],
    "long_only_capped": [LongOnly(), WeightBounds(max_weight=0.25)],
    "long_only_floor_and_cap": [LongOnly(), WeightBounds(min_weight=0.05, max_weight=0.4)],
    "long_short_bounded": [WeightBounds(min_weight=-0.1, max_weight=0.5)],
}


def _bounds(constraints: list[Constraint], n_assets: int) -> tuple[np.ndarray, np.ndarray]:
    lower, upper = np.full(n_assets, -np.inf), np.full(n_assets, np.inf)
    for constraint in constraints:
        if isinstance(constraint, LongOnly):
            lower = np.maximum(lower, 0.0)
        if isinstance(constraint, WeightBounds):
            if constraint.min_weight is not None:
                lower = np.maximum(lower, constraint.min_weight)
            if constraint.max_weight is not None:
                upper = np.minimum(upper, constraint.max_weight)
    return lower, upper


@pytest.mark.parametrize("objective_name", list(OBJECTIVES))
@pytest.mark.parametrize("constraint_set", list(CONSTRAINT_SETS))
def test_weights_are_feasible_and_statistics_consistent(
    shared_optimizer: PortfolioOptimizer,
    market: Market,
    objective_name: str,
    constraint_set: str,
) -> None:
    objective, constraints = OBJECTIVES[objective_name], CONSTRAINT_SETS[constraint_set]
    result = shared_optimizer.optimize(
        objective, constraints, market.expected_returns, market.covariance
    )

    assert result.status == "optimal"
    assert result.solver == "CLARABEL"
    assert result.objective == objective_name
    assert result.weights.shape == (market.n_assets,)
    assert result.weights.sum() == pytest.approx(1.0, abs=1e-9)
    lower, upper = _bounds(constraints, market.n_assets)
    assert np.all(result.weights >= lower - BOUND_TOLERANCE)
    assert np.all(result.weights <= upper + BOUND_TOLERANCE)

    variance = result.weights @ market.covariance @ result.weights
    assert result.volatility == pytest.approx(np.sqrt(variance), rel=1e-9)
    assert result.expected_return == pytest.approx(
        market.expected_returns @ result.weights, rel=1e-9
    )
    assert result.risk_contributions.sum() == pytest.approx(result.volatility, rel=1e-9)
    expected_rate = 0.01 if objective_name == "max_sharpe" else 0.0
    assert result.risk_free_rate == expected_rate
    assert result.sharpe == pytest.approx(
        (result.expected_return - expected_rate) / result.volatility, rel=1e-9
    )
    assert result.solve_time_seconds > 0.0
    assert result.iterations is not None
    assert result.iterations >= 0  # an equality-only QP is one linear solve for Clarabel


def test_result_arrays_are_read_only(optimizer: PortfolioOptimizer, market: Market) -> None:
    result = optimizer.optimize(
        MinVariance(), [LongOnly()], market.expected_returns, market.covariance
    )
    with pytest.raises(ValueError, match="read-only"):
        result.weights[0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        result.risk_contributions[0] = 1.0


def test_zero_volatility_portfolio_has_no_sharpe() -> None:
    statistics = portfolio_statistics(
        np.array([1.0, 0.0]), np.array([0.02, 0.08]), np.array([[0.0, 0.0], [0.0, 0.04]])
    )
    assert statistics.volatility == 0.0
    assert statistics.sharpe is None
    np.testing.assert_array_equal(statistics.risk_contributions, [0.0, 0.0])


def test_risk_free_asset_is_held_by_min_variance(optimizer: PortfolioOptimizer) -> None:
    # A zero-variance asset makes the covariance singular (PSD); min variance holds it.
    # The optimum's variance is ~0, so Clarabel's absolute gap tolerance (1e-8) only
    # pins the weights to ~1e-3.
    covariance = np.array([[0.0, 0.0], [0.0, 0.04]])
    result = optimizer.optimize(MinVariance(), [LongOnly()], np.array([0.02, 0.08]), covariance)
    np.testing.assert_allclose(result.weights, [1.0, 0.0], atol=1e-3)
    assert result.volatility == pytest.approx(0.0, abs=1e-3)


def test_clean_weights_clips_rounding_and_restores_the_budget() -> None:
    raw = np.array([-3e-10, 0.5 + 2e-10, 0.25, 0.25 + 4e-10])
    lower, upper = np.zeros(4), np.full(4, 0.5)
    cleaned = clean_weights(raw, lower, upper)
    assert np.all(cleaned >= lower)
    assert np.all(cleaned <= upper)
    assert cleaned.sum() == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_allclose(cleaned, raw, atol=1e-9)
