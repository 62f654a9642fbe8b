"""Bad requests are refused before solving, with messages that say how to fix them."""

from __future__ import annotations

from collections.abc import Hashable

import cvxpy as cp
import numpy as np
import pytest

from optimizer import (
    CompiledConstraint,
    Constraint,
    InvalidProblem,
    LongOnly,
    MaxSharpe,
    MeanVariance,
    MinVariance,
    NoPositiveExcessReturn,
    OptimizerError,
    PortfolioOptimizer,
    WeightBounds,
)
from optimizer._constraints import check_jointly_feasible
from tests.optimizer._markets import Market, random_market


@pytest.fixture
def five(optimizer: PortfolioOptimizer) -> Market:
    return random_market(5, seed=3)


def _assert_nothing_compiled(optimizer: PortfolioOptimizer) -> None:
    info = optimizer.cache_info()
    assert (info.hits, info.misses) == (0, 0), "the request reached the solver"


def test_error_tree() -> None:
    assert issubclass(InvalidProblem, OptimizerError)
    assert issubclass(InvalidProblem, ValueError)
    assert issubclass(NoPositiveExcessReturn, InvalidProblem)
    error = OptimizerError("what and how", status="infeasible", constraints=("budget",))
    assert (str(error), error.status, error.constraints) == (
        "what and how",
        "infeasible",
        ["budget"],
    )


def test_max_weight_too_small_for_the_universe(optimizer: PortfolioOptimizer, five: Market) -> None:
    with pytest.raises(InvalidProblem, match=r"max_weight=0\.1 with 5 assets") as caught:
        optimizer.optimize(
            MinVariance(),
            [LongOnly(), WeightBounds(max_weight=0.1)],
            five.expected_returns,
            five.covariance,
        )
    assert "at least 1/5 = 0.2" in str(caught.value)
    assert caught.value.constraints == ["weight_bounds", "budget"]
    assert caught.value.status is None
    _assert_nothing_compiled(optimizer)


def test_min_weight_too_large_for_the_universe(optimizer: PortfolioOptimizer, five: Market) -> None:
    with pytest.raises(InvalidProblem, match=r"min_weight=0\.25 with 5 assets.*at most 1/5"):
        optimizer.optimize(
            MinVariance(), [WeightBounds(min_weight=0.25)], five.expected_returns, five.covariance
        )
    _assert_nothing_compiled(optimizer)


def test_min_weight_above_max_weight(optimizer: PortfolioOptimizer, five: Market) -> None:
    with pytest.raises(InvalidProblem, match=r"min_weight=0\.5 exceeds max_weight=0\.3"):
        optimizer.optimize(
            MinVariance(), [WeightBounds(0.5, 0.3)], five.expected_returns, five.covariance
        )
    _assert_nothing_compiled(optimizer)


def test_nan_bound(optimizer: PortfolioOptimizer, five: Market) -> None:
    with pytest.raises(InvalidProblem, match="max_weight=nan is not a finite number"):
        optimizer.optimize(
            MinVariance(),
            [WeightBounds(max_weight=float("nan"))],
            five.expected_returns,
            five.covariance,
        )


def test_bounds_impossible_together() -> None:
    class AssetCaps(Constraint):
        """Per-asset caps: a future constraint, used here only for the pre-solve check."""

        name = "asset_caps"

        def __init__(self, caps: list[float]) -> None:
            self.caps = np.array(caps)

        @property
        def structure(self) -> tuple[Hashable, ...]:
            return ("AssetCaps",)

        def weight_bounds(self, n_assets: int) -> tuple[np.ndarray, np.ndarray]:
            return np.full(n_assets, -np.inf), self.caps

        def compile(self, weights: cp.Variable, scale: cp.Variable | None) -> CompiledConstraint:
            raise NotImplementedError

        def violation(self, weights: np.ndarray) -> float:
            raise NotImplementedError

    with pytest.raises(InvalidProblem, match=r"cap the total weight at 0\.9") as caught:
        check_jointly_feasible([LongOnly(), AssetCaps([0.5, 0.3, 0.1])], 3)
    assert caught.value.constraints == ["long_only", "asset_caps", "budget"]
    with pytest.raises(InvalidProblem, match="no allowed weight for asset 2"):
        check_jointly_feasible([WeightBounds(min_weight=0.1), AssetCaps([0.5, 0.6, 0.05])], 3)


