"""Inference on Sharpe ratios: a confidence interval and tests of a Sharpe difference.

All inputs are periodic (daily) simple excess returns. The estimators and test
statistics are computed on the periodic returns, so the statistics and p-values do
not depend on the annualisation; only the reported ratios and interval bounds are
annualised, by ``sqrt(periods_per_year)``.

Both the interval and the Ledoit-Wolf test use the delta method on sample moments
with a heteroskedasticity- and autocorrelation-consistent (HAC) long-run covariance:
Parzen kernel, Andrews (1991) automatic bandwidth (AR(1) plug-in), no prewhitening.

References
----------
.. [1] Andrews, D. W. K. (1991). Heteroskedasticity and autocorrelation consistent
   covariance matrix estimation. *Econometrica* 59(3), 817-858.
.. [2] Jobson, J. D. and Korkie, B. M. (1981). Performance hypothesis testing with the
   Sharpe and Treynor measures. *Journal of Finance* 36(4), 889-908.
.. [3] Ledoit, O. and Wolf, M. (2008). Robust performance hypothesis testing with the
   Sharpe ratio. *Journal of Empirical Finance* 15(5), 850-859.
.. [4] Lo, A. W. (2002). The statistics of Sharpe ratios. *Financial Analysts Journal*
   58(4), 36-52.
.. [5] Memmel, C. (2003). Performance hypothesis testing with the Sharpe ratio.
   *Finance Letters* 1, 21-23.
.. [6] Mertens, E. (2002). Comments on variance of the IID estimator in Lo (2002).
   Working paper, University of Basel.
.. [7] Newey, W. K. and West, K. D. (1994). Automatic lag selection in covariance
   matrix estimation. *Review of Economic Studies* 61(4), 631-653.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from backtest._hac import long_run_covariance

FloatArray: TypeAlias = npt.NDArray[np.float64]
ReturnsLike: TypeAlias = npt.NDArray[np.float64] | pd.Series
"""Periodic simple (excess) returns: a 1-D float array, or a Series on a date index."""

MIN_TEST_OBSERVATIONS = 30
"""Fewest observations for which an interval or a test is computed (they are asymptotic)."""

_STANDARD_NORMAL = NormalDist()


@dataclass(frozen=True)
class SharpeDifferenceTest:
    """The outcome of a test of ``H0: Sharpe(a) == Sharpe(b)``.

    Attributes
    ----------
    sharpe_a, sharpe_b : float
        Annualised Sharpe ratios, ``mean / std(ddof=1) * sqrt(periods_per_year)``.
    difference : float
        ``sharpe_a - sharpe_b`` (annualised).
    statistic : float
        The scale-free z statistic: positive when ``a`` has the higher Sharpe ratio;
        asymptotically standard normal under the null.
    p_value : float
        Two-sided p-value from the standard normal.
    method : str
        ``"ledoit_wolf_2008_hac"`` or ``"jobson_korkie_memmel"``.
    """

    sharpe_a: float
    sharpe_b: float
    difference: float
    statistic: float
    p_value: float
    method: str


def sharpe_confidence_interval(
    returns: ReturnsLike,
    confidence: float = 0.95,
    periods_per_year: int = 252,
    *,
    method: Literal["hac", "mertens"] = "hac",
) -> tuple[float, float]:
    """Annualised confidence interval of the Sharpe ratio of ``returns``.

    The interval is ``sqrt(P) * (SR ± z * se)`` with ``SR = mean / std(ddof=1)`` of the
    periodic returns, ``P = periods_per_year`` and ``z`` the normal quantile.

    - ``method="hac"`` (default): delta method on ``(mu, gamma) = (E[r], E[r^2])``,
      ``SR = mu / sqrt(gamma - mu^2)``, whose covariance is the HAC long-run covariance
      of ``(r - mu, r^2 - gamma)`` (Parzen kernel, Andrews automatic bandwidth, times
      ``T / (T - 2)``). This is Lo's (2002) GMM standard error for non-iid returns with
      Ledoit and Wolf's (2008) kernel; it allows fat tails, skewness, volatility
      clustering and serial correlation.
    - ``method="mertens"``: the iid, non-normal standard error of Mertens (2002),
      ``se^2 = (1 + SR^2 / 2 - skew * SR + (kurt - 3) / 4 * SR^2) / T`` with sample
      skewness and (non-excess) kurtosis. It understates the uncertainty when returns
      are serially correlated.

    Parameters
    ----------
    returns : ndarray or Series
        Periodic (daily) simple excess returns; at least 30 finite values, not constant.
    confidence : float, optional
        Coverage probability, in (0, 1).
    periods_per_year : int, optional
        Periods in a year (252 trading days).
    method : {"hac", "mertens"}, optional
        The standard error (see above).

    Returns
    -------
    tuple of float
        ``(low, high)``, annualised.

    Raises
    ------
    ValueError
        Fewer than 30 observations, non-finite or constant returns, or a bad argument.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    _check_periods(periods_per_year)
    values = _returns_array(returns, "returns")
    n_obs = values.size
    sharpe_daily = _sharpe_daily(values, "returns")
    if method == "hac":
        mean, gamma = float(values.mean()), float(np.mean(values**2))
        variance = float(np.mean((values - mean) ** 2))  # gamma - mean^2, without cancellation
        scores = np.column_stack([values - mean, values**2 - gamma])
        gradient = np.array([gamma, -0.5 * mean]) / variance**1.5
        covariance = long_run_covariance(scores) * n_obs / (n_obs - 2)
        standard_error = math.sqrt(max(float(gradient @ covariance @ gradient), 0.0) / n_obs)
    elif method == "mertens":
        deviations = values - values.mean()
        variance = float(np.mean(deviations**2))
        skewness = float(np.mean(deviations**3)) / variance**1.5
        kurtosis = float(np.mean(deviations**4)) / variance**2  # not excess: 3 if normal
        # 1 + SR^2 / 2 + (kurt - 3) SR^2 / 4 - skew SR, regrouped; it is >= 0 because
        # kurt >= 1 + skew^2 makes it >= (1 - skew * SR / 2)^2.
        bracket = 1.0 - skewness * sharpe_daily + 0.25 * (kurtosis - 1.0) * sharpe_daily**2
        standard_error = math.sqrt(max(bracket, 0.0) / n_obs)
    else:
        raise ValueError(f"method must be 'hac' or 'mertens', got {method!r}")
    half_width = _STANDARD_NORMAL.inv_cdf(0.5 + confidence / 2.0) * standard_error
    scale = math.sqrt(periods_per_year)
    return scale * (sharpe_daily - half_width), scale * (sharpe_daily + half_width)


