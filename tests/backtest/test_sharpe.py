"""Sharpe-ratio inference: size and power of the tests, coverage of the interval."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import signal

from backtest._hac import long_run_covariance
from backtest._sharpe import (
    jobson_korkie_memmel_test,
    ledoit_wolf_sharpe_test,
    sharpe_confidence_interval,
)

TESTS = [ledoit_wolf_sharpe_test, jobson_korkie_memmel_test]
DAILY_VOLATILITY_A, DAILY_VOLATILITY_B = 0.01, 0.02


def correlated_pair(
    rng: np.random.Generator, n_days: int, sharpe_a: float, sharpe_b: float, correlation: float
) -> tuple[np.ndarray, np.ndarray]:
    """iid jointly normal daily returns with the given daily Sharpe ratios."""
    shocks = rng.standard_normal((n_days, 2))
    shocks[:, 1] = correlation * shocks[:, 0] + math.sqrt(1 - correlation**2) * shocks[:, 1]
    a = DAILY_VOLATILITY_A * (sharpe_a + shocks[:, 0])
    b = DAILY_VOLATILITY_B * (sharpe_b + shocks[:, 1])
    return a, b


def ar1(rng: np.random.Generator, n_days: int, coefficient: float) -> np.ndarray:
    """A stationary Gaussian AR(1) series with unit marginal variance."""
    innovations = rng.standard_normal(n_days) * math.sqrt(1 - coefficient**2)
    innovations[0] = rng.standard_normal()  # start from the stationary distribution
    return np.asarray(signal.lfilter([1.0], [1.0, -coefficient], innovations))


@pytest.mark.parametrize("test", TESTS)
def test_size_under_the_null_of_equal_sharpe_ratios(test) -> None:
    rng = np.random.default_rng(20240601)
    p_values = np.array(
        [test(*correlated_pair(rng, 500, 0.05, 0.05, 0.8)).p_value for _ in range(200)]
    )
    assert 0.01 <= np.mean(p_values < 0.05) <= 0.10
    # Roughly uniform: about a tenth of the p-values in each tenth of [0, 1].
    counts = np.histogram(p_values, bins=5, range=(0, 1))[0]
    assert counts.min() >= 25
    assert counts.max() <= 60


@pytest.mark.parametrize("test", TESTS)
def test_power_under_a_strong_alternative(test) -> None:
    rng = np.random.default_rng(20240602)
    # Annualised Sharpe ratios 2.4 and 0: the difference is ~4.7 standard errors.
    rejections = [
        test(*correlated_pair(rng, 1000, 0.15, 0.0, 0.5)).p_value < 0.05 for _ in range(20)
    ]
    assert all(rejections)
    outcome = test(*correlated_pair(rng, 1000, 0.15, 0.0, 0.5))
    assert outcome.statistic > 0
    assert outcome.difference > 0


def test_ledoit_wolf_and_jobson_korkie_memmel_agree_on_iid_normal_returns() -> None:
    rng = np.random.default_rng(20240603)
    for _ in range(10):
        a, b = correlated_pair(rng, 2000, 0.06, 0.02, 0.6)
        robust, classic = ledoit_wolf_sharpe_test(a, b), jobson_korkie_memmel_test(a, b)
        assert robust.statistic == pytest.approx(classic.statistic, abs=0.1)
        assert robust.p_value == pytest.approx(classic.p_value, abs=0.03)
        assert robust.difference == classic.difference


@pytest.mark.parametrize("test", TESTS)
@pytest.mark.parametrize(("sharpe_a", "sharpe_b", "rho"), [(0.1, 0.05, 0.7), (1.0, 0.8, 0.9)])
def test_standard_error_matches_the_normal_closed_form(test, sharpe_a, sharpe_b, rho) -> None:
    """For iid normal returns, T Var(SR_a - SR_b) = 2 - 2 rho + (SR_a^2 + SR_b^2) / 2
    - SR_a SR_b rho^2 (delta method; Memmel's 2003 correction of Jobson-Korkie's last
    term, which the large daily Sharpe ratios of the second case tell apart)."""
    rng = np.random.default_rng(20240604)
    n_days = 50_000
    a, b = correlated_pair(rng, n_days, sharpe_a, sharpe_b, rho)
    outcome = test(a, b)
    asymptotic = 2 - 2 * rho + (sharpe_a**2 + sharpe_b**2) / 2 - sharpe_a * sharpe_b * rho**2
    difference_daily = a.mean() / a.std() - b.mean() / b.std()
    implied_standard_error = difference_daily / outcome.statistic
    assert implied_standard_error == pytest.approx(math.sqrt(asymptotic / n_days), rel=0.04)


@pytest.mark.parametrize("test", TESTS)
def test_swapping_a_and_b_negates_the_statistic_and_keeps_the_p_value(test) -> None:
    a, b = correlated_pair(np.random.default_rng(20240605), 300, 0.08, 0.0, 0.3)
    forward, backward = test(a, b), test(b, a)
    assert backward.statistic == pytest.approx(-forward.statistic, rel=1e-9)
    assert backward.p_value == pytest.approx(forward.p_value, rel=1e-9)
    assert backward.difference == pytest.approx(-forward.difference, rel=1e-12)
    assert forward.p_value == pytest.approx(2 * (1 - _normal_cdf(abs(forward.statistic))))


@pytest.mark.parametrize("test", TESTS)
def test_statistic_is_scale_free_and_ratios_are_annualised(test) -> None:
    a, b = correlated_pair(np.random.default_rng(20240606), 400, 0.08, 0.02, 0.5)
    daily = test(a, b)
    rescaled = test(100 * a, 100 * b, periods_per_year=12)
    assert rescaled.statistic == pytest.approx(daily.statistic, rel=1e-9)
    assert rescaled.p_value == pytest.approx(daily.p_value, rel=1e-9)
    assert daily.sharpe_a == pytest.approx(a.mean() / a.std(ddof=1) * math.sqrt(252))
    assert daily.sharpe_b == pytest.approx(b.mean() / b.std(ddof=1) * math.sqrt(252))
    assert daily.difference == pytest.approx(daily.sharpe_a - daily.sharpe_b)
    assert rescaled.sharpe_a == pytest.approx(daily.sharpe_a * math.sqrt(12 / 252))


def test_ledoit_wolf_accounts_for_serial_correlation() -> None:
    """Positively autocorrelated differences widen the HAC standard error; JKM ignores it."""
    rng = np.random.default_rng(20240607)
    common = rng.standard_normal(5000)
    a = 0.01 * (0.05 + 0.6 * common + 0.8 * ar1(rng, 5000, 0.6))
    b = 0.01 * (0.05 + 0.6 * common + 0.8 * ar1(rng, 5000, 0.6))
    robust, classic = ledoit_wolf_sharpe_test(a, b), jobson_korkie_memmel_test(a, b)
    # Long-run variance of an AR(1) is (1 + phi) / (1 - phi) = 4 times its variance:
    # the robust standard error is about twice the iid one.
    assert abs(classic.statistic / robust.statistic) == pytest.approx(2.0, rel=0.25)


@pytest.mark.parametrize("method", ["hac", "mertens"])
def test_confidence_interval_covers_the_true_sharpe_of_iid_normal_returns(method) -> None:
    rng = np.random.default_rng(20240608)
    true_daily_sharpe = 0.05
    covered = 0
    for _ in range(200):
        returns = 0.01 * (true_daily_sharpe + rng.standard_normal(500))
        low, high = sharpe_confidence_interval(returns, 0.95, method=method)
        covered += low <= true_daily_sharpe * math.sqrt(252) <= high
    assert 0.88 <= covered / 200 <= 0.99


def test_only_the_hac_interval_covers_under_serial_correlation() -> None:
    rng = np.random.default_rng(20240609)
    true_daily_sharpe = 0.1
    covered = {"hac": 0, "mertens": 0}
    for _ in range(200):
        returns = true_daily_sharpe + ar1(rng, 1000, 0.5)
        for method in covered:
            low, high = sharpe_confidence_interval(returns, method=method)  # type: ignore[arg-type]
            covered[method] += low <= true_daily_sharpe * math.sqrt(252) <= high
    assert covered["hac"] / 200 >= 0.88
    assert covered["mertens"] / 200 <= 0.85  # iid standard error ~1.7 times too small


def test_confidence_interval_is_centred_on_the_annualised_sharpe_ratio() -> None:
    returns = 0.01 * (0.04 + np.random.default_rng(20240610).standard_normal(750))
    sharpe = returns.mean() / returns.std(ddof=1) * math.sqrt(252)
    narrow = sharpe_confidence_interval(returns, 0.90)
    wide = sharpe_confidence_interval(returns, 0.99)
    assert (narrow[0] + narrow[1]) / 2 == pytest.approx(sharpe)
    assert wide[0] < narrow[0] < sharpe < narrow[1] < wide[1]
    # For normal returns both standard errors approach Lo's sqrt((1 + SR^2 / 2) / T).
    daily = sharpe / math.sqrt(252)
    lo_half_width = 1.959964 * math.sqrt((1 + daily**2 / 2) / 750) * math.sqrt(252)
    for method in ("hac", "mertens"):
        low, high = sharpe_confidence_interval(returns, method=method)  # type: ignore[arg-type]
        assert (high - low) / 2 == pytest.approx(lo_half_width, rel=0.15)


def test_mertens_interval_widens_with_negative_skew_and_fat_tails() -> None:
    rng = np.random.default_rng(20240611)
    normal = 0.002 + 0.01 * rng.standard_normal(2000)
    crashes = normal - 0.08 * (rng.random(2000) < 0.01)  # rare large losses
    crashes += normal.mean() - crashes.mean()  # same mean
    crashes *= normal.std() / crashes.std()  # same volatility: same Sharpe ratio
    width = {
        name: np.diff(sharpe_confidence_interval(x, method="mertens"))[0]
        for name, x in (("normal", normal), ("crashes", crashes))
    }
    assert width["crashes"] > 1.1 * width["normal"]


def test_long_run_variance_of_an_ar1_matches_theory() -> None:
    phi = 0.5
    series = ar1(np.random.default_rng(20240612), 40_000, phi)
    centred = series - series.mean()
    long_run = long_run_covariance(centred[:, None])[0, 0]
    assert long_run == pytest.approx((1 + phi) / (1 - phi), rel=0.1)


def test_bartlett_weights_are_newey_wests() -> None:
    scores = np.random.default_rng(20240613).standard_normal((50, 2))
    lags = 3
    expected = scores.T @ scores / 50
    for lag in range(1, lags + 1):
        gamma = sum(np.outer(scores[t], scores[t - lag]) for t in range(lag, 50)) / 50
        expected += (1 - lag / (lags + 1)) * (gamma + gamma.T)
    computed = long_run_covariance(scores, kernel="bartlett", bandwidth=lags + 1)
    np.testing.assert_allclose(computed, expected, rtol=1e-12)


@pytest.mark.parametrize("test", TESTS)
def test_invalid_inputs_raise_value_error(test) -> None:
    dates = pd.bdate_range("2024-01-01", periods=60)
    rng = np.random.default_rng(20240614)
    a = pd.Series(rng.standard_normal(60) * 0.01, index=dates)
    b = pd.Series(rng.standard_normal(60) * 0.01, index=dates)
    with pytest.raises(ValueError, match="not aligned"):
        test(a, b.shift(1, freq="B"))
    with pytest.raises(ValueError, match="differ in length"):
        test(a.to_numpy(), b.to_numpy()[:-1])
    with pytest.raises(ValueError, match="at least 30"):
        test(a.iloc[:29], b.iloc[:29])
    with pytest.raises(ValueError, match="non-finite"):
        test(a.where(a.index != dates[5]), b)
    with pytest.raises(ValueError, match="constant"):
        test(a * 0 + 0.001, b)
    with pytest.raises(ValueError, match="zero standard error"):
        test(a, a)


def test_interval_rejects_bad_arguments() -> None:
    returns = 0.01 * np.random.default_rng(20240615).standard_normal(100)
    with pytest.raises(ValueError, match="confidence"):
        sharpe_confidence_interval(returns, 1.0)
    with pytest.raises(ValueError, match="at least 30"):
        sharpe_confidence_interval(returns[:20])
    with pytest.raises(ValueError, match="constant"):
        sharpe_confidence_interval(np.full(100, 0.001))
    with pytest.raises(ValueError, match="method"):
        sharpe_confidence_interval(returns, method="bootstrap")  # type: ignore[arg-type]


def _normal_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))
