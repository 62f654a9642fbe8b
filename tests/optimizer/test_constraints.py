"""Every constraint holds, and binds, under plain and homogenised objectives."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from optimizer import (
    AssetBounds,
    AssetGroup,
    Constraint,
    EfficientRisk,
    GrossLeverage,
    GroupBounds,
    LongOnly,
    MaxDiversification,
    MaxSharpe,
    MaxVolatility,
    MeanVariance,
    MinCVaR,
    MinVariance,
    Objective,
    PortfolioOptimizer,
    PortfolioResult,
    RiskParity,
    TrackingError,
    Turnover,
)
from tests.optimizer._markets import Market, random_market

TOLERANCE = 1e-7

OBJECTIVES: dict[str, Objective] = {
    "min_variance": MinVariance(),
    "mean_variance": MeanVariance(4.0),
    "max_sharpe": MaxSharpe(0.01),
    "efficient_risk": EfficientRisk(0.25),
    "risk_parity": RiskParity(),
    "max_diversification": MaxDiversification(),
    "min_cvar": MinCVaR(0.9),
}

HOLDINGS = np.array([0.4, 0.3, 0.1, 0.1, 0.05, 0.05, 0.0, 0.0])
BENCHMARK = np.full(8, 1 / 8)


@pytest.fixture(scope="module")
def eight_assets() -> Market:
    return random_market(8, seed=99)


@pytest.fixture(scope="module")
def scenarios(eight_assets: Market) -> np.ndarray:
    rng = np.random.default_rng(17)
    return rng.multivariate_normal(
        eight_assets.expected_returns / 52, eight_assets.covariance / 52, size=300
    )


def _solve(
    optimizer: PortfolioOptimizer,
    objective: Objective,
    constraints: list[Constraint],
    market: Market,
    scenarios: np.ndarray,
) -> PortfolioResult:
    return optimizer.optimize(
        objective,
        constraints,
        market.expected_returns,
        market.covariance,
        returns=scenarios,
        current_weights=HOLDINGS,
    )


def _volatility(weights: np.ndarray, market: Market) -> float:
    return float(np.sqrt(weights @ market.covariance @ weights))


# Each case: a constraint set, and a check of the solution against it.
Check = Callable[[np.ndarray, Market], bool]
CASES: dict[str, tuple[list[Constraint], Check]] = {
    "asset_bounds": (
        [AssetBounds(np.full(8, 0.02), [0.3, 0.3, 0.3, 0.3, 0.1, 0.1, 0.1, 0.1])],
        lambda w, _: bool(np.all(w >= 0.02 - TOLERANCE) and np.all(w[4:] <= 0.1 + TOLERANCE)),
    ),
    "groups": (
        [
            LongOnly(),
            GroupBounds(
                (
                    AssetGroup("first_half", (0, 1, 2, 3), max_weight=0.35),
                    AssetGroup("last_two", (6, 7), min_weight=0.3),
                )
            ),
        ],
        lambda w, _: bool(w[:4].sum() <= 0.35 + TOLERANCE and w[6:].sum() >= 0.3 - TOLERANCE),
    ),
    "turnover": (
        [LongOnly(), Turnover(0.3)],
        lambda w, _: bool(np.abs(w - HOLDINGS).sum() <= 0.3 + TOLERANCE),
    ),
    "tracking_error": (
        [LongOnly(), TrackingError(BENCHMARK, 0.02)],
        lambda w, m: _volatility(w - BENCHMARK, m) <= 0.02 + TOLERANCE,
    ),
    "max_volatility": (
        [LongOnly(), MaxVolatility(0.08)],
        lambda w, m: _volatility(w, m) <= 0.08 + TOLERANCE,
    ),
    "gross_leverage": (
        [GrossLeverage(1.5), AssetBounds(np.full(8, -0.5), np.full(8, 0.8))],
        lambda w, _: bool(np.abs(w).sum() <= 1.5 + TOLERANCE),
    ),
}


@pytest.mark.parametrize("objective_name", list(OBJECTIVES))
@pytest.mark.parametrize("case", list(CASES))
def test_constraint_holds(
    shared_optimizer: PortfolioOptimizer,
    eight_assets: Market,
    scenarios: np.ndarray,
    objective_name: str,
    case: str,
) -> None:
    objective = OBJECTIVES[objective_name]
    constraints, holds = CASES[case]
    if objective_name == "risk_parity" and case == "gross_leverage":
        pytest.skip("risk parity is long-only: gross leverage is always 1")
    result = _solve(shared_optimizer, objective, constraints, eight_assets, scenarios)
    assert result.status == "optimal"
    assert result.weights.sum() == pytest.approx(1.0, abs=1e-9)
    assert holds(result.weights, eight_assets), result.weights


@pytest.mark.parametrize("objective_name", ["min_variance", "max_sharpe", "mean_variance"])
@pytest.mark.parametrize("case", ["groups", "turnover", "tracking_error", "max_volatility"])
def test_constraint_binds(
    shared_optimizer: PortfolioOptimizer,
    eight_assets: Market,
    scenarios: np.ndarray,
    objective_name: str,
    case: str,
) -> None:
    """The cases are chosen to bind: without the constraint the check fails."""
    objective = OBJECTIVES[objective_name]
    constraints, holds = CASES[case]
    free = _solve(shared_optimizer, objective, [LongOnly()], eight_assets, scenarios)
    if holds(free.weights, eight_assets):
        pytest.skip(f"{case} does not bind for {objective_name} on this market")
    bound = _solve(shared_optimizer, objective, constraints, eight_assets, scenarios)
    assert holds(bound.weights, eight_assets)


def test_every_case_binds_for_some_objective(
    shared_optimizer: PortfolioOptimizer, eight_assets: Market, scenarios: np.ndarray
) -> None:
    # Guards test_constraint_binds against skipping everything.
    for case, (_, holds) in CASES.items():
        if case in {"asset_bounds", "gross_leverage"}:
            continue
        frees = [
            _solve(shared_optimizer, OBJECTIVES[name], [LongOnly()], eight_assets, scenarios)
            for name in ("min_variance", "max_sharpe", "mean_variance")
        ]
        assert not all(holds(r.weights, eight_assets) for r in frees), case


def test_gross_leverage_allows_a_long_short_book(
    shared_optimizer: PortfolioOptimizer, eight_assets: Market
) -> None:
    bounds = AssetBounds(np.full(8, -1.0), np.full(8, 1.0))
    result = shared_optimizer.optimize(
        MeanVariance(1.0),
        [bounds, GrossLeverage(1.6)],
        eight_assets.expected_returns,
        eight_assets.covariance,
    )
    assert result.weights.min() < -0.01, "expected some short positions"
    assert np.abs(result.weights).sum() == pytest.approx(1.6, abs=1e-6)
    assert result.weights[result.weights < 0].sum() == pytest.approx(-0.3, abs=1e-6)


def test_asset_bounds_are_parameters_but_which_assets_are_bounded_is_structure(
    optimizer: PortfolioOptimizer, eight_assets: Market
) -> None:
    mu, sigma = eight_assets.expected_returns, eight_assets.covariance
    upper = np.full(8, 0.3)
    optimizer.optimize(MinVariance(), [LongOnly(), AssetBounds(max_weights=upper)], mu, sigma)
    again = optimizer.optimize(
        MinVariance(), [LongOnly(), AssetBounds(max_weights=upper * 0.9)], mu, sigma
    )
    assert again.compiled_from_cache
    upper[3] = np.inf
    other = optimizer.optimize(
        MinVariance(), [LongOnly(), AssetBounds(max_weights=upper)], mu, sigma
    )
    assert not other.compiled_from_cache