def ledoit_wolf_sharpe_test(
    a: ReturnsLike, b: ReturnsLike, periods_per_year: int = 252
) -> SharpeDifferenceTest:
    """Ledoit and Wolf's (2008) HAC test of equal Sharpe ratios of paired returns.

    With ``v = (mu_a, mu_b, gamma_a, gamma_b)``, ``gamma = E[r^2]``, the difference is
    ``f(v) = mu_a / sqrt(gamma_a - mu_a^2) - mu_b / sqrt(gamma_b - mu_b^2)``, and by the
    delta method ``se^2 = grad f' Psi grad f / T``, where ``Psi`` is the HAC long-run
    covariance of ``(a - mu_a, b - mu_b, a^2 - gamma_a, b^2 - gamma_b)``: Parzen kernel,
    Andrews (1991) AR(1) plug-in bandwidth ``2.6614 (alpha T)^(1/5)``, small-sample
    factor ``T / (T - 4)``, as in Ledoit and Wolf's HAC inference (section 3.1; their
    studentised bootstrap is not implemented). The statistic ``f(v) / se`` is referred to
    the standard normal (two-sided). Unlike Jobson-Korkie-Memmel it is valid for fat
    tails, volatility clustering and serial correlation.

    Parameters
    ----------
    a, b : ndarray or Series
        Paired periodic (daily) excess returns on the same dates: equal lengths, and
        equal indexes when both are Series; at least 30 finite values each.
    periods_per_year : int, optional
        Used only to annualise the reported Sharpe ratios.

    Returns
    -------
    SharpeDifferenceTest
        ``method="ledoit_wolf_2008_hac"``; the statistic is positive when ``a`` has the
        higher Sharpe ratio.

    Raises
    ------
    ValueError
        Misaligned inputs, fewer than 30 observations, non-finite or constant returns,
        or a zero standard error (e.g. ``a`` and ``b`` identical).
    """
    _check_periods(periods_per_year)
    first, second = _paired(a, b)
    n_obs = first.size
    means = np.array([first.mean(), second.mean()])
    gammas = np.array([np.mean(first**2), np.mean(second**2)])
    variances = np.array([np.mean((first - means[0]) ** 2), np.mean((second - means[1]) ** 2)])
    if np.any(variances <= 0.0):
        raise ValueError("a return series is constant: its Sharpe ratio is undefined")
    scale = variances**1.5
    # d f / d (mu_a, mu_b, gamma_a, gamma_b), Ledoit and Wolf (2008), section 3.1.
    gradient = np.array([gammas[0], -gammas[1], -0.5 * means[0], 0.5 * means[1]])
    gradient /= np.tile(scale, 2)
    scores = np.column_stack(
        [first - means[0], second - means[1], first**2 - gammas[0], second**2 - gammas[1]]
    )
    covariance = long_run_covariance(scores) * n_obs / (n_obs - 4)
    variance_of_difference = float(gradient @ covariance @ gradient) / n_obs
    difference_daily = float(
        means[0] / math.sqrt(variances[0]) - means[1] / math.sqrt(variances[1])
    )
    method = "ledoit_wolf_2008_hac"
    return _outcome(
        first, second, difference_daily, variance_of_difference, periods_per_year, method
    )