@pytest.mark.parametrize("risk_free_rate", [0.15, 0.2])
def test_max_sharpe_without_positive_excess_return(
    optimizer: PortfolioOptimizer, five: Market, risk_free_rate: float
) -> None:
    assert five.expected_returns.max() <= risk_free_rate
    with pytest.raises(
        NoPositiveExcessReturn, match="no asset's expected return exceeds"
    ) as caught:
        optimizer.optimize(
            MaxSharpe(risk_free_rate), [LongOnly()], five.expected_returns, five.covariance
        )
    message = str(caught.value)
    assert "min_variance" in message
    assert "lower risk_free_rate" in message
    assert isinstance(caught.value, InvalidProblem)
    _assert_nothing_compiled(optimizer)
    best = int(np.argmax(five.expected_returns))
    error = caught.value
    assert (error.best_asset, error.best_asset_name) == (best, None)
    assert error.best_expected_return == pytest.approx(five.expected_returns[best])
    assert error.risk_free_rate == risk_free_rate
    assert f"asset {best})" in message
    # A caller that knows the assets' names gets the same error naming the best one.
    names = ["AAA", "BBB", "CCC", "DDD", "EEE"]
    named = error.with_asset_names(names)
    assert isinstance(named, NoPositiveExcessReturn)
    assert named.best_asset_name == names[best]
    assert f"{names[best]})" in str(named)
    assert "asset " not in str(named)
    assert str(named).replace(names[best], f"asset {best}") == message


def test_max_sharpe_when_the_bounds_forbid_a_positive_excess_return(
    optimizer: PortfolioOptimizer,
) -> None:
    # Only asset 0 beats the rate, but a cap of 0.5 forces half into the losers.
    expected_returns = np.array([0.06, 0.0, 0.0])
    with pytest.raises(
        NoPositiveExcessReturn, match="the best portfolio the weight bounds allow"
    ) as caught:
        optimizer.optimize(
            MaxSharpe(0.04),
            [LongOnly(), WeightBounds(max_weight=0.5)],
            expected_returns,
            np.diag([0.04, 0.04, 0.04]),
        )
    # Asset 0 does beat the rate, so no single asset is to blame, and none is named.
    assert caught.value.best_asset is None
    assert caught.value.with_asset_names(["A", "B", "C"]) is caught.value


@pytest.mark.parametrize("where", ["expected_returns", "covariance"])
def test_nan_input(optimizer: PortfolioOptimizer, five: Market, where: str) -> None:
    mu, sigma = five.expected_returns.copy(), five.covariance.copy()
    if where == "expected_returns":
        mu[2] = np.nan
    else:
        sigma[1, 1] = np.inf
    with pytest.raises(InvalidProblem, match=f"{where} contains NaN or infinite values"):
        optimizer.optimize(MinVariance(), [LongOnly()], mu, sigma)
    _assert_nothing_compiled(optimizer)


def test_shape_mismatch(optimizer: PortfolioOptimizer, five: Market) -> None:
    with pytest.raises(InvalidProblem, match=r"covariance has shape \(4, 4\).*5 assets"):
        optimizer.optimize(
            MinVariance(), [LongOnly()], five.expected_returns, five.covariance[:4, :4]
        )
    with pytest.raises(InvalidProblem, match="expected_returns must be a non-empty 1-D array"):
        optimizer.optimize(MinVariance(), [], five.expected_returns[:, None], five.covariance)
    with pytest.raises(InvalidProblem, match="expected_returns must be numeric"):
        optimizer.optimize(MinVariance(), [], ["a"] * 5, five.covariance)  # type: ignore[arg-type]
    _assert_nothing_compiled(optimizer)


def test_non_symmetric_covariance(optimizer: PortfolioOptimizer, five: Market) -> None:
    sigma = five.covariance.copy()
    sigma[0, 1] += 0.01
    with pytest.raises(InvalidProblem, match="covariance is not symmetric"):
        optimizer.optimize(MinVariance(), [LongOnly()], five.expected_returns, sigma)


def test_non_psd_covariance(optimizer: PortfolioOptimizer) -> None:
    # Pairwise correlations +0.9, +0.9 and -0.9 cannot coexist.
    correlation = np.array([[1.0, 0.9, 0.9], [0.9, 1.0, -0.9], [0.9, -0.9, 1.0]])
    sigma = correlation * 0.04
    with pytest.raises(InvalidProblem, match=r"not positive semidefinite.*ledoit_wolf_correlation"):
        optimizer.optimize(MinVariance(), [LongOnly()], np.full(3, 0.05), sigma)


def test_invalid_objective_values(optimizer: PortfolioOptimizer, five: Market) -> None:
    mu, sigma = five.expected_returns, five.covariance
    with pytest.raises(InvalidProblem, match=r"risk_aversion=0\.0 must be a positive finite"):
        optimizer.optimize(MeanVariance(0.0), [LongOnly()], mu, sigma)
    with pytest.raises(InvalidProblem, match="differs from the objective's risk_free_rate"):
        optimizer.optimize(MaxSharpe(0.01), [LongOnly()], mu, sigma, risk_free_rate=0.02)
    with pytest.raises(InvalidProblem, match="objective must be an Objective"):
        optimizer.optimize("min_variance", [], mu, sigma)  # type: ignore[arg-type]
    with pytest.raises(InvalidProblem, match="constraints must be Constraint objects"):
        optimizer.optimize(MinVariance(), ["long_only"], mu, sigma)  # type: ignore[list-item]
    _assert_nothing_compiled(optimizer)
