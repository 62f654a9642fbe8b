"""Bad requests are refused before solving, with messages that say how to fix them."""

from __future__ import annotations

from collections.abc import Callable, Hashable

import cvxpy as cp
import numpy as np
import pytest

from optimizer import (
    AssetBounds,
    CompiledConstraint,
    Constraint,
    FactorModel,
    HierarchicalRiskParity,
    InvalidProblem,
    LongOnly,
    MaxSharpe,
    MeanVariance,
    MinVariance,
    NoPositiveExcessReturn,
    OptimizerError,
    PortfolioOptimizer,
    ProgramInfeasible,
    RiskBudgeting,
    WeightBounds,
    ledoit_wolf_correlation,
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
    assert (error.asset_positions, error.asset_names) == ((best,), None)
    assert error.best_expected_return == pytest.approx(five.expected_returns[best])
    assert error.risk_free_rate == risk_free_rate
    assert f"asset {best})" in message
    # A caller that knows the assets' names gets the same error naming the best one.
    names = ["AAA", "BBB", "CCC", "DDD", "EEE"]
    named = error.with_asset_names(names)
    assert isinstance(named, NoPositiveExcessReturn)
    assert named.best_asset_name == names[best]
    assert (named.best_asset, named.asset_names) == (best, (names[best],))
    assert (named.best_expected_return, named.risk_free_rate) == (
        error.best_expected_return,
        risk_free_rate,
    )
    assert f"{names[best]})" in str(named)
    assert "asset " not in str(named)
    assert str(named).replace(names[best], f"asset {best}") == message


def test_with_asset_names_renames_a_copy_of_any_optimizer_error() -> None:
    # Positions render as "asset 2" or "assets 1 and 3"; nothing else is substituted.
    error = ProgramInfeasible(
        "{assets} cannot all hold {x} at once.",
        status="infeasible",
        constraints=["asset_bounds"],
        asset_positions=[1, 3, 4],
    )
    assert str(error) == "assets 1, 3 and 4 cannot all hold {x} at once."
    named = error.with_asset_names(["A", "B", "C", "D", "E"])
    assert type(named) is ProgramInfeasible
    assert str(named) == named.message == "B, D and E cannot all hold {x} at once."
    assert (named.asset_positions, named.asset_names) == ((1, 3, 4), ("B", "D", "E"))
    assert (named.status, named.constraints) == ("infeasible", ["asset_bounds"])
    # The original is left as it was, for the traceback it belongs to.
    assert str(error) == "assets 1, 3 and 4 cannot all hold {x} at once."
    assert error.asset_names is None
    # Already named: callers further out, which may list the assets in another order,
    # cannot rename it.
    assert named.with_asset_names(["E", "D", "C", "B", "A"]) is named
    # An error about no asset in particular has nothing to name.
    plain = InvalidProblem("covariance is not symmetric.")
    assert plain.with_asset_names(["A"]) is plain

    # A subclass whose constructor needs more arguments keeps them.
    class StalePrices(InvalidProblem):
        def __init__(self, message: str, *, days: int, asset_positions: list[int]) -> None:
            super().__init__(message, asset_positions=asset_positions)
            self.days = days

    stale = StalePrices("{assets} did not trade for 30 days.", days=30, asset_positions=[0])
    renamed = stale.with_asset_names(["AAPL"])
    assert isinstance(renamed, StalePrices)
    assert (str(renamed), renamed.days) == ("AAPL did not trade for 30 days.", 30)


def _raised(call: Callable[[], object]) -> OptimizerError:
    with pytest.raises(OptimizerError) as caught:
        call()
    return caught.value


def _per_asset_errors(optimizer: PortfolioOptimizer) -> dict[str, Callable[[], object]]:
    """Requests the optimizer refuses because of particular assets (the positions named)."""
    market = random_market(5, seed=3)
    mu, sigma = market.expected_returns, market.covariance

    def solve(objective: object, constraints: list[Constraint], covariance: np.ndarray) -> object:
        return optimizer.optimize(objective, constraints, mu, covariance)  # type: ignore[arg-type]

    no_variance = sigma.copy()
    no_variance[4, :] = no_variance[:, 4] = 0.0
    constant = np.random.default_rng(0).normal(0.0, 0.01, size=(50, 5))
    constant[:, [1, 3]] = 0.002
    return {
        "asset 3 has min_weight 0.4 above max_weight 0.2": lambda: solve(
            MinVariance(), [AssetBounds([0, 0, 0, 0.4, 0], [1, 1, 1, 0.2, 1])], sigma
        ),
        "leave no allowed weight for asset 2 (lower bound 0": lambda: solve(
            MinVariance(), [LongOnly(), AssetBounds(max_weights=[1, 1, -0.1, 1, 1])], sigma
        ),
        "but asset 1 has an upper bound of 0;": lambda: solve(
            RiskBudgeting(), [LongOnly(), AssetBounds(max_weights=[1, 0, 1, 1, 1])], sigma
        ),
        "asset 4 has zero variance": lambda: solve(
            HierarchicalRiskParity(), [LongOnly()], no_variance
        ),
        "the returns of assets 1 and 3 are constant": lambda: ledoit_wolf_correlation(constant),
        "the modelled volatility of assets 1 and 3 is zero": lambda: FactorModel(
            loadings=np.array([[0.1], [0.0], [0.2], [0.0], [0.3]]),
            factor_covariance=np.eye(1),
            specific_variance=np.array([0.01, 0.0, 0.01, 0.0, 0.01]),
        ).with_volatility(np.full(5, 0.2)),
    }


PER_ASSET = {
    "asset 3 has min_weight 0.4 above max_weight 0.2": ((3,), "DDD has min_weight"),
    "leave no allowed weight for asset 2 (lower bound 0": ((2,), "weight for CCC (lower"),
    "but asset 1 has an upper bound of 0;": ((1,), "but BBB has an upper bound"),
    "asset 4 has zero variance": ((4,), "EEE has zero variance"),
    "the returns of assets 1 and 3 are constant": ((1, 3), "returns of BBB and DDD are"),
    "the modelled volatility of assets 1 and 3 is zero": ((1, 3), "volatility of BBB and DDD"),
}


@pytest.mark.parametrize(
    "message",
    list(PER_ASSET),
    ids=[
        "min_weight_above_max_weight",
        "no_allowed_weight",
        "risk_budgeting_upper_bound",
        "hrp_zero_variance",
        "constant_returns",
        "factor_model_zero_volatility",
    ],
)
def test_errors_about_particular_assets_carry_their_positions(
    optimizer: PortfolioOptimizer, message: str
) -> None:
    error = _raised(_per_asset_errors(optimizer)[message])
    positions, named_message = PER_ASSET[message]
    assert isinstance(error, InvalidProblem)
    assert message in str(error), str(error)
    assert (error.asset_positions, error.asset_names) == (positions, None)
    _assert_nothing_compiled(optimizer)

    names = ["AAA", "BBB", "CCC", "DDD", "EEE"]
    named = error.with_asset_names(names)
    assert type(named) is type(error)
    assert named_message in str(named), str(named)
    assert "asset " not in str(named).replace("every asset", "")
    assert named.asset_names == tuple(names[p] for p in positions)
    assert named.constraints == error.constraints


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
