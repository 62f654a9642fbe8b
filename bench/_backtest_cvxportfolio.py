"""The cvxportfolio side of ``make bench-backtest``: the closest policy, run offline."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from backtest import (
    REBALANCES_PER_YEAR,
    rebalance_rows,
)
from bench._backtest_timing import Timings
from bench.backtest import (
    CLARABEL_OPTIONS,
    COST_BPS,
    LOOKBACK_DAYS,
    MAX_WEIGHT,
    REBALANCE,
    RISK_AVERSION,
    TRADING_DAYS_PER_YEAR,
    EngineRun,
    Universe,
)


def rebalance_dates(universe: Universe) -> pd.DatetimeIndex:
    """quantserve's rebalance dates for this universe (the first after the look-back)."""
    dates = pd.DatetimeIndex(universe.prices.index)
    rows = rebalance_rows(dates, LOOKBACK_DAYS + 1, len(dates) - 1, REBALANCE)
    return dates[rows]


def run_cvxportfolio(universe: Universe) -> EngineRun:
    """The closest cvxportfolio policy, on the same returns and rebalance dates."""
    import cvxportfolio as cvx  # type: ignore[import-untyped]

    class RebalanceOn(cvx.policies.Policy):  # type: ignore[misc]
        """Run ``policy`` on ``times``; hold (trade nothing) on every other day."""

        def __init__(self, policy: Any, times: pd.DatetimeIndex) -> None:
            self.policy = policy
            self.times = set(times)
            self.timings = Timings()

        def initialize_estimator_recursive(self, **kwargs: Any) -> None:
            # Builds the policy's cvxpy problem (its first solve canonicalises it).
            started = time.perf_counter()
            super().initialize_estimator_recursive(**kwargs)
            self.timings.compile += time.perf_counter() - started

        def values_in_time_recursive(self, t: pd.Timestamp, **kwargs: Any) -> Any:
            if t not in self.times:
                self._current_value = kwargs["current_weights"]
                return self._current_value
            problem = self.policy._problem
            solves: list[float] = []
            solve = problem.solve

            def timed_solve(*args: Any, **options: Any) -> Any:
                started = time.perf_counter()
                try:
                    return solve(*args, **options)
                finally:
                    solves.append(time.perf_counter() - started)

            problem.solve = timed_solve
            started = time.perf_counter()
            try:
                self._current_value = self.policy.values_in_time_recursive(t=t, **kwargs)
            finally:
                problem.solve = solve
            elapsed = time.perf_counter() - started
            self.timings.estimation += elapsed - sum(solves)
            self.timings.add_solve(sum(solves), problem, first=self.timings.rebalances == 0)
            self.timings.rebalances += 1
            return self._current_value

    k = universe.n_factors
    window = pd.Timedelta(days=LOOKBACK_DAYS)
    cost = COST_BPS / 1e4
    # quantserve's annual objective divided by 252; cvxportfolio's covariance has ddof=0.
    risk_multiplier = RISK_AVERSION / 2 * LOOKBACK_DAYS / (LOOKBACK_DAYS - 1)
    cost_multiplier = REBALANCES_PER_YEAR[REBALANCE] / TRADING_DAYS_PER_YEAR
    objective = (
        cvx.ReturnsForecast(r_hat=cvx.forecast.HistoricalMeanReturn(rolling=window))
        - risk_multiplier
        * cvx.FactorModelCovariance(
            num_factors=k,
            Sigma=cvx.forecast.HistoricalFactorizedCovariance(rolling=window, kelly=False),
        )
        - cost_multiplier * cvx.TransactionCost(a=cost, b=None)
    )
    inner = cvx.SinglePeriodOptimization(
        objective,
        [cvx.LongOnly(), cvx.NoCash(), cvx.MaxWeights(MAX_WEIGHT)],
        include_cash_return=False,
        **CLARABEL_OPTIONS,
    )
    times = rebalance_dates(universe)
    policy = RebalanceOn(inner, times)
    prices = universe.prices
    # cvxportfolio's return at t runs from t to the next period (ours: previous to t),
    # so that at t it sees the prices up to t, as quantserve's view at t's close does.
    forward = (prices.shift(-1) / prices - 1.0).iloc[:-1]
    returns = forward.assign(cash=0.0)
    with tempfile.TemporaryDirectory(prefix="quantserve-bench-cvxportfolio-") as storage:
        started = time.perf_counter()
        market_data = cvx.UserProvidedMarketData(
            returns=returns,
            cash_key="cash",
            min_history=pd.Timedelta(0),
            base_location=Path(storage),
        )
        simulator = cvx.MarketSimulator(
            market_data=market_data,
            costs=[cvx.TransactionCost(a=cost, b=None)],
            base_location=Path(storage),
        )
        result = simulator.backtest(policy, start_time=times[0], end_time=returns.index[-1])
        weights = result.w_plus.loc[result.w_plus.index.isin(times)].iloc[:, :-1]
        policy.timings.total = time.perf_counter() - started
    return EngineRun(policy.timings, weights)
