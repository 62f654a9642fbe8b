"""Property tests: on random feasible problems every constraint holds and the risk
contributions add up to the volatility."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer import (
    AssetGroup,
    Constraint,
    EfficientReturn,
    EfficientRisk,
    GroupBounds,
    LongOnly,
    MaxSharpe,
    MeanVariance,
    MinCVaR,
    MinVariance,
    Objective,
    PortfolioOptimizer,
    RiskParity,
    Turnover,
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


@st.composite
def constrained_problems(draw: st.DrawFn) -> dict[str, Any]:
    """A random problem made feasible by construction around a known portfolio.

    A strictly positive portfolio ``anchor`` is drawn first; the weight cap, the group
    bounds, the turnover limit and the objectives' targets are then set so that it
    satisfies all of them, so a solution must exist.
    """
    n_assets = draw(st.integers(3, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    loadings = rng.normal(size=(n_assets, draw(st.integers(1, 3))))
    covariance = loadings @ loadings.T * 0.02 + np.diag(rng.uniform(1e-3, 0.05, n_assets))
    expected_returns = rng.uniform(0.0, 0.2, n_assets)
    anchor = rng.dirichlet(np.ones(n_assets))
    holdings = rng.dirichlet(np.ones(n_assets))
    slack = draw(st.floats(0.01, 0.2))

    members = tuple(int(i) for i in rng.choice(n_assets, size=max(1, n_assets // 2), replace=False))
    in_group = float(anchor[list(members)].sum())
    group = AssetGroup("group", members, max(0.0, in_group - slack), in_group + slack)
    constraints: list[Constraint] = [
        LongOnly(),
        WeightBounds(max_weight=float(anchor.max()) + slack),
        GroupBounds((group,)),
        Turnover(float(np.abs(anchor - holdings).sum()) + slack),
    ]
    anchor_return = float(expected_returns @ anchor)
    anchor_volatility = float(np.sqrt(anchor @ covariance @ anchor))
    objective = draw(
        st.sampled_from(
            [
                MinVariance(),
                MeanVariance(2.0),
                MaxSharpe(anchor_return - 0.01),
                EfficientReturn(anchor_return),
                EfficientRisk(anchor_volatility * 1.01),
                RiskParity(),
                MinCVaR(0.9),
            ]
        )
    )
    scenarios = rng.multivariate_normal(expected_returns / 12, covariance / 12, size=60)
    return {
        "objective": objective,
        "constraints": constraints,
        "expected_returns": expected_returns,
        "covariance": covariance,
        "returns": scenarios,
        "current_weights": holdings,
        "group": group,
    }


@settings(max_examples=25, deadline=None, database=None)
@given(constrained_problems())
def test_bounds_budget_groups_and_turnover_hold(problem: dict[str, Any]) -> None:
    group: AssetGroup = problem.pop("group")
    constraints = problem["constraints"]
    result = OPTIMIZER.optimize(**problem)
    weights = result.weights
    assert result.status == "optimal"
    assert abs(weights.sum() - 1.0) <= 1e-9
    assert np.all(weights >= 0.0)
    assert np.all(weights <= constraints[1].max_weight + 1e-9)
    group_weight = weights[list(group.assets)].sum()
    assert group.min_weight - 1e-7 <= group_weight <= group.max_weight + 1e-7
    turnover = np.abs(weights - problem["current_weights"]).sum()
    assert turnover <= constraints[3].max_turnover + 1e-7
    assert result.turnover == turnover
    assert abs(result.risk_contributions.sum() - result.volatility) <= 1e-9
