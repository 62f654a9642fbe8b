"""Infeasible requests: refused before solving where possible, else with the conflict named."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer import (
    AssetBounds,
    AssetGroup,
    EfficientReturn,
    EfficientRisk,
    GrossLeverage,
    GroupBounds,
    HierarchicalRiskParity,
    InvalidProblem,
    LongOnly,
    MaxSharpe,
    MaxVolatility,
    MinCVaR,
    MinVariance,
    NoPositiveExcessReturn,
    Objective,
    PortfolioOptimizer,
    ProgramInfeasible,
    RiskBudgeting,
    RiskParity,
    TrackingError,
    Turnover,
    WeightBounds,
)
from tests.optimizer._markets import Market, random_market


@pytest.fixture(scope="module")
def six() -> Market:
    return random_market(6, seed=31)


def _nothing_compiled(optimizer: PortfolioOptimizer) -> bool:
    info = optimizer.cache_info()
    return (info.hits, info.misses) == (0, 0)


@pytest.mark.parametrize(
    ("constraints", "message", "involved"),
    [
        (
            [
                LongOnly(),
                GroupBounds((AssetGroup("tech", (0, 1), min_weight=0.7),)),
                WeightBounds(max_weight=0.3),
            ],
            r"group 'tech': its assets' upper bounds add up to 0\.6, below the group's "
            r"min_weight=0\.7",
            ["group_bounds", "weight_bounds"],
        ),
        (
            [
                GroupBounds((AssetGroup("tech", (0, 1), max_weight=0.1),)),
                WeightBounds(min_weight=0.1),
            ],
            r"lower bounds add up to 0\.2, above the group's max_weight=0\.1",
            ["group_bounds", "weight_bounds"],
        ),
        (
            [
                LongOnly(),
                GroupBounds(
                    (
                        AssetGroup("a", (0, 1), min_weight=0.6),
                        AssetGroup("b", (2, 3), min_weight=0.5),
                    )
                ),
            ],
            r"group minimums .* add up to 1\.1 > 1",
            ["group_bounds", "budget"],
        ),
        (
            [
                LongOnly(),
                GroupBounds(
                    (
                        AssetGroup("a", (0, 1, 2), max_weight=0.3),
                        AssetGroup("b", (3, 4, 5), max_weight=0.4),
                    )
                ),
            ],
            r"group caps .* add up to 0\.7 < 1",
            ["group_bounds", "budget"],
        ),
        (
            [LongOnly(), Turnover(0.5)],
            r"max_turnover=0\.5 is too small: the current weights add up to 0.* at least 1",
            ["turnover", "budget"],
        ),
        (
            [GrossLeverage(0.9)],
            r"max_leverage=0\.9 is below 1",
            ["gross_leverage", "budget"],
        ),
        (
            [
                GrossLeverage(1.2),
                AssetBounds(np.full(6, 0.1), np.full(6, 1.0)),
                AssetBounds(min_weights=[-0.5, 0, 0, 0, 0, 0]),
            ],
            r"",
            None,
        ),
        (
            [AssetBounds(min_weights=[0.1, 0.5, 0, 0, 0, 0], max_weights=np.full(6, 0.4))],
            r"asset 1 has min_weight 0\.5 above max_weight 0\.4",
            ["asset_bounds"],
        ),
        (
            [TrackingError(np.ones(5) / 5, 0.02)],
            r"benchmark_weights must hold 6 finite weights",
            ["tracking_error"],
        ),
        (
            [MaxVolatility(0.0)],
            r"max_volatility=0\.0 must be positive",
            ["max_volatility"],
        ),
    ],
    ids=[
        "group_floor_above_member_caps",
        "group_cap_below_member_floors",
        "group_floors_above_budget",
        "group_caps_below_budget",
        "turnover_from_cash",
        "leverage_below_one",
        "feasible_control",
        "asset_min_above_max",
        "benchmark_length",
        "max_volatility_zero",
    ],
)
def test_impossible_constraints_are_refused_before_solving(
    optimizer: PortfolioOptimizer,
    six: Market,
    constraints: list,
    message: str,
    involved: list[str] | None,
) -> None:
    if involved is None:  # a feasible mix of the same constraints: no false alarm
        optimizer.optimize(MinVariance(), constraints, six.expected_returns, six.covariance)
        return
    with pytest.raises(InvalidProblem, match=message) as caught:
        optimizer.optimize(MinVariance(), constraints, six.expected_returns, six.covariance)
    assert caught.value.constraints == involved
    assert caught.value.status is None
    assert _nothing_compiled(optimizer)


def test_turnover_needed_to_enter_the_bounds(optimizer: PortfolioOptimizer, six: Market) -> None:
    holdings = np.array([0.5, 0.5, 0, 0, 0, 0])
    with pytest.raises(
        InvalidProblem, match=r"inside the weight bounds needs a turnover of at least 0\.4"
    ):
        optimizer.optimize(
            MinVariance(),
            [LongOnly(), WeightBounds(max_weight=0.3), Turnover(0.2)],
            six.expected_returns,
            six.covariance,
            current_weights=holdings,
        )


def test_solver_proven_conflicts_name_only_the_constraints_involved(
    optimizer: PortfolioOptimizer, six: Market
) -> None:
    # Each constraint is feasible alone; the group floor and the turnover limit clash.
    holdings = np.array([0.3, 0.3, 0.1, 0.1, 0.1, 0.1])
    constraints = [
        LongOnly(),
        WeightBounds(max_weight=0.5),
        GroupBounds((AssetGroup("tail", (4, 5), min_weight=0.8),)),
        Turnover(0.4),
        MaxVolatility(1.0),
    ]
    with pytest.raises(ProgramInfeasible, match="group_bounds, turnover") as caught:
        optimizer.optimize(
            MinVariance(),
            constraints,
            six.expected_returns,
            six.covariance,
            current_weights=holdings,
        )
    assert caught.value.constraints == ["group_bounds", "turnover"]
    assert caught.value.status == "infeasible"


@pytest.mark.parametrize(
    "objective", [MinVariance(), MaxSharpe(0.0), RiskParity()], ids=lambda o: o.name
)
def test_a_volatility_cap_below_the_minimum_says_what_the_minimum_is(
    optimizer: PortfolioOptimizer, six: Market, objective: Objective
) -> None:
    lowest = optimizer.optimize(MinVariance(), [LongOnly()], six.expected_returns, six.covariance)
    cap = 0.9 * lowest.volatility
    with pytest.raises(
        ProgramInfeasible, match=f"lowest volatility .* is {lowest.volatility:.6g}"
    ) as caught:
        optimizer.optimize(
            objective, [LongOnly(), MaxVolatility(cap)], six.expected_returns, six.covariance
        )
    assert "max_volatility" in caught.value.constraints


def test_efficient_risk_below_the_minimum_volatility(
    optimizer: PortfolioOptimizer, six: Market
) -> None:
    lowest = optimizer.optimize(MinVariance(), [LongOnly()], six.expected_returns, six.covariance)
    with pytest.raises(
        ProgramInfeasible, match=r"target_volatility=0\.01 is below .*raise the target"
    ):
        optimizer.optimize(EfficientRisk(0.01), [LongOnly()], six.expected_returns, six.covariance)
    message = f"{lowest.volatility:.6g}"
    with pytest.raises(ProgramInfeasible, match=message):
        optimizer.optimize(EfficientRisk(0.01), [LongOnly()], six.expected_returns, six.covariance)


def test_efficient_return_above_the_best_achievable(
    optimizer: PortfolioOptimizer, six: Market
) -> None:
    best = float(six.expected_returns.max())
    with pytest.raises(InvalidProblem, match=f"is above {best:.6g}, the highest expected return"):
        optimizer.optimize(
            EfficientReturn(best + 0.01), [LongOnly()], six.expected_returns, six.covariance
        )
    assert _nothing_compiled(optimizer)
    # A group cap lowers the best return below what the bounds alone allow: found by a solve.
    top = int(np.argmax(six.expected_returns))
    capped = GroupBounds((AssetGroup("top", (top,), max_weight=0.2),))
    with pytest.raises(
        ProgramInfeasible, match=r"the highest expected return .* the constraints allow"
    ):
        optimizer.optimize(
            EfficientReturn(best - 1e-3), [LongOnly(), capped], six.expected_returns, six.covariance
        )


def test_max_sharpe_whose_only_edge_is_eaten_by_costs(optimizer: PortfolioOptimizer) -> None:
    expected_returns = np.array([0.021, 0.0, 0.01])
    with pytest.raises(NoPositiveExcessReturn, match="net of transaction costs"):
        optimizer.optimize(
            MaxSharpe(0.02),
            [LongOnly()],
            expected_returns,
            np.diag([0.04, 0.02, 0.03]),
            transaction_costs=0.005,
        )


def test_risk_parity_with_conflicting_constraints_is_infeasible_not_a_solver_failure(
    optimizer: PortfolioOptimizer, six: Market
) -> None:
    groups = GroupBounds(
        (AssetGroup("a", (0, 1), min_weight=0.6), AssetGroup("b", (0, 1, 2), max_weight=0.5))
    )
    with pytest.raises(ProgramInfeasible) as caught:
        optimizer.optimize(RiskParity(), [groups], six.expected_returns, six.covariance)
    assert caught.value.constraints == ["group_bounds"]


@pytest.mark.parametrize(
    ("objective", "message"),
    [
        (MinCVaR(0.95), "min_cvar needs scenario returns"),
        (RiskBudgeting((1.0, 2.0)), "budgets has 2 values for 6 assets"),
        (RiskBudgeting((1.0, 0.0, 1.0, 1.0, 1.0, 1.0)), "risk budgets must be positive"),
        (HierarchicalRiskParity("nope"), "linkage='nope' is not one of"),
    ],
)
def test_objective_inputs_are_checked(
    optimizer: PortfolioOptimizer, six: Market, objective: Objective, message: str
) -> None:
    with pytest.raises(InvalidProblem, match=message):
        optimizer.optimize(objective, [LongOnly()], six.expected_returns, six.covariance)
    assert _nothing_compiled(optimizer)


def test_min_cvar_needs_a_tail(optimizer: PortfolioOptimizer, six: Market) -> None:
    returns = np.random.default_rng(0).normal(size=(10, 6)) * 0.01
    with pytest.raises(
        InvalidProblem, match=r"less than one scenario in the tail; lower alpha to at most 0\.9"
    ):
        optimizer.optimize(MinCVaR(0.95), [], six.expected_returns, six.covariance, returns=returns)


def test_hrp_refuses_constraints_it_cannot_honour(
    optimizer: PortfolioOptimizer, six: Market
) -> None:
    with pytest.raises(
        InvalidProblem, match=r"supports only \['budget', 'long_only'\]; remove \['weight_bounds'\]"
    ):
        optimizer.optimize(
            HierarchicalRiskParity(),
            [LongOnly(), WeightBounds(max_weight=0.3)],
            six.expected_returns,
            six.covariance,
        )
