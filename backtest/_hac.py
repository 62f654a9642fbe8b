"""HAC (heteroskedasticity- and autocorrelation-consistent) long-run covariances.

Kernel estimates with Andrews' (1991) automatic bandwidth, for the Sharpe-ratio
inference of :mod:`backtest._sharpe` and the Newey-West alpha t-statistic of
:mod:`backtest._metrics`.

References
----------
.. [1] Andrews, D. W. K. (1991). Heteroskedasticity and autocorrelation consistent
   covariance matrix estimation. *Econometrica* 59(3), 817-858.
.. [2] Newey, W. K. and West, K. D. (1994). Automatic lag selection in covariance
   matrix estimation. *Review of Economic Studies* 61(4), 631-653.
"""

from __future__ import annotations

import math
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

FloatArray: TypeAlias = npt.NDArray[np.float64]
Kernel: TypeAlias = Literal["parzen", "bartlett"]

_AR1_COEFFICIENT_BOUND = 0.97
"""Bound on the AR(1) coefficients of Andrews' plug-in: a unit root would make the
bandwidth infinite (Andrews 1991 truncates the estimate the same way)."""


def long_run_covariance(
    scores: FloatArray, *, kernel: Kernel = "parzen", bandwidth: float | None = None
) -> FloatArray:
    """Kernel (HAC) estimate of the long-run covariance of mean-zero ``scores``.

    ``Psi = Gamma_0 + sum_{j >= 1} k(j / S) (Gamma_j + Gamma_j')`` with
    ``Gamma_j = sum_t s_t s_{t-j}' / T`` (no degrees-of-freedom correction: callers
    apply theirs). Both kernels give a positive semi-definite ``Psi``.

    Parameters
    ----------
    scores : ndarray of shape (T, k)
        Centred moment conditions, one row per period.
    kernel : {"parzen", "bartlett"}, optional
        Parzen: ``1 - 6x^2 + 6|x|^3`` for ``|x| <= 1/2``, ``2 (1 - |x|)^3`` for
        ``1/2 < |x| <= 1``. Bartlett: ``1 - |x|``; Newey-West with ``L`` lags is
        Bartlett with ``S = L + 1``.
    bandwidth : float, optional
        ``S``: lags ``j >= S`` get weight 0. By default Andrews' (1991) automatic
        bandwidth for the kernel (:func:`andrews_bandwidth`).

    Returns
    -------
    ndarray of shape (k, k)
    """
    matrix = np.asarray(scores, dtype=np.float64)
    if matrix.ndim == 1:
        matrix = matrix[:, None]
    n_obs = matrix.shape[0]
    if bandwidth is None:
        bandwidth = andrews_bandwidth(matrix, kernel=kernel)
    covariance: FloatArray = matrix.T @ matrix / n_obs
    for lag in range(1, min(math.ceil(bandwidth), n_obs)):
        weight = _kernel_weight(lag / bandwidth, kernel)
        if weight == 0.0:
            continue
        autocovariance = matrix[lag:].T @ matrix[:-lag] / n_obs
        covariance += weight * (autocovariance + autocovariance.T)
    return covariance


def andrews_bandwidth(scores: FloatArray, *, kernel: Kernel = "parzen") -> float:
    """Andrews' (1991) automatic bandwidth from AR(1) fits to each column of ``scores``.

    ``S = 2.6614 (alpha(2) T)^(1/5)`` for Parzen and ``S = 1.1447 (alpha(1) T)^(1/3)``
    for Bartlett, with ``alpha(2) = sum 4 rho^2 sigma^4 / (1 - rho)^8 / sum sigma^4 /
    (1 - rho)^4`` and ``alpha(1) = sum 4 rho^2 sigma^4 / ((1 - rho)^6 (1 + rho)^2) /
    sum sigma^4 / (1 - rho)^4``. Each column is standardised before its fit (Andrews'
    weights ``w_a = 1 / var_a``), so the bandwidth does not depend on the units of the
    returns; Ledoit and Wolf's code uses unit weights on the raw columns instead, which
    lets the returns (not their squares) choose the bandwidth. The AR(1) coefficients
    are bounded by 0.97 in absolute value.
    """
    matrix = np.asarray(scores, dtype=np.float64)
    if matrix.ndim == 1:
        matrix = matrix[:, None]
    n_obs = matrix.shape[0]
    numerator = denominator = 0.0
    for column in matrix.T:
        centred = column - column.mean()
        scale = float(np.sqrt(np.mean(centred**2)))
        if scale == 0.0 or n_obs < 3:
            continue
        standardised = centred / scale
        lagged, current = standardised[:-1], standardised[1:]
        rho = float(lagged @ current / (lagged @ lagged))
        rho = min(max(rho, -_AR1_COEFFICIENT_BOUND), _AR1_COEFFICIENT_BOUND)
        sigma4 = float(np.mean((current - rho * lagged) ** 2)) ** 2
        denominator += sigma4 / (1.0 - rho) ** 4
        if kernel == "parzen":
            numerator += 4.0 * rho**2 * sigma4 / (1.0 - rho) ** 8
        else:
            numerator += 4.0 * rho**2 * sigma4 / ((1.0 - rho) ** 6 * (1.0 + rho) ** 2)
    if denominator == 0.0:
        return 1.0  # nothing to estimate: Gamma_0 alone
    alpha = numerator / denominator
    if kernel == "parzen":
        return float(2.6614 * (alpha * n_obs) ** 0.2)
    return float(1.1447 * (alpha * n_obs) ** (1.0 / 3.0))


def _kernel_weight(x: float, kernel: Kernel) -> float:
    x = abs(x)
    if x >= 1.0:
        return 0.0
    if kernel == "bartlett":
        return 1.0 - x
    if x <= 0.5:
        return 1.0 - 6.0 * x**2 + 6.0 * x**3
    return 2.0 * (1.0 - x) ** 3
