"""The back-test benchmark's stopwatch: where each quantserve rebalance spends its time.

:class:`Timings` books a run's seconds by kind (estimating the inputs, compiling,
solving, the rest); :class:`TimedInputs` and :class:`TimedOptimizer` are the engine's own
classes with the stopwatch around the calls that matter, so the benchmark times the code
the service runs, not a copy of it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp

from backtest import MarketView, StrategyInputs
from optimizer import (
    CompiledProblem,
    Constraint,
    Objective,
    PortfolioOptimizer,
    PortfolioResult,
    ProblemData,
    ProblemShape,
)
from optimizer._pool import ProblemPool


@dataclass
class Timings:
    """Seconds spent in each part of a back-test, summed over its rebalances.

    ``total = estimation + solve + compile + other``: ``solve`` is the solver calls
    (cvxpy setting the parameters into the compiled program, Clarabel, reading the
    solution; quantserve's includes its checks of the solution) without the one-off
    ``compile`` (building the cvxpy problem and its first canonicalisation); ``other``
    is the rest (the simulation, views, validation, results).
    """

    total: float = 0.0
    estimation: float = 0.0
    solve: float = 0.0
    solver: float = 0.0
    """Clarabel's own time, as it reports it (part of ``solve``)."""
    compile: float = 0.0
    rebalances: int = 0
    failed: int = 0

    @property
    def per_rebalance(self) -> float:
        return self.total / self.rebalances if self.rebalances else float("nan")

    def breakdown(self) -> dict[str, float]:
        """Seconds per rebalance: total, estimation, solve, solver, compile, other."""
        n = max(self.rebalances, 1)
        other = self.total - self.estimation - self.solve - self.compile
        return {
            "total": self.total / n,
            "estimation": self.estimation / n,
            "solve": self.solve / n,
            "solver": self.solver / n,
            "compile": self.compile / n,
            "other": other / n,
        }

    def add_solve(self, seconds: float, problem: cp.Problem, first: bool) -> None:
        """Book one solve of ``problem`` that took ``seconds``; the first one compiled it."""
        if first:
            compiled = float(problem.compilation_time or 0.0)
            self.compile += compiled
            seconds -= compiled
        self.solve += seconds
        self.solver += float(problem.solver_stats.solve_time or 0.0)


@dataclass(frozen=True)
class TimedInputs(StrategyInputs):
    """``StrategyInputs`` that add the time of each estimate to ``timings``."""

    timings: Timings = field(default_factory=Timings, compare=False)

    def estimate(self, view: MarketView) -> Any:
        started = time.perf_counter()
        try:
            return super().estimate(view)
        finally:
            self.timings.estimation += time.perf_counter() - started


class TimedOptimizer(PortfolioOptimizer):
    """A ``PortfolioOptimizer`` that books its compilations and solves in ``timings``."""

    def __init__(self, timings: Timings) -> None:
        super().__init__()
        self.timings = timings
        self.compiled: CompiledProblem | None = None
        self._compiled_now = False

    def _pool(
        self, objective: Objective, canonical: Sequence[Constraint], shape: ProblemShape | int
    ) -> tuple[ProblemPool, bool]:
        # Every solve fetches its problem's pool here; one thread, so the pool lends its
        # first copy every time.
        started = time.perf_counter()
        pool, from_cache = super()._pool(objective, canonical, shape)
        if not from_cache:
            self.timings.compile += time.perf_counter() - started
        self.compiled, self._compiled_now = pool.primary, not from_cache
        return pool, from_cache

    def solve(
        self,
        objective: Objective,
        constraints: Sequence[Constraint],
        data: ProblemData,
        *,
        risk_free_rate: float | None = None,
    ) -> PortfolioResult:
        result = super().solve(objective, constraints, data, risk_free_rate=risk_free_rate)
        assert self.compiled is not None
        # The compiled problem's solve (cvxpy, Clarabel, the checks of the solution); the
        # validation of the inputs and the statistics of the result count as "other".
        self.timings.add_solve(
            result.solve_time_seconds, self.compiled.problem, first=self._compiled_now
        )
        return result