def jobson_korkie_memmel_test(
    a: ReturnsLike, b: ReturnsLike, periods_per_year: int = 252
) -> SharpeDifferenceTest:
    """Jobson and Korkie's (1981) test of equal Sharpe ratios, corrected by Memmel (2003).

    ``z = (s_b m_a - s_a m_b) / sqrt(theta)`` with sample means ``m``, standard
    deviations ``s`` and covariance ``s_ab`` (``ddof=1``), and

    ``theta = (2 s_a^2 s_b^2 - 2 s_a s_b s_ab + m_a^2 s_b^2 / 2 + m_b^2 s_a^2 / 2
    - m_a m_b s_ab^2 / (s_a s_b)) / T``

    (Memmel's corrected last term), referred to the standard normal, two-sided. It
    assumes iid jointly normal returns; prefer :func:`ledoit_wolf_sharpe_test` for
    real returns (fat tails and volatility clustering make it over-reject).

    Parameters
    ----------
    a, b : ndarray or Series
        Paired periodic (daily) excess returns on the same dates (see
        :func:`ledoit_wolf_sharpe_test`).
    periods_per_year : int, optional
        Used only to annualise the reported Sharpe ratios.

    Returns
    -------
    SharpeDifferenceTest
        ``method="jobson_korkie_memmel"``; ``statistic`` is ``z`` (positive when ``a``
        has the higher Sharpe ratio).

    Raises
    ------
    ValueError
        As :func:`ledoit_wolf_sharpe_test`.
    """
    _check_periods(periods_per_year)
    first, second = _paired(a, b)
    n_obs = first.size
    mean_a, mean_b = float(first.mean()), float(second.mean())
    covariance = np.cov(first, second, ddof=1)
    if covariance[0, 0] <= 0.0 or covariance[1, 1] <= 0.0:
        raise ValueError("a return series is constant: its Sharpe ratio is undefined")
    std_a, std_b = math.sqrt(covariance[0, 0]), math.sqrt(covariance[1, 1])
    cov_ab = float(covariance[0, 1])
    theta = (
        2.0 * std_a**2 * std_b**2
        - 2.0 * std_a * std_b * cov_ab
        + 0.5 * mean_a**2 * std_b**2
        + 0.5 * mean_b**2 * std_a**2
        - mean_a * mean_b * cov_ab**2 / (std_a * std_b)
    ) / n_obs
    # z = (s_b m_a - s_a m_b) / sqrt(theta) = (SR_a - SR_b) / sqrt(theta / (s_a s_b)^2).
    difference_daily = mean_a / std_a - mean_b / std_b
    variance_of_difference = theta / (std_a * std_b) ** 2
    method = "jobson_korkie_memmel"
    return _outcome(
        first, second, difference_daily, variance_of_difference, periods_per_year, method
    )


def _outcome(
    first: FloatArray,
    second: FloatArray,
    difference_daily: float,
    variance_of_difference: float,
    periods_per_year: int,
    method: str,
) -> SharpeDifferenceTest:
    """The test's result; the reported ratios use ``std(ddof=1)``, like the metrics."""
    if not (math.isfinite(variance_of_difference) and variance_of_difference > 0.0):
        raise ValueError(
            "the Sharpe difference has a zero standard error (are the two return series "
            "identical?): the test is undefined"
        )
    statistic = difference_daily / math.sqrt(variance_of_difference)
    scale = math.sqrt(periods_per_year)
    sharpe_a = scale * _sharpe_daily(first, "a")
    sharpe_b = scale * _sharpe_daily(second, "b")
    return SharpeDifferenceTest(
        sharpe_a=sharpe_a,
        sharpe_b=sharpe_b,
        difference=sharpe_a - sharpe_b,
        statistic=statistic,
        p_value=2.0 * _STANDARD_NORMAL.cdf(-abs(statistic)),
        method=method,
    )


def _sharpe_daily(values: FloatArray, name: str) -> float:
    deviation = float(np.std(values, ddof=1))
    if np.ptp(values) == 0.0 or deviation == 0.0:
        raise ValueError(f"{name} is constant: its Sharpe ratio is undefined")
    return float(values.mean()) / deviation


def _paired(a: ReturnsLike, b: ReturnsLike) -> tuple[FloatArray, FloatArray]:
    if isinstance(a, pd.Series) and isinstance(b, pd.Series) and not a.index.equals(b.index):
        raise ValueError(
            "a and b are not aligned: pass returns on the same dates "
            "(e.g. a, b = a.align(b, join='inner'))"
        )
    first, second = _returns_array(a, "a"), _returns_array(b, "b")
    if first.size != second.size:
        raise ValueError(f"a and b differ in length ({first.size} != {second.size})")
    return first, second


def _returns_array(returns: ReturnsLike, name: str) -> FloatArray:
    values = np.asarray(returns, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {values.shape}")
    if values.size < MIN_TEST_OBSERVATIONS:
        raise ValueError(
            f"{name} has {values.size} observations; inference on a Sharpe ratio needs at "
            f"least {MIN_TEST_OBSERVATIONS}"
        )
    if not np.isfinite(values).all():
        raise ValueError(f"{name} holds non-finite values (NaN or inf); drop or fill them")
    return values


def _check_periods(periods_per_year: int) -> None:
    if periods_per_year <= 0:
        raise ValueError(f"periods_per_year must be positive, got {periods_per_year}")
