"""Optimizer benchmark: quantserve beside a naive cvxpy rebuild and skfolio, same run.

The problem, for n = 20, 100, 500 and 2,000 assets: long-only mean-variance
(maximise ``mu'w - (risk_aversion / 2) w' Sigma w - cost``), fully invested, at most
10% per asset, with a linear cost of 10 bps on every trade away from the current
(equal) weights.

The inputs are synthetic: a factor-structured covariance ``Sigma = B F B' + D`` with
``k = min(20, n / 4)`` factors (loadings, factor and specific volatilities at the
scale of annualised equity risk) and expected returns of 2-14% a year. Each
repetition perturbs the expected returns, as a new forecast would.

- **quantserve**: ``PortfolioOptimizer.optimize`` with the ``FactorModel``; the
  problem is compiled once, so this is the warm path (wall time of the whole call:
  validation, parameter update, Clarabel, statistics).
- **naive**: a cvxpy problem rebuilt for every solve with the dense ``n x n``
  covariance in ``cp.quad_form``, solved by Clarabel: what a script written without
  DPP or factor form does.
- **skfolio**: ``MeanRisk`` maximising the same utility (skfolio's ``risk_aversion``
  is ours halved) with ``max_weights``, ``transaction_costs`` and ``previous_weights``,
  given the same expected returns and dense covariance through a fixed prior; it
  builds its problem on every ``fit``.

The three solve the same problem: the output reports each peer's utility relative to
quantserve's. Medians of the repetitions; the dense solves at 2,000 assets are slow,
so they run fewer times. The machine is noisy: compare ratios within one run.
The last line is one JSON object.

Run: ``make bench-optimizer``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np
from skfolio.optimization import MeanRisk, ObjectiveFunction
from skfolio.prior import BasePrior, ReturnDistribution

from optimizer import FactorModel, LongOnly, MeanVariance, PortfolioOptimizer, WeightBounds

SIZES = (20, 100, 500, 2000)
RISK_AVERSION = 2.0
MAX_WEIGHT = 0.10
COST = 0.001  # 10 bps
QUANTSERVE_REPETITIONS = 20
DENSE_REPETITIONS = {20: 7, 100: 7, 500: 5, 2000: 3}
"""Repetitions of the naive and skfolio solves, which rebuild a dense problem each time."""


@dataclass(frozen=True)
class Inputs:
    """One synthetic market: a factor model, its dense covariance, expected returns."""

    model: FactorModel
    covariance: np.ndarray
    expected_returns: np.ndarray
    current_weights: np.ndarray

    def perturbed(self, repetition: int) -> np.ndarray:
        """Expected returns for one repetition (a new forecast)."""
        rng = np.random.default_rng(1000 + repetition)
        return self.expected_returns * (
            1.0 + 0.05 * rng.standard_normal(len(self.expected_returns))
        )


def synthetic_inputs(n_assets: int, seed: int = 0) -> Inputs:
    rng = np.random.default_rng(seed)
    n_factors = min(20, n_assets // 4)
    loadings = rng.normal(0.0, 1.0, (n_assets, n_factors))
    loadings[:, 0] = rng.uniform(0.6, 1.4, n_assets)  # a market factor
    factor_volatility = np.concatenate([[0.16], rng.uniform(0.03, 0.08, n_factors - 1)])
    factor_covariance = np.diag(factor_volatility**2)
    specific_variance = rng.uniform(0.15, 0.35, n_assets) ** 2
    model = FactorModel(loadings, factor_covariance, specific_variance)
    return Inputs(
        model=model,
        covariance=model.covariance(),
        expected_returns=rng.uniform(0.02, 0.14, n_assets),
        current_weights=np.full(n_assets, 1.0 / n_assets),
    )


def utility(weights: np.ndarray, inputs: Inputs, expected_returns: np.ndarray) -> float:
    """The objective every contender maximises, evaluated the same way for all."""
    cost = COST * float(np.abs(weights - inputs.current_weights).sum())
    risk = float(weights @ inputs.covariance @ weights)
    return float(expected_returns @ weights) - RISK_AVERSION / 2 * risk - cost


def quantserve_solver(inputs: Inputs) -> Callable[[np.ndarray], np.ndarray]:
    optimizer = PortfolioOptimizer()
    objective, constraints = (
        MeanVariance(RISK_AVERSION),
        [LongOnly(), WeightBounds(0.0, MAX_WEIGHT)],
    )

    def solve(expected_returns: np.ndarray) -> np.ndarray:
        return optimizer.optimize(
            objective,
            constraints,
            expected_returns,
            inputs.model,
            current_weights=inputs.current_weights,
            transaction_costs=COST,
        ).weights

    return solve


def naive_solver(inputs: Inputs) -> Callable[[np.ndarray], np.ndarray]:
    def solve(expected_returns: np.ndarray) -> np.ndarray:
        weights = cp.Variable(len(expected_returns))
        cost = COST * cp.norm1(weights - inputs.current_weights)
        risk = cp.quad_form(weights, inputs.covariance)
        problem = cp.Problem(
            cp.Maximize(expected_returns @ weights - RISK_AVERSION / 2 * risk - cost),
            [cp.sum(weights) == 1, weights >= 0, weights <= MAX_WEIGHT],
        )
        problem.solve(solver="CLARABEL")
        return np.asarray(weights.value)

    return solve


class FixedPrior(BasePrior):
    """A skfolio prior that hands over given moments (so every contender sees the same)."""

    def __init__(self, mu: np.ndarray | None = None, covariance: np.ndarray | None = None):
        self.mu = mu
        self.covariance = covariance

    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> FixedPrior:  # noqa: N803
        assert self.mu is not None
        assert self.covariance is not None
        self.return_distribution_ = ReturnDistribution(
            mu=self.mu, covariance=self.covariance, returns=np.asarray(X, dtype=float)
        )
        return self


def skfolio_solver(inputs: Inputs) -> Callable[[np.ndarray], np.ndarray]:
    scenarios = np.random.default_rng(1).normal(0.0, 0.01, (60, len(inputs.expected_returns)))

    def solve(expected_returns: np.ndarray) -> np.ndarray:
        model = MeanRisk(
            objective_function=ObjectiveFunction.MAXIMIZE_UTILITY,
            risk_aversion=RISK_AVERSION / 2,  # skfolio: mu'w - risk_aversion * w'Sigma w
            min_weights=0.0,
            max_weights=MAX_WEIGHT,
            transaction_costs=COST,
            previous_weights=inputs.current_weights,
            prior_estimator=FixedPrior(expected_returns, inputs.covariance),
        )
        return np.asarray(model.fit(scenarios).weights_)

    return solve


def time_solver(
    solve: Callable[[np.ndarray], np.ndarray], inputs: Inputs, repetitions: int, warmups: int
) -> tuple[float, np.ndarray, np.ndarray]:
    """Median milliseconds of ``repetitions`` solves after ``warmups``; the last weights."""
    for repetition in range(warmups):
        solve(inputs.perturbed(-1 - repetition))
    times = []
    weights = np.empty(0)
    expected_returns = inputs.expected_returns
    for repetition in range(repetitions):
        # Counting down: every contender's last solve uses perturbed(0), compared below.
        expected_returns = inputs.perturbed(repetitions - 1 - repetition)
        started = time.perf_counter()
        weights = solve(expected_returns)
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times), weights, expected_returns


def run(sizes: tuple[int, ...]) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    # Other work on the machine moves these figures: say how busy it was.
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average before the run (1, 5, 15 min): {load} on {os.cpu_count()} cores")
    print(
        f"{'n':>5} {'quantserve ms':>14} {'naive ms':>10} {'skfolio ms':>11} "
        f"{'naive/qs':>9} {'skfolio/qs':>11} {'naive dU':>10} {'skfolio dU':>11}"
    )
    for n_assets in sizes:
        inputs = synthetic_inputs(n_assets)
        dense_repetitions = DENSE_REPETITIONS.get(n_assets, 3)
        quantserve_ms, quantserve_w, mu = time_solver(
            quantserve_solver(inputs), inputs, QUANTSERVE_REPETITIONS, warmups=2
        )
        naive_ms, naive_w, _ = time_solver(naive_solver(inputs), inputs, dense_repetitions, 1)
        skfolio_ms, skfolio_w, _ = time_solver(skfolio_solver(inputs), inputs, dense_repetitions, 1)
        reference = utility(quantserve_w, inputs, mu)
        # Relative utility shortfall of each peer on the same (last) expected returns.
        naive_gap = (reference - utility(naive_w, inputs, mu)) / abs(reference)
        skfolio_gap = (reference - utility(skfolio_w, inputs, mu)) / abs(reference)
        results[str(n_assets)] = {
            "quantserve_ms": round(quantserve_ms, 2),
            "naive_ms": round(naive_ms, 2),
            "skfolio_ms": round(skfolio_ms, 2),
            "speedup_vs_naive": round(naive_ms / quantserve_ms, 1),
            "speedup_vs_skfolio": round(skfolio_ms / quantserve_ms, 1),
            "naive_utility_gap": float(f"{naive_gap:.2e}"),
            "skfolio_utility_gap": float(f"{skfolio_gap:.2e}"),
        }
        print(
            f"{n_assets:>5} {quantserve_ms:>14.2f} {naive_ms:>10.1f} {skfolio_ms:>11.1f} "
            f"{naive_ms / quantserve_ms:>9.1f} {skfolio_ms / quantserve_ms:>11.1f} "
            f"{naive_gap:>10.1e} {skfolio_gap:>11.1e}",
            flush=True,
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # peers' solver notices must not garble the table
        results = run(tuple(args.sizes))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
