"""Property test: random feasible problems give weights within bounds summing to 1."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer import (
    Constraint,
    LongOnly,
    MaxSharpe,
    MeanVariance,
    MinVariance,
    Objective,
    PortfolioOptimizer,
    WeightBounds,
)

# One optimizer for every example: compiled problems are re-used as in the service.
OPTIMIZER = PortfolioOptimizer()


@st.composite
def feasible_problems(
    draw: st.DrawFn,
) -> tuple[Objective, list[Constraint], np.ndarray, np.ndarray, float, float]:
    n_assets = draw(st.integers(2, 15))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    loadings = rng.normal(size=(n_assets, draw(st.integers(1, n_assets + 2))))
    specific = rng.uniform(1e-4, 0.05, n_assets)
    covariance = loadings @ loadings.T * 0.02 + np.diag(specific)
    expected_returns = rng.uniform(0.0, 0.2, n_assets)
    expected_returns[rng.integers(n_assets)] = 0.1  # some asset beats the risk-free rate

    # max_weight * n >= 1 and min_weight * n <= 1 keep the bounds feasible.
    max_weight = draw(st.floats(1.0 / n_assets, 1.0))
    min_weight = draw(st.floats(-0.2, 1.0 / n_assets).filter(lambda w: w <= max_weight))
    long_only = draw(st.booleans())
    constraints: list[Constraint] = [WeightBounds(min_weight, max_weight)]
    if long_only:
        constraints.append(LongOnly())
    lower = max(min_weight, 0.0) if long_only else min_weight

    objective = draw(
        st.sampled_from([MinVariance(), MeanVariance(draw(st.floats(0.5, 20.0))), MaxSharpe(0.02)])
    )
    return objective, constraints, expected_returns, covariance, lower, max_weight


@settings(max_examples=30, deadline=None, database=None)
@given(feasible_problems())
def test_weights_within_bounds_and_sum_to_one(
    problem: tuple[Objective, list[Constraint], np.ndarray, np.ndarray, float, float],
) -> None:
    objective, constraints, expected_returns, covariance, lower, upper = problem
    result = OPTIMIZER.optimize(objective, constraints, expected_returns, covariance)
    assert result.status == "optimal"
    assert abs(result.weights.sum() - 1.0) <= 1e-9
    assert np.all(result.weights >= lower - 1e-9)
    assert np.all(result.weights <= upper + 1e-9)
    assert abs(result.risk_contributions.sum() - result.volatility) <= 1e-9
