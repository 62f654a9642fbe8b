"""Risk-model estimators (scikit-learn style) and the factor model they produce."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.covariance import LedoitWolf

from optimizer import (
    CovarianceEstimator,
    EWMACovariance,
    FactorModel,
    InvalidProblem,
    LedoitWolfCovariance,
    PCAFactorModel,
    SampleCovariance,
)


@pytest.fixture(scope="module")
def factor_returns() -> np.ndarray:
    """400 periods of 12 assets driven by 3 factors plus noise (daily-like scale)."""
    rng = np.random.default_rng(21)
    loadings = rng.normal(size=(12, 3))
    factors = rng.normal(scale=0.01, size=(400, 3))
    return factors @ loadings.T + rng.normal(scale=0.004, size=(400, 12))


ESTIMATORS: dict[str, CovarianceEstimator] = {
    "sample": SampleCovariance(),
    "ledoit_wolf": LedoitWolfCovariance(),
    "ewma": EWMACovariance(half_life=60),
    "pca_factor": PCAFactorModel(n_factors=3),
}


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_fit_returns_self_and_a_symmetric_psd_covariance(
    factor_returns: np.ndarray, name: str
) -> None:
    estimator = ESTIMATORS[name]
    assert estimator.fit(factor_returns) is estimator
    covariance = estimator.covariance_
    assert covariance.shape == (12, 12)
    np.testing.assert_allclose(covariance, covariance.T, atol=1e-15)
    assert np.linalg.eigvalsh(covariance).min() > -1e-12
    assert repr(estimator).startswith(type(estimator).__name__ + "(")
    assert "covariance_" not in repr(estimator), "fitted attributes are not parameters"


def test_sample_and_ledoit_wolf_match_numpy_and_scikit_learn(factor_returns: np.ndarray) -> None:
    np.testing.assert_allclose(
        SampleCovariance().fit(factor_returns).covariance_, np.cov(factor_returns, rowvar=False)
    )
    shrunk = LedoitWolfCovariance().fit(factor_returns)
    np.testing.assert_allclose(shrunk.covariance_, LedoitWolf().fit(factor_returns).covariance_)
    assert 0.0 < shrunk.shrinkage_ < 1.0


def test_ewma_with_a_long_half_life_is_the_sample_covariance(factor_returns: np.ndarray) -> None:
    sample = np.cov(factor_returns, rowvar=False)
    flat = EWMACovariance(half_life=1e12).fit(factor_returns).covariance_
    np.testing.assert_allclose(flat, sample, rtol=1e-8)


def test_ewma_weights_recent_periods_more() -> None:
    # Calm first half, volatile second half: a short half-life sees mostly the storm.
    rng = np.random.default_rng(3)
    returns = np.vstack(
        [rng.normal(scale=0.005, size=(300, 2)), rng.normal(scale=0.03, size=(300, 2))]
    )
    estimator = EWMACovariance(half_life=20).fit(returns)
    assert estimator.weights_[-1] == pytest.approx(2 * estimator.weights_[-21])
    assert estimator.weights_.sum() == pytest.approx(1.0)
    recent = np.var(returns[-100:], axis=0)
    np.testing.assert_allclose(np.diag(estimator.covariance_), recent, rtol=0.35)
    assert np.all(np.diag(estimator.covariance_) > 4 * np.diag(np.cov(returns[:300], rowvar=False)))


def test_pca_factor_model_keeps_the_sample_variances_and_is_low_rank_plus_diagonal(
    factor_returns: np.ndarray,
) -> None:
    model = PCAFactorModel(n_factors=3).fit(factor_returns)
    sample = np.cov(factor_returns, rowvar=False)
    np.testing.assert_allclose(np.diag(model.covariance_), np.diag(sample), rtol=1e-10)
    assert model.loadings_.shape == (12, 3)
    assert model.factor_covariance_.shape == (3, 3)
    assert np.all(model.specific_variance_ >= 0.0)
    systematic = model.covariance_ - np.diag(model.specific_variance_)
    assert np.linalg.matrix_rank(systematic, tol=1e-12) == 3
    # Three true factors: three components explain most of the variance.
    assert model.explained_variance_ratio_ > 0.8
    factor_model = model.factor_model_
    assert (factor_model.n_assets, factor_model.n_factors) == (12, 3)
    np.testing.assert_allclose(factor_model.covariance(), model.covariance_)


def _pca_by_eigen_decomposition(returns: np.ndarray, n_factors: int) -> tuple[np.ndarray, ...]:
    """The textbook fit: eigenvectors of the dense sample covariance."""
    sample = np.cov(returns, rowvar=False)
    eigenvalues, eigenvectors = np.linalg.eigh(sample)
    order = np.argsort(eigenvalues)[::-1][:n_factors]
    loadings, variance = eigenvectors[:, order], np.clip(eigenvalues[order], 0.0, None)
    specific = np.clip(np.diag(sample) - np.sum(loadings**2 * variance, axis=1), 0.0, None)
    return loadings, variance, specific


@pytest.mark.parametrize(
    ("n_observations", "n_assets", "n_factors"),
    [(252, 500, 15), (60, 120, 5), (30, 40, 28), (400, 12, 3), (10, 40, 12)],
    ids=["window-of-500", "fewer-rows", "near-rank", "more-rows", "beyond-rank"],
)
def test_pca_factor_model_matches_the_covariance_eigen_decomposition(
    n_observations: int, n_assets: int, n_factors: int
) -> None:
    # With fewer observations than assets the fit decomposes the small Gram matrix
    # instead of the covariance; it must give the same model. Past the rank of the
    # returns (beyond-rank: 9 non-zero components, 12 asked) it falls back.
    rng = np.random.default_rng(n_assets)
    structure = rng.normal(size=(n_observations, 4)) @ rng.normal(size=(4, n_assets))
    returns = 0.01 * structure + rng.normal(scale=0.01, size=(n_observations, n_assets))
    model = PCAFactorModel(n_factors=n_factors).fit(returns)
    loadings, variance, specific = _pca_by_eigen_decomposition(returns, n_factors)
    scale = float(variance[0])
    np.testing.assert_allclose(np.diag(model.factor_covariance_), variance, atol=1e-12 * scale)
    np.testing.assert_allclose(model.specific_variance_, specific, atol=1e-12 * scale)
    np.testing.assert_allclose(
        model.covariance_,
        (loadings * variance) @ loadings.T + np.diag(specific),
        atol=1e-12 * scale,
    )
    np.testing.assert_allclose(model.loadings_.T @ model.loadings_, np.eye(n_factors), atol=1e-9)
    if n_factors < n_observations - 1:  # the non-zero components are unique up to sign
        overlap = np.abs(model.loadings_.T @ loadings)
        np.testing.assert_allclose(overlap, np.eye(n_factors), atol=1e-8)


def test_pca_factor_model_past_the_rank_of_short_returns_falls_back() -> None:
    # 20 days of 40 assets moved by 4 factors and nothing else: a 6th component has a
    # zero eigenvalue, which the small Gram matrix cannot give a direction for.
    rng = np.random.default_rng(5)
    returns = 0.01 * rng.normal(size=(20, 4)) @ rng.normal(size=(4, 40))
    model = PCAFactorModel(n_factors=6).fit(returns)
    _, variance, specific = _pca_by_eigen_decomposition(returns, 6)
    np.testing.assert_allclose(np.diag(model.factor_covariance_), variance, atol=1e-15)
    np.testing.assert_allclose(model.specific_variance_, specific, atol=1e-15)
    np.testing.assert_allclose(model.loadings_.T @ model.loadings_, np.eye(6), atol=1e-9)
    np.testing.assert_allclose(model.covariance_, np.cov(returns, rowvar=False), atol=1e-15)


@pytest.mark.parametrize("n_factors", [0, 12, 2.5])
def test_pca_factor_model_rejects_a_bad_number_of_factors(
    factor_returns: np.ndarray, n_factors: int
) -> None:
    with pytest.raises(InvalidProblem, match=r"n_factors=.* must be an integer from 1 to"):
        PCAFactorModel(n_factors=n_factors).fit(factor_returns)


def test_estimators_reject_bad_returns(factor_returns: np.ndarray) -> None:
    with_nan = factor_returns.copy()
    with_nan[5, 1] = np.nan
    with pytest.raises(
        InvalidProblem, match=r"NaN or infinite values \(first at \[row, column\] \[\[5, 1\]\]"
    ):
        SampleCovariance().fit(with_nan)
    with pytest.raises(InvalidProblem, match="at least 2 rows"):
        LedoitWolfCovariance().fit(factor_returns[:1])
    with pytest.raises(InvalidProblem, match="half_life=0 must be a positive number"):
        EWMACovariance(half_life=0).fit(factor_returns)


def test_factor_model_forms() -> None:
    rng = np.random.default_rng(8)
    loadings = rng.normal(size=(6, 2))
    factor_covariance = np.array([[0.04, 0.01], [0.01, 0.02]])
    specific = rng.uniform(0.01, 0.03, 6)
    model = FactorModel(loadings, factor_covariance, specific)
    dense = loadings @ factor_covariance @ loadings.T + np.diag(specific)
    np.testing.assert_allclose(model.covariance(), dense)
    np.testing.assert_allclose(model.exposure @ model.exposure.T, dense - np.diag(specific))
    np.testing.assert_allclose(model.volatility, np.sqrt(np.diag(dense)))
    np.testing.assert_allclose(model.scaled(252).covariance(), 252 * dense)
    target = np.linspace(0.1, 0.35, 6)
    rescaled = model.with_volatility(target).covariance()
    np.testing.assert_allclose(np.sqrt(np.diag(rescaled)), target)
    correlation = dense / np.outer(model.volatility, model.volatility)
    np.testing.assert_allclose(rescaled / np.outer(target, target), correlation, atol=1e-12)


def test_factor_model_rejects_inconsistent_parts() -> None:
    loadings = np.ones((4, 2))
    with pytest.raises(InvalidProblem, match=r"factor_covariance has shape \(3, 3\)"):
        FactorModel(loadings, np.eye(3), np.ones(4))
    with pytest.raises(InvalidProblem, match="specific_variance has shape"):
        FactorModel(loadings, np.eye(2), np.ones(3))
    with pytest.raises(InvalidProblem, match="not positive semidefinite"):
        FactorModel(loadings, np.array([[1.0, 2.0], [2.0, 1.0]]), np.ones(4))
    with pytest.raises(InvalidProblem, match="specific_variance must be non-negative"):
        FactorModel(loadings, np.eye(2), -np.ones(4))
