"""Risk helpers: Ledoit-Wolf correlation, covariance from volatility, PSD factors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.covariance import LedoitWolf

from optimizer import (
    InvalidProblem,
    covariance_factor,
    covariance_from_volatility,
    ledoit_wolf_correlation,
)


@pytest.fixture(scope="module")
def daily_returns() -> np.ndarray:
    rng = np.random.default_rng(11)
    mixing = rng.normal(size=(6, 6))
    return rng.normal(size=(250, 6)) @ mixing * 0.01


def test_ledoit_wolf_correlation_is_the_rescaled_shrunk_covariance(
    daily_returns: np.ndarray,
) -> None:
    correlation = ledoit_wolf_correlation(daily_returns)
    covariance = LedoitWolf().fit(daily_returns).covariance_
    volatility = np.sqrt(np.diag(covariance))
    np.testing.assert_allclose(correlation, covariance / np.outer(volatility, volatility))
    np.testing.assert_array_equal(np.diag(correlation), 1.0)
    np.testing.assert_array_equal(correlation, correlation.T)
    assert np.linalg.eigvalsh(correlation).min() > 0


def test_ledoit_wolf_correlation_rejects_bad_returns(daily_returns: np.ndarray) -> None:
    with_nan = daily_returns.copy()
    with_nan[3, 2] = np.nan
    with pytest.raises(InvalidProblem, match="NaN"):
        ledoit_wolf_correlation(with_nan)
    with pytest.raises(InvalidProblem, match="2-D"):
        ledoit_wolf_correlation(daily_returns[:, 0])
    constant = daily_returns.copy()
    constant[:, 4] = 0.001
    with pytest.raises(InvalidProblem, match=r"the returns of asset 4 are constant") as caught:
        ledoit_wolf_correlation(constant)
    assert caught.value.asset_positions == (4,)


def test_covariance_from_volatility_is_dcd() -> None:
    volatility = np.array([0.1, 0.2, 0.3])
    correlation = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, -0.2], [0.0, -0.2, 1.0]])
    covariance = covariance_from_volatility(volatility, correlation)
    np.testing.assert_allclose(covariance, np.diag(volatility) @ correlation @ np.diag(volatility))
    with pytest.raises(InvalidProblem, match=r"correlation has shape \(2, 2\)"):
        covariance_from_volatility(volatility, correlation[:2, :2])
    with pytest.raises(InvalidProblem, match="non-negative"):
        covariance_from_volatility(-volatility, correlation)


def test_factor_of_a_positive_definite_covariance(daily_returns: np.ndarray) -> None:
    covariance = np.cov(daily_returns, rowvar=False) * 252
    factor = covariance_factor(covariance)
    np.testing.assert_allclose(factor @ factor.T, covariance, rtol=1e-9, atol=1e-12)
    assert np.allclose(factor, np.tril(factor)), "expected the Cholesky path"


def test_factor_of_a_singular_covariance() -> None:
    # Rank one: two assets perfectly correlated, plus a zero-volatility asset.
    covariance = np.array([[0.04, 0.06, 0.0], [0.06, 0.09, 0.0], [0.0, 0.0, 0.0]])
    factor = covariance_factor(covariance)
    np.testing.assert_allclose(factor @ factor.T, covariance, atol=1e-9)


def test_factor_clips_rounding_negative_eigenvalues() -> None:
    rng = np.random.default_rng(5)
    basis, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    covariance = basis @ np.diag([0.09, 0.04, 0.01, -1e-12]) @ basis.T
    covariance = (covariance + covariance.T) / 2
    factor = covariance_factor(covariance)
    np.testing.assert_allclose(factor @ factor.T, covariance, atol=1e-10)


def test_factor_rejects_indefinite_and_asymmetric_matrices() -> None:
    with pytest.raises(InvalidProblem, match="not positive semidefinite"):
        covariance_factor(np.array([[0.04, 0.05], [0.05, 0.04]]))
    with pytest.raises(InvalidProblem, match="not symmetric"):
        covariance_factor(np.array([[0.04, 0.01], [0.0, 0.04]]))
